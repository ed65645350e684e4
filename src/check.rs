//! The checker: AST to typed IR.
//!
//! [`check`] resolves names, describes data sources from their metadata,
//! instantiates each model on its data, and lowers every train block into a
//! typed graph (composites expanded into primitives), checking shapes and
//! dtypes on the way. Top-level `let`s and expressions (the REPL's input)
//! are lowered into one session graph.
//!
//! Architecture invariant: every user error is found here or earlier.
//! Stages after the checker may assume a well-typed graph; a failure there
//! is a compiler bug.

mod args;
pub mod builtins;
pub mod composite;
mod constructors;
pub mod consts;
pub mod data;
mod expr;
mod index;
mod joins;
mod losses;
pub mod lower;
mod params;
pub mod run;
pub mod settings;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic};
use crate::ir::{DType, Graph, Op, Role, Type};
use crate::span::Span;
use crate::syntax::ast::{self, AssignOp, Item};

pub use data::DataSpec;
pub use lower::{Globals, Lowerer, Mode, Val};
pub use run::{resolve_type, Run};

/// Where a program lives and what the command line overrides.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The program's folder: paths in the program are relative to it.
    pub base_dir: PathBuf,
    /// `--data PATH`: replaces every file-based data source's path.
    pub data_override: Option<PathBuf>,
    /// Data sources described by earlier checks (the language server
    /// checks a document on every edit): used while their files are
    /// unchanged.
    pub data_cache: Option<std::sync::Arc<data::DataCache>>,
    /// Data sources already described, by name (from a checkpoint's
    /// preprocessing, for `dlc predict` and `dlc export`): used instead of
    /// reading their files, so a deployed model needs only its program and
    /// its checkpoint.
    pub described: HashMap<String, DataSpec>,
}

/// A checked program.
#[derive(Debug, Default)]
pub struct Checked {
    pub data: Vec<DataSpec>,
    pub runs: Vec<Run>,
    /// Top-level `let`s and expressions, when the program has any.
    pub session: Option<Graph>,
}

/// Checks a parsed program. Never panics; returns what it could check and
/// every diagnostic.
pub fn check(program: &ast::Program, opts: &Options) -> (Checked, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut out = Checked::default();
    let ns = namespace(program, &mut diags);
    let data_index = describe_data(&ns.data_decls, opts, &mut out, &mut diags);
    let constant_lets = constant_lets(program, &ns.globals);
    // Models: each is checked where a train block instantiates it; a model
    // no train block uses is checked on its own when its types are static.
    let mut used: Vec<&str> = Vec::new();
    let mut run_names: HashMap<String, Span> = HashMap::new();
    for item in &program.items {
        let Item::Train(t) = item else { continue };
        // A block the parser recovered in was already reported; checking
        // what is left of it would only add follow-on errors.
        if t.broken {
            continue;
        }
        let run_name = t
            .run
            .as_ref()
            .map(|r| r.node.clone())
            .unwrap_or_else(|| "main".to_string());
        let run_span = t.run.as_ref().map(|r| r.span).unwrap_or(t.model.span);
        if let Some(prev) = run_names.get(&run_name) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateDefinition,
                    format!("two runs are named `{run_name}`"),
                )
                .label(run_span, "this run")
                .label(*prev, "the other run")
                .note("name runs with `train NAME: model on data { ... }`"),
            );
            continue;
        }
        run_names.insert(run_name.clone(), run_span);
        let cx = RunCx {
            ns: &ns,
            data_index: &data_index,
            constant_lets: &constant_lets,
        };
        if let Some(run) = check_run(t, run_name, &cx, (&out.data, &mut used), &mut diags) {
            out.runs.push(run);
        }
    }
    for item in &program.items {
        let Item::Model(m) = item else { continue };
        if m.broken()
            || used.contains(&m.name.node.as_str())
            || ns
                .models
                .get(m.name.node.as_str())
                .is_none_or(|x| !std::ptr::eq(*x, m))
        {
            continue;
        }
        check_unused_model(m, &ns.globals, &mut diags);
    }
    out.session = session(program, &ns.globals, &mut diags);
    (out, diags)
}

