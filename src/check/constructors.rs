//! Tensor constructors: zeros, ones, full, arange, eye, diag, and the
//! random tensors rand and randn.

use crate::diag::{Code, Diagnostic};
use crate::ir::{DType, Dim, Dist, NodeId, Op, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::{Arg, Expr};

use super::builtins::{bind, const_error, float_arg, int_arg, sig, tensor};
use super::composite::eye;
use super::consts::{self, Const};
use super::lower::{Lowerer, Val};

/// Lowers a call to builtin `name` (one of this module's).
pub fn call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let strong = Lowerer::strong;
    match name {
        "zeros" | "ones" | "rand" | "randn" => {
            let dims = shape_args(lw, name, args, span)?;
            let t = Type::new(DType::F32, Shape::fixed(&dims));
            match name {
                "zeros" | "ones" => {
                    let c = lw.constant(if name == "ones" { 1.0 } else { 0.0 }, DType::F32, span);
                    lw.prim(Op::Broadcast, &[c], Some(t), span, &[]).map(strong)
                }
                _ => {
                    let step = step_node(lw, span)?;
                    let stream = lw.fresh_stream();
                    let dist = if name == "rand" {
                        Dist::Uniform
                    } else {
                        Dist::Normal
                    };
                    lw.prim(Op::Random { dist, stream }, &[step], Some(t), span, &[])
                        .map(strong)
                }
            }
        }
        "full" => {
            let sl = bind(lw, name, &sig(&["shape", "value"], 2), args, span)?;
            let es = sl[0]?;
            let dims = shape_args(
                lw,
                name,
                &[Arg {
                    name: None,
                    value: es.clone(),
                }],
                es.span,
            )?;
            let v = tensor(lw, sl[1])?;
            let dt = if v.weak { DType::F32 } else { lw.ty(v).dtype };
            let v = lw.convert(v, dt, span)?;
            lw.prim(
                Op::Broadcast,
                &[v],
                Some(Type::new(dt, Shape::fixed(&dims))),
                span,
                &[],
            )
            .map(strong)
        }
        "arange" => {
            let sl = bind(lw, name, &sig(&["start", "stop", "step"], 1), args, span)?;
            let nums: Vec<Option<Const>> = sl.iter().map(|e| e.and_then(consts::eval)).collect();
            let mut vals = Vec::new();
            let mut all_int = true;
            for (i, c) in nums.iter().enumerate() {
                match (c, sl[i]) {
                    (Some(Const::Num(v, int)), _) => {
                        all_int &= *int;
                        vals.push(Some(*v));
                    }
                    (None, None) => vals.push(None),
                    (_, Some(e)) => {
                        const_error(lw, e, "a constant number");
                        return None;
                    }
                    (_, None) => vals.push(None),
                }
            }
            let (start, stop) = match (vals[0], vals[1]) {
                (Some(a), Some(b)) => (a, b),
                (Some(a), None) => (0.0, a),
                _ => (0.0, 0.0),
            };
            let step = vals[2].unwrap_or(1.0);
            let n = ((stop - start) / step).ceil();
            if step == 0.0 || !n.is_finite() || !(1.0..=1.0e9).contains(&n) {
                lw.error(
                    Diagnostic::new(Code::BadArgument, "arange gives no elements")
                        .label(span, format!("from {start} to {stop} by {step}")),
                );
                return None;
            }
            let dt = if all_int { DType::I32 } else { DType::F32 };
            let iota = lw.prim(
                Op::Iota { axis: 0 },
                &[],
                Some(Type::new(dt, Shape::fixed(&[n as u64]))),
                span,
                &[],
            )?;
            let mut r = iota;
            if step != 1.0 {
                let s = lw.constant(step, dt, span);
                r = lw.prim(Op::Mul, &[r, s], None, span, &[])?;
            }
            if start != 0.0 {
                let s = lw.constant(start, dt, span);
                r = lw.prim(Op::Add, &[r, s], None, span, &[])?;
            }
            Some(strong(r))
        }
        "eye" => {
            let sl = bind(lw, name, &sig(&["n"], 1), args, span)?;
            let n = int_arg(lw, sl[0]?)?;
            if !(1..=100_000).contains(&n) {
                const_error(lw, sl[0]?, "a positive size");
                return None;
            }
            eye(lw, n as u64, span).map(strong)
        }
        "diag" => {
            let sl = bind(lw, name, &sig(&["v"], 1), args, span)?;
            let ev = sl[0]?;
            let (v, sv) = float_arg(lw, name, Some(ev))?;
            let t = lw.g.ty(v).clone();
            let (1, Dim::Fixed(n)) = (
                t.shape.rank(),
                t.shape.0.first().copied().unwrap_or(Dim::Batch),
            ) else {
                lw.error(
                    Diagnostic::new(Code::ShapeMismatch, "diag takes a vector of fixed length")
                        .label(sv, format!("this is {t}")),
                );
                return None;
            };
            // diag(v)[i,j] = v[j]·δᵢⱼ
            let e = eye(lw, n, span)?;
            let e = lw.convert(strong(e), t.dtype, span)?;
            lw.prim(Op::Mul, &[v, e], None, span, &[]).map(strong)
        }
        _ => None,
    }
}

/// A shape from `f(2, 3)` or `f([2, 3])`.
fn shape_args(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Vec<u64>> {
    let exprs: Vec<&Expr> = args
        .iter()
        .filter(|a| a.name.is_none())
        .map(|a| &a.value)
        .collect();
    if let Some(a) = args.iter().find(|a| a.name.is_some()) {
        if let Some(k) = &a.name {
            lw.error(
                Diagnostic::new(
                    Code::Arity,
                    format!("`{name}` has no argument `{}`", k.node),
                )
                .label(k.span, "unknown keyword")
                .note(format!("`{name}(2, 3)` or `{name}([2, 3])`")),
            );
        }
        return None;
    }
    let vals: Vec<Const> = match exprs.as_slice() {
        [one] => match consts::eval(one) {
            Some(Const::List(items)) => items,
            Some(c) => vec![c],
            None => vec![Const::Name(String::new())],
        },
        many => many
            .iter()
            .map(|e| consts::eval(e).unwrap_or(Const::Name(String::new())))
            .collect(),
    };
    let mut dims = Vec::new();
    for v in vals {
        match v {
            Const::Num(n, true) if (0.0..=1.0e9).contains(&n) => dims.push(n as u64),
            _ => {
                lw.error(
                    Diagnostic::new(
                        Code::BadArgument,
                        format!("`{name}` takes a shape of constant sizes"),
                    )
                    .label(span, "like `zeros(2, 3)` or `zeros([2, 3])`"),
                );
                return None;
            }
        }
    }
    Some(dims)
}

pub(super) fn step_node(lw: &mut Lowerer, span: Span) -> Option<NodeId> {
    match lw.step {
        Some(s) => Some(s),
        None => {
            lw.error(
                Diagnostic::new(Code::BadArgument, "random numbers are not available here")
                    .label(span, "used here"),
            );
            None
        }
    }
}
