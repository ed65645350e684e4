//! Train blocks: a model bound to its data, the loss, and the recipe.
//!
//! For each `train` block the checker instantiates the model on its data
//! (binding width variables such as `D` from the data's metadata), lowers
//! the forward pass and the loss into a training-mode graph (dropout on) and
//! an eval-mode graph (dropout off), and checks every setting.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic};
use crate::ir::{DType, Dim, Graph, Op, Role, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::{self, DimAnn, ExprKind, ModelDecl, Stmt};

use super::consts;
use super::data::{DataSpec, LabelKind};
use super::lower::{nearest, Globals, LabelClasses, Lowerer, Mode, Val};
pub use super::params::{Init, ParamSpec};
pub use super::settings::{
    DecayForm, EarlyStop, Metric, Optimizer, Sampler, Settings, WeightDecay,
};

/// A checked train block.
#[derive(Clone, Debug)]
pub struct Run {
    pub name: String,
    pub span: Span,
    pub model: String,
    /// Index into `Checked::data`.
    pub data: usize,
    pub params: Vec<ParamSpec>,
    /// Inputs: the parameters, `x`, `label`, `step`; outputs `output`, `loss`.
    pub train: Graph,
    /// The same without dropout.
    pub eval: Graph,
    pub settings: Settings,
}

/// Binds the model's width variables from the data and checks declared widths.
pub fn bind_dims(
    model: &ModelDecl,
    data: &DataSpec,
    diags: &mut Vec<Diagnostic>,
) -> Option<HashMap<String, Dim>> {
    let mut env = HashMap::new();
    env.insert("B".to_string(), Dim::Batch);
    let ann = model_input(model, diags)?;
    let sample = &data.sample;
    if let Err(what) = bind_sample(&ann.dims[1..], sample, &mut env) {
        let what = what.unwrap_or_else(|| format!("{} per sample", crate::syntax::print::ty(ann)));
        diags.push(
            Diagnostic::new(
                Code::DataMismatch,
                format!(
                    "model `{}` expects {what}, but data `{}` has {} per sample",
                    model.name.node,
                    data.name,
                    describe_sample(sample)
                ),
            )
            .label(
                ann.span,
                format!("declared here as {}", crate::syntax::print::ty(ann)),
            )
            .label(data.span, data.summary.clone()),
        );
        return None;
    }
    // Output widths: a class count or a single target.
    let out_var = model
        .output
        .as_ref()
        .and_then(|out| out.dims.last())
        .and_then(|last| match &last.node {
            DimAnn::Name(v) if !env.contains_key(v) => Some(v.clone()),
            _ => None,
        });
    if let Some(v) = out_var {
        match data.label {
            LabelKind::Class { classes: Some(c) } => {
                env.insert(v, Dim::Fixed(c));
            }
            LabelKind::Target => {
                env.insert(v, Dim::Fixed(1));
            }
            LabelKind::Class { classes: None } => {}
        }
    }
    Some(env)
}

/// The model's one input's type, which starts with the batch axis `B`.
fn model_input<'m>(model: &'m ModelDecl, diags: &mut Vec<Diagnostic>) -> Option<&'m ast::TypeAnn> {
    let [(_, ann)] = model.inputs.as_slice() else {
        diags.push(
            Diagnostic::new(
                Code::BadModel,
                format!(
                    "model `{}` must take exactly one input (the features)",
                    model.name.node
                ),
            )
            .label(
                model.name.span,
                format!("takes {} inputs", model.inputs.len()),
            ),
        );
        return None;
    };
    let first_is_b = matches!(ann.dims.first().map(|d| &d.node), Some(DimAnn::Name(n)) if n == "B");
    if !first_is_b {
        diags.push(
            Diagnostic::new(
                Code::BadModel,
                "a model's input starts with the batch axis `B`",
            )
            .label(ann.span, "like f32[B, 784]"),
        );
        return None;
    }
    Some(ann)
}

