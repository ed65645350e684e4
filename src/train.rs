//! The training loop: data, initialization, the compiled step per
//! minibatch, per-epoch metrics, and the final report.
//!
//! Human output is a per-epoch table; with `--json` stdout holds only the
//! JSON lines of DESIGN.md (`epoch` and `final` events) and the table goes
//! to stderr (or nowhere with `--quiet`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;
use std::time::Instant;

use crate::check::data::DataSpec;
use crate::check::run::{Init, Metric, Optimizer, ParamSpec, Run, Sampler};
use crate::data::synthetic::Table;
use crate::interp::{concrete, Env, Tensor};
use crate::ir::{Graph, Role};
use crate::rng;
use crate::step::{eval_function, training_step};

/// Command-line overrides of the program's recipe.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    pub epochs: Option<u64>,
    pub batch: Option<u64>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Timed runs of the final evaluation after the first (their median is
    /// reported; 0: the first alone).
    pub infer_reps: usize,
    /// Write a checkpoint here after training.
    pub save: Option<std::path::PathBuf>,
    /// Continue from this checkpoint up to the total `epochs`.
    pub resume: Option<std::path::PathBuf>,
    /// The program text's hash, recorded in checkpoints.
    pub program_hash: String,
    /// The program's file name and text, for `--profile`'s source lines.
    pub source_name: String,
    pub source: String,
    /// Time every kernel; report per source line after training.
    pub profile: bool,
    /// Compile without the optimizer's passes.
    pub no_opt: bool,
    /// Compile without these passes (`Passes::NAMES`).
    pub no_pass: Vec<String>,
    /// How matmuls run.
    pub matmul: crate::jit::Matmul,
    /// Print kernels and memory before and after the passes.
    pub verbose: bool,
    /// Report each parameter's mean gradient norm per epoch.
    pub grad_norms: bool,
    /// Gather the next batch on a second thread while the kernels run:
    /// `Some(false)` never (`--no-prefetch`), `Some(true)` always, `None`
    /// when the kernels leave a core free.
    pub prefetch: Option<bool>,
    /// Draw learning curves to this .svg or .png file.
    pub plot: Option<std::path::PathBuf>,
    pub json: bool,
    pub quiet: bool,
}

/// Where output goes.
pub struct Sink<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub json: bool,
    pub quiet: bool,
    /// Draw a progress bar per epoch on stderr (a terminal, not --quiet).
    pub progress: bool,
}

impl Sink<'_> {
    /// A line of the human report.
    fn human(&mut self, s: &str) {
        if self.quiet {
            return;
        }
        let w: &mut dyn Write = if self.json {
            &mut *self.stderr
        } else {
            &mut *self.stdout
        };
        let _ = writeln!(w, "{s}");
    }

    /// A result line (the final metrics): printed also under `--quiet`,
    /// which drops only the progress and the per-epoch table, and there
    /// named by its run.
    fn result(&mut self, run: &str, s: &str) {
        if self.json {
            return;
        }
        let _ = if self.quiet {
            writeln!(self.stdout, "run {run}: {s}")
        } else {
            writeln!(self.stdout, "{s}")
        };
    }

    fn json(&mut self, s: &str) {
        if self.json {
            let _ = writeln!(self.stdout, "{s}");
        }
    }
}

/// Initial values of a parameter (d2l's initializers; Xavier uses the
/// `[n_in, n_out]` layout).
pub fn init_values(p: &ParamSpec, seed: u64, index: usize) -> Vec<f64> {
    let shape = concrete(&p.ty.shape, 1);
    let n: usize = shape.iter().product();
    let key = rng::key(seed, 0, 1000 + index as u32);
    let normal = |mean: f64, std: f64| -> Vec<f64> {
        (0..n as u64)
            .map(|i| mean + std * rng::normal(key, i))
            .collect()
    };
    let uniform = |lo: f64, hi: f64| -> Vec<f64> {
        (0..n as u64)
            .map(|i| lo + (hi - lo) * rng::uniform(key, i))
            .collect()
    };
    let fans = || match shape.as_slice() {
        [a, b, ..] => (*a as f64, *b as f64),
        [a] => (*a as f64, *a as f64),
        [] => (1.0, 1.0),
    };
    match &p.init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Constant(c) => vec![*c; n],
        Init::Normal { mean, std } => normal(*mean, *std),
        Init::Uniform { low, high } => uniform(*low, *high),
        Init::XavierUniform => {
            let (i, o) = fans();
            let a = (6.0 / (i + o)).sqrt();
            uniform(-a, a)
        }
        Init::XavierNormal => {
            let (i, o) = fans();
            normal(0.0, (2.0 / (i + o)).sqrt())
        }
    }
}

fn fmt_list(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{}", *x as f32)).collect();
    format!("[{}]", parts.join(","))
}

