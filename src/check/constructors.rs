//! Tensor constructors: zeros, ones, full, arange, eye, diag, and the
//! random tensors rand and randn.

use crate::diag::{Code, Diagnostic};
use crate::ir::{DType, Dim, Dist, NodeId, Op, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::{Arg, Expr};

use super::args::{bind, const_error, float_arg, int_arg, sig, tensor};
use super::composite::eye;
use super::consts::{self, Const};
use super::lower::{Lowerer, Val};

/// The longest axis a tensor may have (2³¹, as declared types allow).
const MAX_LENGTH: u64 = 1 << 31;

/// Lowers a call to builtin `name` (one of this module's).
pub fn call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let strong = Lowerer::strong;
    match name {
        "zeros" | "ones" | "rand" | "randn" => filled(lw, name, args, span),
        "multinomial" => multinomial(lw, args, span).map(strong),
        "full" => full(lw, name, args, span),
        "arange" => arange(lw, name, args, span),
        "eye" => eye_call(lw, name, args, span),
        "diag" => diag(lw, name, args, span),
        _ => None,
    }
}

/// `zeros`, `ones`, `rand` and `randn` of a shape.
fn filled(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let dims = shape_args(lw, name, args, span)?;
    let t = Type::new(DType::F32, Shape::fixed(&dims));
    match name {
        "zeros" | "ones" => {
            let c = lw.constant(if name == "ones" { 1.0 } else { 0.0 }, DType::F32, span);
            lw.prim(Op::Broadcast, &[c], Some(t), span, &[])
                .map(Lowerer::strong)
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
                .map(Lowerer::strong)
        }
    }
}

/// `full(shape, value)`.
fn full(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
    .map(Lowerer::strong)
}

/// `arange(end)`, `arange(start, end)` or `arange(start, end, step)`.
fn arange(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
    if step == 0.0 {
        lw.error(
            Diagnostic::new(Code::BadArgument, "arange with a step of 0")
                .label(span, format!("from {start} to {stop} by {step}")),
        );
        return None;
    }
    if !n.is_finite() || n < 1.0 {
        lw.error(
            Diagnostic::new(Code::BadArgument, "arange gives no elements")
                .label(span, format!("from {start} to {stop} by {step}"))
                .note(if (stop - start) * step < 0.0 {
                    "the step goes away from the stop"
                } else {
                    "the start is already at the stop"
                }),
        );
        return None;
    }
    if n > MAX_LENGTH as f64 {
        lw.error(
            Diagnostic::new(
                Code::BadArgument,
                format!(
                    "arange gives {n:.0} elements, more than the {MAX_LENGTH} an axis may have"
                ),
            )
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
    Some(Lowerer::strong(r))
}

/// `eye(n)`.
fn eye_call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["n"], 1), args, span)?;
    let n = int_arg(lw, sl[0]?)?;
    if n < 1 {
        const_error(lw, sl[0]?, "a positive size");
        return None;
    }
    if n > 100_000 {
        lw.error(
            Diagnostic::new(
                Code::BadArgument,
                format!("eye({n}) would be {n} × {n}, larger than the 100000 × 100000 eye allows"),
            )
            .label(sl[0]?.span, "too large"),
        );
        return None;
    }
    eye(lw, n as u64, span).map(Lowerer::strong)
}

/// `diag(v)`: a square matrix with `v` on its diagonal.
fn diag(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["v"], 1), args, span)?;
    let ev = sl[0]?;
    let (v, sv) = float_arg(lw, name, Some(ev))?;
    let t = lw.g.ty(v).clone();
    let (1, Dim::Fixed(n)) = (
        t.shape.rank(),
        t.shape.0.first().copied().unwrap_or(Dim::Batch),
    ) else {
        lw.shape_error("diag takes a vector of fixed length", sv, &t);
        return None;
    };
    // diag(v)[i,j] = v[j]·δᵢⱼ
    let e = eye(lw, n, span)?;
    let e = lw.convert(Lowerer::strong(e), t.dtype, span)?;
    lw.prim(Op::Mul, &[v, e], None, span, &[])
        .map(Lowerer::strong)
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