/// Binds the width variables of an input's per-sample axes `rest` from
/// the data's `sample` shape. On a mismatch, what the model expects
/// (`None`: its whole per-sample type).
fn bind_sample(
    rest: &[crate::span::Spanned<DimAnn>],
    sample: &[u64],
    env: &mut HashMap<String, Dim>,
) -> Result<(), Option<String>> {
    let count: u64 = sample.iter().product();
    match rest {
        [one] => match &one.node {
            DimAnn::Fixed(n) if *n == count => {}
            DimAnn::Fixed(n) => return Err(Some(format!("{n} features"))),
            DimAnn::Name(v) if v == "B" => return Err(Some("a second batch axis".into())),
            DimAnn::Name(v) => {
                env.insert(v.clone(), Dim::Fixed(count));
            }
        },
        many if many.len() != sample.len() => {
            let n: Option<u64> = many
                .iter()
                .map(|d| match d.node {
                    DimAnn::Fixed(k) => Some(k),
                    DimAnn::Name(_) => None,
                })
                .product();
            if n != Some(count) {
                return Err(None);
            }
        }
        many => {
            for (d, &s) in many.iter().zip(sample) {
                match &d.node {
                    DimAnn::Fixed(k) if *k == s => {}
                    DimAnn::Name(v)
                        if v != "B" && env.get(v).is_none_or(|x| *x == Dim::Fixed(s)) =>
                    {
                        env.insert(v.clone(), Dim::Fixed(s));
                    }
                    _ => return Err(None),
                }
            }
        }
    }
    Ok(())
}

fn describe_sample(sample: &[u64]) -> String {
    let n: u64 = sample.iter().product();
    if sample.len() > 1 {
        format!(
            "{n} features ({})",
            sample
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×")
        )
    } else {
        format!("{n} features")
    }
}