/// Trains one run and reports it. Returns an error message (exit 1).
pub fn train_run(
    run: &Run,
    data: &DataSpec,
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let s = &run.settings;
    let epochs = opts.epochs.unwrap_or(s.epochs);
    let resumed = match &opts.resume {
        Some(path) => Some(resume_from(run, path, opts, epochs)?),
        None => None,
    };
    // A resumed run keeps its seed: the same shuffle and the same split.
    let seed = resumed
        .as_ref()
        .map(|ck| ck.seed)
        .or(opts.seed)
        .unwrap_or(s.seed);
    let batch = opts.batch.unwrap_or(s.batch).max(1) as usize;
    // Refuse, before allocating anything, a run whose buffers cannot fit.
    // The step it will compile (with its gradients as outputs under
    // --grad-norms); a closed-form run has none.
    let step_graph = if opts.grad_norms {
        training_step(run)
    } else {
        crate::step::training_step_without_grads(run)
    };
    if let Some(g) = &step_graph {
        crate::memory::check(
            &format!(
                "run {}, with its parameters, gradients, one batch's activations and its data,",
                run.name
            ),
            crate::jit::estimate_bytes(g, batch) + data.bytes_estimate(),
        )?;
    }
    let parts = crate::data::load::load(data, seed)?;
    let (mut train, test) = (parts.train, parts.test);
    // A validation part held out of the training part, when asked for.
    let mut valid: Option<Table> = None;
    if let Some(f) = s.valid {
        let order = crate::data::load::permutation(train.len(), seed, 0xa11d);
        let n_valid = ((train.len() as f64) * f).round() as usize;
        let (keep, held) = order.split_at(train.len() - n_valid);
        valid = Some(crate::data::load::select(&train, held));
        train = crate::data::load::select(&train, keep);
    }
    // The checker refuses data that leaves a part empty; the files are read
    // again here, so say so if they changed in between.
    if train.is_empty() || valid.as_ref().is_some_and(Table::is_empty) {
        return Err(format!(
            "run {}: no rows to {} (data `{}`: {})",
            run.name,
            if train.is_empty() {
                "train on"
            } else {
                "validate on"
            },
            data.name,
            data.rows.describe(data.test_fraction())
        ));
    }
    let mut params: Vec<Vec<f64>> = run
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| init_values(p, seed, i))
        .collect();

    if s.optimizer == Optimizer::ClosedForm {
        let start = Instant::now();
        closed_form(run, &train, &mut params)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        sink.human(&format!(
            "run {}: {} on {}, solved in closed form (normal equations) in {ms:.2} ms",
            run.name, run.model, data.name
        ));
        if opts.plot.is_some() {
            sink.human(&format!(
                "note: run {} has no epochs, so no learning curves to draw",
                run.name
            ));
        }
        if let Some(path) = &opts.save {
            let ck = crate::checkpoint::Checkpoint {
                run: run.name.clone(),
                program_hash: opts.program_hash.clone(),
                epoch: 0,
                step: 0,
                seed,
                params: params.clone(),
                velocity: Vec::new(),
            };
            crate::checkpoint::save(path, run, &ck)?;
            sink.human(&format!("saved {}", path.display()));
        }
        return report_final(
            run, &params, &train, &test, batch, seed, epochs, 0.0, opts, sink, None,
        );
    }
    let Optimizer::Sgd { lr, .. } = s.optimizer else {
        return Ok(());
    };
    let lr = opts.lr.unwrap_or(lr);
    let step_graph = step_graph.ok_or("no training step")?;
    let start = Instant::now();
    let passes = if opts.no_opt {
        crate::opt::Passes::none()
    } else {
        opts.no_pass
            .iter()
            .fold(crate::opt::Passes::all(), |p, name| p.and_without(name))
    };
    let mut step = crate::jit::compile_with(&step_graph, false, &passes)?;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    if let Some(t) = opts.threads {
        step.threads = t.max(1);
    }
    step.matmul = opts.matmul;
    if opts.profile {
        step.start_profile();
    }
    let eval_graph = eval_function(run);
    let mut eval = crate::jit::compile_with(&eval_graph, false, &passes)?;
    (eval.threads, eval.matmul) = (step.threads, opts.matmul);
    if opts.verbose {
        // Kernels and memory before the passes (one kernel and one buffer
        // per primitive) and after them, for training and for prediction
        // side by side: training keeps activations for the backward pass
        // and holds gradients (d2l §4.7).
        let none = crate::opt::Passes::none();
        let cols = [
            crate::jit::plan::stats(&step_graph, &none, batch),
            crate::jit::plan::stats(&step.graph, &passes, batch),
            crate::jit::plan::stats(&eval_graph, &none, batch),
            crate::jit::plan::stats(&eval.graph, &passes, batch),
        ];
        let mib = |b: usize| format!("{:.2}", b as f64 / (1 << 20) as f64);
        let row = |name: &str, f: &dyn Fn(&crate::jit::plan::Stats) -> String| {
            let mut line = format!("  {name:<18}");
            for c in &cols {
                let _ = write!(line, " {:>9}", f(c));
            }
            line
        };
        let table = [
            format!("kernels and memory at batch {batch}:"),
            format!(
                "  {:<18} {:>19} {:>19}",
                "", "training step", "eval function"
            ),
            format!(
                "  {:<18} {:>9} {:>9} {:>9} {:>9}",
                "", "before", "after", "before", "after"
            ),
            row("kernels", &|s| s.kernels.to_string()),
            row("buffers", &|s| s.buffers.to_string()),
            row("temporaries (MiB)", &|s| mib(s.temp_bytes)),
            row("arena (MiB)", &|s| mib(s.peak_bytes)),
        ];
        sink.human(&table.join("\n"));
    }
    // A prefetch thread pays off only on a core the kernels leave free:
    // measured on 2 cores (mlp.dl), it saves 3% of an epoch with
    // --threads 1 and costs 6% when both cores run the matmuls.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let step_threads = step.threads;
    let mut tr = Trainer {
        run,
        step_graph,
        step,
        eval_graph,
        eval,
        lr,
        batch,
        seed,
        epochs,
        grad_norms: opts.grad_norms,
        prefetch: opts.prefetch.unwrap_or(step_threads < cores),
        steps_run: 0,
    };
    sink.human(&format!(
        "run {}: {} on {} ({} train samples, batch {batch}, lr {lr}); training step compiled in {compile_ms:.1} ms",
        run.name,
        run.model,
        data.name,
        train.len()
    ));
    let Some(k) = s.kfold else {
        let start = match (&opts.resume, resumed) {
            (Some(path), Some(ck)) => {
                if ck.program_hash != opts.program_hash {
                    sink.human(&format!(
                        "note: {} was saved from a different version of the program",
                        path.display()
                    ));
                }
                sink.human(&format!(
                    "resuming from {} after epoch {} (step {})",
                    path.display(),
                    ck.epoch,
                    ck.step
                ));
                Some(State {
                    params: ck.params,
                    velocity: ck.velocity,
                    epoch: ck.epoch,
                    step: ck.step,
                })
            }
            _ => None,
        };
        // Learning curves follow the validation part, or else the test part
        // (as d2l's Animator does).
        let watch = match (&valid, &opts.plot) {
            (Some(v), _) => Some(("valid", v)),
            (None, Some(_)) if !test.is_empty() => Some(("test", &test)),
            (None, _) => None,
        };
        let fitted = tr.fit(&train, watch, true, sink, start)?;
        if let Some(path) = &opts.plot {
            draw_curves(path, &format!("run {}", run.name), &fitted.history, sink)?;
        }
        let state = fitted.state;
        if opts.profile {
            tr.report_profile(opts, sink);
        }
        if let Some(path) = &opts.save {
            let ck = crate::checkpoint::Checkpoint {
                run: run.name.clone(),
                program_hash: opts.program_hash.clone(),
                epoch: state.epoch,
                step: state.step,
                seed,
                params: state.params.clone(),
                velocity: state.velocity.clone(),
            };
            crate::checkpoint::save(path, run, &ck)?;
            sink.human(&format!("saved {}", path.display()));
        }
        return report_final(
            run,
            &state.params,
            &train,
            &test,
            batch,
            seed,
            epochs,
            compile_ms,
            opts,
            sink,
            Some((&tr.eval_graph, &mut tr.eval)),
        );
    };
    if opts.save.is_some() || opts.resume.is_some() {
        return Err(format!(
            "run {}: checkpoints of K-fold runs are not supported (each fold is a separate model)",
            run.name
        ));
    }
    // K-fold: train a fresh model on k−1 folds, validate on the k-th; keep
    // every fold's model; predict the test part with their average.
    let k = k as usize;
    let order = crate::data::load::permutation(train.len(), seed, 0xf01d);
    let mut fold_params = Vec::new();
    let mut scores: Vec<Vec<(String, f64)>> = Vec::new();
    for f in 0..k {
        let (lo, hi) = (f * train.len() / k, (f + 1) * train.len() / k);
        let held: Vec<usize> = order[lo..hi].to_vec();
        let rest: Vec<usize> = order[..lo].iter().chain(&order[hi..]).copied().collect();
        if held.is_empty() || rest.is_empty() {
            return Err(format!(
                "run {}: fold {} of {k} is empty ({} training rows)",
                run.name,
                f + 1,
                train.len()
            ));
        }
        let (tpart, vpart) = (
            crate::data::load::select(&train, &rest),
            crate::data::load::select(&train, &held),
        );
        // d2l plots the first fold's curves.
        let watch = (f == 0 && opts.plot.is_some()).then_some(("valid", &vpart));
        let fitted = tr.fit(&tpart, watch, false, sink, None)?;
        if let (0, Some(path)) = (f, &opts.plot) {
            let title = format!("run {}, fold 1 of {k}", run.name);
            draw_curves(path, &title, &fitted.history, sink)?;
        }
        let (train_metrics, params) = (fitted.last, fitted.state.params);
        let valid_metrics = tr.evaluate(&params, &vpart)?;
        let mut json = format!(
            "{{\"event\":\"fold\",\"run\":\"{}\",\"fold\":{},\"folds\":{k}",
            run.name,
            f + 1
        );
        let mut line = format!("fold {}/{k}:", f + 1);
        for (m, v) in &train_metrics {
            let _ = write!(json, ",\"train_{m}\":{v}");
            let _ = write!(line, " train_{m} {v:.6}");
        }
        for (m, v) in &valid_metrics {
            let _ = write!(json, ",\"valid_{m}\":{v}");
            let _ = write!(line, " valid_{m} {v:.6}");
        }
        json.push('}');
        sink.human(&line);
        sink.json(&json);
        fold_params.push(params);
        scores.push(valid_metrics);
    }
    let mut json = format!(
        "{{\"event\":\"kfold\",\"run\":\"{}\",\"folds\":{k}",
        run.name
    );
    let mut line = format!("{k}-fold:");
    for (i, (m, _)) in scores[0].iter().enumerate() {
        let vals: Vec<f64> = scores.iter().map(|sc| sc[i].1).collect();
        let mean = vals.iter().sum::<f64>() / k as f64;
        let std = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / k as f64).sqrt();
        let _ = write!(json, ",\"mean_valid_{m}\":{mean},\"std_valid_{m}\":{std}");
        let _ = write!(line, " valid_{m} {mean:.6} ± {std:.6}");
    }
    json.push('}');
    sink.result(&run.name, &line);
    sink.json(&json);
    // The test part, predicted by the average of the fold models.
    let mut json = format!(
        "{{\"event\":\"final\",\"final\":true,\"run\":\"{}\",\"epochs\":{epochs}",
        run.name
    );
    let mut line = String::from("final (average of the fold models):");
    if !test.is_empty() {
        for (m, v) in tr.ensemble_metrics(&fold_params, &test)? {
            let _ = write!(json, ",\"test_{m}\":{v}");
            let _ = write!(line, " test_{m} {v:.6}");
        }
    }
    let _ = write!(json, ",\"compile_ms\":{compile_ms},\"params\":{{}}}}");
    sink.result(&run.name, &line);
    sink.json(&json);
    if opts.profile {
        tr.report_profile(opts, sink);
    }
    Ok(())
}

