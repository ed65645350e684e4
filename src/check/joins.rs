//! Joining and accumulating along an axis (d2l §2.1's `torch.cat`, §2.3's
//! `cumsum`), written with primitives so that their shape rules are here,
//! their derivatives come from the primitives' and their kernels are the
//! primitives' kernels:
//!
//! ```text
//! concat([x₁, …, xₖ], axis) = Σᵢ pad(xᵢ, at offsetᵢ along axis)   (d/dxᵢ = slice)
//! stack([x₁, …, xₖ], axis)  = concat([reshape(xᵢ, 1 inserted at axis)], axis)
//! cumsum(x, axis)           = x @ T along axis, T[i, j] = (i ≤ j)  (d/dx = g @ Tᵀ)
//! ```
//!
//! `cumsum` is a product with a triangular matrix: O(n²) in the length of
//! its axis, which the memory budget bounds; the axes of d2l's examples
//! are short.

use crate::diag::{Code, Diagnostic};
use crate::ir::{CmpOp, DType, Dim, NodeId, Op, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::{Arg, ExprKind};

use super::args::{axes_arg, bind, const_error, sig, tensor};
use super::lower::{Lowerer, Val};

/// Lowers a call to `concat`, `stack` or `cumsum`.
pub fn call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let strong = Lowerer::strong;
    match name {
        "concat" | "stack" => {
            let sl = bind(lw, name, &sig(&["tensors", "axis"], 1), args, span)?;
            let list = sl[0]?;
            let ExprKind::List(items) = &list.node else {
                const_error(lw, list, "a list of tensors like [X, Y]");
                return None;
            };
            if items.is_empty() {
                const_error(lw, list, "a list of at least one tensor");
                return None;
            }
            let mut vals = Vec::new();
            for it in items {
                vals.push((lw.expr(it)?, it.span));
            }
            let dt = common_dtype(lw, name, &vals)?;
            let mut xs = Vec::new();
            for (v, s) in &vals {
                xs.push((lw.convert(*v, dt, *s)?, *s));
            }
            let rank = lw.g.ty(xs[0].0).shape.rank();
            // stack inserts the new axis: axis may be rank (at the end).
            let out_rank = if name == "stack" { rank + 1 } else { rank };
            let axis = match sl[1] {
                Some(e) => axes_arg(lw, Some(e), out_rank, span)?,
                None => 1,
            };
            if axis.count_ones() != 1 {
                const_error(lw, sl[1]?, "one axis");
                return None;
            }
            let axis = axis.trailing_zeros() as usize;
            if name == "stack" {
                let first = lw.g.ty(xs[0].0).clone();
                for (x, s) in xs.iter_mut() {
                    let t = lw.g.ty(*x).clone();
                    if t.shape != first.shape {
                        lw.error(
                            Diagnostic::new(
                                Code::ShapeMismatch,
                                format!(
                                    "stack takes tensors of one shape, found {} and {}",
                                    first.shape, t.shape
                                ),
                            )
                            .label(vals[0].1, format!("this is {first}"))
                            .label(*s, format!("this is {t}")),
                        );
                        return None;
                    }
                    let mut dims = t.shape.0.clone();
                    dims.insert(axis, Dim::Fixed(1));
                    *x = lw.prim(
                        Op::Reshape,
                        &[*x],
                        Some(Type::new(dt, Shape(dims))),
                        *s,
                        &[],
                    )?;
                }
            }
            concat(lw, &xs, axis, span).map(strong)
        }
        "cumsum" => {
            let sl = bind(lw, name, &sig(&["x", "axis"], 1), args, span)?;
            let x = tensor(lw, sl[0])?;
            let sx = sl[0]?.span;
            let t = lw.ty(x).clone();
            let rank = t.shape.rank();
            let axis = match (sl[1], rank) {
                (Some(e), _) => axes_arg(lw, Some(e), rank, span)?,
                (None, 1) => 1,
                (None, _) => {
                    lw.error(
                        Diagnostic::new(Code::Arity, "cumsum of a tensor of rank > 1 needs `axis`")
                            .label(span, format!("this is {t}"))
                            .note("cumsum(A, axis = 0) sums down the rows, as d2l §2.3 does"),
                    );
                    return None;
                }
            };
            if axis.count_ones() != 1 || t.dtype == DType::Bool {
                const_error(lw, sl[1].unwrap_or(sl[0]?), "one axis of a numeric tensor");
                return None;
            }
            cumsum(lw, x.node, axis.trailing_zeros() as usize, span, sx).map(strong)
        }
        _ => None,
    }
}