/// Resolves a type annotation against bound width variables.
pub fn resolve_type(
    ann: &ast::TypeAnn,
    env: &HashMap<String, Dim>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Type> {
    let Some(dtype) = DType::from_name(&ann.dtype.node) else {
        let mut d = Diagnostic::new(
            Code::DTypeMismatch,
            format!("unknown dtype `{}`", ann.dtype.node),
        )
        .label(ann.dtype.span, "expected f32, f64, i32 or bool");
        if let Some(s) = nearest(&ann.dtype.node, ["f32", "f64", "i32", "bool"].into_iter()) {
            d = d.note(format!("did you mean `{s}`?"));
        }
        diags.push(d);
        return None;
    };
    let mut dims = Vec::new();
    for d in &ann.dims {
        match &d.node {
            DimAnn::Fixed(0) => {
                diags.push(
                    Diagnostic::new(Code::ShapeMismatch, "a dimension of size 0")
                        .label(d.span, "sizes start at 1"),
                );
                return None;
            }
            DimAnn::Fixed(n) if *n > 1 << 31 => {
                diags.push(
                    Diagnostic::new(Code::ShapeMismatch, "a dimension larger than 2³¹")
                        .label(d.span, "too large"),
                );
                return None;
            }
            DimAnn::Fixed(n) => dims.push(Dim::Fixed(*n)),
            DimAnn::Name(v) => match env.get(v) {
                Some(x) => dims.push(*x),
                None => {
                    diags.push(
                        Diagnostic::new(Code::UnknownName, format!("the width `{v}` is not known"))
                            .label(d.span, "not bound by the model's input or output type")
                            .note("write a number, or use a name that the input's type binds from the data, like `x: f32[B, D]`"),
                    );
                    return None;
                }
            },
        }
    }
    Some(Type::new(dtype, Shape(dims)))
}

fn init_of(p: &ast::ParamDecl, ty: &Type, diags: &mut Vec<Diagnostic>) -> Option<Init> {
    let Some(e) = &p.init else {
        diags.push(
            Diagnostic::new(Code::BadModel, format!("parameter `{}` has no initializer", p.name.node))
                .label(p.span, "add one, like `= zeros` or `= normal(0.01)`")
                .note("initializers: zeros, ones, constant(c), normal(std), normal(mean, std), uniform(low, high), xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal"),
        );
        return None;
    };
    let bad = |diags: &mut Vec<Diagnostic>, msg: &str| {
        diags.push(
            Diagnostic::new(Code::BadModel, format!("bad initializer for `{}`", p.name.node))
                .label(e.span, msg.to_string())
                .note("initializers: zeros, ones, constant(c), normal(std), normal(mean, std), uniform(low, high), xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal"),
        );
    };
    let (name, args) = init_call(e, &mut |m| bad(diags, m))?;
    init_value(p, ty, (name, &args), &mut |m| bad(diags, m))
}

/// An initializer's arguments: name or keyword, and value.
type InitArgs<'e> = Vec<(Option<&'e str>, &'e ast::Expr)>;

/// The initializer's name and arguments, checked against the known
/// initializers and their keywords; `bad` reports what is wrong.
fn init_call<'e>(e: &'e ast::Expr, bad: &mut dyn FnMut(&str)) -> Option<(&'e str, InitArgs<'e>)> {
    let (name, args): (&str, InitArgs) = match &e.node {
        ExprKind::Name(n) => (n.as_str(), Vec::new()),
        ExprKind::Call { callee, args } => match &callee.node {
            ExprKind::Name(n) => (
                n.as_str(),
                args.iter()
                    .map(|a| (a.name.as_ref().map(|n| n.node.as_str()), &a.value))
                    .collect(),
            ),
            _ => {
                bad("not an initializer");
                return None;
            }
        },
        _ => {
            bad("not an initializer");
            return None;
        }
    };
    const KNOWN: [&str; 9] = [
        "zeros",
        "ones",
        "constant",
        "normal",
        "uniform",
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
    ];
    if !KNOWN.contains(&name) {
        let hint = nearest(name, KNOWN.into_iter())
            .map(|s| format!("unknown initializer; did you mean `{s}`?"))
            .unwrap_or_else(|| "not an initializer".into());
        bad(&hint);
        return None;
    }
    let known_keys: &[&str] = match name {
        "normal" => &["mean", "std"],
        "uniform" => &["low", "high"],
        "constant" => &["value"],
        _ => &[],
    };
    if args
        .iter()
        .any(|(k, _)| k.is_some_and(|k| !known_keys.contains(&k)))
        || args.len() > known_keys.len()
    {
        bad(&format!(
            "`{name}` takes {}",
            if known_keys.is_empty() {
                "no arguments".to_string()
            } else {
                known_keys.join(", ")
            }
        ));
        return None;
    }
    Some((name, args))
}

