//! A builtin call's arguments: binding positional and keyword arguments
//! to a signature, and the constant arguments (integers, booleans, axes)
//! with their diagnostics. Below the builtins and composites that use it.

use crate::diag::{Code, Diagnostic};
use crate::ir::NodeId;
use crate::span::Span;
use crate::syntax::ast::{Arg, Expr};

use super::consts::{self, Const};
use super::lower::{nearest, Lowerer, Val};

/// A builtin's parameters: names in positional order and how many are required.
pub(super) struct Sig {
    pub(super) params: &'static [&'static str],
    pub(super) required: usize,
}

pub(super) const fn sig(params: &'static [&'static str], required: usize) -> Sig {
    Sig { params, required }
}

/// Binds positional and keyword arguments to parameter slots.
pub(super) fn bind<'e>(
    lw: &mut Lowerer,
    name: &str,
    s: &Sig,
    args: &'e [Arg],
    span: Span,
) -> Option<Vec<Option<&'e Expr>>> {
    let mut slots: Vec<Option<&Expr>> = vec![None; s.params.len()];
    let mut positional = 0;
    for a in args {
        let idx = match &a.name {
            None => {
                if positional >= s.params.len() {
                    lw.error(
                        Diagnostic::new(
                            Code::Arity,
                            format!(
                                "`{name}` takes at most {} argument{}, got {}",
                                s.params.len(),
                                if s.params.len() == 1 { "" } else { "s" },
                                args.len()
                            ),
                        )
                        .label(a.value.span, "unexpected argument")
                        .note(format!("`{name}({})`", s.params.join(", "))),
                    );
                    return None;
                }
                positional += 1;
                positional - 1
            }
            Some(k) => match s.params.iter().position(|p| *p == k.node) {
                Some(i) => i,
                None => {
                    let mut d = Diagnostic::new(
                        Code::Arity,
                        format!("`{name}` has no argument `{}`", k.node),
                    )
                    .label(k.span, "unknown keyword");
                    if let Some(n) = nearest(&k.node, s.params.iter().copied()) {
                        d = d.note(format!("did you mean `{n}`?"));
                    } else {
                        d = d.note(format!("`{name}({})`", s.params.join(", ")));
                    }
                    lw.error(d);
                    return None;
                }
            },
        };
        if slots[idx].is_some() {
            lw.error(
                Diagnostic::new(
                    Code::Arity,
                    format!("argument `{}` of `{name}` given twice", s.params[idx]),
                )
                .label(a.value.span, "given again here"),
            );
            return None;
        }
        slots[idx] = Some(&a.value);
    }
    for (i, p) in s.params.iter().enumerate().take(s.required) {
        if slots[i].is_none() {
            lw.error(
                Diagnostic::new(Code::Arity, format!("`{name}` needs the argument `{p}`"))
                    .label(span, "in this call")
                    .note(format!("`{name}({})`", s.params.join(", "))),
            );
            return None;
        }
    }
    Some(slots)
}

pub(super) fn tensor(lw: &mut Lowerer, e: Option<&Expr>) -> Option<Val> {
    lw.expr(e?)
}

pub(super) fn float_arg(lw: &mut Lowerer, fname: &str, e: Option<&Expr>) -> Option<(NodeId, Span)> {
    let e = e?;
    let v = lw.expr(e)?;
    let n = lw.float_operand(fname, v, e.span)?;
    Some((n, e.span))
}

pub(super) fn const_error(lw: &mut Lowerer, e: &Expr, what: &str) {
    lw.error(
        Diagnostic::new(Code::BadArgument, format!("expected {what}"))
            .label(e.span, format!("this must be {what}")),
    );
}

/// A constant integer argument.
pub(super) fn int_arg(lw: &mut Lowerer, e: &Expr) -> Option<i64> {
    let v = consts::integer(e);
    if v.is_none() {
        const_error(lw, e, "a constant integer");
    }
    v
}

pub(super) fn bool_arg(lw: &mut Lowerer, e: Option<&Expr>) -> Option<bool> {
    match e {
        None => Some(false),
        Some(e) => match consts::eval(e) {
            Some(Const::Bool(b)) => Some(b),
            _ => {
                const_error(lw, e, "`true` or `false`");
                None
            }
        },
    }
}

/// Normalizes `axis=` (an int, a list, or absent = all axes) into a bit set.
pub(super) fn axes_arg(lw: &mut Lowerer, e: Option<&Expr>, rank: usize, span: Span) -> Option<u32> {
    let Some(e) = e else {
        return Some(if rank == 0 { 0 } else { (1u32 << rank) - 1 });
    };
    let list = match consts::eval(e) {
        Some(Const::Num(v, true)) => vec![v as i64],
        Some(Const::List(items)) => {
            let mut out = Vec::new();
            for it in items {
                match it {
                    Const::Num(v, true) => out.push(v as i64),
                    _ => {
                        const_error(lw, e, "an axis or a list of axes");
                        return None;
                    }
                }
            }
            out
        }
        _ => {
            const_error(lw, e, "an axis or a list of axes");
            return None;
        }
    };
    let mut bits = 0u32;
    for a in list {
        let r = rank as i64;
        let n = if a < 0 { a + r } else { a };
        if n < 0 || n >= r {
            lw.error(
                Diagnostic::new(
                    Code::BadAxis,
                    format!("axis {a} is out of range for a tensor of rank {rank}"),
                )
                .label(e.span, format!("valid axes are {}..{}", -r, r.max(1) - 1))
                .label(span, "in this call"),
            );
            return None;
        }
        if bits & (1 << n) != 0 {
            lw.error(
                Diagnostic::new(Code::BadAxis, format!("axis {a} is repeated"))
                    .label(e.span, "repeated axis"),
            );
            return None;
        }
        bits |= 1 << n;
    }
    Some(bits)
}
