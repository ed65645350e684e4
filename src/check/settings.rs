//! The settings of a train block: optimizer, batch, epochs, seed, metrics,
//! validation split or K-fold, weight decay and sampler, each checked
//! against the run's data and parameters.

use crate::diag::{Code, Diagnostic};
use crate::ir::Dim;
use crate::optim;
use crate::syntax::ast::{self, ExprKind, TrainDecl};

use super::consts::{self, Const};
use super::data::{DataSpec, LabelKind};
use super::lower::nearest;
use super::params::ParamSpec;
use crate::schedule::Schedule;
use crate::span::Span;

mod cx;
mod optimizer;
mod schedule;

use cx::{call_parts, SettingsCx};
use optimizer::{optimizer, weight_decay};
pub use optimizer::{DecayForm, Optimizer, WeightDecay};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Loss,
    Acc,
    Rmse,
    LogRmse,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::Acc => "acc",
            Metric::Rmse => "rmse",
            Metric::LogRmse => "log_rmse",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    /// A seeded reshuffle every epoch.
    Shuffle,
    Sequential,
    /// Draw with replacement, weighted per class (inverse frequency when no weights are given).
    Weighted(Option<Vec<f64>>),
    Oversample,
    Undersample,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub optimizer: Optimizer,
    pub batch: u64,
    pub epochs: u64,
    pub seed: u64,
    /// The seed of the data's splits: the test fraction, the validation
    /// part and the K-fold folds (`split_seed = N`; the program's `seed`
    /// by default). `--seed` leaves it, so a run redrawn with another seed
    /// is scored on the same rows.
    pub split_seed: u64,
    pub metrics: Vec<Metric>,
    pub valid: Option<f64>,
    pub kfold: Option<KFold>,
    pub weight_decay: Option<WeightDecay>,
    pub sampler: Sampler,
    pub early_stop: Option<EarlyStop>,
    /// Clip the gradients to this global norm before each update.
    pub clip_grad_norm: Option<f64>,
    /// The learning rate's schedule (`lr_schedule`), and where it is
    /// written (its ops in the step carry this span).
    pub schedule: Schedule,
    pub schedule_span: Span,
}

/// `kfold = K` (folds of a seeded shuffle of the rows) or
/// `kfold = contiguous(K)` (folds of consecutive rows in the file's order,
/// as d2l §4.10 and scikit-learn's `KFold()` cut them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KFold {
    pub k: u64,
    pub contiguous: bool,
}

/// `early_stop = patience(N, valid_METRIC)`: stop when the validation
/// metric has not improved for N epochs, and keep the best epoch's
/// parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStop {
    pub patience: u64,
    /// The watched metric, as the epoch reports name it (`valid_loss`).
    pub metric: String,
    /// Larger is better (accuracy); else smaller (losses, RMSE).
    pub maximize: bool,
}

impl Settings {
    /// The run's optimizer rule, its hyper-parameters and its decoupled
    /// weight decay; `None` for the closed form.
    pub fn chosen(&self) -> Option<optim::Chosen<'_>> {
        let Optimizer::Rule { rule, hypers, .. } = &self.optimizer else {
            return None;
        };
        let decoupled = self
            .weight_decay
            .as_ref()
            .filter(|d| d.form == DecayForm::Decoupled)
            .map(|d| (d.lambda, &d.params[..]));
        Some(optim::Chosen {
            rule,
            hypers,
            decoupled,
            clip: self.clip_grad_norm,
        })
    }

    /// The learning rate of a rule's run.
    pub fn lr(&self) -> Option<f64> {
        match self.optimizer {
            Optimizer::Rule { lr, .. } => Some(lr),
            Optimizer::ClosedForm => None,
        }
    }
}

const KEYS: &[&str] = &[
    "loss",
    "optimizer",
    "batch",
    "epochs",
    "seed",
    "split_seed",
    "metrics",
    "valid",
    "kfold",
    "weight_decay",
    "sampler",
    "early_stop",
    "clip_grad_norm",
    "lr_schedule",
];