/// The initializer `name(args)` for a parameter of type `ty`.
fn init_value(
    p: &ast::ParamDecl,
    ty: &Type,
    (name, args): (&str, &InitArgs),
    bad: &mut dyn FnMut(&str),
) -> Option<Init> {
    let num = |key: &str, pos: usize| -> Option<Option<f64>> {
        let positional: Vec<&&ast::Expr> = args
            .iter()
            .filter(|(k, _)| k.is_none())
            .map(|(_, e)| e)
            .collect();
        let found = args
            .iter()
            .find(|(k, _)| *k == Some(key))
            .map(|(_, e)| e)
            .or(positional.get(pos).copied());
        match found {
            None => Some(None),
            Some(e) => consts::number(e).map(Some),
        }
    };
    let fan = || match ty.shape.0.as_slice() {
        [Dim::Fixed(a), Dim::Fixed(b)] => Some((*a, *b)),
        _ => None,
    };
    let init = match name {
        "zeros" => Init::Zeros,
        "ones" => Init::Ones,
        "constant" => match num("value", 0) {
            Some(Some(v)) => Init::Constant(v),
            _ => {
                bad("constant(value) takes a number");
                return None;
            }
        },
        "normal" => {
            // normal(std) or normal(mean, std)
            let positional = args.iter().filter(|(k, _)| k.is_none()).count();
            let (mean, std) = if positional == 1 && args.len() == 1 {
                (Some(Some(0.0)), num("std", 0))
            } else {
                (num("mean", 0), num("std", 1))
            };
            match (mean, std) {
                (Some(m), Some(Some(s))) if s > 0.0 => Init::Normal {
                    mean: m.unwrap_or(0.0),
                    std: s,
                },
                _ => {
                    bad("normal(std) or normal(mean, std) with std > 0");
                    return None;
                }
            }
        }
        "uniform" => match (num("low", 0), num("high", 1)) {
            (Some(Some(l)), Some(Some(h))) if l < h => Init::Uniform { low: l, high: h },
            _ => {
                bad("uniform(low, high) with low < high");
                return None;
            }
        },
        "xavier_uniform" | "xavier_normal" | "kaiming_uniform" | "kaiming_normal" => {
            if fan().is_none() {
                let who = if name.starts_with("xavier") {
                    "Xavier"
                } else {
                    "Kaiming"
                };
                bad(&format!(
                    "{who} initialization needs a [n_in, n_out] weight matrix, and `{}` is {ty}",
                    p.name.node
                ));
                return None;
            }
            match name {
                "xavier_uniform" => Init::XavierUniform,
                "xavier_normal" => Init::XavierNormal,
                "kaiming_uniform" => Init::KaimingUniform,
                _ => Init::KaimingNormal,
            }
        }
        _ => return None,
    };
    Some(init)
}

pub fn init_text(init: &Init) -> String {
    match init {
        Init::Zeros => "zeros".into(),
        Init::Ones => "ones".into(),
        Init::Constant(v) => format!("constant({v})"),
        Init::Normal { mean, std } if *mean == 0.0 => format!("normal({std})"),
        Init::Normal { mean, std } => format!("normal({mean}, {std})"),
        Init::Uniform { low, high } => format!("uniform({low}, {high})"),
        Init::XavierUniform => "xavier_uniform".into(),
        Init::XavierNormal => "xavier_normal".into(),
        Init::KaimingUniform => "kaiming_uniform".into(),
        Init::KaimingNormal => "kaiming_normal".into(),
    }
}

/// The parameters of `model` with their types and initializers.
pub fn params(
    model: &ModelDecl,
    env: &HashMap<String, Dim>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<ParamSpec>> {
    let mut out: Vec<ParamSpec> = Vec::new();
    let mut ok = true;
    let input = model.inputs.first().map(|(n, _)| n.node.as_str());
    for s in &model.body {
        let Stmt::Param(p) = s else { continue };
        if let Some(prev) = out.iter().find(|q| q.name == p.name.node) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateDefinition,
                    format!("parameter `{}` is defined twice", p.name.node),
                )
                .label(p.name.span, "defined again here")
                .label(prev.span, "first defined here"),
            );
            ok = false;
            continue;
        }
        if Some(p.name.node.as_str()) == input {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateDefinition,
                    format!(
                        "parameter `{}` has the name of the model's input",
                        p.name.node
                    ),
                )
                .label(p.name.span, "rename the parameter"),
            );
            ok = false;
            continue;
        }
        let Some(ty) = resolve_type(&p.ty, env, diags) else {
            ok = false;
            continue;
        };
        if !ty.dtype.is_float() || ty.shape.has_batch() {
            diags.push(
                Diagnostic::new(
                    Code::BadModel,
                    format!(
                        "parameter `{}` must be a float tensor of fixed shape, not {ty}",
                        p.name.node
                    ),
                )
                .label(p.ty.span, "parameters are f32 or f64 with fixed sizes"),
            );
            ok = false;
            continue;
        }
        let Some(init) = init_of(p, &ty, diags) else {
            ok = false;
            continue;
        };
        out.push(ParamSpec {
            name: p.name.node.clone(),
            ty,
            init,
            span: p.name.span,
        });
    }
    ok.then_some(out)
}

