//! The built-in functions, and the composites built from primitives.
//!
//! Every composite (mean, softmax, logsumexp, cross-entropy, norms,
//! dropout, ...) is written here once, in its numerically stable form, from
//! the primitives of `ir::op`; later stages never see it as a unit.

use crate::diag::{Code, Diagnostic};
use crate::ir::{CmpOp, DType, Dim, Dist, NodeId, Op, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::{Arg, Expr};

use super::consts::{self, Const};
use super::lower::{nearest, Lowerer, Mode, Val};

/// Every builtin's name (for "did you mean" and the REPL's completion).
pub const NAMES: &[&str] = &[
    "exp",
    "log",
    "sqrt",
    "abs",
    "tanh",
    "sigmoid",
    "relu",
    "pow",
    "maximum",
    "minimum",
    "where",
    "clamp",
    "sum",
    "mean",
    "max",
    "min",
    "argmax",
    "softmax",
    "log_softmax",
    "logsumexp",
    "one_hot",
    "cross_entropy",
    "squared_loss",
    "mse",
    "accuracy",
    "norm",
    "l1",
    "l2",
    "frobenius",
    "dropout",
    "reshape",
    "transpose",
    "matmul",
    "dot",
    "f32",
    "f64",
    "i32",
    "bool",
    "zeros",
    "ones",
    "full",
    "arange",
    "eye",
    "diag",
    "rand",
    "randn",
    "stop_gradient",
    "detach",
];

/// A builtin's parameters: names in positional order and how many are required.
struct Sig {
    params: &'static [&'static str],
    required: usize,
}

const fn sig(params: &'static [&'static str], required: usize) -> Sig {
    Sig { params, required }
}

/// Binds positional and keyword arguments to parameter slots.
fn bind<'e>(
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

fn tensor(lw: &mut Lowerer, e: Option<&Expr>) -> Option<Val> {
    lw.expr(e?)
}

fn float_arg(lw: &mut Lowerer, fname: &str, e: Option<&Expr>) -> Option<(NodeId, Span)> {
    let e = e?;
    let v = lw.expr(e)?;
    let n = lw.float_operand(fname, v, e.span)?;
    Some((n, e.span))
}

fn const_error(lw: &mut Lowerer, e: &Expr, what: &str) {
    lw.error(
        Diagnostic::new(Code::BadArgument, format!("expected {what}"))
            .label(e.span, format!("this must be {what}")),
    );
}

/// A constant integer argument.
fn int_arg(lw: &mut Lowerer, e: &Expr) -> Option<i64> {
    let v = consts::integer(e);
    if v.is_none() {
        const_error(lw, e, "a constant integer");
    }
    v
}

