//! Checkpoints in a run: `--resume`'s checkpoint checked against what the
//! run will do with it, and `--save` after training.

use crate::check::run::{Optimizer, Run};
use crate::checkpoint::{Checkpoint, EarlyProgress};
use crate::data::prep::Preprocessing;

use super::{Sink, State, TrainOptions};

/// The checkpoint `--resume` names, checked against what the run will do
/// with it: a closed-form or K-fold run has nothing to resume (nor has a
/// K-fold checkpoint), a `--seed`
/// must agree with the stored one, and the total `epochs` must go past
/// the stored epoch.
pub(super) fn resume_from(
    run: &Run,
    path: &std::path::Path,
    opts: &TrainOptions,
    epochs: u64,
) -> Result<Checkpoint, String> {
    let s = &run.settings;
    if s.optimizer == Optimizer::ClosedForm {
        return Err(format!(
            "run {} is solved in closed form: it has no epochs, so --resume has nothing to resume",
            run.name
        ));
    }
    if s.kfold.is_some() {
        return Err(format!(
            "run {} is a K-fold run: its checkpoint holds the fold models as they ended, so there is nothing to resume (dlc eval and dlc predict use them)",
            run.name
        ));
    }
    let ck = crate::checkpoint::load(path, run)?;
    if !ck.folds.is_empty() {
        return Err(format!(
            "checkpoint {} holds the {} models of a K-fold run, which cannot be resumed",
            path.display(),
            ck.folds.len()
        ));
    }
    if let Some(seed) = opts.seed.filter(|s| *s != ck.seed) {
        return Err(format!(
            "--seed {seed} conflicts with checkpoint {}, saved with seed {}: a resumed run keeps its seed, and with it its shuffle and its validation split",
            path.display(),
            ck.seed
        ));
    }
    // With early stopping the checkpoint holds the best epoch; training
    // goes on from the last (and not at all once it has stopped).
    let last = ck.early.as_ref().map_or(ck.epoch, |e| e.last_epoch);
    let stopped = ck.early.as_ref().is_some_and(|e| e.stopped.is_some());
    if epochs <= last && !stopped {
        let asked = match opts.epochs {
            Some(e) => format!("--epochs {e}"),
            None => format!("the program's epochs = {epochs}"),
        };
        return Err(format!(
            "checkpoint {} is at epoch {last}, so {asked} would train nothing: the epochs count in total, so ask for more than {last}",
            path.display(),
        ));
    }
    Ok(ck)
}

/// Early stopping as a checkpoint left it: the best value and state, the
/// epochs since, and the epoch it stopped after.
pub(super) struct EarlyResumed {
    pub best: (f64, State),
    pub since: u64,
    pub stopped: Option<u64>,
}

/// The state a resumed run starts from (the last epoch's, with early
/// stopping), with its notes, and where early stopping stood.
pub(super) fn resumed_state(
    path: &std::path::Path,
    ck: Checkpoint,
    opts: &TrainOptions,
    sink: &mut Sink,
) -> (State, Option<EarlyResumed>) {
    if let Some(note) = crate::checkpoint::changed_note(&ck, &opts.source, path) {
        sink.human(&note);
    }
    sink.human(&format!(
        "resuming from {} after epoch {} (step {})",
        path.display(),
        ck.early.as_ref().map_or(ck.epoch, |e| e.last_epoch),
        ck.early.as_ref().map_or(ck.step, |e| e.last_step)
    ));
    let best = State {
        params: ck.params,
        opt_state: ck.state,
        epoch: ck.epoch,
        step: ck.step,
    };
    match ck.early {
        Some(e) => {
            let last = State {
                params: e.last_params,
                opt_state: e.last_state,
                epoch: e.last_epoch,
                step: e.last_step,
            };
            let early = EarlyResumed {
                best: (e.best, best),
                since: e.since,
                stopped: e.stopped,
            };
            (last, Some(early))
        }
        None => (best, None),
    }
}

/// Writes `state` to `--save`'s file, if given, with early stopping's
/// progress (then `state` is the best epoch's).
pub(super) fn save_if_asked(
    run: &Run,
    state: &State,
    early: Option<EarlyProgress>,
    ((seed, split_seed), prep): ((u64, u64), &Preprocessing),
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let mut ck = checkpoint(run, (state.epoch, state.step, seed), prep, opts);
    ck.split_seed = split_seed;
    ck.params.clone_from(&state.params);
    ck.state.clone_from(&state.opt_state);
    ck.early = early;
    save(run, &ck, opts, sink, "")
}

/// Writes a K-fold run's fold models to `--save`'s file, if given.
pub(super) fn save_folds_if_asked(
    run: &Run,
    folds: &[Vec<Vec<f64>>],
    (epochs, (seed, split_seed), prep): (u64, (u64, u64), &Preprocessing),
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let mut ck = checkpoint(run, (epochs, 0, seed), prep, opts);
    ck.split_seed = split_seed;
    ck.folds = folds.to_vec();
    let what = format!(" (the {} fold models)", folds.len());
    save(run, &ck, opts, sink, &what)
}

/// A checkpoint of `run` holding no model yet.
fn checkpoint(
    run: &Run,
    (epoch, step, seed): (u64, u64, u64),
    prep: &Preprocessing,
    opts: &TrainOptions,
) -> Checkpoint {
    Checkpoint {
        run: run.name.clone(),
        program_hash: opts.program_hash.clone(),
        epoch,
        step,
        seed,
        split_seed: seed,
        params: Vec::new(),
        state: Vec::new(),
        folds: Vec::new(),
        preprocessing: Some(prep.clone()),
        early: None,
    }
}

/// Writes `ck` to `--save`'s file, if given, and says so.
fn save(
    run: &Run,
    ck: &Checkpoint,
    opts: &TrainOptions,
    sink: &mut Sink,
    what: &str,
) -> Result<(), String> {
    let Some(path) = &opts.save else {
        return Ok(());
    };
    // Across processes every one holds the same model: the first writes it.
    if !crate::dist::ranks().leads() {
        return Ok(());
    }
    crate::checkpoint::save(path, run, ck)?;
    sink.human(&format!("saved {}{what}", path.display()));
    Ok(())
}