/// Lowers the model (and, when given, the loss) into a new graph.
#[allow(clippy::too_many_arguments)]
pub fn lower_model(
    model: &ModelDecl,
    data: Option<&DataSpec>,
    env: &HashMap<String, Dim>,
    params: &[ParamSpec],
    globals: &Globals,
    mode: Mode,
    loss: Option<&ast::Expr>,
    decay: Option<(&WeightDecay, Span)>,
) -> (Option<Graph>, Vec<Diagnostic>) {
    let mut g = Graph::new();
    let mut diags = Vec::new();
    let Some((in_name, in_ann)) = model.inputs.first() else {
        return (None, diags);
    };
    let Some(in_ty) = resolve_type(in_ann, env, &mut diags) else {
        return (None, diags);
    };
    let mut pnodes = Vec::new();
    for p in params {
        let n = g.input(
            &p.name,
            Role::Param {
                init: init_text(&p.init),
            },
            p.ty.clone(),
            p.span,
        );
        pnodes.push((p.name.clone(), n));
    }
    let x = g.input(&in_name.node, Role::Features, in_ty, in_name.span);
    let label = data.map(|d| {
        let ty = match d.label {
            LabelKind::Class { .. } => Type::new(DType::I32, Shape(vec![Dim::Batch])),
            LabelKind::Target => Type::new(DType::F32, Shape(vec![Dim::Batch, Dim::Fixed(1)])),
        };
        g.input("label", Role::Label, ty, d.span)
    });
    let step = g.input(
        "step",
        Role::Step,
        Type::scalar(DType::I32),
        model.name.span,
    );
    let mut lw = Lowerer::new(&mut g, globals, mode);
    lw.step = Some(step);
    if let (Some(l), Some(LabelKind::Class { classes: Some(c) })) = (label, data.map(|d| &d.label))
    {
        lw.classes = Some(LabelClasses {
            label: l,
            classes: *c,
            output_span: model.output.as_ref().map_or(model.name.span, |o| o.span),
        });
    }
    for (name, n) in &pnodes {
        lw.bind(name, Lowerer::strong(*n));
    }
    lw.bind(&in_name.node, Lowerer::strong(x));
    let out = lw.body(&model.body, model.span);
    let result = out.and_then(|out| checked_output(&mut lw, model, env, out));
    let loss_node = match (result, loss) {
        (Some(out), Some(loss)) => lower_loss(&mut lw, (out, label), loss, decay, &pnodes),
        _ => None,
    };
    diags.append(&mut lw.diags);
    drop(lw);
    if let Some(out) = result {
        g.outputs.push(("output".into(), out.node));
        if let Some(l) = loss_node {
            g.outputs.push(("loss".into(), l));
        } else if loss.is_some() {
            return (None, diags);
        }
        return (Some(g), diags);
    }
    (None, diags)
}

/// The model's result, checked against the output type it declares.
fn checked_output(
    lw: &mut Lowerer,
    model: &ModelDecl,
    env: &HashMap<String, Dim>,
    out: Val,
) -> Option<Val> {
    let Some(ann) = &model.output else {
        return Some(out);
    };
    let mut d2 = Vec::new();
    let Some(want) = resolve_type(ann, env, &mut d2) else {
        lw.diags.extend(d2);
        return None;
    };
    let have = lw.ty(out).clone();
    if want.shape != have.shape || (want.dtype != have.dtype && !out.weak) {
        lw.error(
            Diagnostic::new(
                Code::ShapeMismatch,
                format!(
                    "model `{}` returns {have} but declares {want}",
                    model.name.node
                ),
            )
            .label(
                last_expr_span(model).unwrap_or(model.span),
                format!("this is {have}"),
            )
            .label(ann.span, "declared here"),
        );
        return None;
    }
    Some(out)
}