/// Checks a train block's settings (not the loss, which is lowered with the model).
pub fn settings(
    decl: &TrainDecl,
    data: &DataSpec,
    params: &[ParamSpec],
) -> (Option<Settings>, Vec<Diagnostic>) {
    let mut cx = SettingsCx {
        diags: Vec::new(),
        decl,
    };
    cx.check_keys();
    let is_class = matches!(data.label, LabelKind::Class { .. });
    let optimizer = cx.optimizer_and_loss(params, is_class);
    let batch = cx.count("batch", 256, 1);
    let epochs = cx.count("epochs", 10, 1);
    let seed = cx.count("seed", 0, 0);
    let split_seed = cx.count("split_seed", seed, 0);
    let metrics = cx.metrics(data, is_class);
    let (valid, kfold) = cx.validation(data);
    let weight_decay = match cx.get("weight_decay").cloned() {
        None => None,
        Some(s) => weight_decay(&mut cx, &s, params),
    };
    let weight_decay = cx.rule_decay(optimizer.as_ref(), weight_decay, params);
    let clip_grad_norm = cx.positive("clip_grad_norm");
    let (schedule, schedule_span) = match cx.get("lr_schedule").cloned() {
        None => (Schedule::Constant, Span::default()),
        Some(s) => (
            cx.lr_schedule(&s, optimizer.as_ref(), epochs)
                .unwrap_or(Schedule::Constant),
            s.value.span,
        ),
    };
    let early_stop = match cx.get("early_stop").cloned() {
        None => None,
        Some(s) => cx.early_stop(&s, &metrics, valid.is_some()),
    };
    let sampler = match cx.get("sampler").cloned() {
        None => Sampler::Shuffle,
        Some(s) => sampler(&mut cx, &s, is_class).unwrap_or(Sampler::Shuffle),
    };
    let diags = cx.diags;
    let Some(optimizer) = optimizer else {
        return (None, diags);
    };
    if !diags.is_empty() {
        return (None, diags);
    }
    (
        Some(Settings {
            optimizer,
            batch,
            epochs,
            seed,
            split_seed,
            metrics,
            valid,
            kfold,
            weight_decay,
            sampler,
            early_stop,
            clip_grad_norm,
            schedule,
            schedule_span,
        }),
        diags,
    )
}