/// The dtype the tensors of a join share: the first that is not a weak
/// literal's; bool is refused.
fn common_dtype(lw: &mut Lowerer, name: &str, vals: &[(Val, Span)]) -> Option<DType> {
    let dt = vals
        .iter()
        .find(|(v, _)| !v.weak)
        .map_or(DType::F32, |(v, _)| lw.ty(*v).dtype);
    for (v, s) in vals {
        let t = lw.ty(*v).clone();
        let fits = t.dtype == dt || v.weak || (dt.is_float() && t.dtype == DType::I32);
        if !fits || t.dtype == DType::Bool {
            lw.error(
                Diagnostic::new(
                    Code::DTypeMismatch,
                    format!(
                        "{name} joins tensors of one numeric dtype, found {} and {}",
                        dt.name(),
                        t.dtype.name()
                    ),
                )
                .label(*s, format!("this is {t}")),
            );
            return None;
        }
    }
    Some(dt)
}

/// The tensors `xs` (one dtype, one rank) joined along `axis`.
fn concat(lw: &mut Lowerer, xs: &[(NodeId, Span)], axis: usize, span: Span) -> Option<NodeId> {
    let first = lw.g.ty(xs[0].0).clone();
    let mut total = 0u64;
    for (x, s) in xs {
        let t = lw.g.ty(*x).clone();
        let fits = t.shape.rank() == first.shape.rank()
            && t.shape
                .0
                .iter()
                .zip(&first.shape.0)
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !fits {
            lw.error(
                Diagnostic::new(
                    Code::ShapeMismatch,
                    format!(
                        "concat joins tensors whose shapes agree except along axis {axis}, found {} and {}",
                        first.shape, t.shape
                    ),
                )
                .label(xs[0].1, format!("this is {first}"))
                .label(*s, format!("this is {t}")),
            );
            return None;
        }
        match t.shape.0[axis] {
            Dim::Fixed(n) => total += n,
            Dim::Batch => {
                lw.error(
                    Diagnostic::new(Code::ShapeMismatch, "cannot join along the batch axis `B`")
                        .label(*s, format!("this is {t}"))
                        .note("the batch size is only known at run time; join along another axis"),
                );
                return None;
            }
        }
    }
    if xs.len() == 1 {
        return Some(xs[0].0);
    }
    // Σᵢ pad(xᵢ): each placed at its offset in zeros of the whole length.
    let mut at = 0u64;
    let mut sum: Option<NodeId> = None;
    for (x, _) in xs {
        let n = match lw.g.ty(*x).shape.0[axis] {
            Dim::Fixed(n) => n,
            Dim::Batch => 0,
        };
        let placed = lw.prim(
            Op::Pad {
                axis: axis as u32,
                start: at,
                step: 1,
                len: total,
            },
            &[*x],
            None,
            span,
            &[],
        )?;
        at += n;
        sum = Some(match sum {
            None => placed,
            Some(s) => lw.prim(Op::Add, &[s, placed], None, span, &[])?,
        });
    }
    sum
}

