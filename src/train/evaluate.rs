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
pub struct Evaluator<'a> {
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
            let inputs: Vec<Tensor> = step_inputs(
                &self.graph,
                batch,
                Some((params, &[])),
                (0, 0),
                0.0,
                crate::dist::Share::whole(chunk.len()),
            )
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

    /// The average of several models' outputs on all of `t` (one model's
    /// outputs as they are: v / 1 is v).
    pub fn average_outputs(
        &mut self,
        models: &[&[Vec<f64>]],
        t: &Table,
    ) -> Result<Vec<f64>, String> {
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
        Ok(avg)
    }

    /// Test metrics of the average of several models' outputs.
    pub fn ensemble_metrics(
        &mut self,
        models: &[&[Vec<f64>]],
        t: &Table,
    ) -> Result<Vec<(String, f64)>, String> {
        let avg = self.average_outputs(models, t)?;
        let mut sums = [0.0; 3];
        add_sums(&avg, &t.y, &mut sums);
        Ok(from_sums(
            &self.run.settings.metrics,
            &sums,
            t.len().max(1) as f64,
        ))
    }
}

/// Adds the metric sums of `outputs` (rows of model outputs) against the
/// labels `ys` to `sums`: correct predictions, Σ(ŷ − y)² and
/// Σ(log max(ŷ, 1) − log y)², in f64 and in row order, so that the same
/// sums computed from `dlc predict`'s predictions are equal.
fn add_sums(outputs: &[f64], ys: &[f64], sums: &mut [f64; 3]) {
    let width = outputs.len() / ys.len().max(1);
    if width == 0 {
        return;
    }
    for (row, y) in outputs.chunks_exact(width).zip(ys) {
        if predicted_class(row) as f64 == *y {
            sums[0] += 1.0;
        }
        sums[1] += (row[0] - y).powi(2);
        sums[2] += (row[0].max(1.0).ln() - y.ln()).powi(2);
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
    // The loss as the function computes it; the other metrics from the
    // outputs (see `add_sums`).
    let want: Vec<bool> = g
        .outputs
        .iter()
        .map(|(n, _)| n == "loss" || n == "output")
        .collect();
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
        let whole = crate::dist::Share::whole(chunk.len());
        let inputs = step_inputs(g, written, state, (0, 0), 0.0, whole);
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
        let wanted = g
            .outputs
            .iter()
            .filter(|(n, _)| n == "loss" || n == "output");
        for ((name, _), v) in wanted.zip(&out) {
            match name.as_str() {
                "loss" => loss_sum += v.data[0] * chunk.len() as f64,
                "output" => {
                    let ys: Vec<f64> = chunk.iter().map(|&r| t.y[r]).collect();
                    add_sums(&v.data, &ys, &mut sums);
                }
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

impl<'a> Evaluator<'a> {
    /// `run`'s eval function compiled with every pass, for `dlc eval` and
    /// `dlc predict`: batches of `batch` rows, `threads` worker threads
    /// (default all cores), matmuls run as `matmul`.
    pub fn compile(
        run: &'a Run,
        (batch, seed): (usize, u64),
        (threads, matmul): (Option<usize>, crate::jit::Matmul),
    ) -> Result<Evaluator<'a>, String> {
        let graph = crate::step::eval_function(run);
        // A batch from a flag or a program is a size from input: refused
        // before the function's buffers (and a chunk of rows) exist.
        crate::memory::check(
            &format!("evaluating run {} in batches of {batch}", run.name),
            crate::jit::estimate_bytes(&graph, batch.max(1)),
        )?;
        let mut compiled = crate::jit::compile(&graph, false)?;
        if let Some(t) = threads {
            compiled.threads = t.max(1);
        }
        compiled.matmul = matmul;
        Ok(Evaluator {
            run,
            graph,
            compiled,
            batch: batch.max(1),
            seed,
        })
    }
}

/// The class a row of outputs predicts: the largest logit's (the first of
/// equal ones), or with one logit class 1 where it is positive — as
/// `dlc eval` counts accuracy.
pub fn predicted_class(row: &[f64]) -> usize {
    match row {
        [z] => usize::from(*z > 0.0),
        _ => row
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > row[b] { i } else { b }),
    }
}
