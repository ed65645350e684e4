//! Checkpoints in a run: `--resume`'s checkpoint checked against what the
//! run will do with it, and `--save` after training.

use crate::check::run::{Optimizer, Run};
use crate::checkpoint::Checkpoint;
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

/// The state a resumed run starts from, with its notes.
pub(super) fn resumed_state(
    path: &std::path::Path,
    ck: Checkpoint,
    opts: &TrainOptions,
    sink: &mut Sink,
) -> State {
    if let Some(note) = crate::checkpoint::changed_note(&ck, &opts.source, path) {
        sink.human(&note);
    }
    sink.human(&format!(
        "resuming from {} after epoch {} (step {})",
        path.display(),
        ck.epoch,
        ck.step
    ));
    State {
        params: ck.params,
        opt_state: ck.state,
        epoch: ck.epoch,
        step: ck.step,
    }
}

/// Writes `state` to `--save`'s file, if given.
pub(super) fn save_if_asked(
    run: &Run,
    state: &State,
    (seed, prep): (u64, &Preprocessing),
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let mut ck = checkpoint(run, (state.epoch, state.step, seed), prep, opts);
    ck.params.clone_from(&state.params);
    ck.state.clone_from(&state.opt_state);
    save(run, &ck, opts, sink, "")
}

/// Writes a K-fold run's fold models to `--save`'s file, if given.
pub(super) fn save_folds_if_asked(
    run: &Run,
    folds: &[Vec<Vec<f64>>],
    (epochs, seed, prep): (u64, u64, &Preprocessing),
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let mut ck = checkpoint(run, (epochs, 0, seed), prep, opts);
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
        params: Vec::new(),
        state: Vec::new(),
        folds: Vec::new(),
        preprocessing: Some(prep.clone()),
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
