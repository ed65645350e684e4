//! The loop over epochs and batches, and nothing else: each epoch draws
//! its sample order, runs the compiled step on every batch, reads the
//! parameters back, evaluates the watched part, and tells its observers
//! ([`Observer`]): the table, the JSON lines, the progress bar, the
//! learning curves and the divergence guard are observers, not branches of
//! the loop.
//!
//! The points where later features attach: the end of an epoch (the
//! observers; early stopping is one, `Observer::stop`) and the step itself
//! ([`Trainer::run_epoch`], where a data-parallel all-reduce goes). A
//! learning-rate schedule is not the loop's: it is computed inside the
//! compiled step from the step and epoch counters ([`crate::schedule`]),
//! and the loop reads back the rate the step used.

use std::collections::HashMap;
use std::time::Instant;

use crate::check::run::Run;
use crate::data::table::Table;
use crate::interp::{Env, Tensor};
use crate::ir::{Graph, Role};
use crate::jit::Compiled;

use super::batch::{gather, step_inputs, write_features, Batch};
use super::evaluate::{from_sums, Evaluator};
use super::options::State;
use super::order::epoch_order;

/// What the loop reports at the end of an epoch.
pub(super) struct Epoch<'a> {
    pub epoch: u64,
    /// The training metrics over the epoch (`loss`, `acc`, ...).
    pub train: &'a [(String, f64)],
    /// The watched part's metrics, named with the part (`valid_loss`).
    pub watched: &'a [(String, f64)],
    /// Per parameter, the mean over the batches of ‖∂loss/∂p‖₂
    /// (`--grad-norms`).
    pub grad_norms: Option<Vec<f64>>,
    /// Seconds of training (not evaluation) and samples trained.
    pub seconds: f64,
    pub samples: usize,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    /// The parameters and optimizer state after the epoch.
    pub state: &'a State,
}

/// Something that follows the loop's events. An error stops training.
pub(super) trait Observer {
    /// An epoch of `batches` batches starts.
    fn epoch_started(&mut self, _epoch: u64, _batches: usize) {}
    /// Batch `batch` (from 1) of `epoch` ran; its mean loss was `loss`.
    fn batch_done(&mut self, _epoch: u64, _batch: usize, _loss: f64) -> Result<(), String> {
        Ok(())
    }
    /// An epoch ended.
    fn epoch_done(&mut self, _e: &Epoch) -> Result<(), String> {
        Ok(())
    }
    /// Whether training stops after the epoch just ended (early stopping).
    fn stop(&self) -> bool {
        false
    }
}

/// A run's compiled step and eval function, and its recipe.
pub(super) struct Trainer<'a> {
    pub run: &'a Run,
    pub step_graph: Graph,
    pub step: Compiled,
    pub eval: Evaluator<'a>,
    pub lr: f64,
    pub batch: usize,
    pub seed: u64,
    /// The seed of the data's splits (the folds' order).
    pub split_seed: u64,
    pub epochs: u64,
    pub grad_norms: bool,
    /// Gather the next batch on a second thread.
    pub prefetch: bool,
    /// Training steps run so far (for `--profile`).
    pub steps_run: u64,
}

/// Where the step's inputs and outputs are, looked up once per fit.
struct Places {
    names: Vec<String>,
    /// The optimizer state's names (`velocity w`), in input order.
    state_names: Vec<String>,
    /// Parameters and state stay in the step's buffers between steps.
    resident: bool,
    /// Which outputs to copy out.
    want: Vec<bool>,
    param_out: Vec<Option<usize>>,
    state_out: Vec<Option<usize>>,
    grad_out: Vec<Option<usize>>,
    metric_out: Vec<Option<usize>>,
    loss_out: Option<usize>,
    /// The scheduled learning rate the step used (none without a schedule).
    lr_out: Option<usize>,
}