/// The checkpoint `--resume` names, checked against what the run will do
/// with it: a closed-form or K-fold run has nothing to resume, a `--seed`
/// must agree with the stored one, and the total `epochs` must go past
/// the stored epoch.
fn resume_from(
    run: &Run,
    path: &std::path::Path,
    opts: &TrainOptions,
    epochs: u64,
) -> Result<crate::checkpoint::Checkpoint, String> {
    let s = &run.settings;
    if s.optimizer == Optimizer::ClosedForm {
        return Err(format!(
            "run {} is solved in closed form: it has no epochs, so --resume has nothing to resume",
            run.name
        ));
    }
    if s.kfold.is_some() {
        return Err(format!(
            "run {}: checkpoints of K-fold runs are not supported (each fold is a separate model)",
            run.name
        ));
    }
    let ck = crate::checkpoint::load(path, run)?;
    if let Some(seed) = opts.seed.filter(|s| *s != ck.seed) {
        return Err(format!(
            "--seed {seed} conflicts with checkpoint {}, saved with seed {}: a resumed run keeps its seed, and with it its shuffle and its validation split",
            path.display(),
            ck.seed
        ));
    }
    if epochs <= ck.epoch {
        let asked = match opts.epochs {
            Some(e) => format!("--epochs {e}"),
            None => format!("the program's epochs = {epochs}"),
        };
        return Err(format!(
            "checkpoint {} is at epoch {}, so {asked} would train nothing: the epochs count in total, so ask for more than {}",
            path.display(),
            ck.epoch,
            ck.epoch
        ));
    }
    Ok(ck)
}

