//! Evaluation: a model's loss and metrics over a part of the data through
//! the compiled eval function, its raw outputs, and the metrics of an
//! ensemble (K-fold's average of the fold models).

use crate::check::run::{Metric, Run};
use crate::data::table::Table;
use crate::interp::{Env, Tensor};
use crate::ir::{Graph, Role};
use crate::jit::Compiled;

use super::batch::{gather, step_inputs, write_features, Batch};

/// A run's compiled eval function, with its batch size and seed.
pub(super) struct Evaluator<'a> {
    pub run: &'a Run,
    pub graph: Graph,
    pub compiled: Compiled,
    pub batch: usize,
    pub seed: u64,
}

impl Evaluator<'_> {
    /// Loss and metrics of `params` over all of `t`.
    pub fn metrics(
        &mut self,
        params: &[Vec<f64>],
        t: &Table,
    ) -> Result<Vec<(String, f64)>, String> {
        metrics(
            self.run,
            (&self.graph, &mut self.compiled),
            params,
            t,
            (self.batch, self.seed),
        )
    }

    /// The model outputs of `params` on all of `t`.
    fn outputs(&mut self, params: &[Vec<f64>], t: &Table) -> Result<Vec<f64>, String> {
        let oi = self
            .graph
            .outputs
            .iter()
            .position(|(n, _)| n == "output")
            .ok_or("no output")?;
        let rows: Vec<usize> = (0..t.len()).collect();
        let mut all = Vec::new();
        for chunk in rows.chunks(self.batch) {
            let batch = gather(&self.graph, t, chunk);
            let inputs: Vec<Tensor> =
                step_inputs(&self.graph, batch, Some((params, &[])), (0, 0), 0.0)
                    .into_iter()
                    .flatten()
                    .collect();
            let out = self.compiled.run(
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
    pub fn ensemble_metrics(
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
                            predicted_class(row) as f64 == t.y[r]
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
}

/// Loss and metrics of the compiled eval function `c` over all of `t`.
pub(super) fn metrics(
    run: &Run,
    (g, c): (&Graph, &mut Compiled),
    params: &[Vec<f64>],
    t: &Table,
    (batch, seed): (usize, u64),
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
        let written = Batch::written(chunk.len());
        let state = (first || !kept).then_some((params, &[][..]));
        let inputs = step_inputs(g, written, state, (0, 0), 0.0);
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
    res.extend(from_sums(&run.settings.metrics, &sums, nf));
    Ok(res)
}

/// The metrics other than the loss from their sums over `n` samples:
/// correct predictions, Σ(ŷ − y)² and Σ(log ŷ − log y)².
pub(super) fn from_sums(metrics: &[Metric], sums: &[f64; 3], n: f64) -> Vec<(String, f64)> {
    metrics
        .iter()
        .filter_map(|m| {
            let v = match m {
                Metric::Loss => return None,
                Metric::Acc => sums[0] / n,
                Metric::Rmse => (sums[1] / n).sqrt(),
                Metric::LogRmse => (sums[2] / n).sqrt(),
            };
            Some((m.name().to_string(), v))
        })
        .collect()
}

/// The class a row of outputs predicts: the largest logit's, or with one
/// logit class 1 where it is positive (as the compiled `acc` counts).
fn predicted_class(row: &[f64]) -> usize {
    match row {
        [z] => usize::from(*z > 0.0),
        _ => row
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > row[b] { i } else { b }),
    }
}