/// One namespace for data, models, functions and top-level lets.
struct Namespace<'p> {
    globals: Globals<'p>,
    models: HashMap<&'p str, &'p ast::ModelDecl>,
    data_decls: Vec<&'p ast::DataDecl>,
}

/// What every train block is checked against.
struct RunCx<'a, 'p> {
    ns: &'a Namespace<'p>,
    data_index: &'a HashMap<&'p str, usize>,
    constant_lets: &'a HashMap<&'p str, &'p ast::Let>,
}

/// The program's names, each defined once.
fn namespace<'p>(program: &'p ast::Program, diags: &mut Vec<Diagnostic>) -> Namespace<'p> {
    let mut defined: HashMap<&str, Span> = HashMap::new();
    let mut globals = Globals {
        fns: HashMap::new(),
        lets: HashMap::new(),
        other: HashMap::new(),
    };
    let mut models: HashMap<&str, &ast::ModelDecl> = HashMap::new();
    let mut data_decls: Vec<&ast::DataDecl> = Vec::new();
    for item in &program.items {
        let name = match item {
            Item::Data(d) => &d.name,
            Item::Model(m) => &m.name,
            Item::Fn(f) => &f.name,
            Item::Let(l) => &l.name,
            Item::Train(_) | Item::Assign(_) | Item::Expr(_) | Item::Error(_) => continue,
        };
        if let Some(prev) = defined.get(name.node.as_str()) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateDefinition,
                    format!("`{}` is defined twice", name.node),
                )
                .label(name.span, "defined again here")
                .label(*prev, "first defined here"),
            );
            continue;
        }
        defined.insert(&name.node, name.span);
        match item {
            Item::Data(d) => {
                globals.other.insert(&d.name.node, "data source");
                data_decls.push(d);
            }
            Item::Model(m) => {
                globals.other.insert(&m.name.node, "model");
                models.insert(&m.name.node, m);
            }
            Item::Fn(f) => {
                globals.fns.insert(&f.name.node, f);
                let mut seen: Vec<&str> = Vec::new();
                for p in &f.params {
                    if seen.contains(&p.node.as_str()) {
                        diags.push(
                            Diagnostic::new(
                                Code::DuplicateDefinition,
                                format!("parameter `{}` appears twice", p.node),
                            )
                            .label(p.span, "repeated here"),
                        );
                    }
                    seen.push(&p.node);
                }
            }
            Item::Let(l) => {
                globals.lets.insert(&l.name.node, l);
            }
            Item::Train(_) | Item::Assign(_) | Item::Expr(_) | Item::Error(_) => {}
        }
    }

    Namespace {
        globals,
        models,
        data_decls,
    }
}

/// Every data source described from its metadata, and its index in
/// `out.data` by name.
fn describe_data<'p>(
    data_decls: &[&'p ast::DataDecl],
    opts: &Options,
    out: &mut Checked,
    diags: &mut Vec<Diagnostic>,
) -> HashMap<&'p str, usize> {
    let mut data_index: HashMap<&str, usize> = HashMap::new();
    for d in data_decls {
        if let Some(spec) = opts.described.get(&d.name.node) {
            data_index.insert(&d.name.node, out.data.len());
            out.data.push(data::DataSpec {
                span: d.name.span,
                ..spec.clone()
            });
            continue;
        }
        let (base, override_path) = (opts.base_dir.as_path(), opts.data_override.as_deref());
        let describe = || data::describe(d, base, override_path);
        let (spec, ds) = match &opts.data_cache {
            Some(cache) => cache.describe(d, (base, override_path), describe),
            None => describe(),
        };
        diags.extend(ds);
        if let Some(spec) = spec {
            data_index.insert(&d.name.node, out.data.len());
            out.data.push(spec);
        }
    }

    // `--data` replaces a source read from files; a program whose data is
    // all generated has nothing for it to replace.
    if let (Some(p), Some(first)) = (&opts.data_override, out.data.first()) {
        let synthetic = |d: &data::DataSpec| matches!(d.source, data::Source::Synthetic { .. });
        if out.data.iter().all(synthetic) {
            diags.push(
                Diagnostic::new(
                    Code::BadData,
                    format!(
                        "--data {} replaces data read from files, but data `{}` is synthetic",
                        p.display(),
                        first.name
                    ),
                )
                .label(first.span, "generated, not read from a file")
                .note("--data applies to idx(...) and csv(...) sources; drop it, or declare the data as one of those"),
            );
        }
    }

    data_index
}