impl SettingsCx<'_> {
    /// `early_stop = patience(N, valid_METRIC)`, watching a metric the run
    /// reports on a validation part.
    fn early_stop(
        &mut self,
        s: &ast::Setting,
        metrics: &[Metric],
        valid: bool,
    ) -> Option<EarlyStop> {
        let what =
            "patience(N, valid_loss) with N ≥ 1 epochs, or another valid_ metric the run reports";
        let Some(("patience", args)) = call_parts(&s.value) else {
            self.bad(s, what);
            return None;
        };
        let patience = args
            .first()
            .and_then(|a| consts::integer(&a.value))
            .filter(|n| *n >= 1);
        let metric = match args.get(1).map(|a| consts::eval(&a.value)) {
            Some(Some(Const::Name(n))) | Some(Some(Const::Str(n))) => Some(n),
            _ => None,
        };
        let (Some(patience), Some(metric), 2) = (patience, metric, args.len()) else {
            self.bad(s, what);
            return None;
        };
        let reported = metrics
            .iter()
            .any(|m| format!("valid_{}", m.name()) == metric);
        if !reported {
            let names: Vec<String> = metrics
                .iter()
                .map(|m| format!("valid_{}", m.name()))
                .collect();
            self.diags.push(
                Diagnostic::new(
                    Code::BadRun,
                    format!("early_stop watches `{metric}`, which this run does not report"),
                )
                .label(args[1].value.span, "not among the run's validation metrics")
                .note(format!("the run reports {}", names.join(", "))),
            );
            return None;
        }
        if !valid {
            self.diags.push(
                Diagnostic::new(Code::BadRun, "early_stop needs a validation part")
                    .label(s.value.span, "watches a validation metric")
                    .note("hold one out with `valid = 0.1`"),
            );
            return None;
        }
        Some(EarlyStop {
            patience: patience as u64,
            maximize: metric == "valid_acc",
            metric,
        })
    }

    /// The weight decay a rule's `weight_decay` argument asks for, of the
    /// weights (parameters of rank ≥ 2): `adamw`'s decoupled (its default
    /// λ is 0.01), the others' coupled as torch's, the penalty form (its
    /// gradient is torch's g + λw). A `weight_decay = ...(λ, [...])`
    /// setting instead says λ and which parameters; the setting and the
    /// argument together are an error, as is `adamw` with a penalty.
    fn rule_decay(
        &mut self,
        optimizer: Option<&Optimizer>,
        setting: Option<WeightDecay>,
        params: &[ParamSpec],
    ) -> Option<WeightDecay> {
        let Some(Optimizer::Rule { rule, hypers, .. }) = optimizer else {
            return setting;
        };
        let Some(h) = rule.hypers.iter().position(|h| h.name == "weight_decay") else {
            return setting;
        };
        let given = self.get("optimizer").and_then(|s| match &s.value.node {
            ExprKind::Call { args, .. } => args
                .iter()
                .enumerate()
                .find(|(i, a)| match &a.name {
                    Some(n) => n.node == "weight_decay",
                    None => *i == h + 1,
                })
                .map(|(_, a)| a.value.span),
            _ => None,
        });
        match (setting, given, self.get("weight_decay").map(|s| s.key.span)) {
            (Some(_), Some(arg), Some(key)) => {
                self.diags.push(
                    Diagnostic::new(
                        Code::BadRun,
                        format!("`{}` decays the weights twice", rule.name),
                    )
                    .label(arg, "its own weight_decay")
                    .label(key, "and a weight_decay setting")
                    .note("keep one: the setting also says which parameters decay"),
                );
                None
            }
            (Some(wd), _, Some(key)) if rule.decoupled && wd.form == DecayForm::Penalty => {
                self.diags.push(
                    Diagnostic::new(
                        Code::BadRun,
                        format!("`{}` decays the weights decoupled, not by a penalty", rule.name),
                    )
                    .label(key, "a penalty in the loss")
                    .note(format!(
                        "use adam(...) with weight_decay = penalty(λ), or {}(...) with decoupled(λ, [...])",
                        rule.name
                    )),
                );
                None
            }
            (Some(wd), _, _) => Some(wd),
            (None, _, _) if hypers[h] == 0.0 => None,
            (None, _, _) => Some(WeightDecay {
                form: if rule.decoupled {
                    DecayForm::Decoupled
                } else {
                    DecayForm::Penalty
                },
                lambda: hypers[h],
                params: params
                    .iter()
                    .filter(|p| p.ty.shape.rank() >= 2)
                    .map(|p| p.name.clone())
                    .collect(),
            }),
        }
    }

    /// Every setting set once and known.
    fn check_keys(&mut self) {
        let mut seen: Vec<&ast::Setting> = Vec::new();
        for s in &self.decl.settings {
            if let Some(prev) = seen.iter().find(|p| p.key.node == s.key.node) {
                self.diags.push(
                    Diagnostic::new(
                        Code::DuplicateDefinition,
                        format!("`{}` is set twice", s.key.node),
                    )
                    .label(s.key.span, "set again here")
                    .label(prev.key.span, "first set here"),
                );
            }
            seen.push(s);
            if !KEYS.contains(&s.key.node.as_str()) {
                let mut d =
                    Diagnostic::new(Code::BadRun, format!("unknown setting `{}`", s.key.node))
                        .label(s.key.span, "not a train setting");
                d = match nearest(&s.key.node, KEYS.iter().copied()) {
                    Some(n) => d.note(format!("did you mean `{n}`?")),
                    None => d.note(format!("settings: {}", KEYS.join(", "))),
                };
                self.diags.push(d);
            }
        }
    }

    /// The optimizer, which every train block names, and the loss, which
    /// every one but the closed form's does; the closed form only for
    /// linear regression.
    fn optimizer_and_loss(&mut self, params: &[ParamSpec], is_class: bool) -> Option<Optimizer> {
        // optimizer = sgd(lr = 0.1, momentum = 0.9) | closed_form
        let optimizer = match self.get("optimizer").cloned() {
            None => {
                self.diags.push(
                    Diagnostic::new(Code::BadRun, "this train block has no optimizer").label(
                        self.decl.model.span.to(self.decl.data.span),
                        "add `optimizer = sgd(lr = 0.1)`",
                    ),
                );
                None
            }
            Some(s) => optimizer(self, &s),
        };
        if optimizer == Some(Optimizer::ClosedForm) {
            let linear = params.len() <= 2
                && params.iter().filter(|p| p.ty.shape.rank() == 2).count() == 1
                && params
                    .iter()
                    .all(|p| p.ty.shape.0.last() == Some(&Dim::Fixed(1)));
            if !linear || is_class {
                self.diags.push(
                    Diagnostic::new(Code::BadRun, "the closed-form solution is for linear regression")
                        .label(self.decl.model.span, "this model is not `x @ w + b` with one output, or its data is not a regression")
                        .note("closed_form solves W* = (XᵀX)⁻¹XᵀY; use sgd(...) for other models"),
                );
            }
        }
        if self.get("loss").is_none() && optimizer != Some(Optimizer::ClosedForm) {
            self.diags.push(
                Diagnostic::new(Code::BadRun, "this train block has no loss").label(
                    self.decl.model.span.to(self.decl.data.span),
                    "add `loss = ...`, e.g. cross_entropy(output, label)",
                ),
            );
        }
        optimizer
    }

    /// `metrics = [...]`, each one fitting the data's labels.
    fn metrics(&mut self, data: &DataSpec, is_class: bool) -> Vec<Metric> {
        let mut metrics = vec![Metric::Loss];
        if let Some(s) = self.get("metrics").cloned() {
            metrics.clear();
            let items = match consts::eval(&s.value) {
                Some(Const::List(items)) => items,
                Some(c @ Const::Name(_)) => vec![c],
                _ => Vec::new(),
            };
            if items.is_empty() {
                self.bad(&s, "a list of metrics like [loss, acc]");
            }
            for it in items {
                let m = match &it {
                    Const::Name(n) => match n.as_str() {
                        "loss" => Some(Metric::Loss),
                        "acc" | "accuracy" => Some(Metric::Acc),
                        "rmse" => Some(Metric::Rmse),
                        "log_rmse" => Some(Metric::LogRmse),
                        _ => None,
                    },
                    _ => None,
                };
                match m {
                    None => {
                        self.bad(&s, "a list of metrics: loss, acc, rmse, log_rmse");
                        break;
                    }
                    Some(Metric::Acc) if !is_class => {
                        self.diags.push(
                            Diagnostic::new(Code::BadRun, "accuracy needs class labels").label(
                                s.value.span,
                                format!("data `{}` has regression targets", data.name),
                            ),
                        );
                    }
                    Some(Metric::Rmse | Metric::LogRmse) if is_class => {
                        self.diags.push(
                            Diagnostic::new(
                                Code::BadRun,
                                "rmse and log_rmse need regression targets",
                            )
                            .label(
                                s.value.span,
                                format!("data `{}` has class labels", data.name),
                            ),
                        );
                    }
                    Some(m) if !metrics.contains(&m) => metrics.push(m),
                    Some(_) => {}
                }
            }
        }
        metrics
    }

    /// `valid` and `kfold`: one of them at most, and every part they make
    /// holding rows.
    fn validation(&mut self, data: &DataSpec) -> (Option<f64>, Option<KFold>) {
        let valid = self.fraction("valid");
        let kfold = self
            .get("kfold")
            .cloned()
            .map(|s| match call_parts(&s.value) {
                Some(("contiguous", args)) => {
                    let k = match args {
                        [a] if a.name.is_none() => consts::integer(&a.value).filter(|k| *k >= 2),
                        _ => None,
                    };
                    if k.is_none() {
                        self.bad(&s, "K ≥ 2 or contiguous(K)");
                    }
                    KFold {
                        k: k.unwrap_or(5) as u64,
                        contiguous: true,
                    }
                }
                _ => KFold {
                    k: self.count("kfold", 5, 2),
                    contiguous: false,
                },
            });
        if let (Some(_), Some(_), Some(s)) = (valid, kfold, self.get("kfold").cloned()) {
            self.diags.push(
                Diagnostic::new(
                    Code::BadRun,
                    "`valid` and `kfold` both choose the validation part",
                )
                .label(
                    s.key.span,
                    "K-fold validates on each fold in turn; remove `valid`",
                ),
            );
        }
        // Each part must hold rows: the training part left after `valid`, and
        // every fold of `kfold` (unless the rows are not known: data
        // described by a checkpoint, for predict and export).
        if data.rows.unknown {
            return (valid, kfold);
        }
        let n = data.rows.train;
        let rows = || data.rows.describe(data.test_fraction());
        if let (Some(f), Some(s)) = (valid, self.get("valid").cloned()) {
            let held = (n as f64 * f).round() as u64;
            if held == 0 || held == n {
                let what = if held == 0 {
                    "holds out no rows to validate on"
                } else {
                    "leaves no rows to train on"
                };
                self.diags.push(
                    Diagnostic::new(
                        Code::BadRun,
                        format!("valid = {f} of {n} training rows {what}"),
                    )
                    .label(s.value.span, format!("{held} of {n} rows"))
                    .note(format!("data `{}`: {}", data.name, rows())),
                );
            }
        }
        if let (Some(KFold { k, .. }), Some(s)) = (kfold, self.get("kfold").cloned()) {
            if k > n {
                self.diags.push(
                    Diagnostic::new(
                        Code::BadRun,
                        format!("kfold = {k} needs at least {k} training rows, and there are {n}"),
                    )
                    .label(s.value.span, "some folds would be empty")
                    .note(format!("data `{}`: {}", data.name, rows())),
                );
            }
        }
        (valid, kfold)
    }
}

