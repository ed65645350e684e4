//! The divergence guard, an observer of the loop: it stops a run whose
//! loss is not finite, or has grown by orders of magnitude, long before it
//! overflows, and says what to try.

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
}

impl Divergence {
    pub fn new(run: &str, hint: String) -> Divergence {
        Divergence {
            run: run.to_string(),
            hint,
            first: None,
            epochs: Vec::new(),
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
    fn epoch_done(&mut self, e: &Epoch) -> Result<(), String> {
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