/// Top-level lets that no in-place update changes: constants a setting
/// may name.
fn constant_lets<'p>(
    program: &'p ast::Program,
    globals: &Globals<'p>,
) -> HashMap<&'p str, &'p ast::Let> {
    let assigned: Vec<&str> = program
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Assign(a) => Some(a.target.node.as_str()),
            _ => None,
        })
        .collect();
    globals
        .lets
        .iter()
        .filter(|(n, _)| !assigned.contains(n))
        .map(|(n, l)| (*n, *l))
        .collect()
}

/// A train block: its model bound to its data, its settings, and its
/// training and eval graphs.
fn check_run<'p>(
    t: &'p ast::TrainDecl,
    run_name: String,
    cx: &RunCx<'_, 'p>,
    (data, used): (&[data::DataSpec], &mut Vec<&'p str>),
    diags: &mut Vec<Diagnostic>,
) -> Option<Run> {
    let globals = &cx.ns.globals;
    let (model, di) = run_model_and_data(t, cx, used, diags)?;
    let spec = &data[di];
    let env = run::bind_dims(model, spec, diags)?;
    let params = run::params(model, &env, diags)?;
    // Settings may name top-level constants (`lr = lr`); the loss is
    // lowered as an expression and sees them anyway.
    let resolved = ast::TrainDecl {
        settings: t
            .settings
            .iter()
            .map(|s| ast::Setting {
                key: s.key.clone(),
                value: if s.key.node == "loss" {
                    s.value.clone()
                } else {
                    consts::substitute(&s.value, cx.constant_lets)
                },
            })
            .collect(),
        ..t.clone()
    };
    let (settings, ds) = settings::settings(&resolved, spec, &params);
    diags.extend(ds);
    let loss = t
        .settings
        .iter()
        .find(|s| s.key.node == "loss")
        .map(|s| &s.value);
    // The decay's span: its setting's, or the optimizer's whose
    // `weight_decay` argument asks for it.
    let setting_span = |key: &str| {
        t.settings
            .iter()
            .find(|s| s.key.node == key)
            .map(|s| s.value.span)
    };
    let decay_span = setting_span("weight_decay").or_else(|| setting_span("optimizer"));
    let decay = settings
        .as_ref()
        .and_then(|s| s.weight_decay.as_ref())
        .zip(decay_span);
    let (train, ds) = run::lower_model(
        model,
        Some(spec),
        &env,
        &params,
        globals,
        Mode::Train,
        loss,
        decay,
    );
    diags.extend(ds);
    // The eval graph repeats the train graph's checks; its diagnostics
    // would be duplicates. Its loss is the data loss alone: a weight
    // penalty is part of the training objective, not of the test metric.
    let (eval, _) = run::lower_model(
        model,
        Some(spec),
        &env,
        &params,
        globals,
        Mode::Eval,
        loss,
        None,
    );
    if let (Some(train), Some(s)) = (&train, &settings) {
        diags.extend(run::check_accuracy_width(model, spec, &s.metrics, train));
    }
    if let (Some(train), Some(eval), Some(settings)) = (train, eval, settings) {
        return Some(Run {
            name: run_name,
            span: t.span,
            model: model.name.node.clone(),
            data: di,
            params,
            train,
            eval,
            settings,
        });
    }
    None
}

