//! The built-in functions: argument binding and the lowering of each call.
//!
//! Functions with a stable form of their own (logsumexp, softmax, mean, ...)
//! are built in `composite`; the losses, norms and dropout are assembled
//! here from those and the primitives of `ir::op`. Later stages never see a
//! builtin as a unit.

use crate::diag::{Code, Diagnostic};
use crate::ir::{DType, Dim, Op, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::Arg;

use super::args::{axes_arg, bind, bool_arg, const_error, float_arg, int_arg, sig, tensor};
use super::composite::{logsumexp, matmul, mean, one_hot, power, reduce_max, softmax, sum};
use super::consts::{self, Const};
use super::lower::{Lowerer, Val};

/// Every builtin's name (for "did you mean" and the REPL's completion).
pub const NAMES: &[&str] = &[
    "grad",
    "inv",
    "det",
    "solve",
    "cholesky",
    "eigh",
    "multinomial",
    "exp",
    "log",
    "sqrt",
    "abs",
    "tanh",
    "sin",
    "cos",
    "floor",
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
    "binary_cross_entropy",
    "softplus",
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
    "concat",
    "stack",
    "cumsum",
];

/// The kind, in `Globals::other`, of a `fn` whose definition failed to
/// parse (the REPL keeps their names, so a later call says so).
pub const BROKEN_FN: &str = "function whose definition had an error";

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
        "sin" => unary!(Op::Sin),
        "cos" => unary!(Op::Cos),
        "floor" => unary!(Op::Floor),
        "sigmoid" => unary!(Op::Sigmoid),
        "softplus" => {
            let sl = bind(lw, name, &sig(&["x"], 1), args, span)?;
            let (x, _) = float_arg(lw, name, sl[0])?;
            super::composite::softplus(lw, x, span).map(strong)
        }
        "abs" => {
            let sl = bind(lw, name, &sig(&["x"], 1), args, span)?;
            let x = tensor(lw, sl[0])?;
            lw.prim(Op::Abs, &[x.node], None, span, &[]).map(|n| Val {
                node: n,
                weak: x.weak,
            })
        }
        "inv" | "det" | "cholesky" | "solve" => linalg(lw, name, args, span),
        "eigh" => eigh(lw, span),
        "grad" => grad_call(lw, name, args, span),
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
        "maximum" | "minimum" => extremum(lw, name, args, span),
        "clamp" => clamp(lw, name, args, span),
        "where" => where_call(lw, name, args, span),
        "sum" | "mean" | "max" | "min" => reduction(lw, name, args, span),
        "argmax" => argmax_call(lw, name, args, span),
        "softmax" | "log_softmax" | "logsumexp" => softmax_family(lw, name, args, span),
        "one_hot" => one_hot_call(lw, name, args, span),
        "cross_entropy"
        | "binary_cross_entropy"
        | "squared_loss"
        | "mse"
        | "accuracy"
        | "norm"
        | "l1"
        | "l2"
        | "frobenius"
        | "dropout" => super::losses::call(lw, name, args, span),
        "concat" | "stack" | "cumsum" => super::joins::call(lw, name, args, span),
        "reshape" => reshape_call(lw, name, args, span),
        "transpose" => transpose_call(lw, name, args, span),
        "matmul" | "dot" => matmul_call(lw, name, args, span),
        "f32" | "f64" | "i32" | "bool" => cast(lw, name, args, span),
        "zeros" | "ones" | "rand" | "randn" | "full" | "arange" | "eye" | "diag"
        | "multinomial" => super::constructors::call(lw, name, args, span),
        _ if lw.globals.other.get(name) == Some(&BROKEN_FN) => broken_fn(lw, name, name_span),
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

/// `inv`, `det`, `cholesky`, `solve`: linear algebra on a square matrix.
fn linalg(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let solve = name == "solve";
    let params: &[&str] = if solve { &["a", "b"] } else { &["a"] };
    let sl = bind(lw, name, &sig(params, params.len()), args, span)?;
    let (a, sa) = float_arg(lw, name, sl[0])?;
    let kind = match name {
        "inv" => crate::ir::Linalg::Inv,
        "det" => crate::ir::Linalg::Det,
        "cholesky" => crate::ir::Linalg::Cholesky,
        _ => crate::ir::Linalg::Solve,
    };
    let mut ins = vec![a];
    let mut spans = vec![sa];
    if solve {
        let (b, sb) = float_arg(lw, name, sl[1])?;
        let (a2, b2, _) = lw.promote_nodes("solve", (a, sa), (b, sb), span)?;
        ins = vec![a2, b2];
        spans.push(sb);
    }
    lw.prim(Op::Linalg(kind), &ins, None, span, &spans)
        .map(Lowerer::strong)
}

/// `eigh(a)` without `.values` or `.vectors`: a pair has no tensor value.
fn eigh(lw: &mut Lowerer, span: Span) -> Option<Val> {
    lw.error(
        Diagnostic::new(
            Code::BadArgument,
            "`eigh` gives eigenvalues and eigenvectors",
        )
        .label(span, "pick one")
        .note("write `eigh(A).values` (ascending) or `eigh(A).vectors` (the columns)"),
    );
    None
}

/// The name `e` is (`grad`'s variable has been checked to be one).
fn lw_name(e: &crate::syntax::ast::Expr) -> &str {
    match &e.node {
        crate::syntax::ast::ExprKind::Name(n) => n,
        _ => "x",
    }
}

/// `grad(y, x)`: the gradient of a scalar expression, by autodiff of the
/// expression lowered so far.
fn grad_call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    // grad(y, x) = ∂y/∂x for a scalar y, by the same reverse-mode
    // autodiff as training (so a gradient of a gradient works).
    let sl = bind(lw, name, &sig(&["y", "x"], 2), args, span)?;
    let (ey, ex) = (sl[0]?, sl[1]?);
    if !matches!(ex.node, crate::syntax::ast::ExprKind::Name(_)) {
        lw.error(
            Diagnostic::new(
                Code::BadArgument,
                "`grad` differentiates with respect to a name",
            )
            .label(ex.span, "this must be a name, such as `x`")
            .note("bind the value first: `let x = ...`, then `grad(f(x), x)`"),
        );
        return None;
    }
    let (y, sy) = float_arg(lw, name, Some(ey))?;
    // Gradients are taken with respect to floating-point tensors (as
    // PyTorch's requires_grad): an integer or bool variable would be
    // converted to a new tensor that y does not depend on.
    let xv = lw.expr(ex)?;
    let xty = lw.ty(xv).clone();
    if !xty.dtype.is_float() {
        let var = lw_name(ex);
        lw.error(
            Diagnostic::new(
                Code::DTypeMismatch,
                format!(
                    "`grad` takes gradients with respect to floating-point tensors, and `{var}` is {}",
                    xty.dtype.name()
                ),
            )
            .label(ex.span, format!("this is {xty}"))
            .note(format!(
                "bind a floating-point copy and differentiate with respect to it: `let {var}f = f32({var})`, then `grad(..., {var}f)` with `{var}f` in the expression"
            )),
        );
        return None;
    }
    let x = xv.node;
    let ty = lw.g.ty(y).clone();
    if ty.shape.rank() != 0 {
        lw.error(
            Diagnostic::new(
                Code::NotScalar,
                format!("`grad` needs a scalar to differentiate, and this is {ty}"),
            )
            .label(sy, format!("this is {ty}"))
            .note("reduce it first, as d2l does before y.backward(): `grad(sum(y), x)`"),
        );
        return None;
    }
    // Like PyTorch, refuse a y that x does not reach: in the REPL
    // a binding holds a value, not how it was computed.
    let mut reached = vec![false; lw.g.len()];
    reached[y.index()] = true;
    for i in (0..lw.g.len()).rev() {
        if reached[i] {
            for a in lw.g.nodes[i].inputs.clone() {
                reached[a.index()] = true;
            }
        }
    }
    if !reached[x.index()] {
        lw.error(
            Diagnostic::new(Code::BadArgument, "this does not depend on the variable")
                .label(sy, "computed without it")
                .label(ex.span, "with respect to this")
                .note("bindings hold values, not how they were computed: differentiate the expression itself, `grad(2.0 * dot(x, x), x)`, or a function of x, `fn f(x) = ...` then `grad(f(x), x)`"),
        );
        return None;
    }
    // Cholesky factors and eigendecompositions are not
    // differentiated: refuse rather than drop their contribution.
    let mut from_x = vec![false; lw.g.len()];
    from_x[x.index()] = true;
    for i in x.index()..lw.g.len() {
        if lw.g.nodes[i].inputs.iter().any(|a| from_x[a.index()]) {
            from_x[i] = true;
        }
    }
    let blocked = (0..lw.g.len()).find(|&i| {
        reached[i]
            && from_x[i]
            && matches!(
                lw.g.nodes[i].op,
                Op::Linalg(
                    crate::ir::Linalg::Cholesky
                        | crate::ir::Linalg::EigVals
                        | crate::ir::Linalg::EigVecs
                )
            )
    });
    if let Some(i) = blocked {
        let op = lw.g.nodes[i].op.name();
        lw.error(
            Diagnostic::new(
                Code::BadArgument,
                format!("`grad` cannot differentiate through {op}"),
            )
            .label(
                lw.g.nodes[i].span,
                format!("{op} is on the way from the variable"),
            )
            .note("inv, det, solve and matmul have gradients; cholesky and eigh do not (yet)"),
        );
        return None;
    }
    let dx = crate::autodiff::grad(lw.g, y, &[x]);
    dx.first().copied().map(Lowerer::strong)
}