/// multinomial(n, probs, samples=m): counts of n draws from the categories
/// of `probs` (normalized to sum 1), f32[K]; with `samples`, m independent
/// experiments, f32[m, K] (d2l §2.6's dice). Each draw is a uniform u that
/// lands in category #{k : u ≥ cumsum(p)[k]}, the cumulative sum taken as
/// p @ T with T[i, j] = (i ≤ j); the counts are the draws' one-hot rows
/// summed.
fn multinomial(lw: &mut Lowerer, args: &[Arg], span: Span) -> Option<NodeId> {
    let name = "multinomial";
    let sl = bind(lw, name, &sig(&["n", "probs", "samples"], 2), args, span)?;
    let n = int_arg(lw, sl[0]?)?;
    let samples = match sl[2] {
        Some(e) => Some(int_arg(lw, e)?),
        None => None,
    };
    let (p, sp) = float_arg(lw, name, sl[1])?;
    let pt = lw.g.ty(p).clone();
    let k = match pt.shape.0[..] {
        [Dim::Fixed(k)] if k > 0 => k,
        _ => {
            lw.shape_error("`multinomial` takes a vector of probabilities", sp, &pt);
            return None;
        }
    };
    for (what, v, e) in [("n", Some(n), sl[0]), ("samples", samples, sl[2])] {
        if let (Some(v), Some(e)) = (v, e) {
            if !(0..=1 << 24).contains(&v) || (what == "samples" && v == 0) {
                lw.error(
                    Diagnostic::new(Code::BadArgument, format!("`{what}` is out of range")).label(
                        e.span,
                        format!(
                            "{what} must be between {} and 2^24",
                            u8::from(what == "samples")
                        ),
                    ),
                );
                return None;
            }
        }
    }
    // Probabilities known when the line is compiled are checked here (as
    // torch.multinomial checks them when it runs).
    if let Some(ps) = lw.known_values(p) {
        let problem = if ps.iter().any(|v| !v.is_finite()) {
            Some("a probability that is not finite")
        } else if ps.iter().any(|v| *v < 0.0) {
            Some("a negative probability")
        } else if ps.iter().all(|v| *v == 0.0) {
            Some("probabilities that are all zero")
        } else {
            None
        };
        if let Some(what) = problem {
            lw.error(
                Diagnostic::new(Code::BadArgument, format!("multinomial: {what}"))
                    .label(sp, "the probabilities")
                    .note("probabilities are ≥ 0 with a positive sum (they are normalized)"),
            );
            return None;
        }
    }
    let (n, k) = (n as u64, k);
    let f = |dims: &[u64]| Type::new(DType::F32, Shape::fixed(dims));
    let p = lw.convert(Lowerer::strong(p), DType::F32, sp)?;
    // p / Σp
    let total = super::composite::sum(lw, p, 1, false, span)?;
    let r = lw.prim(Op::Recip, &[total], None, span, &[])?;
    let p = lw.prim(Op::Mul, &[p, r], None, span, &[])?;
    // cumsum(p) = p @ T, T[i, j] = (i ≤ j)
    let tri = super::joins::upper_ones(lw, k, DType::F32, span)?;
    let row = lw.prim(Op::Reshape, &[p], Some(f(&[1, k])), span, &[])?;
    let cum = lw.prim(Op::MatMul, &[row, tri], None, span, &[])?;
    // One uniform per draw: [m, n, 1] against the cumulative sums [1, k].
    let m = samples.map(|m| m as u64);
    let draws: Vec<u64> = m.into_iter().chain([n, 1]).collect();
    let step = step_node(lw, span)?;
    let stream = lw.fresh_stream();
    let u = lw.prim(
        Op::Random {
            dist: Dist::Uniform,
            stream,
        },
        &[step],
        Some(f(&draws)),
        span,
        &[],
    )?;
    let past = lw.prim(Op::Cmp(crate::ir::CmpOp::Ge), &[u, cum], None, span, &[])?;
    let mut wide = draws.clone();
    *wide.last_mut()? = k;
    let past = lw.prim(Op::Cast, &[past], Some(f(&wide)), span, &[])?;
    let last = wide.len() - 1;
    let idx = super::composite::sum(lw, past, 1 << last, false, span)?;
    // Rounding can leave Σp a hair below 1: the last category takes u ≥ it.
    let top = lw.constant((k - 1) as f64, DType::F32, span);
    let idx = super::composite::minimum(lw, idx, top, span, &[])?;
    // The draws' one-hot rows, summed per experiment.
    let hit = super::composite::one_hot(lw, idx, k, span)?;
    super::composite::sum(lw, hit, 1 << (last - 1), false, span)
}