/// Draws learning curves from a run's per-epoch metrics: the losses in one
/// panel, the other metrics (accuracy, RMSE) in a second.
fn draw_curves(
    path: &std::path::Path,
    title: &str,
    history: &[(u64, Vec<(String, f64)>)],
    sink: &mut Sink,
) -> Result<(), String> {
    use crate::plot::{Figure, Panel, Series};
    let mut names: Vec<String> = Vec::new();
    for (_, rec) in history {
        for (m, _) in rec {
            if !names.contains(m) {
                names.push(m.clone());
            }
        }
    }
    let series = |keep: &dyn Fn(&str) -> bool| -> Vec<Series> {
        names
            .iter()
            .filter(|n| keep(n))
            .map(|n| Series {
                name: n.replace('_', " "),
                points: history
                    .iter()
                    .filter_map(|(e, rec)| {
                        rec.iter()
                            .find(|(m, _)| m == n)
                            .map(|(_, v)| (*e as f64, *v))
                    })
                    .collect(),
            })
            .collect()
    };
    let is_loss = |n: &str| n.ends_with("_loss");
    let mut panels = vec![Panel {
        y_label: "loss".into(),
        series: series(&is_loss),
    }];
    let others = series(&|n: &str| !is_loss(n));
    if !others.is_empty() {
        let mut kinds: Vec<&str> = Vec::new();
        for n in names.iter().filter(|n| !is_loss(n)) {
            let kind = match n.split_once('_').map(|x| x.1) {
                Some("acc") => "accuracy",
                Some("rmse") => "RMSE",
                Some("log_rmse") => "log RMSE",
                _ => "metric",
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        panels.push(Panel {
            y_label: kinds.join(", "),
            series: others,
        });
    }
    let fig = Figure {
        title: title.to_string(),
        x_label: "epoch".into(),
        panels,
    };
    crate::plot::figure(path, &fig)?;
    sink.human(&format!("learning curves drawn to {}", path.display()));
    Ok(())
}

/// The sample order of one epoch. `shuffle`: a seeded Fisher–Yates
/// permutation; `sequential`: as stored; `weighted`: n draws with
/// replacement, each class weighted (inverse class frequency unless
/// weights are given); `oversample` / `undersample`: every class repeated
/// up to, or cut down to, the largest / smallest class's count, shuffled.
pub fn epoch_order(sampler: &Sampler, t: &Table, seed: u64, epoch: u64) -> Vec<usize> {
    let n = t.len();
    let key = rng::key(seed, epoch, 0x5eed);
    let shuffle = |mut v: Vec<usize>| {
        for i in (1..v.len()).rev() {
            let j = (rng::bits(key, i as u64) % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    };
    let classes = t.y.iter().fold(0usize, |m, y| m.max(*y as usize + 1));
    let by_class = || -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); classes];
        for (i, y) in t.y.iter().enumerate() {
            groups[*y as usize].push(i);
        }
        groups
    };
    match sampler {
        Sampler::Sequential => (0..n).collect(),
        Sampler::Shuffle => shuffle((0..n).collect()),
        Sampler::Weighted(weights) => {
            let groups = by_class();
            let w: Vec<f64> = (0..n)
                .map(|i| {
                    let c = t.y[i] as usize;
                    match weights {
                        Some(ws) => ws.get(c).copied().unwrap_or(0.0),
                        None => 1.0 / groups[c].len().max(1) as f64,
                    }
                })
                .collect();
            // Inverse-CDF sampling from the cumulative weights.
            let mut cdf = Vec::with_capacity(n);
            let mut acc = 0.0;
            for x in &w {
                acc += x;
                cdf.push(acc);
            }
            if acc <= 0.0 {
                return shuffle((0..n).collect());
            }
            let k2 = rng::key(seed, epoch, 0x3a3b);
            (0..n as u64)
                .map(|i| {
                    let u = rng::uniform(k2, i) * acc;
                    cdf.partition_point(|c| *c <= u).min(n - 1)
                })
                .collect()
        }
        Sampler::Oversample | Sampler::Undersample => {
            let groups: Vec<Vec<usize>> =
                by_class().into_iter().filter(|g| !g.is_empty()).collect();
            let target = if *sampler == Sampler::Oversample {
                groups.iter().map(Vec::len).max().unwrap_or(0)
            } else {
                groups.iter().map(Vec::len).min().unwrap_or(0)
            };
            let mut all = Vec::new();
            for g in groups {
                let g = shuffle(g);
                all.extend((0..target).map(|i| g[i % g.len()]));
            }
            shuffle(all)
        }
    }
}

/// Training progress: parameters, momentum, completed epochs and steps.
#[derive(Clone, Debug)]
pub struct State {
    pub params: Vec<Vec<f64>>,
    pub velocity: Vec<Vec<f64>>,
    pub epoch: u64,
    pub step: u64,
}

/// What [`Trainer::fit`] returns.
struct Fitted {
    state: State,
    /// The last epoch's training metrics (`loss`, `acc`, ...).
    last: Vec<(String, f64)>,
    /// Per epoch, every metric it reported (`train_loss`, `valid_acc`, ...).
    history: Vec<(u64, Vec<(String, f64)>)>,
}

/// A run's compiled step and eval function, and its recipe.
struct Trainer<'a> {
    run: &'a Run,
    step_graph: Graph,
    step: crate::jit::Compiled,
    eval_graph: Graph,
    eval: crate::jit::Compiled,
    lr: f64,
    batch: usize,
    seed: u64,
    epochs: u64,
    grad_norms: bool,
    /// Gather the next batch on a second thread.
    prefetch: bool,
    /// Training steps run so far (for `--profile`).
    steps_run: u64,
}

