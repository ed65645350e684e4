//! Gradient checking: the symbolic gradient against central finite
//! differences, in f64 through the reference interpreter.
//!
//! For each parameter, up to `samples` coordinates are perturbed by ±h
//! (h = eps·max(1, |θᵢ|)) and (L(θ+h) − L(θ−h))/2h is compared with the
//! symbolic ∂L/∂θᵢ; then, as JAX's `check_grads` does, the whole gradient is
//! checked along one random direction d: (L(θ+εd) − L(θ−εd))/2ε against g·d.
//! A value passes when |g − fd| ≤ 1e-6 + 1e-5·|fd| (DESIGN.md).

use crate::autodiff::{self, Rule};
use crate::check::data::{DataSpec, LabelKind};
use crate::check::run::Run;
use crate::interp::{self, concrete, Env, Precision, Tensor};
use crate::ir::{DType, Dim, Graph, NodeId, Role, Type};
use crate::rng;

/// The tolerance: |g − fd| ≤ ABS + REL·|fd|.
pub const ABS_TOL: f64 = 1e-6;
pub const REL_TOL: f64 = 1e-5;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The relative finite-difference step.
    pub eps: f64,
    /// Coordinates checked per parameter (all of a smaller one).
    pub samples: usize,
    /// The batch size of the random inputs.
    pub batch: usize,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            eps: 1e-6,
            samples: 8,
            batch: 4,
            seed: 0,
        }
    }
}

/// The worst coordinate of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct Worst {
    pub index: Vec<usize>,
    pub symbolic: f64,
    pub numeric: f64,
}

impl Worst {
    pub fn error(&self) -> f64 {
        (self.symbolic - self.numeric).abs()
    }
    pub fn tolerance(&self) -> f64 {
        ABS_TOL + REL_TOL * self.numeric.abs()
    }
    pub fn ok(&self) -> bool {
        // NaN fails.
        self.error() <= self.tolerance()
    }
}

#[derive(Clone, Debug)]
pub struct ParamReport {
    pub name: String,
    pub ty: Type,
    pub checked: usize,
    pub total: usize,
    /// The coordinate with the largest error relative to its tolerance.
    pub worst: Worst,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub run: String,
    pub params: Vec<ParamReport>,
    pub direction: Worst,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.params.iter().all(|p| p.worst.ok()) && self.direction.ok()
    }

    /// One line per parameter, then the direction check.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let w = self
            .params
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(1)
            .max(9);
        for p in &self.params {
            let ty = p.ty.to_string();
            s.push_str(&format!(
                "  {:w$}  {:14} {:>6}/{:<6} worst |g - fd| {:.1e} at {:?} (g {:.6e}, fd {:.6e})  {}\n",
                p.name,
                ty,
                p.checked,
                p.total,
                p.worst.error(),
                p.worst.index,
                p.worst.symbolic,
                p.worst.numeric,
                if p.worst.ok() { "ok" } else { "FAILED" },
            ));
        }
        let d = &self.direction;
        s.push_str(&format!(
            "  {:w$}  {:14} {:>13} |g.d - fd| {:.1e}        (g.d {:.6e}, fd {:.6e})  {}\n",
            "direction",
            "all params",
            "",
            d.error(),
            d.symbolic,
            d.numeric,
            if d.ok() { "ok" } else { "FAILED" },
        ));
        s
    }
}

