//! The divergence guard, an observer of the loop: it stops a run whose
//! loss is not finite, or has grown by orders of magnitude, long before it
//! overflows, or whose parameters are no longer finite numbers at the end
//! of an epoch (a masked branch can make a parameter NaN while the loss
//! stays finite), and says what to try.

use super::fit::{Epoch, Observer};

/// How far a batch's loss may grow past the first batch's (or past 1, if
/// that is larger) before training is stopped as diverging.
const RUNAWAY: f64 = 1e6;

pub(super) struct Divergence {
    run: String,
    /// What to try, e.g. "lower the learning rate (lr 0.1) or ...".
    hint: String,
    /// The first batch's loss and its epoch.
    first: Option<(f64, u64)>,
    /// Every epoch's mean loss so far.
    epochs: Vec<f64>,
    /// The parameters' names, in the run's order.
    params: Vec<String>,
}

impl Divergence {
    pub fn new(run: &str, hint: String, params: Vec<String>) -> Divergence {
        Divergence {
            run: run.to_string(),
            hint,
            first: None,
            epochs: Vec::new(),
            params,
        }
    }
}

impl Observer for Divergence {
    fn batch_done(&mut self, epoch: u64, batch: usize, loss: f64) -> Result<(), String> {
        if !loss.is_finite() {
            return Err(format!(
                "run {}: training diverged: the loss is {loss} at epoch {epoch}, batch {batch}",
                self.run
            ));
        }
        let (l0, e0) = *self.first.get_or_insert((loss, epoch));
        if loss > RUNAWAY * l0.max(1.0) {
            return Err(format!(
                "run {}: training diverged: the loss grew from {l0:.3e} (epoch {e0}, batch 1) to {loss:.3e} at epoch {epoch}, batch {batch}; {}",
                self.run, self.hint
            ));
        }
        Ok(())
    }

    /// The epochs' mean losses growing 100× twice in a row.
    /// And every parameter a finite number.
    fn epoch_done(&mut self, e: &Epoch) -> Result<(), String> {
        for (name, values) in self.params.iter().zip(&e.state.params) {
            if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                let count = values.iter().filter(|v| !v.is_finite()).count();
                return Err(format!(
                    "run {}: training diverged: parameter `{name}` holds {v} (element {i}; {count} of {} are not finite) after epoch {}, although the loss is finite; an operation whose gradient is not finite where a branch is masked (sqrt or log of a negative value under `where`) is the usual cause; {}",
                    self.run,
                    values.len(),
                    e.epoch,
                    self.hint
                ));
            }
        }
        let loss = e.train.first().map_or(0.0, |(_, v)| *v);
        self.epochs.push(loss);
        if let [a, b, c] = self.epochs[self.epochs.len().saturating_sub(3)..] {
            if b > 100.0 * a && c > 100.0 * b {
                return Err(format!(
                    "run {}: training diverged: the epoch's mean loss grew from {a:.3e} to {b:.3e} to {c:.3e} by epoch {}; {}",
                    self.run, e.epoch, self.hint
                ));
            }
        }
        Ok(())
    }
}
