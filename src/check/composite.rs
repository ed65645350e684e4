//! Composite operations, each written once from primitives in its
//! numerically stable form: reductions with keepdims, mean (with the
//! run-time batch size when B is reduced), logsumexp, softmax, one-hot,
//! powers, the matmul family, eye.
//!
//! Nothing after the checker sees these as units; autodiff and the
//! interpreter need rules for the primitives only.

use crate::diag::{Code, Diagnostic};
use crate::ir::{CmpOp, DType, Dim, NodeId, Op, Shape, Type};
use crate::span::Span;

use super::lower::Lowerer;

/// Puts reduced axes back as size 1 (`keepdims=true`).
pub fn keep_dims(
    lw: &mut Lowerer,
    n: NodeId,
    in_shape: &Shape,
    axes: u32,
    span: Span,
) -> Option<NodeId> {
    let dims: Vec<Dim> = in_shape
        .0
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if axes & (1 << i) != 0 {
                Dim::Fixed(1)
            } else {
                *d
            }
        })
        .collect();
    let dt = lw.g.ty(n).dtype;
    lw.prim(
        Op::Reshape,
        &[n],
        Some(Type::new(dt, Shape(dims))),
        span,
        &[],
    )
}

/// A reduction (`Op::ReduceSum` or `Op::ReduceMax` over `axes`),
/// optionally keeping the reduced axes as size 1.
fn reduce(
    lw: &mut Lowerer,
    op: Op,
    x: NodeId,
    axes: u32,
    keep: bool,
    span: Span,
) -> Option<NodeId> {
    let shape = lw.g.ty(x).shape.clone();
    if axes == 0 {
        return Some(x);
    }
    let s = lw.prim(op, &[x], None, span, &[])?;
    if keep {
        keep_dims(lw, s, &shape, axes, span)
    } else {
        Some(s)
    }
}

/// Σ over `axes`, optionally keeping them.
pub fn sum(lw: &mut Lowerer, x: NodeId, axes: u32, keep: bool, span: Span) -> Option<NodeId> {
    reduce(lw, Op::ReduceSum { axes }, x, axes, keep, span)
}

/// max over `axes`, optionally keeping them.
pub fn reduce_max(
    lw: &mut Lowerer,
    x: NodeId,
    axes: u32,
    keep: bool,
    span: Span,
) -> Option<NodeId> {
    reduce(lw, Op::ReduceMax { axes }, x, axes, keep, span)
}

/// The number of elements in `axes` of `shape`, as a scalar of `dtype`
/// (a product with the run-time batch size when B is among them).
pub fn count(
    lw: &mut Lowerer,
    shape: &Shape,
    axes: u32,
    dtype: DType,
    span: Span,
) -> Option<NodeId> {
    let mut n = 1u64;
    let mut batch = false;
    for (i, d) in shape.0.iter().enumerate() {
        if axes & (1 << i) != 0 {
            match d {
                Dim::Fixed(k) => n *= k,
                Dim::Batch => batch = true,
            }
        }
    }
    let c = lw.constant(n as f64, dtype, span);
    if batch {
        let b = lw.prim(Op::BatchSize, &[], Some(Type::scalar(dtype)), span, &[])?;
        if n == 1 {
            return Some(b);
        }
        return lw.prim(Op::Mul, &[b, c], None, span, &[]);
    }
    Some(c)
}

/// mean over `axes` = Σ / count.
pub fn mean(lw: &mut Lowerer, x: NodeId, axes: u32, keep: bool, span: Span) -> Option<NodeId> {
    let t = lw.g.ty(x).clone();
    let s = sum(lw, x, axes, keep, span)?;
    let c = count(lw, &t.shape, axes, t.dtype, span)?;
    let r = lw.prim(Op::Recip, &[c], None, span, &[])?;
    lw.prim(Op::Mul, &[s, r], None, span, &[])
}

/// exp(x − m) and m, with m = max x over `axes` (kept as size-1 axes) held
/// constant for differentiation: the shared stable core of logsumexp and
/// softmax, which never exponentiates anything above 0.
fn shifted_exp(lw: &mut Lowerer, x: NodeId, axes: u32, span: Span) -> Option<(NodeId, NodeId)> {
    let m = reduce_max(lw, x, axes, true, span)?;
    let m = lw.prim(Op::StopGradient, &[m], None, span, &[])?;
    let nm = lw.prim(Op::Neg, &[m], None, span, &[])?;
    let shifted = lw.prim(Op::Add, &[x, nm], None, span, &[])?;
    let e = lw.prim(Op::Exp, &[shifted], None, span, &[])?;
    Some((e, m))
}