/// Random inputs of the run's declared shapes: parameters ~ N(0, 1/n_in)
/// (biases ~ N(0, 0.25)), features ~ N(0, 1), labels uniform over the
/// classes or ~ N(0, 1) targets, step 3.
pub fn random_inputs(g: &Graph, data: Option<&DataSpec>, batch: usize, seed: u64) -> Vec<Tensor> {
    // The data's class count; else the output's width (at least 2: one
    // logit stands for two classes).
    let from_data = match data.map(|d| &d.label) {
        Some(LabelKind::Class { classes: Some(c) }) => Some(*c),
        _ => None,
    };
    let classes = from_data
        .or_else(|| {
            g.outputs
                .iter()
                .find(|(n, _)| n == "output")
                .and_then(|(_, id)| g.ty(*id).shape.0.last().copied())
                .and_then(|d| match d {
                    Dim::Fixed(n) => Some(n),
                    Dim::Batch => None,
                })
        })
        .unwrap_or(2)
        .max(2);
    g.inputs
        .iter()
        .enumerate()
        .map(|(k, info)| {
            let t = g.ty(info.node);
            let shape = concrete(&t.shape, batch);
            let n: usize = shape.iter().product();
            let key = rng::key(seed, 0, k as u32);
            let normal = |scale: f64| -> Vec<f64> {
                (0..n as u64).map(|i| scale * rng::normal(key, i)).collect()
            };
            let data = match &info.role {
                Role::Param { .. } => {
                    let scale = if shape.len() >= 2 {
                        1.0 / (shape[0] as f64).sqrt()
                    } else {
                        0.5
                    };
                    normal(scale)
                }
                // Regression targets are positive (log-normal), so a loss
                // of their logarithm (log-RMSE, d2l §4.10) is defined.
                Role::Label => match data.map(|d| &d.label) {
                    Some(LabelKind::Target) => normal(0.5).into_iter().map(f64::exp).collect(),
                    _ if t.dtype == DType::I32 => (0..n as u64)
                        .map(|i| (rng::bits(key, i) % classes) as f64)
                        .collect(),
                    _ => normal(1.0),
                },
                Role::Step | Role::Epoch => vec![3.0],
                // One process: its rows are the whole batch.
                Role::Samples => vec![batch as f64],
                Role::FirstSample => vec![0.0],
                Role::Hyper => vec![0.1],
                Role::Features | Role::Value | Role::State(_) => normal(1.0),
            };
            Tensor::new(t.dtype, shape, data)
        })
        .collect()
}

fn loss_of(g: &Graph, inputs: &[Tensor], env: &Env) -> Result<f64, String> {
    let out = interp::run(g, inputs, env, Precision::F64)?;
    out.first()
        .map(|t| t.data[0])
        .ok_or_else(|| "no loss".to_string())
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d].max(1);
        i /= shape[d].max(1);
    }
    idx
}

/// Checks the gradient of `run`'s loss for every parameter, with `rule` as
/// the derivative rules (the standard ones are `autodiff::vjp`), on random
/// inputs of the run's declared shapes.
pub fn check_run(
    run: &Run,
    data: Option<&DataSpec>,
    opts: &Options,
    rule: &Rule,
) -> Result<Report, String> {
    let loss = run
        .train
        .outputs
        .iter()
        .find(|(n, _)| n == "loss")
        .map(|(_, id)| *id)
        .ok_or_else(|| format!("run {} has no loss to differentiate", run.name))?;
    // The interpreter holds every value in f64, and the backward graph about
    // doubles the forward one: refuse what cannot fit before allocating.
    crate::memory::check(
        &format!("gradcheck of run {}", run.name),
        crate::memory::graph_elements(&run.train, opts.batch as u64) * 8 * 3,
    )?;
    let inputs = random_inputs(&run.train, data, opts.batch, opts.seed);
    check_graph(&run.train, loss, inputs, opts, rule, &run.name)
}

/// Checks ∂loss/∂p for every `Role::Param` input p of `base`, at `inputs`.
pub fn check_graph(
    base: &Graph,
    loss: NodeId,
    mut inputs: Vec<Tensor>,
    opts: &Options,
    rule: &Rule,
    name: &str,
) -> Result<Report, String> {
    let params: Vec<(usize, String, NodeId)> = base
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.role, Role::Param { .. }))
        .map(|(k, i)| (k, i.name.clone(), i.node))
        .collect();
    // L(θ) alone, and L with its symbolic gradient.
    let mut loss_graph = base.clone();
    loss_graph.outputs = vec![("loss".into(), loss)];
    let mut grad_graph = base.clone();
    let wrt: Vec<NodeId> = params.iter().map(|p| p.2).collect();
    let grads = autodiff::grad_with(&mut grad_graph, loss, &wrt, rule);
    grad_graph.outputs = grads
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("g{i}"), *g))
        .collect();

    let env = Env {
        batch: opts.batch,
        seed: opts.seed,
    };
    let symbolic = interp::run(&grad_graph, &inputs, &env, Precision::F64)?;

    let fd = FiniteDiff {
        graph: &loss_graph,
        env: &env,
        eps: opts.eps,
    };
    let mut reports = Vec::new();
    for (pi, (k, name, node)) in params.iter().enumerate() {
        let total = inputs[*k].numel();
        let coords = sampled_coords(total, opts.samples, rng::key(opts.seed, 1, pi as u32));
        let worst = fd.worst(&mut inputs, *k, &coords, &symbolic[pi].data)?;
        reports.push(ParamReport {
            name: name.clone(),
            ty: base.ty(*node).clone(),
            checked: coords.len(),
            total,
            worst,
        });
    }
    let slots: Vec<usize> = params.iter().map(|p| p.0).collect();
    let direction = fd.along_random_direction(&mut inputs, &slots, &symbolic, opts.seed)?;
    Ok(Report {
        run: name.to_string(),
        params: reports,
        direction,
    })
}

