//! The training loop: data, initialization, the compiled step per
//! minibatch, per-epoch metrics, and the final report.
//!
//! Human output is a per-epoch table; with `--json` stdout holds only the
//! JSON lines of DESIGN.md (`epoch` and `final` events) and the table goes
//! to stderr (or nowhere with `--quiet`).

use std::fmt::Write as _;
use std::io::Write;
use std::time::Instant;

use crate::check::data::{DataSpec, LabelKind};
use crate::check::run::{Init, Metric, Optimizer, ParamSpec, Run, Sampler};
use crate::data::synthetic::Table;
use crate::interp::{concrete, Env, Tensor};
use crate::ir::{DType, Graph, Role};
use crate::rng;
use crate::step::{eval_function, training_step};

/// Command-line overrides of the program's recipe.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    pub epochs: Option<u64>,
    pub batch: Option<u64>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    pub json: bool,
    pub quiet: bool,
}

/// Where output goes.
pub struct Sink<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub json: bool,
    pub quiet: bool,
}

impl Sink<'_> {
    /// A line of the human report.
    fn human(&mut self, s: &str) {
        if self.quiet {
            return;
        }
        let w: &mut dyn Write = if self.json {
            &mut *self.stderr
        } else {
            &mut *self.stdout
        };
        let _ = writeln!(w, "{s}");
    }

    fn json(&mut self, s: &str) {
        if self.json {
            let _ = writeln!(self.stdout, "{s}");
        }
    }
}

/// Initial values of a parameter (d2l's initializers; Xavier uses the
/// `[n_in, n_out]` layout).
pub fn init_values(p: &ParamSpec, seed: u64, index: usize) -> Vec<f64> {
    let shape = concrete(&p.ty.shape, 1);
    let n: usize = shape.iter().product();
    let key = rng::key(seed, 0, 1000 + index as u32);
    let normal = |mean: f64, std: f64| -> Vec<f64> {
        (0..n as u64)
            .map(|i| mean + std * rng::normal(key, i))
            .collect()
    };
    let uniform = |lo: f64, hi: f64| -> Vec<f64> {
        (0..n as u64)
            .map(|i| lo + (hi - lo) * rng::uniform(key, i))
            .collect()
    };
    let fans = || match shape.as_slice() {
        [a, b, ..] => (*a as f64, *b as f64),
        [a] => (*a as f64, *a as f64),
        [] => (1.0, 1.0),
    };
    match &p.init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Constant(c) => vec![*c; n],
        Init::Normal { mean, std } => normal(*mean, *std),
        Init::Uniform { low, high } => uniform(*low, *high),
        Init::XavierUniform => {
            let (i, o) = fans();
            let a = (6.0 / (i + o)).sqrt();
            uniform(-a, a)
        }
        Init::XavierNormal => {
            let (i, o) = fans();
            normal(0.0, (2.0 / (i + o)).sqrt())
        }
    }
}

fn fmt_list(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{}", *x as f32)).collect();
    format!("[{}]", parts.join(","))
}