fn sampler(cx: &mut SettingsCx, s: &ast::Setting, is_class: bool) -> Option<Sampler> {
    let what = "shuffle, sequential, weighted, weighted([w0, w1, ...]), oversample or undersample";
    let Some((name, args)) = call_parts(&s.value) else {
        cx.bad(s, what);
        return None;
    };
    let r = match (name, args.len()) {
        ("shuffle", 0) => Sampler::Shuffle,
        ("sequential", 0) => Sampler::Sequential,
        ("weighted", 0) => Sampler::Weighted(None),
        ("weighted", 1) => match consts::eval(&args[0].value) {
            Some(Const::List(items)) if !items.is_empty() => {
                let ws: Option<Vec<f64>> = items
                    .iter()
                    .map(|c| match c {
                        Const::Num(v, _) if *v >= 0.0 => Some(*v),
                        _ => None,
                    })
                    .collect();
                match ws {
                    Some(ws) if ws.iter().all(|w| *w == 0.0) => {
                        cx.bad(s, "weighted([w0, w1, ...]) with some weight > 0");
                        return None;
                    }
                    Some(ws) if ws.iter().any(|w| !w.is_finite()) => {
                        cx.bad(s, "weighted([w0, w1, ...]) with finite weights");
                        return None;
                    }
                    Some(ws) => Sampler::Weighted(Some(ws)),
                    None => {
                        cx.bad(s, "weighted([w0, w1, ...]) with weights ≥ 0");
                        return None;
                    }
                }
            }
            _ => {
                cx.bad(s, "weighted([w0, w1, ...]) with weights ≥ 0");
                return None;
            }
        },
        ("oversample", 0) => Sampler::Oversample,
        ("undersample", 0) => Sampler::Undersample,
        _ => {
            cx.bad(s, what);
            return None;
        }
    };
    if !is_class
        && matches!(
            r,
            Sampler::Weighted(_) | Sampler::Oversample | Sampler::Undersample
        )
    {
        cx.diags.push(
            Diagnostic::new(Code::BadRun, "class-balancing samplers need class labels")
                .label(s.value.span, "the data has regression targets"),
        );
        return None;
    }
    Some(r)
}