/// All of a parameter's `total` coordinates, or `samples` distinct ones
/// drawn from `key`.
fn sampled_coords(total: usize, samples: usize, key: u64) -> Vec<usize> {
    if total <= samples {
        return (0..total).collect();
    }
    let mut chosen: Vec<usize> = Vec::new();
    let mut j = 0;
    while chosen.len() < samples {
        let c = (rng::bits(key, j) % total as u64) as usize;
        j += 1;
        if !chosen.contains(&c) {
            chosen.push(c);
        }
    }
    chosen
}

/// Central differences of a loss graph's loss.
struct FiniteDiff<'a> {
    graph: &'a Graph,
    env: &'a Env,
    eps: f64,
}

impl FiniteDiff<'_> {
    /// The coordinate of input `k` among `coords` where the symbolic
    /// gradient `symbolic` and the central difference disagree most.
    fn worst(
        &self,
        inputs: &mut [Tensor],
        k: usize,
        coords: &[usize],
        symbolic: &[f64],
    ) -> Result<Worst, String> {
        let mut worst: Option<Worst> = None;
        for &c in coords {
            let theta = inputs[k].data[c];
            let h = self.eps * theta.abs().max(1.0);
            inputs[k].data[c] = theta + h;
            let up = loss_of(self.graph, inputs, self.env)?;
            inputs[k].data[c] = theta - h;
            let down = loss_of(self.graph, inputs, self.env)?;
            inputs[k].data[c] = theta;
            let w = Worst {
                index: unravel(c, &inputs[k].shape),
                symbolic: symbolic[c],
                numeric: (up - down) / (2.0 * h),
            };
            let badness = |w: &Worst| {
                let r = w.error() / w.tolerance();
                if r.is_nan() {
                    f64::INFINITY
                } else {
                    r
                }
            };
            if worst.as_ref().is_none_or(|cur| badness(&w) > badness(cur)) {
                worst = Some(w);
            }
        }
        Ok(worst.unwrap_or(Worst {
            index: Vec::new(),
            symbolic: 0.0,
            numeric: 0.0,
        }))
    }

    /// The directional derivative along one random unit direction through
    /// all the parameters (inputs `slots`) at once, symbolic and numeric.
    fn along_random_direction(
        &self,
        inputs: &mut Vec<Tensor>,
        slots: &[usize],
        symbolic: &[Tensor],
        seed: u64,
    ) -> Result<Worst, String> {
        let key = rng::key(seed, 2, 0);
        let mut dirs: Vec<Vec<f64>> = Vec::new();
        let mut j = 0u64;
        for k in slots {
            let d: Vec<f64> = (0..inputs[*k].numel())
                .map(|_| {
                    j += 1;
                    rng::normal(key, j)
                })
                .collect();
            dirs.push(d);
        }
        let norm = dirs
            .iter()
            .flatten()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
            .max(1e-300);
        let h = self.eps;
        let shift = |inputs: &mut Vec<Tensor>, sign: f64| {
            for (k, d) in slots.iter().zip(&dirs) {
                for (x, dx) in inputs[*k].data.iter_mut().zip(d) {
                    *x += sign * h * dx / norm;
                }
            }
        };
        let orig = inputs.clone();
        shift(inputs, 1.0);
        let up = loss_of(self.graph, inputs, self.env)?;
        inputs.clone_from(&orig);
        shift(inputs, -1.0);
        let down = loss_of(self.graph, inputs, self.env)?;
        let gd: f64 = symbolic
            .iter()
            .zip(&dirs)
            .map(|(g, d)| g.data.iter().zip(d).map(|(a, b)| a * b / norm).sum::<f64>())
            .sum();
        Ok(Worst {
            index: Vec::new(),
            symbolic: gd,
            numeric: (up - down) / (2.0 * h),
        })
    }
}
