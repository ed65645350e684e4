//! The losses, metrics, norms and dropout: cross_entropy (stable, from
//! logits), squared_loss, mse, accuracy, the Lp norms, and dropout with its
//! counter-based mask.

use crate::diag::{Code, Diagnostic};
use crate::ir::{CmpOp, DType, Dim, Dist, NodeId, Op, Type};
use crate::span::Span;
use crate::syntax::ast::Arg;

use super::args::{axes_arg, bind, const_error, float_arg, sig};
use super::composite::{logsumexp, mean, one_hot, softplus, sum};
use super::constructors::step_node;
use super::consts::{self, Const};
use super::lower::{LabelClasses, Lowerer, Mode, Val};

/// Lowers a call to builtin `name` (one of this module's).
pub fn call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    match name {
        "cross_entropy" => cross_entropy(lw, name, args, span),
        "binary_cross_entropy" => binary_cross_entropy(lw, name, args, span),
        "squared_loss" | "mse" => squared_loss(lw, name, args, span),
        "accuracy" => accuracy(lw, name, args, span),
        "norm" | "l1" | "l2" | "frobenius" => norm(lw, name, args, span),
        "dropout" => dropout(lw, name, args, span),
        _ => None,
    }
}

/// `cross_entropy(logits, labels)`: the mean over the batch of
/// logsumexp(z) − z[label], with the output width checked against the
/// class count.
fn cross_entropy(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["logits", "labels"], 2), args, span)?;
    let (ez, ey) = (sl[0]?, sl[1]?);
    let (z, sz) = float_arg(lw, name, Some(ez))?;
    let y = lw.expr(ey)?;
    let (tz, ty) = (lw.g.ty(z).clone(), lw.ty(y).clone());
    if ty.dtype != DType::I32 {
        lw.error(
            Diagnostic::new(
                Code::DTypeMismatch,
                format!("cross_entropy takes labels as i32 class indices, found {ty}"),
            )
            .label(ey.span, format!("this is {ty}")),
        );
        return None;
    }
    if tz.shape.rank() != 2 || ty.shape.rank() != 1 || tz.shape.0[0] != ty.shape.0[0] {
        lw.error(
            Diagnostic::new(
                Code::ShapeMismatch,
                format!(
                    "cross_entropy takes logits [N, C] and labels [N], found {} and {}",
                    tz.shape, ty.shape
                ),
            )
            .label(sz, format!("this is {tz}"))
            .label(ey.span, format!("this is {ty}")),
        );
        return None;
    }
    let Dim::Fixed(c) = tz.shape.0[1] else {
        lw.shape_error("the class axis of the logits must be fixed", sz, &tz);
        return None;
    };
    if let Some(lc) = lw
        .classes
        .filter(|lc| lc.label == y.node && lc.classes != c)
    {
        lw.error(width_error(name, c, lc, sz, &tz));
        return None;
    }
    // mean over the batch of logsumexp(z) − z[label]
    let lse = logsumexp(lw, z, 2, false, span)?;
    let oh = one_hot(lw, y.node, c, span)?;
    let oh = lw.convert(Lowerer::strong(oh), tz.dtype, span)?;
    let picked = lw.prim(Op::Mul, &[z, oh], None, span, &[])?;
    let zy = sum(lw, picked, 2, false, span)?;
    let nzy = lw.prim(Op::Neg, &[zy], None, span, &[])?;
    let per = lw.prim(Op::Add, &[lse, nzy], None, span, &[])?;
    mean(lw, per, 1, false, span).map(Lowerer::strong)
}