impl Places {
    fn of(g: &Graph, step: &Compiled, run: &Run) -> Places {
        let names: Vec<String> = run.params.iter().map(|p| p.name.clone()).collect();
        let inputs_with = |role: fn(&Role) -> bool| -> Vec<(usize, String)> {
            g.inputs
                .iter()
                .enumerate()
                .filter(|(_, info)| role(&info.role))
                .map(|(k, info)| match info.role {
                    Role::State(slot) => (k, format!("{slot} {}", info.name)),
                    _ => (k, info.name.clone()),
                })
                .collect()
        };
        let params = inputs_with(|r| matches!(r, Role::Param { .. }));
        let state = inputs_with(|r| matches!(r, Role::State(_)));
        // With the in-place pass, each parameter's (and its state's) update
        // is written into its own input buffer: the values stay in the
        // compiled step between steps and are read back once per epoch.
        let resident = params.len() == names.len()
            && params
                .iter()
                .chain(&state)
                .all(|(k, name)| step.resident(*k, name));
        let state_names: Vec<String> = state.into_iter().map(|(_, n)| n).collect();
        let out_index: HashMap<&str, usize> = g
            .outputs
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        let kept: std::collections::HashSet<&str> = names
            .iter()
            .chain(&state_names)
            .map(String::as_str)
            .collect();
        let want = g
            .outputs
            .iter()
            .map(|(n, _)| !(resident && kept.contains(n.as_str())))
            .collect();
        let slot = |name: &str| out_index.get(name).copied();
        Places {
            param_out: names.iter().map(|n| slot(n)).collect(),
            state_out: state_names.iter().map(|n| slot(n)).collect(),
            grad_out: names.iter().map(|n| slot(&format!("grad {n}"))).collect(),
            metric_out: ["correct", "sq_err", "sq_log_err"]
                .iter()
                .map(|n| slot(n))
                .collect(),
            loss_out: slot("loss"),
            lr_out: slot("lr"),
            want,
            resident,
            names,
            state_names,
        }
    }
}

/// An epoch's sums over its batches.
struct Sums {
    loss: f64,
    /// Correct predictions, Σ(ŷ − y)², Σ(log ŷ − log y)².
    metrics: [f64; 3],
    /// Per parameter, Σ over batches of ‖∂loss/∂p‖₂.
    grad_norms: Vec<f64>,
    batches: usize,
    /// The learning rate of the last step.
    lr: f64,
}