/// logsumexp over `axes`, stable: m + log Σ exp(x − m) with m = max x
/// (m is a constant for differentiation; the result's gradient is still
/// exactly softmax).
pub fn logsumexp(lw: &mut Lowerer, x: NodeId, axes: u32, keep: bool, span: Span) -> Option<NodeId> {
    let (e, m) = shifted_exp(lw, x, axes, span)?;
    let s = sum(lw, e, axes, true, span)?;
    let l = lw.prim(Op::Log, &[s], None, span, &[])?;
    let r = lw.prim(Op::Add, &[l, m], None, span, &[])?;
    if keep {
        Some(r)
    } else {
        let dt = lw.g.ty(r).dtype;
        let dims: Vec<Dim> =
            lw.g.ty(x)
                .shape
                .0
                .iter()
                .enumerate()
                .filter(|(i, _)| axes & (1 << i) == 0)
                .map(|(_, d)| *d)
                .collect();
        lw.prim(
            Op::Reshape,
            &[r],
            Some(Type::new(dt, Shape(dims))),
            span,
            &[],
        )
    }
}

/// softplus(x) = log(1 + eˣ), stable: m + log(e⁻ᵐ + eˣ⁻ᵐ) with
/// m = max(x, 0) held constant for differentiation (both exponents are
/// ≤ 0, one of them 0), so the gradient is exactly σ(x), also at x = 0
/// where max and |x| have no derivative of their own.
pub fn softplus(lw: &mut Lowerer, x: NodeId, span: Span) -> Option<NodeId> {
    let dt = lw.g.ty(x).dtype;
    let zero = lw.constant(0.0, dt, span);
    let m = lw.prim(Op::Max, &[x, zero], None, span, &[])?;
    let m = lw.prim(Op::StopGradient, &[m], None, span, &[])?;
    let nm = lw.prim(Op::Neg, &[m], None, span, &[])?;
    let e0 = lw.prim(Op::Exp, &[nm], None, span, &[])?;
    let xm = lw.prim(Op::Add, &[x, nm], None, span, &[])?;
    let e1 = lw.prim(Op::Exp, &[xm], None, span, &[])?;
    let s = lw.prim(Op::Add, &[e0, e1], None, span, &[])?;
    let l = lw.prim(Op::Log, &[s], None, span, &[])?;
    lw.prim(Op::Add, &[l, m], None, span, &[])
}

/// softmax along `axes`: exp(x − m) / Σ exp(x − m).
pub fn softmax(lw: &mut Lowerer, x: NodeId, axes: u32, span: Span) -> Option<NodeId> {
    let (e, _) = shifted_exp(lw, x, axes, span)?;
    let s = sum(lw, e, axes, true, span)?;
    let r = lw.prim(Op::Recip, &[s], None, span, &[])?;
    lw.prim(Op::Mul, &[e, r], None, span, &[])
}

/// min(a, b) = −max(−a, −b); `spans` locate a and b for shape errors.
pub fn minimum(
    lw: &mut Lowerer,
    a: NodeId,
    b: NodeId,
    span: Span,
    spans: &[Span],
) -> Option<NodeId> {
    let na = lw.prim(Op::Neg, &[a], None, span, &[])?;
    let nb = lw.prim(Op::Neg, &[b], None, span, &[])?;
    let m = lw.prim(Op::Max, &[na, nb], None, span, spans)?;
    lw.prim(Op::Neg, &[m], None, span, &[])
}

/// one_hot(y, n)[…, k] = (y[…] == k) as f32.
pub fn one_hot(lw: &mut Lowerer, y: NodeId, n: u64, span: Span) -> Option<NodeId> {
    let t = lw.g.ty(y).clone();
    let mut dims = t.shape.0.clone();
    dims.push(Dim::Fixed(1));
    let col = lw.prim(
        Op::Reshape,
        &[y],
        Some(Type::new(t.dtype, Shape(dims))),
        span,
        &[],
    )?;
    let iota = lw.prim(
        Op::Iota { axis: 0 },
        &[],
        Some(Type::new(t.dtype, Shape::fixed(&[n]))),
        span,
        &[],
    )?;
    let eq = lw.prim(Op::Cmp(CmpOp::Eq), &[col, iota], None, span, &[])?;
    let st = lw.g.ty(eq).shape.clone();
    lw.prim(Op::Cast, &[eq], Some(Type::new(DType::F32, st)), span, &[])
}