/// `binary_cross_entropy(logits, labels)`: softplus(z) − y·z from one
/// logit per sample.
fn binary_cross_entropy(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["logits", "labels"], 2), args, span)?;
    let (ez, ey) = (sl[0]?, sl[1]?);
    let (z, sz) = float_arg(lw, name, Some(ez))?;
    let y = lw.expr(ey)?;
    let (tz, ty) = (lw.g.ty(z).clone(), lw.ty(y).clone());
    let one_logit = match tz.shape.0.as_slice() {
        [_] => true,
        [_, w] => *w == Dim::Fixed(1),
        _ => false,
    };
    if !one_logit {
        let d = match (lw.classes, tz.shape.0.as_slice()) {
            (Some(lc), [_, Dim::Fixed(w)]) if lc.label == y.node => {
                width_error(name, *w, lc, sz, &tz)
            }
            _ => Diagnostic::new(
                Code::ShapeMismatch,
                format!(
                    "binary_cross_entropy takes one logit per sample ([N] or [N, 1]), found {tz}"
                ),
            )
            .label(sz, format!("this is {tz}")),
        };
        lw.error(d);
        return None;
    }
    if let Some(lc) = lw
        .classes
        .filter(|lc| lc.label == y.node && lc.classes != 2)
    {
        lw.error(
            Diagnostic::new(
                Code::DataMismatch,
                format!(
                    "binary_cross_entropy is for two classes, but the data has {}",
                    lc.classes
                ),
            )
            .label(ey.span, format!("labels of {} classes", lc.classes))
            .label(lc.output_span, "the model's output type")
            .note(format!(
                "use cross_entropy(output, label) with {} logits per sample",
                lc.classes
            )),
        );
        return None;
    }
    if ty.dtype == DType::Bool || ty.shape.numel() != tz.shape.numel() {
        lw.error(
            Diagnostic::new(
                Code::ShapeMismatch,
                format!(
                    "binary_cross_entropy takes one 0/1 label per logit, found logits {} and labels {ty}",
                    tz.shape
                ),
            )
            .label(sz, format!("this is {tz}"))
            .label(ey.span, format!("this is {ty}")),
        );
        return None;
    }
    // mean of softplus(z) − y·z (= −y·log σ(z) − (1 − y)·log(1 − σ(z)))
    let yf = lw.convert(y, tz.dtype, span)?;
    let yf = if ty.shape != tz.shape {
        lw.prim(Op::Reshape, &[yf], Some(tz.clone()), span, &[])?
    } else {
        yf
    };
    let sp = softplus(lw, z, span)?;
    let yz = lw.prim(Op::Mul, &[yf, z], None, span, &[])?;
    let nyz = lw.prim(Op::Neg, &[yz], None, span, &[])?;
    let per = lw.prim(Op::Add, &[sp, nyz], None, span, &[])?;
    let all = (1u32 << tz.shape.rank()) - 1;
    mean(lw, per, all, false, span).map(Lowerer::strong)
}

/// `squared_loss` (the mean of d2l's ½(ŷ − y)²) and `mse` (the mean of (ŷ − y)²).
fn squared_loss(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["prediction", "target"], 2), args, span)?;
    let (ep, et) = (sl[0]?, sl[1]?);
    let (p, sp) = float_arg(lw, name, Some(ep))?;
    let (t, st) = float_arg(lw, name, Some(et))?;
    let (p, t, _) = lw.promote_nodes("compare", (p, sp), (t, st), span)?;
    let (tp, tt) = (lw.g.ty(p).clone(), lw.g.ty(t).clone());
    // d2l reshapes the target to the prediction's shape ([B] vs [B,1]).
    let t = if tp.shape != tt.shape && tp.shape.numel() == tt.shape.numel() {
        lw.prim(
            Op::Reshape,
            &[t],
            Some(Type::new(tt.dtype, tp.shape.clone())),
            span,
            &[],
        )?
    } else if tp.shape != tt.shape {
        lw.error(
            Diagnostic::new(
                Code::ShapeMismatch,
                format!(
                    "{name} compares tensors of one shape, found {} and {}",
                    tp.shape, tt.shape
                ),
            )
            .label(sp, format!("this is {tp}"))
            .label(st, format!("this is {tt}")),
        );
        return None;
    } else {
        t
    };
    let nt = lw.prim(Op::Neg, &[t], None, span, &[])?;
    let d = lw.prim(Op::Add, &[p, nt], None, span, &[])?;
    let sq = lw.prim(Op::Mul, &[d, d], None, span, &[])?;
    let sq = if name == "squared_loss" {
        let half = lw.constant(0.5, tp.dtype, span);
        lw.prim(Op::Mul, &[sq, half], None, span, &[])?
    } else {
        sq
    };
    let all = (1u32 << tp.shape.rank()) - 1;
    mean(lw, sq, all, false, span).map(Lowerer::strong)
}