/// The model and the data source (its index) a train block names, each
/// known and checked.
fn run_model_and_data<'p>(
    t: &'p ast::TrainDecl,
    cx: &RunCx<'_, 'p>,
    used: &mut Vec<&'p str>,
    diags: &mut Vec<Diagnostic>,
) -> Option<(&'p ast::ModelDecl, usize)> {
    let (models, data_decls) = (&cx.ns.models, &cx.ns.data_decls);
    let Some(model) = models.get(t.model.node.as_str()).copied() else {
        let mut d = Diagnostic::new(
            Code::BadRun,
            format!("there is no model `{}`", t.model.node),
        )
        .label(t.model.span, "unknown model");
        if let Some(s) = lower::nearest(&t.model.node, models.keys().copied()) {
            d = d.note(format!("did you mean `{s}`?"));
        }
        diags.push(d);
        return None;
    };
    used.push(&model.name.node);
    if model.broken() {
        return None;
    }
    let Some(&di) = cx.data_index.get(t.data.node.as_str()) else {
        if !data_decls.iter().any(|d| d.name.node == t.data.node) {
            let mut d = Diagnostic::new(
                Code::BadRun,
                format!("there is no data source `{}`", t.data.node),
            )
            .label(t.data.span, "unknown data");
            if let Some(s) = lower::nearest(
                &t.data.node,
                data_decls.iter().map(|d| d.name.node.as_str()),
            ) {
                d = d.note(format!("did you mean `{s}`?"));
            }
            diags.push(d);
        }
        return None;
    };
    Some((model, di))
}

/// Checks a model that no train block uses, if its input type is static.
fn check_unused_model(m: &ast::ModelDecl, globals: &Globals, diags: &mut Vec<Diagnostic>) {
    let mut env = HashMap::new();
    env.insert("B".to_string(), crate::ir::Dim::Batch);
    let statics = m.inputs.iter().all(|(_, t)| {
        t.dims.iter().all(|d| match &d.node {
            ast::DimAnn::Fixed(_) => true,
            ast::DimAnn::Name(n) => n == "B",
        })
    });
    if m.inputs.len() != 1 || !statics {
        return;
    }
    let Some(params) = run::params(m, &env, diags) else {
        return;
    };
    let (_, ds) = run::lower_model(m, None, &env, &params, globals, Mode::Train, None, None);
    diags.extend(ds);
}

/// Lowers top-level lets, in-place updates and expressions into one graph.
fn session(
    program: &ast::Program,
    globals: &Globals,
    diags: &mut Vec<Diagnostic>,
) -> Option<Graph> {
    let any = program
        .items
        .iter()
        .any(|i| matches!(i, Item::Let(_) | Item::Assign(_) | Item::Expr(_)));
    if !any {
        return None;
    }
    let (mut g, step) = graph_with_step();
    let mut lw = Lowerer::new(&mut g, globals, Mode::Eval);
    lw.step = Some(step);
    let outputs = lower_statements(&mut lw, &program.items)
        .into_iter()
        .map(|(name, node, _)| (name, node))
        .collect();
    diags.append(&mut lw.diags);
    drop(lw);
    g.outputs = outputs;
    Some(g)
}

/// What a top-level statement produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Produced {
    /// `let x = e`: a new value of x.
    Let,
    /// `x += e`, `x[:] = e`: x updated in place.
    Update,
    /// An expression's value.
    Value,
}

/// Lowers the top-level `let`s, updates and expressions of `items` in
/// order, binding each new value for the statements after it. Returns, for
/// each that lowered, its name (`_1`, `_2`, ... for expressions), node and
/// kind; errors are in `lw.diags`.
/// A new graph holding only the step-counter input (an i32 scalar) that
/// random values are keyed by, and that input's node.
pub fn graph_with_step() -> (Graph, crate::ir::NodeId) {
    let mut g = Graph::new();
    let step = g.input(
        "step",
        Role::Step,
        Type::scalar(DType::I32),
        Span::default(),
    );
    (g, step)
}