impl Trainer<'_> {
    /// Trains a model on `train` up to the run's epochs, from `start` (or
    /// freshly initialized), evaluating the `watch` part (validation, or
    /// the test part for learning curves) after every epoch, and telling
    /// `observers` what happens.
    pub fn fit(
        &mut self,
        train: &Table,
        watch: Option<(&str, &Table)>,
        observers: &mut [&mut dyn Observer],
        start: State,
    ) -> Result<(State, Vec<(String, f64)>), String> {
        let places = Places::of(&self.step_graph, &self.step, self.run);
        let mut state = start;
        if state.opt_state.len() != places.state_names.len() {
            let slots = places.state_names.len() / places.names.len().max(1);
            state.opt_state = super::init::zero_state(&state.params, slots);
        }
        // Buffers sized for the largest batch from the start: inputs and
        // resident parameters are written into them between steps.
        self.step.reserve(self.batch)?;
        let mut loaded = false;
        let mut last = Vec::new();
        for epoch in state.epoch + 1..=self.epochs {
            let t0 = Instant::now();
            let order = epoch_order(&self.run.settings.sampler, train, self.seed, epoch);
            for o in observers.iter_mut() {
                o.epoch_started(epoch, order.len().div_ceil(self.batch));
            }
            let sums = self.run_epoch(
                train,
                &order,
                epoch,
                &mut state,
                &places,
                &mut loaded,
                observers,
            )?;
            if places.resident && loaded {
                for (i, name) in places.names.iter().enumerate() {
                    state.params[i] = self.step.output(name)?.data;
                }
                for (i, name) in places.state_names.iter().enumerate() {
                    state.opt_state[i] = self.step.output(name)?.data;
                }
            }
            state.epoch = epoch;
            let seconds = t0.elapsed().as_secs_f64();
            let nf = order.len().max(1) as f64;
            last = vec![("loss".to_string(), sums.loss / nf)];
            last.extend(from_sums(&self.run.settings.metrics, &sums.metrics, nf));
            let watched: Vec<(String, f64)> = match watch {
                Some((part, t)) => self
                    .eval
                    .metrics(&state.params, t)?
                    .into_iter()
                    .map(|(m, v)| (format!("{part}_{m}"), v))
                    .collect(),
                None => Vec::new(),
            };
            let grad_norms = self.grad_norms.then(|| {
                let b = sums.batches.max(1) as f64;
                sums.grad_norms.iter().map(|g| g / b).collect()
            });
            let e = Epoch {
                epoch,
                train: &last,
                watched: &watched,
                grad_norms,
                seconds,
                samples: order.len(),
                lr: sums.lr,
                state: &state,
            };
            for o in observers.iter_mut() {
                o.epoch_done(&e)?;
            }
            if observers.iter().any(|o| o.stop()) {
                break;
            }
        }
        Ok((state, last))
    }

    /// One epoch's steps over the batches of `order`. With `--prefetch`
    /// the next batch is gathered on a second thread while this one's
    /// kernels run; both orders of events give the same batches and
    /// identical losses.
    #[allow(clippy::too_many_arguments)]
    fn run_epoch<'o>(
        &mut self,
        train: &Table,
        order: &'o [usize],
        epoch: u64,
        state: &mut State,
        places: &Places,
        loaded: &mut bool,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Sums, String> {
        let batch = self.batch;
        let mut sums = Sums {
            loss: 0.0,
            metrics: [0.0; 3],
            grad_norms: vec![0.0; places.names.len()],
            batches: 0,
            lr: self.lr,
        };
        let (lr, seed, prefetch) = (self.lr, self.seed, self.prefetch);
        let (step_graph, step) = (&self.step_graph, &mut self.step);
        let (grad_norms, steps_run) = (self.grad_norms, &mut self.steps_run);
        // Across processes, each trains on its share of every batch (the
        // step sums what the shares computed: `step::data_parallel`).
        let ranks = crate::dist::ranks();
        let mine = move |chunk: &'o [usize]| {
            let share = crate::dist::Share::of(chunk.len(), ranks);
            (share, &chunk[share.range()])
        };
        std::thread::scope(|sc| -> Result<(), String> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
            if prefetch {
                sc.spawn(move || {
                    for chunk in order.chunks(batch) {
                        if tx.send(gather(step_graph, train, mine(chunk).1)).is_err() {
                            break;
                        }
                    }
                });
            } else {
                drop(tx);
            }
            let chunks: Vec<&[usize]> = order.chunks(batch).collect();
            for (bi, chunk) in chunks.iter().enumerate() {
                let (share, rows) = mine(chunk);
                let gathered = if prefetch {
                    rx.recv()
                        .map_err(|_| "the batch-preparing thread stopped".to_string())?
                } else {
                    let next = chunks.get(bi + 1).map_or(&[][..], |c| mine(c).1);
                    write_batch(step_graph, step, train, rows, next)?
                };
                // Resident parameters are written on the first step only.
                let values = (!places.resident || !*loaded)
                    .then_some((&state.params[..], &state.opt_state[..]));
                let counters = (state.step, epoch - 1);
                let inputs = step_inputs(step_graph, gathered, values, counters, lr, share);
                let given: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
                let env = Env {
                    batch: rows.len(),
                    seed,
                };
                let out = step.run_some(&given, &places.want, &env)?;
                *loaded = true;
                state.step += 1;
                *steps_run += 1;
                let get = |i: Option<usize>| i.and_then(|i| out[i].as_ref());
                let loss = get(places.loss_out).map_or(f64::NAN, |t| t.data[0]);
                if let Some(t) = get(places.lr_out) {
                    sums.lr = t.data[0];
                }
                for o in observers.iter_mut() {
                    o.batch_done(epoch, bi + 1, loss)?;
                }
                sums.loss += loss * chunk.len() as f64;
                for (k, &i) in places.metric_out.iter().enumerate() {
                    if let Some(t) = get(i) {
                        sums.metrics[k] += t.data[0];
                    }
                }
                sums.batches += 1;
                for (i, &o) in places.grad_out.iter().enumerate() {
                    if let Some(g) = get(o).filter(|_| grad_norms) {
                        sums.grad_norms[i] += g.data.iter().map(|v| v * v).sum::<f64>().sqrt();
                    }
                }
                for (i, &o) in places.param_out.iter().enumerate() {
                    if let Some(t) = get(o) {
                        state.params[i].clone_from(&t.data);
                    }
                }
                for (i, &o) in places.state_out.iter().enumerate() {
                    if let Some(t) = get(o) {
                        state.opt_state[i].clone_from(&t.data);
                    }
                }
            }
            Ok(())
        })?;
        Ok(sums)
    }
}

/// Writes the rows `chunk` (this process's rows of a batch) straight into
/// the step's input buffers, and starts the rows `next` (of the next
/// batch) towards the cache while this step's kernels run.
fn write_batch(
    g: &Graph,
    step: &mut Compiled,
    train: &Table,
    chunk: &[usize],
    next: &[usize],
) -> Result<Batch, String> {
    for (k, info) in g.inputs.iter().enumerate() {
        match info.role {
            Role::Features => write_features(step, k, train, chunk)?,
            Role::Label => step.write_input_rows(k, &train.y, 1, chunk)?,
            _ => {}
        }
    }
    for &r in next {
        train.prefetch_row(r);
    }
    Ok(Batch::written(chunk.len()))
}
