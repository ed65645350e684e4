//! K-fold cross-validation (d2l §4.10): a fresh model per fold trained on
//! the other k − 1 folds and validated on its own; the mean and spread of
//! the validation metrics; the test part predicted by the average of the
//! fold models, which `--save` keeps in one checkpoint.

use std::fmt::Write as _;

use crate::check::settings::KFold;
use crate::data::prep::Preprocessing;
use crate::data::table::Table;

use super::curves::draw_curves;
use super::evaluate::Evaluator;
use super::fit::{Observer, Trainer};
use super::report::History;
use super::{Sink, TrainOptions};

/// Runs the K-fold recipe with `folds` of `train`, and reports.
pub(super) fn kfold(
    tr: &mut Trainer,
    folds: KFold,
    (train, test, prep): (&Table, &Table, &Preprocessing),
    compile_ms: f64,
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let run = tr.run;
    let k = folds.k as usize;
    let order = fold_order(folds, train.len(), tr.split_seed);
    let mut fold_params = Vec::new();
    let mut scores: Vec<Vec<(String, f64)>> = Vec::new();
    for f in 0..k {
        let (lo, hi) = fold_bounds(f, k, train.len());
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
            crate::data::load::select(train, &rest),
            crate::data::load::select(train, &held),
        );
        // d2l plots the first fold's curves.
        let watch = (f == 0 && opts.plot.is_some()).then_some(("valid", &vpart));
        let (mut guard, mut history) = (tr.divergence(), History::default());
        let mut observers: Vec<&mut dyn Observer> = vec![&mut guard, &mut history];
        let start = super::init::fresh(run, fold_seed(tr.seed, f));
        let (state, train_metrics) = tr.fit(&tpart, watch, &mut observers, start)?;
        if let (0, Some(path)) = (f, &opts.plot) {
            let title = format!("run {}, fold 1 of {k}", run.name);
            draw_curves(path, &title, &history.epochs, sink)?;
        }
        let valid_metrics = tr.eval.metrics(&state.params, &vpart)?;
        report_fold(sink, &run.name, (f + 1, k), &train_metrics, &valid_metrics);
        fold_params.push(state.params);
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
    let saved = (tr.epochs, (tr.seed, tr.split_seed), prep);
    super::checkpoints::save_folds_if_asked(run, &fold_params, saved, opts, sink)?;
    // The test part, predicted by the average of the fold models.
    let models: Vec<&[Vec<f64>]> = fold_params.iter().map(Vec::as_slice).collect();
    report_ensemble(&mut tr.eval, &models, test, (tr.epochs, compile_ms), sink)
}

/// The final line of the average of `models` on `test` (nothing measured
/// when it is empty).
fn report_ensemble(
    eval: &mut Evaluator,
    models: &[&[Vec<f64>]],
    test: &Table,
    (epochs, compile_ms): (u64, f64),
    sink: &mut Sink,
) -> Result<(), String> {
    let run = eval.run;
    let mut json = format!(
        "{{\"event\":\"final\",\"final\":true,\"run\":\"{}\",\"epochs\":{epochs}",
        run.name
    );
    let mut line = format!("final (average of the {} fold models):", models.len());
    if !test.is_empty() {
        for (m, v) in eval.ensemble_metrics(models, test)? {
            let _ = write!(json, ",\"test_{m}\":{v}");
            let _ = write!(line, " test_{m} {v:.6}");
        }
    } else {
        line.push_str(" no test part to measure");
    }
    let _ = write!(json, ",\"compile_ms\":{compile_ms},\"params\":{{}}}}");
    sink.result(&run.name, &line);
    sink.json(&json);
    Ok(())
}

/// `dlc eval` of a K-fold checkpoint: the average of its fold models on
/// the test part.
pub(super) fn eval_folds(
    run: &crate::check::run::Run,
    ck: &crate::checkpoint::Checkpoint,
    parts: &crate::data::load::Parts,
    (batch, seed): (usize, u64),
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let mut eval = Evaluator::compile(run, (batch, seed), (opts.threads, opts.matmul))?;
    report_ensemble(&mut eval, &ck.models(), &parts.test, (ck.epoch, 0.0), sink)
}

/// One fold's line and `fold` event.
fn report_fold(
    sink: &mut Sink,
    run: &str,
    (f, k): (usize, usize),
    train: &[(String, f64)],
    valid: &[(String, f64)],
) {
    let mut json = format!("{{\"event\":\"fold\",\"run\":\"{run}\",\"fold\":{f},\"folds\":{k}");
    let mut line = format!("fold {f}/{k}:");
    for (m, v) in train {
        let _ = write!(json, ",\"train_{m}\":{v}");
        let _ = write!(line, " train_{m} {v:.6}");
    }
    for (m, v) in valid {
        let _ = write!(json, ",\"valid_{m}\":{v}");
        let _ = write!(line, " valid_{m} {v:.6}");
    }
    json.push('}');
    sink.human(&line);
    sink.json(&json);
}

/// The seed fold `f` (from 0) draws its initial parameters with: each fold
/// a fresh model, as d2l's `get_net()` per fold makes one (the same
/// initialization in every fold would make the ensemble's members less
/// diverse). The first fold's is the run's own seed, as a run without
/// K-fold draws it.
pub(super) fn fold_seed(seed: u64, f: usize) -> u64 {
    match f {
        0 => seed,
        f => crate::rng::mix(seed ^ crate::rng::mix(0x6b66_6f6c_6400 + f as u64)),
    }
}

/// The order of the training rows that the folds cut: a seeded shuffle,
/// or the file's order for `contiguous(k)`.
pub(super) fn fold_order(folds: KFold, n: usize, split_seed: u64) -> Vec<usize> {
    if folds.contiguous {
        (0..n).collect()
    } else {
        crate::data::load::permutation(n, split_seed, 0xf01d)
    }
}

/// Fold `f` of `k` holds positions [f·n/k, (f+1)·n/k) of the order.
pub(super) fn fold_bounds(f: usize, k: usize, n: usize) -> (usize, usize) {
    (f * n / k, (f + 1) * n / k)
}