/// `maximum` and `minimum`, elementwise.
fn extremum(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["a", "b"], 2), args, span)?;
    let (ea, eb) = (sl[0]?, sl[1]?);
    let (x, y) = (lw.expr(ea)?, lw.expr(eb)?);
    let (a, b, _) = lw.promote(name, x, y, span, ea.span, eb.span)?;
    if name == "maximum" {
        lw.prim(Op::Max, &[a, b], None, span, &[ea.span, eb.span])
            .map(Lowerer::strong)
    } else {
        super::composite::minimum(lw, a, b, span, &[ea.span, eb.span]).map(Lowerer::strong)
    }
}

/// `clamp(x, lo, hi)`, with either bound optional.
fn clamp(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["x", "min", "max"], 1), args, span)?;
    let ex = sl[0]?;
    let mut x = lw.expr(ex)?;
    if let Some(lo) = sl[1] {
        let l = lw.expr(lo)?;
        let (a, b, _) = lw.promote("clamp", x, l, span, ex.span, lo.span)?;
        x = Lowerer::strong(lw.prim(Op::Max, &[a, b], None, span, &[ex.span, lo.span])?);
    }
    if let Some(hi) = sl[2] {
        let h = lw.expr(hi)?;
        let (a, b, _) = lw.promote("clamp", x, h, span, ex.span, hi.span)?;
        x = Lowerer::strong(super::composite::minimum(
            lw,
            a,
            b,
            span,
            &[ex.span, hi.span],
        )?);
    }
    Some(x)
}