pub fn lower_statements(
    lw: &mut Lowerer,
    items: &[Item],
) -> Vec<(String, crate::ir::NodeId, Produced)> {
    let mut out = Vec::new();
    let mut results = 0;
    for item in items {
        match item {
            Item::Let(l) => {
                if let Some(v) = lw.let_value(l) {
                    lw.bind(&l.name.node, v);
                    out.push((l.name.node.clone(), v.node, Produced::Let));
                }
            }
            Item::Expr(e) => {
                results += 1;
                if let Some(v) = lw.expr(e) {
                    out.push((format!("_{results}"), v.node, Produced::Value));
                }
            }
            Item::Assign(a) => {
                if let Some((name, v)) = assign(lw, a) {
                    lw.bind(&name, Lowerer::strong(v));
                    out.push((name, v, Produced::Update));
                }
            }
            Item::Data(_) | Item::Model(_) | Item::Fn(_) | Item::Train(_) | Item::Error(_) => {}
        }
    }
    out
}

/// `x op= e` and `x[...] = e`: the new value of x, which keeps x's type
/// (the update writes into x's buffer).
fn assign(lw: &mut Lowerer, a: &ast::Assign) -> Option<(String, crate::ir::NodeId)> {
    let target = ast::Expr::new(ast::ExprKind::Name(a.target.node.clone()), a.target.span);
    let x = lw.expr(&target)?;
    let tx = lw.ty(x).clone();
    let v = lw.expr(&a.value)?;
    let v = lw.convert(v, tx.dtype, a.value.span)?;
    let span = a.span;
    let new = match (a.op, &a.index) {
        (AssignOp::Set, None) => v,
        (AssignOp::Set, Some(idx)) => {
            // x[...] = v writes v into the selected part; only a full
            // slice (`x[:] = v`) is supported: the part is all of x.
            let full = idx.iter().all(|i| {
                matches!(
                    i,
                    ast::IndexArg::Slice {
                        start: None,
                        end: None,
                        step: None,
                        ..
                    }
                )
            });
            if !full {
                lw.error(
                    Diagnostic::new(
                        Code::BadArgument,
                        "only `x[:] = value` is supported for assignment into a tensor",
                    )
                    .label(span, "partial assignment"),
                );
                return None;
            }
            v
        }
        (op, _) => {
            let (p, neg_or_recip) = match op {
                AssignOp::Add => (Op::Add, None),
                AssignOp::Sub => (Op::Add, Some(Op::Neg)),
                AssignOp::Mul => (Op::Mul, None),
                AssignOp::Div => (Op::Mul, Some(Op::Recip)),
                AssignOp::Set => (Op::Add, None),
            };
            let rhs = match neg_or_recip {
                Some(u) => lw.prim(u, &[v], None, a.value.span, &[a.value.span])?,
                None => v,
            };
            lw.prim(
                p,
                &[x.node, rhs],
                None,
                span,
                &[a.target.span, a.value.span],
            )?
        }
    };
    let tn = lw.g.ty(new).clone();
    if tn.shape != tx.shape {
        let b = if tn.shape == tx.shape {
            new
        } else {
            match lw.g.add(Op::Broadcast, &[new], Some(tx.clone()), span) {
                Ok(b) => b,
                Err(_) => {
                    lw.error(
                        Diagnostic::new(
                            Code::ShapeMismatch,
                            format!(
                                "an in-place update keeps the shape {}; the new value is {}",
                                tx.shape, tn.shape
                            ),
                        )
                        .label(a.target.span, format!("this is {tx}"))
                        .label(a.value.span, "this value changes the shape"),
                    );
                    return None;
                }
            }
        };
        return Some((a.target.node.clone(), b));
    }
    Some((a.target.node.clone(), new))
}

/// Reads, parses and checks a program file.
pub fn check_file(
    path: &Path,
    src: &str,
    data_override: Option<PathBuf>,
) -> (ast::Program, Checked, Vec<Diagnostic>) {
    check_file_described(path, src, (data_override, HashMap::new()))
}

/// [`check_file`] with some data sources already described (`Options::described`).
pub fn check_file_described(
    path: &Path,
    src: &str,
    (data_override, described): (Option<PathBuf>, HashMap<String, DataSpec>),
) -> (ast::Program, Checked, Vec<Diagnostic>) {
    let (program, mut diags) = crate::syntax::parse(src);
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let (checked, cd) = check(
        &program,
        &Options {
            data_cache: None,
            base_dir,
            data_override,
            described,
        },
    );
    diags.extend(cd);
    (program, checked, diags)
}
