//! Early stopping, an observer of the loop: it watches a validation metric,
//! keeps the state of the best epoch so far, and stops training once the
//! metric has not improved for `patience` epochs. The run then goes on
//! with the best epoch's parameters (test evaluation, `--save`).

use crate::check::run::EarlyStop;

use super::fit::{Epoch, Observer};
use super::State;

pub(super) struct Early<'a> {
    rule: &'a EarlyStop,
    /// The best epoch so far: the metric's value and the state after it.
    best: Option<(f64, State)>,
    /// Epochs since the best one.
    since: u64,
    /// The epoch after which training stopped.
    pub stopped: Option<u64>,
}

impl<'a> Early<'a> {
    pub fn new(rule: &'a EarlyStop) -> Early<'a> {
        Early {
            rule,
            best: None,
            since: 0,
            stopped: None,
        }
    }

    /// Early stopping where a checkpoint left it.
    pub fn resumed(rule: &'a EarlyStop, r: super::checkpoints::EarlyResumed) -> Early<'a> {
        Early {
            rule,
            best: Some(r.best),
            since: r.since,
            stopped: r.stopped,
        }
    }

    /// The best epoch's metric value and state.
    pub fn best(self) -> Option<(f64, State)> {
        self.best
    }

    /// What a checkpoint keeps of it, besides the best state: the best
    /// value, the epochs since and the stop, with `last`, the state training
    /// goes on from.
    pub fn progress(&self, last: &State) -> Option<crate::checkpoint::EarlyProgress> {
        let (best, _) = self.best.as_ref()?;
        Some(crate::checkpoint::EarlyProgress {
            best: *best,
            since: self.since,
            stopped: self.stopped,
            last_epoch: last.epoch,
            last_step: last.step,
            last_params: last.params.clone(),
            last_state: last.opt_state.clone(),
        })
    }

    /// The report: which epoch was best, and why training stopped.
    pub fn describe(&self, epochs: u64) -> Option<String> {
        let (v, best) = self.best.as_ref()?;
        let metric = &self.rule.metric;
        Some(match self.stopped {
            Some(e) => format!(
                "early stopping: {metric} did not improve for {} epochs after epoch {} ({v:.6}), so training stopped after epoch {e} of {epochs}; keeping epoch {}'s parameters",
                self.rule.patience, best.epoch, best.epoch
            ),
            None => format!(
                "early stopping: {metric} was best at epoch {} ({v:.6}) of {epochs}; keeping its parameters",
                best.epoch
            ),
        })
    }
}

impl Observer for Early<'_> {
    fn epoch_done(&mut self, e: &Epoch) -> Result<(), String> {
        let Some(v) = e
            .watched
            .iter()
            .find(|(m, _)| *m == self.rule.metric)
            .map(|(_, v)| *v)
        else {
            return Ok(());
        };
        let better = match &self.best {
            None => !v.is_nan(),
            Some((b, _)) if self.rule.maximize => v > *b,
            Some((b, _)) => v < *b,
        };
        if better {
            self.best = Some((v, e.state.clone()));
            self.since = 0;
        } else {
            self.since += 1;
            if self.since >= self.rule.patience {
                self.stopped = Some(e.epoch);
            }
        }
        Ok(())
    }

    fn stop(&self) -> bool {
        self.stopped.is_some()
    }
}