/// `where(c, x, y)`.
fn where_call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
    .map(Lowerer::strong)
}

/// `sum`, `mean`, `max` and `min` over axes.
fn reduction(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
    .map(Lowerer::strong)
}

/// `argmax(x, axis)`.
fn argmax_call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
    .map(Lowerer::strong)
}

/// `softmax`, `log_softmax` and `logsumexp`, in their stable forms.
fn softmax_family(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
    .map(Lowerer::strong)
}

/// `one_hot(labels, n)`.
fn one_hot_call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
    // Labels known when the line is compiled (a literal) are checked
    // here, as PyTorch's one_hot checks them when it runs.
    if let Some(bad) = lw
        .known_values(y.node)
        .and_then(|vs| vs.into_iter().find(|v| *v < 0.0 || *v >= n as f64))
    {
        lw.error(
            Diagnostic::new(
                Code::BadArgument,
                format!("one_hot: class {bad} is not in 0..{n}"),
            )
            .label(ey.span, format!("holds {bad}"))
            .note(format!("class indices run from 0 to {}", n - 1)),
        );
        return None;
    }
    one_hot(lw, y.node, n as u64, span).map(Lowerer::strong)
}

/// `reshape(x, shape)`, with one `-1` inferred.
fn reshape_call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
    .map(Lowerer::strong)
}

/// `transpose(x)` or `transpose(x, axes)`.
fn transpose_call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
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
                        Const::Num(v, true) if (0.0..32.0).contains(&v) => p.push(v as u8),
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
        .map(Lowerer::strong)
}

/// `matmul` and `dot`.
fn matmul_call(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["a", "b"], 2), args, span)?;
    let (ea, eb) = (sl[0]?, sl[1]?);
    let (a, sa) = float_arg(lw, name, Some(ea))?;
    let (b, sb) = float_arg(lw, name, Some(eb))?;
    let (a, b, _) = lw.promote_nodes("multiply", (a, sa), (b, sb), span)?;
    if name == "dot" && (lw.g.ty(a).shape.rank() != 1 || lw.g.ty(b).shape.rank() != 1) {
        lw.error(
            Diagnostic::new(Code::ShapeMismatch, "dot takes two vectors")
                .label(sa, format!("this is {}", lw.g.ty(a)))
                .label(sb, format!("this is {}", lw.g.ty(b)))
                .note("use `@` for matrices"),
        );
        return None;
    }
    matmul(lw, a, b, span, sa, sb).map(Lowerer::strong)
}

/// The casts `f32`, `f64`, `i32` and `bool`.
fn cast(lw: &mut Lowerer, name: &str, args: &[Arg], span: Span) -> Option<Val> {
    let sl = bind(lw, name, &sig(&["x"], 1), args, span)?;
    let x = tensor(lw, sl[0])?;
    let dt = DType::from_name(name).unwrap_or(DType::F32);
    let t = lw.ty(x).shape.clone();
    if let Some(c) = lw.g.const_value(x.node) {
        return Some(Lowerer::strong(lw.constant(c, dt, span)));
    }
    if lw.ty(x).dtype == dt {
        return Some(Lowerer::strong(x.node));
    }
    lw.prim(Op::Cast, &[x.node], Some(Type::new(dt, t)), span, &[])
        .map(Lowerer::strong)
}

/// A call of a `fn` whose definition had an error.
fn broken_fn(lw: &mut Lowerer, name: &str, name_span: Span) -> Option<Val> {
    lw.error(
        Diagnostic::new(
            Code::UnknownName,
            format!("`{name}` is not defined: its definition had an error"),
        )
        .label(name_span, "not defined")
        .note(format!("fix and enter `fn {name}` again")),
    );
    None
}
