//! Training: a run's data split into parts, its training step and eval
//! function compiled, the loop over epochs, and the report.
//!
//! One file per concern: [`fit`] is the loop over epochs and batches and
//! nothing else; [`report`] (the table, JSON lines, progress bar,
//! history), [`guard`] (divergence) and [`curves`] follow the loop as its
//! observers; [`evaluate`] computes metrics, [`kfold`] runs K-fold
//! cross-validation and its ensemble, [`checkpoints`] resumes and saves,
//! [`closed_form`] solves linear regression without epochs, [`order`] is
//! the samplers, [`batch`] moves rows into the compiled functions and
//! [`init`] draws the starting parameters.
//!
//! Human output is a per-epoch table; with `--json` stdout holds only the
//! JSON lines of DESIGN.md (`epoch` and `final` events) and the table goes
//! to stderr (or nowhere with `--quiet`).

mod batch;
mod checkpoints;
mod closed_form;
mod curves;
mod early;
mod evaluate;
mod fit;
mod guard;
mod init;
mod kfold;
mod options;
mod order;
mod report;
mod sink;

use std::time::Instant;

use crate::check::data::DataSpec;
use crate::check::run::Run;
use crate::data::table::Table;
use crate::ir::Graph;

pub use evaluate::{predicted_class, Evaluator};
pub use init::init_values;
pub use options::{State, TrainOptions};
pub use order::epoch_order;
pub use sink::Sink;

use fit::{Observer, Trainer};
use report::{report_final, Final};

/// A run's data: the training part, the validation part held out of it
/// (when asked for) and the test part.
struct Parts {
    train: Table,
    valid: Option<Table>,
    test: Table,
    /// How raw rows became the tables (saved with the model).
    prep: crate::data::prep::Preprocessing,
}

impl Parts {
    /// A digest of the rows every part holds and of how they were encoded.
    fn digest(&self) -> u64 {
        let mut d = crate::rng::Digest::default();
        for t in [Some(&self.train), self.valid.as_ref(), Some(&self.test)] {
            match t {
                Some(t) => t.digest(&mut d),
                None => d.word(u64::MAX),
            }
        }
        d.bytes(self.prep.to_json().unwrap_or_default().as_bytes());
        d.finish()
    }
}

