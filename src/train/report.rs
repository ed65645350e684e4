//! Reporting, as observers of the loop and after it: the per-epoch table
//! and JSON lines, the progress bar, the history the learning curves are
//! drawn from, and the final line (test metrics, inference time, memory,
//! small parameters).

use std::fmt::Write as _;
use std::time::Instant;

use crate::check::run::{Metric, ParamSpec, Run};
use crate::data::table::Table;
use crate::ir::Graph;
use crate::jit::Compiled;

use super::fit::{Epoch, Observer};
use super::options::TrainOptions;
use super::sink::Sink;

/// The per-epoch table (human) and `epoch` events (JSON).
pub(super) struct EpochTable<'s, 'w> {
    sink: &'s mut Sink<'w>,
    run: String,
    /// The learning rate has a column (the run has a schedule).
    lr_column: bool,
    /// The parameters' names (the gradient norms' columns).
    params: Vec<String>,
    widths: Vec<usize>,
}

impl<'s, 'w> EpochTable<'s, 'w> {
    /// The table's columns: train metrics, the watched part's, gradient
    /// norms, time; prints its header.
    pub fn new(
        sink: &'s mut Sink<'w>,
        run: &Run,
        watch: Option<&str>,
        grad_norms: bool,
    ) -> EpochTable<'s, 'w> {
        let mut columns = vec!["train_loss".to_string()];
        let others = run.settings.metrics.iter().filter(|m| **m != Metric::Loss);
        columns.extend(others.clone().map(|m| format!("train_{}", m.name())));
        if let Some(part) = watch {
            columns.push(format!("{part}_loss"));
            columns.extend(others.map(|m| format!("{part}_{}", m.name())));
        }
        if grad_norms {
            columns.extend(run.params.iter().map(|p| format!("|d{}|", p.name)));
        }
        let lr_column = !run.settings.schedule.is_constant();
        if lr_column {
            columns.push("lr".to_string());
        }
        columns.extend(["seconds".to_string(), "samples/s".to_string()]);
        let widths: Vec<usize> = columns.iter().map(|c| c.chars().count().max(9)).collect();
        let mut header = "epoch".to_string();
        for (c, w) in columns.iter().zip(&widths) {
            let _ = write!(header, "  {c:>w$}");
        }
        sink.human(&header);
        EpochTable {
            sink,
            run: run.name.clone(),
            lr_column,
            params: run.params.iter().map(|p| p.name.clone()).collect(),
            widths,
        }
    }
}

impl Observer for EpochTable<'_, '_> {
    fn epoch_done(&mut self, e: &Epoch) -> Result<(), String> {
        let mut json = format!(
            "{{\"event\":\"epoch\",\"run\":\"{}\",\"epoch\":{}",
            self.run, e.epoch
        );
        let mut cells: Vec<String> = Vec::new();
        for (m, v) in e.train {
            let _ = write!(json, ",\"train_{m}\":{v}");
            cells.push(format!("{v:.6}"));
        }
        for (m, v) in e.watched {
            let _ = write!(json, ",\"{m}\":{v}");
            cells.push(format!("{v:.6}"));
        }
        let (secs, nf) = (e.seconds, e.samples.max(1) as f64);
        let sps = nf / secs.max(1e-9);
        if let Some(norms) = &e.grad_norms {
            // The mean over the epoch's batches of ‖∂loss/∂p‖₂, by name.
            let _ = write!(json, ",\"grad_norms\":{{");
            for (i, (name, g)) in self.params.iter().zip(norms).enumerate() {
                let _ = write!(json, "{}\"{name}\":{g}", if i > 0 { "," } else { "" });
                cells.push(format!("{g:.3e}"));
            }
            json.push('}');
        }
        // The step computes the rate in f32: its shortest f32 form.
        let _ = write!(json, ",\"lr\":{}", e.lr as f32);
        if self.lr_column {
            cells.push(format!("{:.3e}", e.lr));
        }
        cells.push(format!("{secs:.3}"));
        cells.push(format!("{sps:.0}"));
        let _ = write!(json, ",\"seconds\":{secs},\"samples_per_sec\":{sps}}}");
        let mut line = format!("{:>5}", e.epoch);
        for (c, w) in cells.iter().zip(&self.widths) {
            let _ = write!(line, "  {c:>w$}");
        }
        self.sink.human(&line);
        self.sink.json(&json);
        Ok(())
    }
}