/// The loss, a float scalar of `output`, `label` and the parameters, with
/// the penalty form of weight decay added.
fn lower_loss(
    lw: &mut Lowerer,
    (out, label): (Val, Option<crate::ir::NodeId>),
    loss: &ast::Expr,
    decay: Option<(&WeightDecay, Span)>,
    pnodes: &[(String, crate::ir::NodeId)],
) -> Option<crate::ir::NodeId> {
    // The loss sees `output`, `label` and the parameters.
    lw.push_scope();
    lw.bind("output", out);
    if let Some(l) = label {
        lw.bind("label", Lowerer::strong(l));
    }
    let v = lw.expr(loss);
    lw.pop_scope();
    let t = lw.ty(v?).clone();
    if t.shape.rank() != 0 || !t.dtype.is_float() {
        lw.error(
            Diagnostic::new(
                Code::NotScalar,
                format!("the loss must be a float scalar, found {t}"),
            )
            .label(loss.span, format!("this is {t}"))
            .note("reduce it, e.g. mean(...) over the batch"),
        );
        return None;
    }
    match decay {
        Some((wd, span)) if wd.form == DecayForm::Penalty => {
            add_penalty(lw, v?.node, wd, pnodes, span)
        }
        _ => Some(v?.node),
    }
}

/// loss + λ/2·Σ‖w‖² over the decayed parameters (d2l §4.5).
fn add_penalty(
    lw: &mut Lowerer,
    loss: crate::ir::NodeId,
    wd: &WeightDecay,
    pnodes: &[(String, crate::ir::NodeId)],
    span: Span,
) -> Option<crate::ir::NodeId> {
    let mut total = loss;
    let dt = lw.g.ty(loss).dtype;
    let half = lw.constant(wd.lambda / 2.0, dt, span);
    for name in &wd.params {
        let Some((_, w)) = pnodes.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let w = lw.convert(
            Val {
                node: *w,
                weak: false,
            },
            dt,
            span,
        )?;
        let sq = lw.prim(Op::Mul, &[w, w], None, span, &[])?;
        let rank = lw.g.ty(sq).shape.rank();
        let s = super::composite::sum(lw, sq, (1u32 << rank) - 1, false, span)?;
        let term = lw.prim(Op::Mul, &[s, half], None, span, &[])?;
        total = lw.prim(Op::Add, &[total, term], None, span, &[])?;
    }
    Some(total)
}

fn last_expr_span(model: &ModelDecl) -> Option<Span> {
    match model.body.last()? {
        Stmt::Expr(e) => Some(e.span),
        Stmt::Let(_) | Stmt::Param(_) | Stmt::Error(_) => None,
    }
}

/// With `acc` among the metrics and class labels: the model's output width
/// must be the class count, or 1 (a logit, class 1 where positive) for two
/// classes.
pub fn check_accuracy_width(
    model: &ModelDecl,
    data: &DataSpec,
    metrics: &[Metric],
    train: &Graph,
) -> Option<Diagnostic> {
    let LabelKind::Class { classes: Some(k) } = data.label else {
        return None;
    };
    if !metrics.contains(&Metric::Acc) {
        return None;
    }
    let out = train.outputs.iter().find(|(n, _)| n == "output")?.1;
    let t = train.ty(out);
    let w = match t.shape.0.as_slice() {
        [_] => 1,
        [.., Dim::Fixed(w)] => *w,
        _ => return None,
    };
    if w == k || (w == 1 && k == 2) {
        return None;
    }
    let span = model.output.as_ref().map_or(model.name.span, |o| o.span);
    Some(
        Diagnostic::new(
            Code::DataMismatch,
            format!("accuracy compares {w} output{} per sample with {k} classes", if w == 1 { "" } else { "s" }),
        )
        .label(span, format!("the model's output is {t}"))
        .label(data.span, format!("data `{}` has {k} classes", data.name))
        .note(if k == 2 {
            "for two classes: one logit per sample (f32[B, 1], class 1 where it is positive) or two scores".to_string()
        } else {
            format!("declare the output with {k} columns, like f32[B, {k}]")
        }),
    )
}