/// Running sums of `x` along `axis`: the axis moved last, the rows times
/// an upper-triangular matrix of ones, the axis moved back. Integers are
/// summed in f64 (exact below 2⁵³) and converted back.
fn cumsum(lw: &mut Lowerer, x: NodeId, axis: usize, span: Span, sx: Span) -> Option<NodeId> {
    let t = lw.g.ty(x).clone();
    let rank = t.shape.rank();
    let Dim::Fixed(n) = t.shape.0[axis] else {
        lw.error(
            Diagnostic::new(
                Code::ShapeMismatch,
                "cannot cumsum along the batch axis `B`",
            )
            .label(sx, format!("this is {t}")),
        );
        return None;
    };
    let work = if t.dtype.is_float() {
        t.dtype
    } else {
        DType::F64
    };
    let mut v = lw.convert(Lowerer::strong(x), work, span)?;
    // axis last
    let mut perm: Vec<u8> = (0..rank as u8).filter(|&i| i as usize != axis).collect();
    perm.push(axis as u8);
    let moved = perm.iter().enumerate().any(|(i, &p)| i != p as usize);
    if moved {
        v = lw.prim(Op::Transpose { perm: perm.clone() }, &[v], None, span, &[])?;
    }
    let vt = lw.g.ty(v).clone();
    // [rows…, n] → [r, n]: the leading axes flattened, which needs them
    // all fixed, unless B is the only one (then it is r itself).
    let rows = &vt.shape.0[..rank - 1];
    let two_d = if rows.len() <= 1 {
        v
    } else if let Some(r) = rows.iter().try_fold(1u64, |a, d| match d {
        Dim::Fixed(k) => Some(a * k),
        Dim::Batch => None,
    }) {
        lw.prim(
            Op::Reshape,
            &[v],
            Some(Type::new(work, Shape::fixed(&[r, n]))),
            span,
            &[],
        )?
    } else {
        lw.shape_error(
            "cumsum of a tensor with B and other leading axes is not supported",
            sx,
            &t,
        );
        return None;
    };
    let tri = upper_ones(lw, n, work, span)?;
    let summed = if rank == 1 {
        let row = lw.prim(
            Op::Reshape,
            &[two_d],
            Some(Type::new(work, Shape::fixed(&[1, n]))),
            span,
            &[],
        )?;
        let s = lw.prim(Op::MatMul, &[row, tri], None, span, &[])?;
        lw.prim(
            Op::Reshape,
            &[s],
            Some(Type::new(work, Shape::fixed(&[n]))),
            span,
            &[],
        )?
    } else {
        let s = lw.prim(Op::MatMul, &[two_d, tri], None, span, &[])?;
        lw.prim(
            Op::Reshape,
            &[s],
            Some(Type::new(work, vt.shape.clone())),
            span,
            &[],
        )?
    };
    let mut r = summed;
    if moved {
        let mut back = vec![0u8; rank];
        for (i, &p) in perm.iter().enumerate() {
            back[p as usize] = i as u8;
        }
        r = lw.prim(Op::Transpose { perm: back }, &[r], None, span, &[])?;
    }
    if work != t.dtype {
        r = lw.prim(Op::Cast, &[r], Some(t.clone()), span, &[])?;
    }
    Some(r)
}

/// T[i, j] = (i ≤ j), n × n in `dtype`: a row times T is its running sums.
pub(super) fn upper_ones(lw: &mut Lowerer, n: u64, dtype: DType, span: Span) -> Option<NodeId> {
    let it = Type::new(DType::I32, Shape::fixed(&[n, n]));
    let i = lw.prim(Op::Iota { axis: 0 }, &[], Some(it.clone()), span, &[])?;
    let j = lw.prim(Op::Iota { axis: 1 }, &[], Some(it), span, &[])?;
    let le = lw.prim(Op::Cmp(CmpOp::Le), &[i, j], None, span, &[])?;
    lw.prim(
        Op::Cast,
        &[le],
        Some(Type::new(dtype, Shape::fixed(&[n, n]))),
        span,
        &[],
    )
}