fn bool_arg(lw: &mut Lowerer, e: Option<&Expr>) -> Option<bool> {
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
fn axes_arg(lw: &mut Lowerer, e: Option<&Expr>, rank: usize, span: Span) -> Option<u32> {
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

/// Puts reduced axes back as size 1 (`keepdims=true`).
fn keep_dims(
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

/// Σ over `axes`, optionally keeping them.
pub fn sum(lw: &mut Lowerer, x: NodeId, axes: u32, keep: bool, span: Span) -> Option<NodeId> {
    let shape = lw.g.ty(x).shape.clone();
    if axes == 0 {
        return Some(x);
    }
    let s = lw.prim(Op::ReduceSum { axes }, &[x], None, span, &[])?;
    if keep {
        keep_dims(lw, s, &shape, axes, span)
    } else {
        Some(s)
    }
}

/// max over `axes`, optionally keeping them.
fn reduce_max(lw: &mut Lowerer, x: NodeId, axes: u32, keep: bool, span: Span) -> Option<NodeId> {
    let shape = lw.g.ty(x).shape.clone();
    if axes == 0 {
        return Some(x);
    }
    let s = lw.prim(Op::ReduceMax { axes }, &[x], None, span, &[])?;
    if keep {
        keep_dims(lw, s, &shape, axes, span)
    } else {
        Some(s)
    }
}

/// The number of elements in `axes` of `shape`, as a scalar of `dtype`
/// (a product with the run-time batch size when B is among them).
fn count(lw: &mut Lowerer, shape: &Shape, axes: u32, dtype: DType, span: Span) -> Option<NodeId> {
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

/// logsumexp over `axes`, stable: m + log Σ exp(x − m) with m = max x
/// (m is a constant for differentiation; the result's gradient is still
/// exactly softmax).
fn logsumexp(lw: &mut Lowerer, x: NodeId, axes: u32, keep: bool, span: Span) -> Option<NodeId> {
    let m = reduce_max(lw, x, axes, true, span)?;
    let m = lw.prim(Op::StopGradient, &[m], None, span, &[])?;
    let nm = lw.prim(Op::Neg, &[m], None, span, &[])?;
    let shifted = lw.prim(Op::Add, &[x, nm], None, span, &[])?;
    let e = lw.prim(Op::Exp, &[shifted], None, span, &[])?;
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

/// softmax along `axes`: exp(x − m) / Σ exp(x − m).
fn softmax(lw: &mut Lowerer, x: NodeId, axes: u32, span: Span) -> Option<NodeId> {
    let m = reduce_max(lw, x, axes, true, span)?;
    let m = lw.prim(Op::StopGradient, &[m], None, span, &[])?;
    let nm = lw.prim(Op::Neg, &[m], None, span, &[])?;
    let shifted = lw.prim(Op::Add, &[x, nm], None, span, &[])?;
    let e = lw.prim(Op::Exp, &[shifted], None, span, &[])?;
    let s = sum(lw, e, axes, true, span)?;
    let r = lw.prim(Op::Recip, &[s], None, span, &[])?;
    lw.prim(Op::Mul, &[e, r], None, span, &[])
}

/// one_hot(y, n)[…, k] = (y[…] == k) as f32.
fn one_hot(lw: &mut Lowerer, y: NodeId, n: u64, span: Span) -> Option<NodeId> {
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
    let (a, b, _) = lw.promote(
        "raise",
        Lowerer::strong(a),
        Lowerer::strong(b),
        span,
        sa,
        sb,
    )?;
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

fn step_node(lw: &mut Lowerer, span: Span) -> Option<NodeId> {
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

/// Lowers a call to builtin `name`.
pub fn call(
    lw: &mut Lowerer,
    name: &str,
    name_span: Span,
    args: &[Arg],
    span: Span,
) -> Option<Val> {
    let strong = Lowerer::strong;
    macro_rules! unary {
        ($op:expr) => {{
            let sl = bind(lw, name, &sig(&["x"], 1), args, span)?;
            let (x, sx) = float_arg(lw, name, sl[0])?;
            lw.prim($op, &[x], None, span, &[sx]).map(strong)
        }};
    }
    match name {
        "exp" => unary!(Op::Exp),
        "log" => unary!(Op::Log),
        "sqrt" => unary!(Op::Sqrt),
        "tanh" => unary!(Op::Tanh),
        "sigmoid" => unary!(Op::Sigmoid),
        "abs" => {
            let sl = bind(lw, name, &sig(&["x"], 1), args, span)?;
            let x = tensor(lw, sl[0])?;
            lw.prim(Op::Abs, &[x.node], None, span, &[]).map(|n| Val {
                node: n,
                weak: x.weak,
            })
        }
        "stop_gradient" | "detach" => {
            let sl = bind(lw, name, &sig(&["x"], 1), args, span)?;
            let x = tensor(lw, sl[0])?;
            lw.prim(Op::StopGradient, &[x.node], None, span, &[])
                .map(strong)
        }
        "relu" => {
            // relu(x) = max(x, 0)
            let sl = bind(lw, name, &sig(&["x"], 1), args, span)?;
            let (x, _) = float_arg(lw, name, sl[0])?;
            let dt = lw.g.ty(x).dtype;
            let z = lw.constant(0.0, dt, span);
            lw.prim(Op::Max, &[x, z], None, span, &[]).map(strong)
        }
        "pow" => {
            let sl = bind(lw, name, &sig(&["x", "y"], 2), args, span)?;
            let (ex, ey) = (sl[0]?, sl[1]?);
            let (x, y) = (lw.expr(ex)?, lw.expr(ey)?);
            let (a, b, _) = lw.promote("raise", x, y, span, ex.span, ey.span)?;
            power(lw, a, b, span, ex.span, ey.span).map(strong)
        }
        "maximum" | "minimum" => {
            let sl = bind(lw, name, &sig(&["a", "b"], 2), args, span)?;
            let (ea, eb) = (sl[0]?, sl[1]?);
            let (x, y) = (lw.expr(ea)?, lw.expr(eb)?);
            let (a, b, _) = lw.promote(name, x, y, span, ea.span, eb.span)?;
            if name == "maximum" {
                lw.prim(Op::Max, &[a, b], None, span, &[ea.span, eb.span])
                    .map(strong)
            } else {
                // min(a, b) = −max(−a, −b)
                let na = lw.prim(Op::Neg, &[a], None, span, &[])?;
                let nb = lw.prim(Op::Neg, &[b], None, span, &[])?;
                let m = lw.prim(Op::Max, &[na, nb], None, span, &[ea.span, eb.span])?;
                lw.prim(Op::Neg, &[m], None, span, &[]).map(strong)
            }
        }
        "clamp" => {
            let sl = bind(lw, name, &sig(&["x", "min", "max"], 1), args, span)?;
            let ex = sl[0]?;
            let mut x = lw.expr(ex)?;
            if let Some(lo) = sl[1] {
                let l = lw.expr(lo)?;
                let (a, b, _) = lw.promote("clamp", x, l, span, ex.span, lo.span)?;
                x = strong(lw.prim(Op::Max, &[a, b], None, span, &[ex.span, lo.span])?);
            }
            if let Some(hi) = sl[2] {
                let h = lw.expr(hi)?;
                let (a, b, _) = lw.promote("clamp", x, h, span, ex.span, hi.span)?;
                let na = lw.prim(Op::Neg, &[a], None, span, &[])?;
                let nb = lw.prim(Op::Neg, &[b], None, span, &[])?;
                let m = lw.prim(Op::Max, &[na, nb], None, span, &[ex.span, hi.span])?;
                x = strong(lw.prim(Op::Neg, &[m], None, span, &[])?);
            }
            Some(x)
        }
        "where" => {
            let sl = bind(lw, name, &sig(&["cond", "a", "b"], 3), args, span)?;
            let (ec, ea, eb) = (sl[0]?, sl[1]?, sl[2]?);
            let c = lw.expr(ec)?;
            let (x, y) = (lw.expr(ea)?, lw.expr(eb)?);
            let (a, b, _) = lw.promote("choose between", x, y, span, ea.span, eb.span)?;
            lw.prim(
                Op::Select,
                &[c.node, a, b],
                None,
                span,
                &[ec.span, ea.span, eb.span],
            )
            .map(strong)
        }
        "sum" | "mean" | "max" | "min" => {
            let sl = bind(lw, name, &sig(&["x", "axis", "keepdims"], 1), args, span)?;
            let ex = sl[0]?;
            let v = lw.expr(ex)?;
            let x = if name == "mean" {
                lw.float_operand("mean", v, ex.span)?
            } else {
                v.node
            };
            if lw.g.ty(x).dtype == DType::Bool {
                lw.error(
                    Diagnostic::new(Code::DTypeMismatch, format!("`{name}` of a bool tensor"))
                        .label(ex.span, format!("this is {}", lw.g.ty(x)))
                        .note("count true values with sum(f32(mask))"),
                );
                return None;
            }
            let rank = lw.g.ty(x).shape.rank();
            let axes = axes_arg(lw, sl[1], rank, span)?;
            let keep = bool_arg(lw, sl[2])?;
            match name {
                "sum" => sum(lw, x, axes, keep, span),
                "mean" => mean(lw, x, axes, keep, span),
                "max" => reduce_max(lw, x, axes, keep, span),
                _ => {
                    // min x = −max(−x)
                    let n = lw.prim(Op::Neg, &[x], None, span, &[])?;
                    let m = reduce_max(lw, n, axes, keep, span)?;
                    lw.prim(Op::Neg, &[m], None, span, &[])
                }
            }
            .map(strong)
        }
        "argmax" => {
            let sl = bind(lw, name, &sig(&["x", "axis"], 1), args, span)?;
            let x = tensor(lw, sl[0])?;
            let rank = lw.ty(x).shape.rank();
            let axis = match sl[1] {
                Some(e) => axes_arg(lw, Some(e), rank, span)?,
                None if rank > 0 => 1 << (rank - 1),
                None => 0,
            };
            if axis.count_ones() != 1 {
                lw.error(
                    Diagnostic::new(Code::BadAxis, "argmax takes exactly one axis")
                        .label(span, "in this call"),
                );
                return None;
            }
            lw.prim(
                Op::ArgMax {
                    axis: axis.trailing_zeros(),
                },
                &[x.node],
                None,
                span,
                &[],
            )
            .map(strong)
        }
        "softmax" | "log_softmax" | "logsumexp" => {
            let params: &[&str] = if name == "logsumexp" {
                &["x", "axis", "keepdims"]
            } else {
                &["x", "axis"]
            };
            let sl = bind(lw, name, &sig(params, 1), args, span)?;
            let (x, _) = float_arg(lw, name, sl[0])?;
            let rank = lw.g.ty(x).shape.rank();
            let axes = match sl[1] {
                Some(e) => axes_arg(lw, Some(e), rank, span)?,
                None if rank > 0 => 1 << (rank - 1),
                None => 0,
            };
            match name {
                "softmax" => softmax(lw, x, axes, span),
                "logsumexp" => {
                    let keep = bool_arg(lw, sl.get(2).copied().flatten())?;
                    logsumexp(lw, x, axes, keep, span)
                }
                _ => {
                    // log_softmax(x) = x − logsumexp(x)
                    let l = logsumexp(lw, x, axes, true, span)?;
                    let nl = lw.prim(Op::Neg, &[l], None, span, &[])?;
                    lw.prim(Op::Add, &[x, nl], None, span, &[])
                }
            }
            .map(strong)
        }
        "one_hot" => {
            let sl = bind(lw, name, &sig(&["labels", "classes"], 2), args, span)?;
            let ey = sl[0]?;
            let y = lw.expr(ey)?;
            if lw.ty(y).dtype != DType::I32 {
                lw.error(
                    Diagnostic::new(
                        Code::DTypeMismatch,
                        format!("one_hot needs i32 class indices, found {}", lw.ty(y)),
                    )
                    .label(ey.span, format!("this is {}", lw.ty(y))),
                );
                return None;
            }
            let n = int_arg(lw, sl[1]?)?;
            if n <= 0 {
                const_error(lw, sl[1]?, "a positive number of classes");
                return None;
            }
            one_hot(lw, y.node, n as u64, span).map(strong)
        }
        "cross_entropy" => {
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
                lw.error(
                    Diagnostic::new(
                        Code::ShapeMismatch,
                        "the class axis of the logits must be fixed",
                    )
                    .label(sz, format!("this is {tz}")),
                );
                return None;
            };
            // mean over the batch of logsumexp(z) − z[label]
            let lse = logsumexp(lw, z, 2, false, span)?;
            let oh = one_hot(lw, y.node, c, span)?;
            let oh = lw.convert(strong(oh), tz.dtype, span)?;
            let picked = lw.prim(Op::Mul, &[z, oh], None, span, &[])?;
            let zy = sum(lw, picked, 2, false, span)?;
            let nzy = lw.prim(Op::Neg, &[zy], None, span, &[])?;
            let per = lw.prim(Op::Add, &[lse, nzy], None, span, &[])?;
            mean(lw, per, 1, false, span).map(strong)
        }
        "squared_loss" | "mse" => {
            let sl = bind(lw, name, &sig(&["prediction", "target"], 2), args, span)?;
            let (ep, et) = (sl[0]?, sl[1]?);
            let (p, sp) = float_arg(lw, name, Some(ep))?;
            let (t, st) = float_arg(lw, name, Some(et))?;
            let (p, t, _) = lw.promote("compare", strong(p), strong(t), span, sp, st)?;
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
            mean(lw, sq, all, false, span).map(strong)
        }
        "accuracy" => {
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
            let am = lw.prim(
                Op::ArgMax {
                    axis: rank as u32 - 1,
                },
                &[o.node],
                None,
                span,
                &[eo.span],
            )?;
            let (a, b, _) = lw.promote("compare", strong(am), y, span, eo.span, ey.span)?;
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
            mean(lw, f, all, false, span).map(strong)
        }
        "norm" | "l1" | "l2" | "frobenius" => {
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
                sum(lw, a, axes, false, span).map(strong)
            } else if p == 2.0 {
                // ‖x‖₂ = √Σx²
                let sq = lw.prim(Op::Mul, &[x, x], None, span, &[])?;
                let s = sum(lw, sq, axes, false, span)?;
                lw.prim(Op::Sqrt, &[s], None, span, &[]).map(strong)
            } else {
                // ‖x‖ₚ = (Σ|x|ᵖ)^(1/p)
                let a = lw.prim(Op::Abs, &[x], None, span, &[])?;
                let pc = lw.constant(p, t.dtype, span);
                let ap = lw.prim(Op::Pow, &[a, pc], None, span, &[])?;
                let s = sum(lw, ap, axes, false, span)?;
                let ip = lw.constant(1.0 / p, t.dtype, span);
                lw.prim(Op::Pow, &[s, ip], None, span, &[]).map(strong)
            }
        }
        "dropout" => {
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
                return Some(strong(x));
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
                .map(strong)
        }
        "reshape" => {
            let sl = bind(lw, name, &sig(&["x", "shape"], 2), args, span)?;
            let x = tensor(lw, sl[0])?;
            let es = sl[1]?;
            let t = lw.ty(x).clone();
            let items = match consts::eval(es) {
                Some(Const::List(items)) => items,
                Some(c @ Const::Num(..)) => vec![c],
                _ => {
                    const_error(lw, es, "a shape like [B, 784] or [2, -1]");
                    return None;
                }
            };
            let mut dims: Vec<Option<Dim>> = Vec::new();
            for it in items {
                match it {
                    Const::Num(v, true) if v >= 1.0 => dims.push(Some(Dim::Fixed(v as u64))),
                    Const::Num(v, true) if v == -1.0 && !dims.contains(&None) => dims.push(None),
                    Const::Name(n) if n == "B" => dims.push(Some(Dim::Batch)),
                    _ => {
                        const_error(lw, es, "a shape of positive sizes, `B`, and at most one -1");
                        return None;
                    }
                }
            }
            let (total, tb) = t.shape.numel();
            let known: u64 = dims
                .iter()
                .flatten()
                .map(|d| match d {
                    Dim::Fixed(k) => *k,
                    Dim::Batch => 1,
                })
                .product();
            let hasb = dims.iter().flatten().any(|d| *d == Dim::Batch);
            let fill = if known > 0 && total % known == 0 {
                total / known
            } else {
                0
            };
            if dims.contains(&None) && (fill == 0 || tb != hasb) {
                lw.error(
                    Diagnostic::new(
                        Code::ShapeMismatch,
                        format!("cannot reshape {} into the shape given", t.shape),
                    )
                    .label(es.span, "no size for -1 fits")
                    .label(sl[0]?.span, format!("this is {t}")),
                );
                return None;
            }
            let dims: Vec<Dim> = dims
                .into_iter()
                .map(|d| d.unwrap_or(Dim::Fixed(fill)))
                .collect();
            lw.prim(
                Op::Reshape,
                &[x.node],
                Some(Type::new(t.dtype, Shape(dims))),
                span,
                &[sl[0]?.span],
            )
            .map(strong)
        }
        "transpose" => {
            let sl = bind(lw, name, &sig(&["x", "axes"], 1), args, span)?;
            let x = tensor(lw, sl[0])?;
            let r = lw.ty(x).shape.rank();
            let perm: Vec<u8> = match sl[1] {
                None => (0..r as u8).rev().collect(),
                Some(e) => match consts::eval(e) {
                    Some(Const::List(items)) => {
                        let mut p = Vec::new();
                        for it in items {
                            match it {
                                Const::Num(v, true) if v >= 0.0 && v < 32.0 => p.push(v as u8),
                                _ => {
                                    const_error(lw, e, "a permutation of the axes like [1, 0]");
                                    return None;
                                }
                            }
                        }
                        p
                    }
                    _ => {
                        const_error(lw, e, "a permutation of the axes like [1, 0]");
                        return None;
                    }
                },
            };
            lw.prim(Op::Transpose { perm }, &[x.node], None, span, &[])
                .map(strong)
        }
        "matmul" | "dot" => {
            let sl = bind(lw, name, &sig(&["a", "b"], 2), args, span)?;
            let (ea, eb) = (sl[0]?, sl[1]?);
            let (a, sa) = float_arg(lw, name, Some(ea))?;
            let (b, sb) = float_arg(lw, name, Some(eb))?;
            let (a, b, _) = lw.promote("multiply", strong(a), strong(b), span, sa, sb)?;
            if name == "dot" && (lw.g.ty(a).shape.rank() != 1 || lw.g.ty(b).shape.rank() != 1) {
                lw.error(
                    Diagnostic::new(Code::ShapeMismatch, "dot takes two vectors")
                        .label(sa, format!("this is {}", lw.g.ty(a)))
                        .label(sb, format!("this is {}", lw.g.ty(b)))
                        .note("use `@` for matrices"),
                );
                return None;
            }
            matmul(lw, a, b, span, sa, sb).map(strong)
        }
        "f32" | "f64" | "i32" | "bool" => {
            let sl = bind(lw, name, &sig(&["x"], 1), args, span)?;
            let x = tensor(lw, sl[0])?;
            let dt = DType::from_name(name).unwrap_or(DType::F32);
            let t = lw.ty(x).shape.clone();
            if let Some(c) = lw.g.const_value(x.node) {
                return Some(strong(lw.constant(c, dt, span)));
            }
            if lw.ty(x).dtype == dt {
                return Some(strong(x.node));
            }
            lw.prim(Op::Cast, &[x.node], Some(Type::new(dt, t)), span, &[])
                .map(strong)
        }
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
        _ => {
            let mut d = Diagnostic::new(Code::UnknownName, format!("unknown function `{name}`"))
                .label(name_span, "not a builtin or a `fn` of this program");
            if let Some(s) = lw.suggest(name) {
                d = d.note(format!("did you mean `{s}`?"));
            }
            lw.error(d);
            None
        }
    }
}

/// eye(n)[i,j] = (i == j) as f32
fn eye(lw: &mut Lowerer, n: u64, span: Span) -> Option<NodeId> {
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