/// `accuracy(logits, labels)`: the fraction predicted right.
fn accuracy(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["output", "labels"], 2), args, span)?;
    let (eo, ey) = (sl[0]?, sl[1]?);
    let o = lw.expr(eo)?;
    let y = lw.expr(ey)?;
    let rank = lw.ty(o).shape.rank();
    if rank == 0 {
        lw.error(
            Diagnostic::new(Code::ShapeMismatch, "accuracy needs scores per class")
                .label(eo.span, format!("this is {}", lw.ty(o))),
        );
        return None;
    }
    let to = lw.ty(o).clone();
    let am = if rank == 1 || to.shape.0.last() == Some(&Dim::Fixed(1)) {
        // One logit per sample: class 1 where it is positive.
        let zero = lw.constant(0.0, to.dtype, span);
        let pos = lw.prim(Op::Cmp(CmpOp::Gt), &[o.node, zero], None, span, &[])?;
        let c = lw.prim(
            Op::Cast,
            &[pos],
            Some(Type::new(DType::I32, to.shape.clone())),
            span,
            &[],
        )?;
        let mut dims = to.shape.0.clone();
        if rank > 1 {
            dims.pop();
        }
        lw.prim(
            Op::Reshape,
            &[c],
            Some(Type::new(DType::I32, crate::ir::Shape(dims))),
            span,
            &[],
        )?
    } else {
        lw.prim(
            Op::ArgMax {
                axis: rank as u32 - 1,
            },
            &[o.node],
            None,
            span,
            &[eo.span],
        )?
    };
    let (a, b, _) = lw.promote("compare", Lowerer::strong(am), y, span, eo.span, ey.span)?;
    let eq = lw.prim(Op::Cmp(CmpOp::Eq), &[a, b], None, span, &[eo.span, ey.span])?;
    let st = lw.g.ty(eq).shape.clone();
    let f = lw.prim(
        Op::Cast,
        &[eq],
        Some(Type::new(DType::F32, st.clone())),
        span,
        &[],
    )?;
    let all = (1u32 << st.rank()) - 1;
    mean(lw, f, all, false, span).map(Lowerer::strong)
}

/// The norms `norm`, `l1`, `l2` and `frobenius`.
fn norm(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let params: &[&str] = if name == "norm" {
        &["x", "p", "axis"]
    } else {
        &["x", "axis"]
    };
    let sl = bind(lw, name, &sig(params, 1), args, span)?;
    let (x, sx) = float_arg(lw, name, sl[0])?;
    let t = lw.g.ty(x).clone();
    let axis_e = if name == "norm" { sl[2] } else { sl[1] };
    let axes = axes_arg(lw, axis_e, t.shape.rank(), span)?;
    let p = match (name, if name == "norm" { sl[1] } else { None }) {
        ("l1", _) => 1.0,
        ("norm", Some(e)) => match consts::eval(e) {
            Some(Const::Num(v, _)) if v >= 1.0 && v.is_finite() => v,
            Some(Const::Str(s)) if s == "fro" => 2.0,
            _ => {
                const_error(lw, e, "a norm order p ≥ 1 (or \"fro\")");
                return None;
            }
        },
        _ => 2.0,
    };
    let _ = sx;
    if p == 1.0 {
        // ‖x‖₁ = Σ|x|
        let a = lw.prim(Op::Abs, &[x], None, span, &[])?;
        sum(lw, a, axes, false, span).map(Lowerer::strong)
    } else if p == 2.0 {
        // ‖x‖₂ = √Σx²
        let sq = lw.prim(Op::Mul, &[x, x], None, span, &[])?;
        let s = sum(lw, sq, axes, false, span)?;
        root_at_zero_is_flat(lw, s, None, span)
    } else {
        // ‖x‖ₚ = (Σ|x|ᵖ)^(1/p)
        let a = lw.prim(Op::Abs, &[x], None, span, &[])?;
        let pc = lw.constant(p, t.dtype, span);
        let ap = lw.prim(Op::Pow, &[a, pc], None, span, &[])?;
        let s = sum(lw, ap, axes, false, span)?;
        let ip = lw.constant(1.0 / p, t.dtype, span);
        root_at_zero_is_flat(lw, s, Some(ip), span)
    }
}

