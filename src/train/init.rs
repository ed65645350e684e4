//! A model's starting point: d2l's initializers, drawn from the run's seed
//! (one counter-based stream per parameter), and the optimizer's state at
//! zero.

use crate::check::run::{Init, ParamSpec, Run};
use crate::interp::concrete;
use crate::rng;

use super::options::State;

/// Initial values of a parameter (d2l's initializers, and He et al.'s; Xavier
/// and Kaiming use the `[n_in, n_out]` layout).
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
        // Gain √2 over the fan-in (the weight's rows: inputs feed rows).
        Init::KaimingUniform => {
            let a = (6.0 / fans().0).sqrt();
            uniform(-a, a)
        }
        Init::KaimingNormal => normal(0.0, (2.0 / fans().0).sqrt()),
    }
}

/// Every parameter of `run`, freshly initialized.
pub fn fresh_params(run: &Run, seed: u64) -> Vec<Vec<f64>> {
    run.params
        .iter()
        .enumerate()
        .map(|(i, p)| init_values(p, seed, i))
        .collect()
}

/// Zero optimizer state for `params`: per parameter, one tensor of its
/// size per slot the run's optimizer keeps (`slots` of them).
pub fn zero_state(params: &[Vec<f64>], slots: usize) -> Vec<Vec<f64>> {
    params
        .iter()
        .flat_map(|p| std::iter::repeat_n(vec![0.0; p.len()], slots))
        .collect()
}

/// A run's state before its first step.
pub fn fresh(run: &Run, seed: u64) -> State {
    let params = fresh_params(run, seed);
    let slots = run.settings.chosen().map_or(0, |c| c.slots().len());
    State {
        opt_state: zero_state(&params, slots),
        params,
        epoch: 0,
        step: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, Dim, Shape, Type};

    fn spec(init: Init, rows: u64, cols: u64) -> ParamSpec {
        ParamSpec {
            name: "W".into(),
            ty: Type::new(DType::F32, Shape(vec![Dim::Fixed(rows), Dim::Fixed(cols)])),
            init,
            span: Default::default(),
        }
    }

    fn mean_std(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        (
            m,
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt(),
        )
    }

    #[test]
    fn kaiming_draws_with_variance_two_over_fan_in() {
        // [n_in, n_out] = [784, 256]: fan-in 784, as PyTorch's kaiming_*_
        // computes it for a Linear(784, 256), whose weight is [256, 784].
        let want = (2.0f64 / 784.0).sqrt();
        let normal = init_values(&spec(Init::KaimingNormal, 784, 256), 7, 0);
        let (m, s) = mean_std(&normal);
        assert!(m.abs() < 0.01 * want * 10.0, "{m}");
        assert!((s / want - 1.0).abs() < 0.01, "std {s}, want {want}");
        let uniform = init_values(&spec(Init::KaimingUniform, 784, 256), 7, 0);
        let bound = (6.0f64 / 784.0).sqrt();
        assert!(uniform.iter().all(|x| x.abs() <= bound));
        assert!(uniform.iter().any(|x| x.abs() > 0.99 * bound));
        let (_, s) = mean_std(&uniform);
        assert!((s / want - 1.0).abs() < 0.01, "std {s}, want {want}");
    }
}