/// The progress bar of each epoch (on a terminal, not `--quiet`).
#[derive(Default)]
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Observer for Progress {
    fn epoch_started(&mut self, epoch: u64, batches: usize) {
        let pb = indicatif::ProgressBar::new(batches as u64);
        let style = indicatif::ProgressStyle::with_template(
            "epoch {prefix} {bar:30} {pos}/{len} batches  loss {msg}  {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        pb.set_style(style);
        pb.set_prefix(epoch.to_string());
        self.bar = Some(pb);
    }

    fn batch_done(&mut self, _epoch: u64, _batch: usize, loss: f64) -> Result<(), String> {
        if let Some(pb) = &self.bar {
            pb.set_message(format!("{loss:.4}"));
            pb.inc(1);
        }
        Ok(())
    }

    fn epoch_done(&mut self, _e: &Epoch) -> Result<(), String> {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        Ok(())
    }
}

/// Every epoch's metrics (`train_loss`, `valid_acc`, ...), for the
/// learning curves.
#[derive(Default)]
pub(super) struct History {
    pub epochs: Vec<(u64, Vec<(String, f64)>)>,
}

impl Observer for History {
    fn epoch_done(&mut self, e: &Epoch) -> Result<(), String> {
        let mut record: Vec<(String, f64)> = e
            .train
            .iter()
            .map(|(m, v)| (format!("train_{m}"), *v))
            .collect();
        record.extend(e.watched.iter().cloned());
        record.push(("lr".to_string(), e.lr));
        self.epochs.push((e.epoch, record));
        Ok(())
    }
}

/// Prints `--profile`'s table: kernel time per source line and phase.
pub(super) fn profile(step: &Compiled, steps: u64, opts: &TrainOptions, sink: &mut Sink) {
    let (times, shared) = (step.kernel_times(), step.shared_fractions());
    let text = crate::profile::report(
        &step.graph,
        (&times, &shared),
        steps,
        &opts.source,
        &opts.source_name,
    );
    sink.human(text.trim_end());
    // Across processes: the time the step stood waiting for the sums.
    let ranks = crate::dist::ranks();
    if ranks.size > 1 {
        let (wait, kernels) = (
            step.comm_wait_seconds(),
            times.iter().map(|t| t.1).sum::<f64>(),
        );
        sink.human(&format!(
            "  waiting for the sums across the {} processes (rank 0): {:.3} ms per step, beside {:.3} ms in kernels",
            ranks.size,
            wait * 1e3 / steps.max(1) as f64,
            kernels * 1e3 / steps.max(1) as f64
        ));
    }
}

/// `--verbose`'s table: kernels and memory before the passes (one kernel
/// and one buffer per primitive) and after them, for training and for
/// prediction side by side: training keeps activations for the backward
/// pass and holds gradients (d2l §4.7).
pub(super) fn kernels_and_memory(
    graphs: [(&Graph, &crate::opt::Passes); 4],
    batch: usize,
    sink: &mut Sink,
) {
    let cols = graphs.map(|(g, p)| crate::jit::describe::stats(g, p, batch));
    let mib = |b: usize| format!("{:.2}", b as f64 / (1 << 20) as f64);
    let row = |name: &str, f: &dyn Fn(&crate::jit::describe::Stats) -> String| {
        let mut line = format!("  {name:<18}");
        for c in &cols {
            let _ = write!(line, " {:>9}", f(c));
        }
        line
    };
    let table = [
        format!("kernels and memory at batch {batch}:"),
        format!(
            "  {:<18} {:>19} {:>19}",
            "", "training step", "eval function"
        ),
        format!(
            "  {:<18} {:>9} {:>9} {:>9} {:>9}",
            "", "before", "after", "before", "after"
        ),
        row("kernels", &|s| s.kernels.to_string()),
        row("buffers", &|s| s.buffers.to_string()),
        row("temporaries (MiB)", &|s| mib(s.temp_bytes)),
        row("arena (MiB)", &|s| mib(s.peak_bytes)),
    ];
    sink.human(&table.join("\n"));
}

/// What the final line reports on: the trained parameters and the data.
pub(super) struct Final<'a> {
    pub params: &'a [Vec<f64>],
    pub train: &'a Table,
    pub test: &'a Table,
    pub batch: usize,
    pub seed: u64,
    pub epochs: u64,
    pub compile_ms: f64,
}