/// aᵇ, with small constant integer powers as products (so x**2 works for
/// negative x and differentiates exactly) and b = ½ as √.
pub fn power(
    lw: &mut Lowerer,
    a: NodeId,
    b: NodeId,
    span: Span,
    sa: Span,
    sb: Span,
) -> Option<NodeId> {
    let dt = lw.g.ty(a).dtype;
    if let Some(k) = lw.g.const_value(b) {
        if k == 1.0 {
            return Some(a);
        }
        if k == 0.5 && dt.is_float() {
            return lw.prim(Op::Sqrt, &[a], None, span, &[sa]);
        }
        if k == -1.0 && dt.is_float() {
            return lw.prim(Op::Recip, &[a], None, span, &[sa]);
        }
        if k == k.trunc() && (2.0..=4.0).contains(&k) {
            let mut r = a;
            for _ in 1..(k as u32) {
                r = lw.prim(Op::Mul, &[r, a], None, span, &[])?;
            }
            return Some(r);
        }
    }
    let a = lw.float_operand("**", Lowerer::strong(a), sa)?;
    let b = lw.float_operand("**", Lowerer::strong(b), sb)?;
    let (a, b, _) = lw.promote_nodes("raise", (a, sa), (b, sb), span)?;
    lw.prim(Op::Pow, &[a, b], None, span, &[sa, sb])
}

/// `a @ b` for matrices and vectors (dot, matvec, vecmat, matmul).
pub fn matmul(
    lw: &mut Lowerer,
    a: NodeId,
    b: NodeId,
    span: Span,
    sa: Span,
    sb: Span,
) -> Option<NodeId> {
    let (ta, tb) = (lw.g.ty(a).clone(), lw.g.ty(b).clone());
    let (ra, rb) = (ta.shape.rank(), tb.shape.rank());
    let inner = |s: &Shape, first: bool| {
        if first {
            s.0.last().copied()
        } else {
            s.0.first().copied()
        }
    };
    let bad = |lw: &mut Lowerer, why: String| {
        lw.error(
            Diagnostic::new(Code::ShapeMismatch, why)
                .label(sa, format!("this is {ta}"))
                .label(sb, format!("this is {tb}")),
        );
    };
    if ra == 0 || rb == 0 || ra > 2 || rb > 2 {
        bad(
            lw,
            format!(
                "`@` multiplies vectors and matrices, found {} and {}",
                ta.shape, tb.shape
            ),
        );
        return None;
    }
    let (ka, kb) = (inner(&ta.shape, true), inner(&tb.shape, false));
    if ka != kb {
        let (ka, kb) = (ka.unwrap_or(Dim::Fixed(0)), kb.unwrap_or(Dim::Fixed(0)));
        bad(
            lw,
            format!(
                "cannot multiply {} by {}: inner dimensions {ka} and {kb} differ",
                ta.shape, tb.shape
            ),
        );
        return None;
    }
    let dt = ta.dtype;
    match (ra, rb) {
        (1, 1) => {
            let p = lw.prim(Op::Mul, &[a, b], None, span, &[sa, sb])?;
            lw.prim(Op::ReduceSum { axes: 1 }, &[p], None, span, &[])
        }
        (2, 2) => lw.prim(Op::MatMul, &[a, b], None, span, &[sa, sb]),
        (2, 1) => {
            let col = Shape(vec![tb.shape.0[0], Dim::Fixed(1)]);
            let bc = lw.prim(Op::Reshape, &[b], Some(Type::new(dt, col)), span, &[])?;
            let m = lw.prim(Op::MatMul, &[a, bc], None, span, &[])?;
            let out = Shape(vec![ta.shape.0[0]]);
            lw.prim(Op::Reshape, &[m], Some(Type::new(dt, out)), span, &[])
        }
        _ => {
            let row = Shape(vec![Dim::Fixed(1), ta.shape.0[0]]);
            let ar = lw.prim(Op::Reshape, &[a], Some(Type::new(dt, row)), span, &[])?;
            let m = lw.prim(Op::MatMul, &[ar, b], None, span, &[])?;
            let out = Shape(vec![tb.shape.0[1]]);
            lw.prim(Op::Reshape, &[m], Some(Type::new(dt, out)), span, &[])
        }
    }
}

/// eye(n)[i,j] = (i == j) as f32
pub fn eye(lw: &mut Lowerer, n: u64, span: Span) -> Option<NodeId> {
    let t = Type::new(DType::I32, Shape::fixed(&[n, n]));
    let i = lw.prim(Op::Iota { axis: 0 }, &[], Some(t.clone()), span, &[])?;
    let j = lw.prim(Op::Iota { axis: 1 }, &[], Some(t), span, &[])?;
    let eq = lw.prim(Op::Cmp(CmpOp::Eq), &[i, j], None, span, &[])?;
    lw.prim(
        Op::Cast,
        &[eq],
        Some(Type::new(DType::F32, Shape::fixed(&[n, n]))),
        span,
        &[],
    )
}