/// `s`'s root (√s, or s^`power`) for a sum s ≥ 0, with the subgradient 0
/// where s = 0, as PyTorch's norms have it: the root's derivative is
/// infinite there, and ∞ · 0 from the sum's rule would make the gradient
/// NaN (a zero-initialized weight under an L2 penalty).
/// select(s > 0, root(select(s > 0, s, 1)), 0): the same value, and the
/// root never sees 0.
fn root_at_zero_is_flat(
    lw: &mut Lowerer,
    s: NodeId,
    power: Option<NodeId>,
    span: Span,
) -> Option<Val> {
    let dtype = lw.g.ty(s).dtype;
    let zero = lw.constant(0.0, dtype, span);
    let one = lw.constant(1.0, dtype, span);
    let positive = lw.prim(Op::Cmp(CmpOp::Gt), &[s, zero], None, span, &[])?;
    let safe = lw.prim(Op::Select, &[positive, s, one], None, span, &[])?;
    let root = match power {
        None => lw.prim(Op::Sqrt, &[safe], None, span, &[])?,
        Some(p) => lw.prim(Op::Pow, &[safe, p], None, span, &[])?,
    };
    lw.prim(Op::Select, &[positive, root, zero], None, span, &[])
        .map(Lowerer::strong)
}

/// `dropout(x, p)`: select(u ≥ p, x/(1−p), 0) in training, x in eval.
fn dropout(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["x", "p"], 2), args, span)?;
    let (x, _) = float_arg(lw, name, sl[0])?;
    let ep = sl[1]?;
    let p = match consts::number(ep) {
        Some(p) if (0.0..1.0).contains(&p) => p,
        _ => {
            const_error(lw, ep, "a drop probability in [0, 1)");
            return None;
        }
    };
    if lw.mode == Mode::Eval || p == 0.0 {
        return Some(Lowerer::strong(x));
    }
    // Keep each element with probability 1−p and scale it by 1/(1−p):
    // where(u ≥ p, x / (1−p), 0) with u uniform from (seed, step, element).
    let step = step_node(lw, span)?;
    let t = lw.g.ty(x).clone();
    let stream = lw.fresh_stream();
    let u = lw.prim(
        Op::Random {
            dist: Dist::Uniform,
            stream,
        },
        &[step],
        Some(t.clone()),
        span,
        &[],
    )?;
    let pc = lw.constant(p, t.dtype, span);
    let keep = lw.prim(Op::Cmp(CmpOp::Ge), &[u, pc], None, span, &[])?;
    let scale = lw.constant(1.0 / (1.0 - p), t.dtype, span);
    let scaled = lw.prim(Op::Mul, &[x, scale], None, span, &[])?;
    let zero = lw.constant(0.0, t.dtype, span);
    lw.prim(Op::Select, &[keep, scaled, zero], None, span, &[])
        .map(Lowerer::strong)
}

/// The diagnostic for a loss that meets `width` scores per sample where the
/// data has `lc.classes` classes.
fn width_error(name: &str, width: u64, lc: LabelClasses, sz: Span, tz: &Type) -> Diagnostic {
    let k = lc.classes;
    let d = Diagnostic::new(
        Code::DataMismatch,
        format!(
            "{name} meets {width} output{} per sample, but the data has {k} classes",
            if width == 1 { "" } else { "s" }
        ),
    )
    .label(sz, format!("this is {tz}"))
    .label(lc.output_span, "the model's output type");
    if width == 1 && k == 2 {
        d.note("one logit per sample is binary classification: use binary_cross_entropy(output, label)")
    } else if k == 2 && name == "binary_cross_entropy" {
        d.note("binary_cross_entropy takes one logit per sample: declare the output f32[B, 1], or use cross_entropy with two")
    } else {
        d.note(format!(
            "declare the model's output with {k} columns, like f32[B, {k}]"
        ))
    }
}