/// The final line: the test part's metrics (or the training part's, when
/// there is no test part), timed inference, peak memory and the small
/// parameters.
pub(super) fn report_final(
    run: &Run,
    f: Final,
    opts: &TrainOptions,
    sink: &mut Sink,
    compiled: Option<(&Graph, &mut Compiled)>,
) -> Result<(), String> {
    let Final {
        params,
        train,
        test,
        batch,
        seed,
        epochs,
        compile_ms,
    } = f;
    let mut json = format!(
        "{{\"event\":\"final\",\"final\":true,\"run\":\"{}\",\"epochs\":{epochs}",
        run.name
    );
    let mut human = String::from("final:");
    let part = if test.is_empty() {
        ("train", train)
    } else {
        ("test", test)
    };
    // Inference over the part, timed apart from compiling the eval function.
    // With --infer-reps N it runs N more times after the first (as
    // ../shared/bench times the frameworks): their median, and the first
    // run apart.
    // The trainer's eval function when there is one (compiled with the
    // same passes as the step), else one compiled here.
    let mut own;
    let (g, c) = match compiled {
        Some((g, c)) => (g, c),
        None => {
            let e = super::evaluate::Evaluator::compile(
                run,
                (batch, seed),
                (opts.threads, opts.matmul),
            )?;
            own = (e.graph, e.compiled);
            (&own.0, &mut own.1)
        }
    };
    let mut times = Vec::new();
    let mut metrics = Vec::new();
    for _ in 0..opts.infer_reps + 1 {
        let start = Instant::now();
        metrics = super::evaluate::metrics(run, (g, &mut *c), params, part.1, (batch, seed))?;
        times.push(start.elapsed().as_secs_f64());
    }
    let first = times[0];
    let mut timed = if times.len() > 1 {
        times[1..].to_vec()
    } else {
        times.clone()
    };
    timed.sort_by(f64::total_cmp);
    let infer = timed[timed.len() / 2];
    for (m, v) in metrics {
        let _ = write!(json, ",\"{}_{m}\":{v}", part.0);
        let _ = write!(human, " {}_{m} {v:.6}", part.0);
    }
    let _ = write!(
        json,
        ",\"compile_ms\":{compile_ms},\"infer_seconds\":{infer},\"infer_first_seconds\":{first},\"infer_min_seconds\":{},\"infer_max_seconds\":{},\"infer_reps\":{}",
        timed[0],
        timed[timed.len() - 1],
        timed.len()
    );
    // Peak memory so far: the data, the compiled functions and their arenas.
    if let Some(b) = crate::jit::peak_rss() {
        let _ = write!(json, ",\"peak_rss_bytes\":{b}");
    }
    let small: Vec<(usize, &ParamSpec)> = run
        .params
        .iter()
        .enumerate()
        .filter(|(i, _)| params[*i].len() <= 16)
        .collect();
    let _ = write!(json, ",\"params\":{{");
    for (k, (i, p)) in small.iter().enumerate() {
        if k > 0 {
            json.push(',');
        }
        let _ = write!(json, "\"{}\":{}", p.name, fmt_list(&params[*i]));
        let _ = write!(human, "  {} = {}", p.name, fmt_list(&params[*i]));
    }
    json.push_str("}}");
    sink.result(&run.name, &human);
    sink.json(&json);
    Ok(())
}

fn fmt_list(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{}", *x as f32)).collect();
    format!("[{}]", parts.join(","))
}