impl Trainer<'_> {
    /// Prints `--profile`'s table: kernel time per source line and phase.
    fn report_profile(&self, opts: &TrainOptions, sink: &mut Sink) {
        let times = self.step.kernel_times();
        let text = crate::profile::report(
            &self.step.graph,
            &times,
            self.steps_run,
            &opts.source,
            &opts.source_name,
        );
        sink.human(text.trim_end());
    }

    fn evaluate(&mut self, params: &[Vec<f64>], t: &Table) -> Result<Vec<(String, f64)>, String> {
        evaluate_with(
            self.run,
            &self.eval_graph,
            &mut self.eval,
            params,
            t,
            self.batch,
            self.seed,
        )
    }

    /// The model outputs of `params` on all of `t`.
    fn outputs(&mut self, params: &[Vec<f64>], t: &Table) -> Result<Vec<f64>, String> {
        let oi = self
            .eval_graph
            .outputs
            .iter()
            .position(|(n, _)| n == "output")
            .ok_or("no output")?;
        let rows: Vec<usize> = (0..t.len()).collect();
        let mut all = Vec::new();
        for chunk in rows.chunks(self.batch) {
            let batch = gather(&self.eval_graph, t, chunk);
            let inputs: Vec<Tensor> =
                step_inputs(&self.eval_graph, batch, Some((params, &[])), 0, 0.0)
                    .into_iter()
                    .flatten()
                    .collect();
            let out = self.eval.run(
                &inputs,
                &Env {
                    batch: chunk.len(),
                    seed: self.seed,
                },
            )?;
            all.extend_from_slice(&out[oi].data);
        }
        Ok(all)
    }

    /// Test metrics of the average of several models' outputs.
    fn ensemble_metrics(
        &mut self,
        models: &[Vec<Vec<f64>>],
        t: &Table,
    ) -> Result<Vec<(String, f64)>, String> {
        let mut avg: Vec<f64> = Vec::new();
        for p in models {
            let o = self.outputs(p, t)?;
            if avg.is_empty() {
                avg = vec![0.0; o.len()];
            }
            for (a, v) in avg.iter_mut().zip(o) {
                *a += v / models.len() as f64;
            }
        }
        let n = t.len().max(1);
        let width = avg.len() / n;
        let mut res = Vec::new();
        for m in &self.run.settings.metrics {
            match m {
                Metric::Loss => {}
                Metric::Acc => {
                    let correct = (0..n)
                        .filter(|&r| {
                            let row = &avg[r * width..(r + 1) * width];
                            let best =
                                row.iter()
                                    .enumerate()
                                    .fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
                            best as f64 == t.y[r]
                        })
                        .count();
                    res.push(("acc".to_string(), correct as f64 / n as f64));
                }
                Metric::Rmse => {
                    let se: f64 = (0..n).map(|r| (avg[r] - t.y[r]).powi(2)).sum();
                    res.push(("rmse".to_string(), (se / n as f64).sqrt()));
                }
                Metric::LogRmse => {
                    let se: f64 = (0..n)
                        .map(|r| (avg[r].max(1.0).ln() - t.y[r].ln()).powi(2))
                        .sum();
                    res.push(("log_rmse".to_string(), (se / n as f64).sqrt()));
                }
            }
        }
        Ok(res)
    }

    /// Trains a model on `train` up to the run's epochs, from `start` (or
    /// freshly initialized), evaluating the `watch` part (validation, or
    /// the test part for learning curves) after every epoch; prints the
    /// per-epoch table when `report` is set.
    fn fit(
        &mut self,
        train: &Table,
        watch: Option<(&str, &Table)>,
        report: bool,
        sink: &mut Sink,
        start: Option<State>,
    ) -> Result<Fitted, String> {
        let (run, batch, seed, lr) = (self.run, self.batch, self.seed, self.lr);
        let s = &run.settings;
        let start = start.unwrap_or_else(|| {
            let params: Vec<Vec<f64>> = run
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| init_values(p, seed, i))
                .collect();
            let velocity = params.iter().map(|p| vec![0.0; p.len()]).collect();
            State {
                params,
                velocity,
                epoch: 0,
                step: 0,
            }
        });
        let (start_epoch, start_step) = (start.epoch, start.step);
        let (mut params, mut velocity) = (start.params, start.velocity);
        if velocity.len() != params.len() {
            velocity = params.iter().map(|p| vec![0.0; p.len()]).collect();
        }
        let names: Vec<String> = run.params.iter().map(|p| p.name.clone()).collect();
        // The table's columns: train metrics, the watched part's, gradient
        // norms, time.
        let mut columns = vec!["train_loss".to_string()];
        let others = s.metrics.iter().filter(|m| **m != Metric::Loss);
        columns.extend(others.clone().map(|m| format!("train_{}", m.name())));
        if let Some((part, _)) = watch {
            columns.push(format!("{part}_loss"));
            columns.extend(others.map(|m| format!("{part}_{}", m.name())));
        }
        if self.grad_norms {
            columns.extend(names.iter().map(|n| format!("|d{n}|")));
        }
        columns.extend(["seconds".to_string(), "samples/s".to_string()]);
        let widths: Vec<usize> = columns.iter().map(|c| c.chars().count().max(9)).collect();
        if report {
            let mut header = "epoch".to_string();
            for (c, w) in columns.iter().zip(&widths) {
                let _ = write!(header, "  {c:>w$}");
            }
            sink.human(&header);
        }
        let mut global_step: u64 = start_step;
        let mut last = Vec::new();
        let mut history = Vec::new();
        // With the in-place pass, each parameter's (and velocity's) update
        // is written into its own input buffer: the values stay in the
        // compiled step between steps and are read back once per epoch.
        let outputs = &self.step_graph.outputs;
        // Each parameter's and velocity's input, in order, and each output's
        // place by name: looked up once, not per parameter per step.
        let inputs_with = |role: fn(&Role) -> bool| -> Vec<usize> {
            self.step_graph
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, info)| role(&info.role))
                .map(|(k, _)| k)
                .collect()
        };
        let param_inputs = inputs_with(|r| matches!(r, Role::Param { .. }));
        let velocity_inputs = inputs_with(|r| *r == Role::Velocity);
        let out_index: HashMap<&str, usize> = outputs
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        let vel_names: Vec<String> = names.iter().map(|n| format!("velocity {n}")).collect();
        let grad_names: Vec<String> = names.iter().map(|n| format!("grad {n}")).collect();
        let has_velocity = outputs.iter().any(|(n, _)| n.starts_with("velocity "));
        let resident = names.iter().enumerate().all(|(i, name)| {
            let param = param_inputs
                .get(i)
                .is_some_and(|&k| self.step.resident(k, name));
            let vel = !has_velocity
                || velocity_inputs
                    .get(i)
                    .is_some_and(|&k| self.step.resident(k, &vel_names[i]));
            param && vel
        });
        let state_names: HashSet<&str> =
            names.iter().chain(&vel_names).map(String::as_str).collect();
        let want: Vec<bool> = outputs
            .iter()
            .map(|(n, _)| !(resident && state_names.contains(n.as_str())))
            .collect();
        let slot = |name: &str| out_index.get(name).copied();
        let (param_out, vel_out, grad_out): (Vec<_>, Vec<_>, Vec<_>) = (
            names.iter().map(|n| slot(n)).collect(),
            vel_names.iter().map(|n| slot(n)).collect(),
            grad_names.iter().map(|n| slot(n)).collect(),
        );
        let metric_out: Vec<Option<usize>> = ["correct", "sq_err", "sq_log_err"]
            .iter()
            .map(|n| slot(n))
            .collect();
        let loss_out = slot("loss");
        // Buffers sized for the largest batch from the start: inputs and
        // resident parameters are written into them between steps.
        self.step.reserve(batch)?;
        let mut loaded = false;
        // A loss that grows by orders of magnitude is stopped long before it
        // overflows: the first batch's loss, and the recent epochs' means.
        let mut first_loss: Option<(f64, u64)> = None;
        let mut epoch_losses: Vec<f64> = Vec::new();
        let hint = format!(
            "lower the learning rate (lr {lr}{}) or standardize the features",
            match s.optimizer {
                Optimizer::Sgd { momentum, .. } if momentum > 0.0 =>
                    format!(", momentum {momentum}"),
                _ => String::new(),
            }
        );
        for epoch in start_epoch + 1..=self.epochs {
            let t0 = Instant::now();
            let order = epoch_order(&s.sampler, train, seed, epoch);
            let n = order.len();
            let (mut loss_sum, mut sums) = (0.0, [0.0f64; 3]);
            // Σ over batches of each parameter's gradient norm (--grad-norms).
            let mut gnorms = vec![0.0f64; names.len()];
            let mut batches = 0usize;
            let bar = (report && sink.progress).then(|| {
                let pb = indicatif::ProgressBar::new(n.div_ceil(batch) as u64);
                let style = indicatif::ProgressStyle::with_template(
                    "epoch {prefix} {bar:30} {pos}/{len} batches  loss {msg}  {per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                pb.set_style(style);
                pb.set_prefix(epoch.to_string());
                pb
            });
            // The next batch is gathered on a second thread while this one's
            // kernels run (when a core is free and not --no-prefetch); both
            // orders of events give the same batches and identical losses.
            let (step_graph, step) = (&self.step_graph, &mut self.step);
            let (prefetch, grad_norms) = (self.prefetch, self.grad_norms);
            let steps_run = &mut self.steps_run;
            let order = &order;
            std::thread::scope(|sc| -> Result<(), String> {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
                if prefetch {
                    sc.spawn(move || {
                        for chunk in order.chunks(batch) {
                            if tx.send(gather(step_graph, train, chunk)).is_err() {
                                break;
                            }
                        }
                    });
                } else {
                    drop(tx);
                }
                for (bi, chunk) in order.chunks(batch).enumerate() {
                    let bs = chunk.len();
                    let gathered = if prefetch {
                        rx.recv()
                            .map_err(|_| "the batch-preparing thread stopped".to_string())?
                    } else {
                        // Straight from the table into the step's buffers.
                        for (k, info) in step_graph.inputs.iter().enumerate() {
                            match info.role {
                                Role::Features => write_features(step, k, train, chunk)?,
                                Role::Label => step.write_input_rows(k, &train.y, 1, chunk)?,
                                _ => {}
                            }
                        }
                        // The next batch's rows start moving towards the
                        // cache while this step's kernels run.
                        let next = order.get((bi + 1) * batch..order.len().min((bi + 2) * batch));
                        for &r in next.unwrap_or(&[]) {
                            train.prefetch_row(r);
                        }
                        Batch {
                            x: None,
                            y: None,
                            rows: bs,
                            written: true,
                        }
                    };
                    // Resident parameters are written on the first step only.
                    let state = (!resident || !loaded).then_some((&params[..], &velocity[..]));
                    let inputs = step_inputs(step_graph, gathered, state, global_step, lr);
                    let given: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
                    let out = step.run_some(&given, &want, &Env { batch: bs, seed })?;
                    loaded = true;
                    global_step += 1;
                    *steps_run += 1;
                    let get = |i: Option<usize>| i.and_then(|i| out[i].as_ref());
                    let loss = get(loss_out).map(|t| t.data[0]).unwrap_or(f64::NAN);
                    if !loss.is_finite() {
                        return Err(format!(
                            "run {}: training diverged: the loss is {loss} at epoch {epoch}, batch {}",
                            run.name,
                            bi + 1
                        ));
                    }
                    let (l0, e0) = *first_loss.get_or_insert((loss, epoch));
                    if loss > RUNAWAY * l0.max(1.0) {
                        return Err(format!(
                            "run {}: training diverged: the loss grew from {l0:.3e} (epoch {e0}, batch 1) to {loss:.3e} at epoch {epoch}, batch {}; {hint}",
                            run.name,
                            bi + 1
                        ));
                    }
                    loss_sum += loss * bs as f64;
                    for (k, &i) in metric_out.iter().enumerate() {
                        if let Some(t) = get(i) {
                            sums[k] += t.data[0];
                        }
                    }
                    batches += 1;
                    if let Some(pb) = &bar {
                        pb.set_message(format!("{loss:.4}"));
                        pb.inc(1);
                    }
                    for i in 0..names.len() {
                        if grad_norms {
                            if let Some(g) = get(grad_out[i]) {
                                gnorms[i] += g.data.iter().map(|v| v * v).sum::<f64>().sqrt();
                            }
                        }
                        if let Some(t) = get(param_out[i]) {
                            params[i].clone_from(&t.data);
                        }
                        if let Some(t) = get(vel_out[i]) {
                            velocity[i].clone_from(&t.data);
                        }
                    }
                }
                Ok(())
            })?;
            if let Some(pb) = bar {
                pb.finish_and_clear();
            }
            if resident && loaded {
                for (i, name) in names.iter().enumerate() {
                    params[i] = self.step.output(name)?.data;
                    if has_velocity {
                        velocity[i] = self.step.output(&format!("velocity {name}"))?.data;
                    }
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            let nf = n.max(1) as f64;
            last = vec![("loss".to_string(), loss_sum / nf)];
            epoch_losses.push(loss_sum / nf);
            if let [a, b, c] = epoch_losses[epoch_losses.len().saturating_sub(3)..] {
                if b > 100.0 * a && c > 100.0 * b {
                    return Err(format!(
                        "run {}: training diverged: the epoch's mean loss grew from {a:.3e} to {b:.3e} to {c:.3e} by epoch {epoch}; {hint}",
                        run.name
                    ));
                }
            }
            for m in &s.metrics {
                let v = match m {
                    Metric::Loss => continue,
                    Metric::Acc => sums[0] / nf,
                    Metric::Rmse => (sums[1] / nf).sqrt(),
                    Metric::LogRmse => (sums[2] / nf).sqrt(),
                };
                last.push((m.name().to_string(), v));
            }
            let watched = match watch {
                Some((part, t)) => self
                    .evaluate(&params, t)?
                    .into_iter()
                    .map(|(m, v)| (format!("{part}_{m}"), v))
                    .collect(),
                None => Vec::new(),
            };
            let mut record: Vec<(String, f64)> = last
                .iter()
                .map(|(m, v)| (format!("train_{m}"), *v))
                .collect();
            record.extend(watched.iter().cloned());
            history.push((epoch, record));
            if !report {
                continue;
            }
            let mut json = format!(
                "{{\"event\":\"epoch\",\"run\":\"{}\",\"epoch\":{epoch}",
                run.name
            );
            let mut cells: Vec<String> = Vec::new();
            for (m, v) in &last {
                let _ = write!(json, ",\"train_{m}\":{v}");
                cells.push(format!("{v:.6}"));
            }
            for (m, v) in &watched {
                let _ = write!(json, ",\"{m}\":{v}");
                cells.push(format!("{v:.6}"));
            }
            let sps = nf / secs.max(1e-9);
            if self.grad_norms {
                // The mean over the epoch's batches of ‖∂loss/∂p‖₂.
                let _ = write!(json, ",\"grad_norms\":{{");
                for (i, name) in names.iter().enumerate() {
                    let g = gnorms[i] / batches.max(1) as f64;
                    let _ = write!(json, "{}\"{name}\":{g}", if i > 0 { "," } else { "" });
                    cells.push(format!("{g:.3e}"));
                }
                json.push('}');
            }
            cells.push(format!("{secs:.3}"));
            cells.push(format!("{sps:.0}"));
            let _ = write!(json, ",\"seconds\":{secs},\"samples_per_sec\":{sps}}}");
            let mut line = format!("{epoch:>5}");
            for (c, w) in cells.iter().zip(&widths) {
                let _ = write!(line, "  {c:>w$}");
            }
            sink.human(&line);
            sink.json(&json);
        }
        let epoch = self.epochs.max(start_epoch);
        Ok(Fitted {
            state: State {
                params,
                velocity,
                epoch,
                step: global_step,
            },
            last,
            history,
        })
    }
}

/// How far a batch's loss may grow past the first batch's (or past 1, if
/// that is larger) before training is stopped as diverging.
const RUNAWAY: f64 = 1e6;

/// One minibatch's data: the features and labels of some rows, in the
/// dtypes and shapes the graph's `x` and `label` inputs declare.
struct Batch {
    x: Option<Tensor>,
    y: Option<Tensor>,
    rows: usize,
    /// The rows are already in the compiled step's input buffers (see
    /// `Compiled::write_input_rows`): give no tensors for them.
    written: bool,
}

/// Writes rows `rows` of `t`'s features as input `k` of `c`.
fn write_features(
    c: &mut crate::jit::Compiled,
    k: usize,
    t: &Table,
    rows: &[usize],
) -> Result<(), String> {
    let w = t.width;
    // The rows lie anywhere in the table: each is fetched from memory a few
    // rows ahead of its copy, so the waits overlap.
    const AHEAD: usize = 4;
    for &r in rows.iter().take(AHEAD) {
        t.prefetch_row(r);
    }
    c.fill_input_rows(k, w, rows, |i, r, out| {
        if let Some(&next) = rows.get(i + AHEAD) {
            t.prefetch_row(next);
        }
        t.x.copy_into(r * w, out)
    })
}

/// Gathers rows `rows` of `t` for the graph `g` (this is the work the
/// prefetch thread does while the kernels run).
fn gather(g: &Graph, t: &Table, rows: &[usize]) -> Batch {
    let bs = rows.len();
    let mut batch = Batch {
        x: None,
        y: None,
        rows: bs,
        written: false,
    };
    for info in &g.inputs {
        let ty = g.ty(info.node);
        let shape = concrete(&ty.shape, bs);
        match info.role {
            Role::Features => {
                let mut v = Vec::with_capacity(bs * t.width);
                let mut row = vec![0.0f32; t.width];
                for &r in rows {
                    // Rows come from the epoch's order over the table.
                    let copied = t.x.copy_into(r * t.width, &mut row);
                    debug_assert!(copied.is_some(), "row {r} is outside the table");
                    v.extend(row.iter().map(|v| f64::from(*v)));
                }
                batch.x = Some(Tensor::new(ty.dtype, shape, v));
            }
            Role::Label => {
                let v = rows.iter().map(|&r| t.y[r]).collect();
                batch.y = Some(Tensor::new(ty.dtype, shape, v));
            }
            Role::Param { .. } | Role::Velocity | Role::Step | Role::Hyper | Role::Value => {}
        }
    }
    batch
}

/// Parameter and velocity values, in the graph's input order.
type Values<'a> = (&'a [Vec<f64>], &'a [Vec<f64>]);

/// Inputs of a training-step or eval graph: a gathered batch, the
/// parameters and velocities (`None`: leave them in the compiled step's
/// buffers, where the last step's in-place update put them), the step
/// counter and the learning rate.
fn step_inputs(
    g: &Graph,
    batch: Batch,
    state: Option<Values<'_>>,
    step: u64,
    lr: f64,
) -> Vec<Option<Tensor>> {
    let (bs, written) = (batch.rows, batch.written);
    let (mut x, mut y) = (batch.x, batch.y);
    let mut pi = 0;
    let mut vi = 0;
    g.inputs
        .iter()
        .map(|info| {
            let ty = g.ty(info.node);
            let shape = concrete(&ty.shape, bs);
            let values = match info.role {
                Role::Param { .. } => {
                    pi += 1;
                    state?.0[pi - 1].clone()
                }
                Role::Velocity => {
                    vi += 1;
                    state?.1[vi - 1].clone()
                }
                Role::Features => match x.take() {
                    Some(t) => return Some(t),
                    None if written => return None,
                    None => vec![0.0; shape.iter().product()],
                },
                Role::Label => match y.take() {
                    Some(t) => return Some(t),
                    None if written => return None,
                    None => vec![0.0; shape.iter().product()],
                },
                Role::Step => vec![step as f64],
                Role::Hyper => vec![lr],
                Role::Value => vec![0.0; shape.iter().product()],
            };
            Some(Tensor::new(ty.dtype, shape, values))
        })
        .collect()
}

/// Loss and metrics of the compiled eval function `c` over all of `t`.
#[allow(clippy::too_many_arguments)]
fn evaluate_with(
    run: &Run,
    g: &Graph,
    c: &mut crate::jit::Compiled,
    params: &[Vec<f64>],
    t: &Table,
    batch: usize,
    seed: u64,
) -> Result<Vec<(String, f64)>, String> {
    let n = t.len();
    let (mut loss_sum, mut sums) = (0.0, [0.0f64; 3]);
    let rows: Vec<usize> = (0..n).collect();
    // Each batch's rows go straight into the function's input buffers; the
    // parameters are written once when nothing is placed over them.
    c.reserve(batch.min(n.max(1)))?;
    let kept = g
        .inputs
        .iter()
        .enumerate()
        .all(|(k, info)| !matches!(info.role, Role::Param { .. }) || c.input_kept(k));
    let want = vec![true; g.outputs.len()];
    let mut first = true;
    for chunk in rows.chunks(batch) {
        for (k, info) in g.inputs.iter().enumerate() {
            match info.role {
                Role::Features => write_features(c, k, t, chunk)?,
                Role::Label => c.write_input_rows(k, &t.y, 1, chunk)?,
                _ => {}
            }
        }
        let written = Batch {
            x: None,
            y: None,
            rows: chunk.len(),
            written: true,
        };
        let state = (first || !kept).then_some((params, &[][..]));
        let inputs = step_inputs(g, written, state, 0, 0.0);
        let given: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
        let out: Vec<Tensor> = c
            .run_some(
                &given,
                &want,
                &Env {
                    batch: chunk.len(),
                    seed,
                },
            )?
            .into_iter()
            .flatten()
            .collect();
        first = false;
        for ((name, _), v) in g.outputs.iter().zip(&out) {
            match name.as_str() {
                "loss" => loss_sum += v.data[0] * chunk.len() as f64,
                "correct" => sums[0] += v.data[0],
                "sq_err" => sums[1] += v.data[0],
                "sq_log_err" => sums[2] += v.data[0],
                _ => {}
            }
        }
    }
    let nf = n.max(1) as f64;
    let mut res = Vec::new();
    if g.outputs.iter().any(|(n, _)| n == "loss") {
        res.push(("loss".to_string(), loss_sum / nf));
    }
    for m in &run.settings.metrics {
        match m {
            Metric::Loss => {}
            Metric::Acc => res.push(("acc".into(), sums[0] / nf)),
            Metric::Rmse => res.push(("rmse".into(), (sums[1] / nf).sqrt())),
            Metric::LogRmse => res.push(("log_rmse".into(), (sums[2] / nf).sqrt())),
        }
    }
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
fn report_final(
    run: &Run,
    params: &[Vec<f64>],
    train: &Table,
    test: &Table,
    batch: usize,
    seed: u64,
    epochs: u64,
    compile_ms: f64,
    opts: &TrainOptions,
    sink: &mut Sink,
    compiled: Option<(&Graph, &mut crate::jit::Compiled)>,
) -> Result<(), String> {
    let mut json = format!(
        "{{\"event\":\"final\",\"final\":true,\"run\":\"{}\",\"epochs\":{epochs}",
        run.name
    );
    let mut human = String::from("final:");
    let part = if test.is_empty() {
        ("train", train)
    } else {
        ("test", test)
    };
    // Inference over the part, timed apart from compiling the eval function.
    // With --infer-reps N it runs N more times after the first (as
    // ../shared/bench times the frameworks): their median, and the first
    // run apart.
    // The trainer's eval function when there is one (compiled with the
    // same passes as the step), else one compiled here.
    let mut own;
    let (g, c) = match compiled {
        Some((g, c)) => (g, c),
        None => {
            let g = eval_function(run);
            let mut c = crate::jit::compile(&g, false)?;
            if let Some(t) = opts.threads {
                c.threads = t.max(1);
            }
            c.matmul = opts.matmul;
            own = (g, c);
            (&own.0, &mut own.1)
        }
    };
    let mut times = Vec::new();
    let mut metrics = Vec::new();
    for _ in 0..opts.infer_reps + 1 {
        let start = Instant::now();
        metrics = evaluate_with(run, g, c, params, part.1, batch, seed)?;
        times.push(start.elapsed().as_secs_f64());
    }
    let first = times[0];
    let mut timed = if times.len() > 1 {
        times[1..].to_vec()
    } else {
        times.clone()
    };
    timed.sort_by(f64::total_cmp);
    let infer = timed[timed.len() / 2];
    for (m, v) in metrics {
        let _ = write!(json, ",\"{}_{m}\":{v}", part.0);
        let _ = write!(human, " {}_{m} {v:.6}", part.0);
    }
    let _ = write!(
        json,
        ",\"compile_ms\":{compile_ms},\"infer_seconds\":{infer},\"infer_first_seconds\":{first},\"infer_min_seconds\":{},\"infer_max_seconds\":{},\"infer_reps\":{}",
        timed[0],
        timed[timed.len() - 1],
        timed.len()
    );
    // Peak memory so far: the data, the compiled functions and their arenas.
    if let Some(b) = crate::jit::peak_rss() {
        let _ = write!(json, ",\"peak_rss_bytes\":{b}");
    }
    let small: Vec<(usize, &ParamSpec)> = run
        .params
        .iter()
        .enumerate()
        .filter(|(i, _)| params[*i].len() <= 16)
        .collect();
    let _ = write!(json, ",\"params\":{{");
    for (k, (i, p)) in small.iter().enumerate() {
        if k > 0 {
            json.push(',');
        }
        let _ = write!(json, "\"{}\":{}", p.name, fmt_list(&params[*i]));
        let _ = write!(human, "  {} = {}", p.name, fmt_list(&params[*i]));
    }
    json.push_str("}}");
    sink.result(&run.name, &human);
    sink.json(&json);
    Ok(())
}

/// Linear regression's normal equations: θ = (XᵀX)⁻¹Xᵀy with a column of
/// ones for the bias, solved by Cholesky (nalgebra).
fn closed_form(run: &Run, t: &Table, params: &mut [Vec<f64>]) -> Result<(), String> {
    let wi = run
        .params
        .iter()
        .position(|p| p.ty.shape.rank() == 2)
        .ok_or("no weight matrix")?;
    let bi = run.params.iter().position(|p| p.ty.shape.rank() == 1);
    let f = t.width;
    let cols = f + usize::from(bi.is_some());
    let x = nalgebra::DMatrix::from_fn(t.len(), cols, |r, c| {
        if c < f {
            f64::from(t.x.get(r * f + c))
        } else {
            1.0
        }
    });
    let y = nalgebra::DVector::from_column_slice(&t.y);
    let xtx = x.transpose() * &x;
    let xty = x.transpose() * y;
    let chol = xtx
        .cholesky()
        .ok_or("the normal equations are singular (XᵀX is not positive definite): more features than independent samples?")?;
    let theta = chol.solve(&xty);
    params[wi] = theta.iter().take(f).copied().collect();
    if let Some(bi) = bi {
        params[bi] = vec![theta[f]];
    }
    Ok(())
}

/// `dlc eval`: the test metrics of a saved model.
pub fn eval_checkpoint(
    run: &Run,
    data: &DataSpec,
    path: &std::path::Path,
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let ck = crate::checkpoint::load(path, run)?;
    if ck.program_hash != opts.program_hash {
        sink.human(&format!(
            "note: {} was saved from a different version of the program",
            path.display()
        ));
    }
    let s = &run.settings;
    let seed = opts.seed.unwrap_or(ck.seed);
    let batch = opts.batch.unwrap_or(s.batch).max(1) as usize;
    let parts = crate::data::load::load(data, seed)?;
    report_final(
        run,
        &ck.params,
        &parts.train,
        &parts.test,
        batch,
        seed,
        ck.epoch,
        0.0,
        opts,
        sink,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 90 samples of class 0 and 10 of class 1.
    fn imbalanced() -> Table {
        let y: Vec<f64> = (0..100).map(|i| if i < 90 { 0.0 } else { 1.0 }).collect();
        Table {
            x: crate::data::synthetic::Features::F32(vec![0.0; 100]),
            y,
            width: 1,
        }
    }

    fn count(order: &[usize], t: &Table, c: f64) -> usize {
        order.iter().filter(|&&i| t.y[i] == c).count()
    }

    #[test]
    fn shuffle_is_a_seeded_permutation_per_epoch() {
        let t = imbalanced();
        let a = epoch_order(&Sampler::Shuffle, &t, 1, 1);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(&Sampler::Shuffle, &t, 1, 1));
        assert_ne!(a, epoch_order(&Sampler::Shuffle, &t, 1, 2));
        assert_eq!(
            epoch_order(&Sampler::Sequential, &t, 1, 1),
            (0..100).collect::<Vec<_>>()
        );
    }

    #[test]
    fn rebalancing_samplers_balance_the_classes() {
        let t = imbalanced();
        let over = epoch_order(&Sampler::Oversample, &t, 3, 1);
        assert_eq!((count(&over, &t, 0.0), count(&over, &t, 1.0)), (90, 90));
        let under = epoch_order(&Sampler::Undersample, &t, 3, 1);
        assert_eq!((count(&under, &t, 0.0), count(&under, &t, 1.0)), (10, 10));
        // Inverse-frequency weights: about half of 100 draws per class.
        let mut ones = 0;
        for e in 0..50 {
            ones += count(&epoch_order(&Sampler::Weighted(None), &t, 3, e), &t, 1.0);
        }
        let frac = ones as f64 / 5000.0;
        assert!((frac - 0.5).abs() < 0.03, "{frac}");
        // Given weights [1, 0]: only class 0.
        let w = epoch_order(&Sampler::Weighted(Some(vec![1.0, 0.0])), &t, 3, 1);
        assert_eq!(count(&w, &t, 1.0), 0);
    }
}