/// Trains one run and reports it. Returns an error message (exit 1).
pub fn train_run(
    run: &Run,
    data: &DataSpec,
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let s = &run.settings;
    // `--lr` below the schedule's min_lr would make the cosine rise, as
    // the check refuses `min_lr` above the program's `lr`.
    if let (Some(lr), Some(min_lr)) = (opts.lr, s.schedule.min_lr()) {
        if min_lr > lr {
            return Err(format!(
                "--lr {lr} is below the lr_schedule's min_lr ({min_lr}): a cosine schedule decays from the learning rate down to min_lr"
            ));
        }
    }
    let epochs = opts.epochs.unwrap_or(s.epochs);
    let resumed = match &opts.resume {
        Some(path) => Some(checkpoints::resume_from(run, path, opts, epochs)?),
        None => None,
    };
    // A resumed run keeps its seed: the same shuffle and the same split.
    let seed = resumed
        .as_ref()
        .map(|ck| ck.seed)
        .or(opts.seed)
        .unwrap_or(s.seed);
    // The splits keep their own seed: the checkpoint's when resuming (the
    // same rows), else the program's `split_seed` (its `seed` by default;
    // `--seed` does not redraw them).
    let split_seed = resumed.as_ref().map_or(s.split_seed, |ck| ck.split_seed);
    let batch = opts.batch.unwrap_or(s.batch).max(1) as usize;
    // Refuse, before allocating anything, a run whose buffers cannot fit.
    // The step it will compile (with its gradients as outputs under
    // --grad-norms); a closed-form run has none.
    // Across processes, the step of each (its gradients, loss and metrics
    // summed across them).
    let step_graph = if crate::dist::ranks().size > 1 {
        crate::step::data_parallel(run, opts.grad_norms)
    } else if opts.grad_norms {
        crate::step::training_step(run)
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
    let parts = split(run, data, split_seed, sink)?;
    // Across processes, the same rows, not only the same shapes (which the
    // checker's metadata, compared before, already agrees on).
    crate::dist::agree(
        parts.digest(),
        &format!("the contents of data `{}`", data.name),
    )?;
    if opts.save.is_some() {
        crate::checkpoint::check_fits(
            run,
            &parts.prep,
            s.kfold.as_ref().map_or(1, |k| k.k as usize),
        )?;
    }
    let Some(step_graph) = step_graph else {
        let sizes = (batch, (seed, split_seed), epochs);
        let tables = (&parts.train, &parts.test, &parts.prep);
        return closed_form::run_closed_form(run, &data.name, tables, sizes, opts, sink);
    };
    let start = Instant::now();
    let mut tr = compile(run, step_graph, (batch, seed, epochs), opts, sink)?;
    tr.split_seed = split_seed;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    sink.human(&format!(
        "run {}: {} on {} ({} train samples, batch {batch}, lr {}); training step compiled in {compile_ms:.1} ms",
        run.name,
        run.model,
        data.name,
        parts.train.len(),
        tr.lr
    ));
    match s.kfold {
        Some(k) => {
            let tables = (&parts.train, &parts.test, &parts.prep);
            kfold::kfold(&mut tr, k, tables, compile_ms, opts, sink)?;
            if opts.profile {
                report::profile(&tr.step, tr.steps_run, opts, sink);
            }
        }
        None => {
            let start = match (&opts.resume, resumed) {
                (Some(path), Some(ck)) => checkpoints::resumed_state(path, ck, opts, sink),
                _ => (init::fresh(run, seed), None),
            };
            train_and_report(&mut tr, &parts, start, compile_ms, opts, sink)?;
        }
    }
    Ok(())
}

/// The positions in the training part of the rows kept for training and
/// of those held out for validation (the last `fraction` of a seeded
/// shuffle).
fn valid_split(n: usize, fraction: f64, split_seed: u64) -> (Vec<usize>, Vec<usize>) {
    let order = crate::data::load::permutation(n, split_seed, 0xa11d);
    let n_valid = ((n as f64) * fraction).round() as usize;
    let (keep, held) = order.split_at(n - n_valid);
    (keep.to_vec(), held.to_vec())
}

/// A row's place: its part (`train`, `valid`, `test`), its index in its
/// file, and the K-fold fold that holds it out.
pub type SplitRow = (&'static str, usize, Option<usize>);

/// Where each row of `run`'s data goes: (part, row, fold) with the part
/// `train`, `valid` or `test`, the row's index among its file's samples or
/// data rows (from 0; a test file of its own has its own), and for a
/// K-fold run the fold that holds it out (from 1). The same splits
/// training draws, from the same seed (`split_seed`), for
/// `dlc data --split-indices`.
pub fn split_indices(run: &Run, data: &DataSpec) -> Result<Vec<SplitRow>, String> {
    let s = &run.settings;
    let parts = crate::data::load::load(data, s.split_seed)?;
    let [train_rows, test_rows] = &parts.rows;
    let mut out: Vec<SplitRow> = Vec::new();
    let mut train_pos: Vec<usize> = (0..train_rows.len()).collect();
    if let Some(f) = s.valid {
        let (keep, held) = valid_split(train_rows.len(), f, s.split_seed);
        out.extend(held.iter().map(|p| ("valid", train_rows[*p], None)));
        train_pos = keep;
    }
    let mut folds = vec![None; train_pos.len()];
    if let Some(k) = s.kfold {
        let order = kfold::fold_order(k, train_pos.len(), s.split_seed);
        for f in 0..k.k as usize {
            let (lo, hi) = kfold::fold_bounds(f, k.k as usize, train_pos.len());
            for &o in &order[lo..hi] {
                folds[o] = Some(f + 1);
            }
        }
    }
    out.extend(
        train_pos
            .iter()
            .zip(folds)
            .map(|(p, f)| ("train", train_rows[*p], f)),
    );
    out.extend(test_rows.iter().map(|r| ("test", *r, None)));
    out.sort_by_key(|(part, row, _)| (*part == "test", *row));
    Ok(out)
}

/// Class labels must name one of the model's outputs: with no class count
/// declared (IDX or NumPy labels without `classes`), the model's output
/// width is the count, and a label past it would be a one-hot row of
/// zeros, a silently wrong loss.
fn labels_fit(run: &Run, data: &DataSpec, parts: &crate::data::load::Parts) -> Result<(), String> {
    if data.label == crate::check::data::LabelKind::Target {
        return Ok(());
    }
    let g = &run.eval;
    let Some((_, out)) = g.outputs.iter().find(|(n, _)| n == "output") else {
        return Ok(());
    };
    let width = match g.ty(*out).shape.0.last() {
        Some(crate::ir::Dim::Fixed(k)) => *k,
        _ => return Ok(()),
    };
    // One logit: classes 0 and 1.
    let classes = width.max(2);
    for (part, t) in [("training", &parts.train), ("test", &parts.test)] {
        if let Some(r) = t.y.iter().position(|y| *y >= classes as f64) {
            return Err(format!(
                "data `{}`: label {} (row {r} of the {part} part) is not a class of run {}'s model, whose output has {width} columns; declare classes = N to check labels when they are read",
                data.name, t.y[r], run.name
            ));
        }
    }
    Ok(())
}

/// Loads the run's data and holds out its validation part.
fn split(run: &Run, data: &DataSpec, seed: u64, sink: &mut Sink) -> Result<Parts, String> {
    let parts = crate::data::load::load(data, seed)?;
    labels_fit(run, data, &parts)?;
    for w in &parts.warnings {
        let _ = writeln!(sink.stderr, "warning: {w}");
    }
    for d in &parts.dropped {
        let _ = writeln!(sink.stderr, "note: data `{}`: {d}", data.name);
    }
    let (mut train, test, prep) = (parts.train, parts.test, parts.prep);
    // A validation part held out of the training part, when asked for.
    let mut valid: Option<Table> = None;
    if let Some(f) = run.settings.valid {
        let (keep, held) = valid_split(train.len(), f, seed);
        valid = Some(crate::data::load::select(&train, &held));
        train = crate::data::load::select(&train, &keep);
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
    Ok(Parts {
        train,
        valid,
        test,
        prep,
    })
}

/// Compiles the run's training step and eval function with the passes
/// asked for.
fn compile<'a>(
    run: &'a Run,
    step_graph: Graph,
    (batch, seed, epochs): (usize, u64, u64),
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<Trainer<'a>, String> {
    let passes = if opts.no_opt {
        crate::opt::Passes::none()
    } else {
        opts.no_pass
            .iter()
            .fold(crate::opt::Passes::all(), |p, name| p.and_without(name))
    };
    let mut step = crate::jit::compile_with(&step_graph, false, &passes)?;
    if let Some(t) = opts.threads {
        step.threads = t.max(1);
    }
    step.collective = crate::dist::collective();
    step.matmul = opts.matmul;
    if opts.profile {
        step.start_profile();
    }
    let eval_graph = crate::step::eval_function(run);
    let mut eval = crate::jit::compile_with(&eval_graph, false, &passes)?;
    (eval.threads, eval.matmul) = (step.threads, opts.matmul);
    if opts.verbose {
        let none = crate::opt::Passes::none();
        let graphs = [
            (&step_graph, &none),
            (&step.graph, &passes),
            (&eval_graph, &none),
            (&eval.graph, &passes),
        ];
        report::kernels_and_memory(graphs, batch, sink);
    }
    Ok(Trainer {
        run,
        step_graph,
        step,
        eval: Evaluator {
            run,
            graph: eval_graph,
            compiled: eval,
            batch,
            seed,
        },
        lr: opts.lr.or(run.settings.lr()).unwrap_or(0.0),
        batch,
        seed,
        split_seed: seed,
        epochs,
        grad_norms: opts.grad_norms,
        // A prefetch thread pays off only on a core the kernels leave free,
        // and only when that core is not busy: with --threads 1 on 2 cores
        // it saved a few percent of an epoch at batch 256 on a free second
        // core, cost some at batch 32 even there, and cost 17–45% with the
        // second core busy (measured 2026-11-29; in the git history of
        // docs/performance.md). Only `--prefetch` turns it on.
        prefetch: opts.prefetch,
        steps_run: 0,
    })
}

/// Trains one model on the training part from `start`, then draws its
/// curves, saves it and reports its final line.
fn train_and_report(
    tr: &mut Trainer,
    parts: &Parts,
    (start, resumed): (State, Option<checkpoints::EarlyResumed>),
    compile_ms: f64,
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let run = tr.run;
    // Learning curves follow the validation part, or else the test part
    // (as d2l's Animator does).
    let watch = match (&parts.valid, &opts.plot) {
        (Some(v), _) => Some(("valid", v)),
        (None, Some(_)) if !parts.test.is_empty() => Some(("test", &parts.test)),
        (None, _) => None,
    };
    let progress = sink.progress;
    let (mut guard, mut history, mut bar) = (
        tr.divergence(),
        report::History::default(),
        report::Progress::default(),
    );
    // A resumed run's early stopping goes on where it was; one that had
    // stopped trains no further (as a run straight through would not).
    let mut early = run.settings.early_stop.as_ref().map(|rule| match resumed {
        Some(r) => early::Early::resumed(rule, r),
        None => early::Early::new(rule),
    });
    let stopped = early.as_ref().is_some_and(|e| e.stopped.is_some());
    let mut table = report::EpochTable::new(sink, run, watch.map(|w| w.0), tr.grad_norms);
    let mut observers: Vec<&mut dyn Observer> = vec![&mut guard];
    if progress {
        observers.push(&mut bar);
    }
    observers.extend([&mut table as &mut dyn Observer, &mut history]);
    if let Some(e) = &mut early {
        observers.push(e);
    }
    let (mut state, _) = if stopped {
        (start, Vec::new())
    } else {
        tr.fit(&parts.train, watch, &mut observers, start)?
    };
    drop(observers);
    drop(table);
    let early_progress = early.as_ref().and_then(|e| e.progress(&state));
    // With early stopping, the run goes on from its best epoch.
    if let Some(e) = early {
        if let Some(line) = e.describe(tr.epochs) {
            sink.human(&line);
        }
        let stopped = e.stopped;
        if let Some((value, best)) = e.best() {
            sink.json(&format!(
                "{{\"event\":\"early_stop\",\"run\":\"{}\",\"best_epoch\":{},\"{}\":{value},\"stopped_epoch\":{}}}",
                run.name,
                best.epoch,
                run.settings.early_stop.as_ref().map_or("", |r| r.metric.as_str()),
                stopped.map_or("null".to_string(), |e| e.to_string())
            ));
            state = best;
        }
    }
    if let Some(path) = opts.plot.as_ref().filter(|_| crate::dist::ranks().leads()) {
        let title = format!("run {}", run.name);
        curves::draw_curves(path, &title, &history.epochs, sink)?;
    }
    if opts.profile {
        report::profile(&tr.step, tr.steps_run, opts, sink);
    }
    checkpoints::save_if_asked(
        run,
        &state,
        early_progress,
        ((tr.seed, tr.split_seed), &parts.prep),
        opts,
        sink,
    )?;
    let f = Final {
        params: &state.params,
        train: &parts.train,
        test: &parts.test,
        batch: tr.batch,
        seed: tr.seed,
        epochs: tr.epochs,
        compile_ms,
    };
    let eval = &mut tr.eval;
    report_final(run, f, opts, sink, Some((&eval.graph, &mut eval.compiled)))
}

impl Trainer<'_> {
    /// The divergence guard, with its hint: the learning rate and the
    /// optimizer's hyper-parameters that differ from their defaults.
    fn divergence(&self) -> guard::Divergence {
        let mut given = String::new();
        if let crate::check::run::Optimizer::Rule { rule, hypers, .. } =
            &self.run.settings.optimizer
        {
            for (h, v) in rule.hypers.iter().zip(hypers) {
                match (*v != h.default, h.flag) {
                    (true, true) => given.push_str(&format!(", {}", h.name)),
                    (true, false) => given.push_str(&format!(", {} {v}", h.name)),
                    (false, _) => {}
                }
            }
        }
        let hint = format!(
            "lower the learning rate (lr {}{given}) or standardize the features",
            self.lr
        );
        let names = self.run.params.iter().map(|p| p.name.clone()).collect();
        guard::Divergence::new(&self.run.name, hint, names)
    }
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
    if let Some(note) = crate::checkpoint::changed_note(&ck, &opts.source, path) {
        sink.human(&note);
    }
    let s = &run.settings;
    let seed = opts.seed.unwrap_or(ck.seed);
    let batch = opts.batch.unwrap_or(s.batch).max(1) as usize;
    // The test part the model was scored on: its own seed, whatever --seed.
    let parts = crate::data::load::load(data, ck.split_seed)?;
    labels_fit(run, data, &parts)?;
    if !ck.folds.is_empty() {
        return kfold::eval_folds(run, &ck, &parts, (batch, seed), opts, sink);
    }
    let f = Final {
        params: &ck.params,
        train: &parts.train,
        test: &parts.test,
        batch,
        seed,
        epochs: ck.epoch,
        compile_ms: 0.0,
    };
    report_final(run, f, opts, sink, None)
}