/// Trains one run and reports it. Returns an error message (exit 1).
pub fn train_run(
    run: &Run,
    data: &DataSpec,
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let s = &run.settings;
    let seed = opts.seed.unwrap_or(s.seed);
    let epochs = opts.epochs.unwrap_or(s.epochs);
    let batch = opts.batch.unwrap_or(s.batch).max(1) as usize;
    if s.kfold.is_some() {
        return Err(format!(
            "run {}: K-fold cross-validation is not built yet",
            run.name
        ));
    }
    // Refuse, before allocating anything, a run whose buffers cannot fit.
    if let Some(g) = training_step(run) {
        let need = crate::jit::estimate_bytes(&g, batch);
        if let Some(avail) = crate::jit::available_memory() {
            if need > avail {
                let gb = |b: u128| b as f64 / (1u128 << 30) as f64;
                return Err(format!(
                    "run {} needs about {:.1} GiB for its parameters, gradients and one batch's activations, but only {:.1} GiB of memory is available",
                    run.name,
                    gb(need),
                    gb(avail)
                ));
            }
        }
    }
    let parts = crate::data::load::load(data, seed)?;
    let (mut train, test) = (parts.train, parts.test);
    // A validation part held out of the training part, when asked for.
    let mut valid: Option<Table> = None;
    if let Some(f) = s.valid {
        let order = crate::data::load::permutation(train.len(), seed, 0xa11d);
        let n_valid = ((train.len() as f64) * f).round() as usize;
        let (keep, held) = order.split_at(train.len() - n_valid);
        valid = Some(crate::data::load::select(&train, held));
        train = crate::data::load::select(&train, keep);
    }
    let mut params: Vec<Vec<f64>> = run
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| init_values(p, seed, i))
        .collect();
    let width = train.width;

    if s.optimizer == Optimizer::ClosedForm {
        let start = Instant::now();
        closed_form(run, &train, &mut params)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        sink.human(&format!(
            "run {}: {} on {}, solved in closed form (normal equations) in {ms:.2} ms",
            run.name, run.model, data.name
        ));
        return report_final(
            run, data, &params, &train, &test, batch, seed, epochs, 0.0, sink,
        );
    }
    let Optimizer::Sgd { lr, .. } = s.optimizer else {
        return Ok(());
    };
    let lr = opts.lr.unwrap_or(lr);
    let step_graph = training_step(run).ok_or("no training step")?;
    let start = Instant::now();
    let mut step = crate::jit::compile(&step_graph, false)?;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    if let Some(t) = opts.threads {
        step.threads = t.max(1);
    }
    sink.human(&format!(
        "run {}: {} on {} ({} train samples, batch {batch}, lr {lr}); training step compiled in {compile_ms:.1} ms",
        run.name,
        run.model,
        data.name,
        train.len()
    ));
    let mut velocity: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut eval = match &valid {
        Some(_) => {
            let g = eval_function(run);
            let c = crate::jit::compile(&g, false)?;
            Some((g, c))
        }
        None => None,
    };
    let names: Vec<String> = run.params.iter().map(|p| p.name.clone()).collect();
    let mut header = "epoch  train_loss".to_string();
    for m in &s.metrics {
        if *m != Metric::Loss {
            let _ = write!(header, "  train_{:<8}", m.name());
        }
    }
    header.push_str("    seconds  samples/s");
    sink.human(&header);
    let n = train.len();
    let mut global_step: u64 = 0;
    for epoch in 1..=epochs {
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..n).collect();
        if s.sampler != Sampler::Sequential {
            // A seeded Fisher–Yates reshuffle every epoch.
            let key = rng::key(seed, epoch, 0x5eed);
            for i in (1..n).rev() {
                let j = (rng::bits(key, i as u64) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        let (mut loss_sum, mut sums) = (0.0, [0.0f64; 3]);
        for (bi, chunk) in order.chunks(batch).enumerate() {
            let bs = chunk.len();
            let inputs = step_inputs(
                &step_graph,
                &train,
                chunk,
                &params,
                &velocity,
                data,
                global_step,
                lr,
            );
            let out = step.run(&inputs, &Env { batch: bs, seed })?;
            global_step += 1;
            let get = |name: &str| {
                step_graph
                    .outputs
                    .iter()
                    .position(|(o, _)| o == name)
                    .map(|i| &out[i])
            };
            let loss = get("loss").map(|t| t.data[0]).unwrap_or(f64::NAN);
            if !loss.is_finite() {
                return Err(format!(
                    "run {}: training diverged: the loss is {loss} at epoch {epoch}, batch {}",
                    run.name,
                    bi + 1
                ));
            }
            loss_sum += loss * bs as f64;
            for (k, name) in ["correct", "sq_err", "sq_log_err"].iter().enumerate() {
                if let Some(t) = get(name) {
                    sums[k] += t.data[0];
                }
            }
            for (i, name) in names.iter().enumerate() {
                if let Some(t) = get(name) {
                    params[i].clone_from(&t.data);
                }
                if let Some(t) = get(&format!("velocity {name}")) {
                    velocity[i].clone_from(&t.data);
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let nf = n.max(1) as f64;
        let mut line = format!("{epoch:>5}  {:>10.6}", loss_sum / nf);
        let mut json = format!(
            "{{\"event\":\"epoch\",\"run\":\"{}\",\"epoch\":{epoch},\"train_loss\":{}",
            run.name,
            loss_sum / nf
        );
        for m in &s.metrics {
            let v = match m {
                Metric::Loss => continue,
                Metric::Acc => sums[0] / nf,
                Metric::Rmse => (sums[1] / nf).sqrt(),
                Metric::LogRmse => (sums[2] / nf).sqrt(),
            };
            let _ = write!(line, "  {v:>14.6}");
            let _ = write!(json, ",\"train_{}\":{v}", m.name());
        }
        if let (Some(v), Some((eg, ec))) = (&valid, eval.as_mut()) {
            for (m, val) in evaluate_with(run, data, eg, ec, &params, v, batch, seed)? {
                let _ = write!(line, "  valid_{m} {val:.6}");
                let _ = write!(json, ",\"valid_{m}\":{val}");
            }
        }
        let sps = nf / secs.max(1e-9);
        let _ = write!(line, "  {secs:>9.3}  {sps:>9.0}");
        let _ = write!(json, ",\"seconds\":{secs},\"samples_per_sec\":{sps}}}");
        sink.human(&line);
        sink.json(&json);
    }
    let _ = width;
    report_final(
        run, data, &params, &train, &test, batch, seed, epochs, compile_ms, sink,
    )
}

/// Inputs of a training-step or eval graph for the rows `rows` of `t`.
#[allow(clippy::too_many_arguments)]
fn step_inputs(
    g: &Graph,
    t: &Table,
    rows: &[usize],
    params: &[Vec<f64>],
    velocity: &[Vec<f64>],
    data: &DataSpec,
    step: u64,
    lr: f64,
) -> Vec<Tensor> {
    let bs = rows.len();
    let mut pi = 0;
    let mut vi = 0;
    g.inputs
        .iter()
        .map(|info| {
            let ty = g.ty(info.node);
            let shape = concrete(&ty.shape, bs);
            let values = match info.role {
                Role::Param { .. } => {
                    pi += 1;
                    params[pi - 1].clone()
                }
                Role::Velocity => {
                    vi += 1;
                    velocity[vi - 1].clone()
                }
                Role::Features => rows
                    .iter()
                    .flat_map(|&r| t.x[r * t.width..(r + 1) * t.width].iter().copied())
                    .collect(),
                Role::Label => match data.label {
                    LabelKind::Target | LabelKind::Class { .. } => {
                        rows.iter().map(|&r| t.y[r]).collect()
                    }
                },
                Role::Step => vec![step as f64],
                Role::Hyper => vec![lr],
                Role::Value => vec![0.0; shape.iter().product()],
            };
            Tensor::new(ty.dtype, shape, values)
        })
        .collect()
}

/// Loss and metrics of the eval function over all of `t`.
fn evaluate(
    run: &Run,
    data: &DataSpec,
    params: &[Vec<f64>],
    t: &Table,
    batch: usize,
    seed: u64,
) -> Result<Vec<(String, f64)>, String> {
    let g = eval_function(run);
    let mut c = crate::jit::compile(&g, false)?;
    evaluate_with(run, data, &g, &mut c, params, t, batch, seed)
}

/// [`evaluate`] with an already compiled eval function.
#[allow(clippy::too_many_arguments)]
fn evaluate_with(
    run: &Run,
    data: &DataSpec,
    g: &Graph,
    c: &mut crate::jit::Compiled,
    params: &[Vec<f64>],
    t: &Table,
    batch: usize,
    seed: u64,
) -> Result<Vec<(String, f64)>, String> {
    let n = t.len();
    let (mut loss_sum, mut sums) = (0.0, [0.0f64; 3]);
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(batch) {
        let inputs = step_inputs(g, t, chunk, params, &[], data, 0, 0.0);
        let out = c.run(
            &inputs,
            &Env {
                batch: chunk.len(),
                seed,
            },
        )?;
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
    for m in &run.settings.metrics {
        match m {
            Metric::Loss => {}
            Metric::Acc => res.push(("acc".into(), sums[0] / nf)),
            Metric::Rmse => res.push(("rmse".into(), (sums[1] / nf).sqrt())),
            Metric::LogRmse => res.push(("log_rmse".into(), (sums[2] / nf).sqrt())),
        }
    }
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
fn report_final(
    run: &Run,
    data: &DataSpec,
    params: &[Vec<f64>],
    train: &Table,
    test: &Table,
    batch: usize,
    seed: u64,
    epochs: u64,
    compile_ms: f64,
    sink: &mut Sink,
) -> Result<(), String> {
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
    for (m, v) in evaluate(run, data, params, part.1, batch, seed)? {
        let _ = write!(json, ",\"{}_{m}\":{v}", part.0);
        let _ = write!(human, " {}_{m} {v:.6}", part.0);
    }
    let _ = write!(json, ",\"compile_ms\":{compile_ms}");
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
    sink.human(&human);
    sink.json(&json);
    Ok(())
}

/// Linear regression's normal equations: θ = (XᵀX)⁻¹Xᵀy with a column of
/// ones for the bias, solved by Cholesky (nalgebra).
fn closed_form(run: &Run, t: &Table, params: &mut [Vec<f64>]) -> Result<(), String> {
    let wi = run
        .params
        .iter()
        .position(|p| p.ty.shape.rank() == 2)
        .ok_or("no weight matrix")?;
    let bi = run.params.iter().position(|p| p.ty.shape.rank() == 1);
    let f = t.width;
    let cols = f + usize::from(bi.is_some());
    let x = nalgebra::DMatrix::from_fn(
        t.len(),
        cols,
        |r, c| if c < f { t.x[r * f + c] } else { 1.0 },
    );
    let y = nalgebra::DVector::from_column_slice(&t.y);
    let xtx = x.transpose() * &x;
    let xty = x.transpose() * y;
    let chol = xtx
        .cholesky()
        .ok_or("the normal equations are singular (XᵀX is not positive definite): more features than independent samples?")?;
    let theta = chol.solve(&xty);
    params[wi] = theta.iter().take(f).copied().collect();
    if let Some(bi) = bi {
        params[bi] = vec![theta[f]];
    }
    let _ = DType::F32;
    Ok(())
}
