//! d2l's synthetic data sets, generated from a seed.
//!
//! `linear`: X ~ N(0, 1), y = Xw + b + ε (d2l §3.2's `synthetic_data`, and
//! §4.5's high-dimensional version). `polynomial`: x ~ N(0, 1), features
//! xⁱ/i! for i < F, y = Σ wᵢ·xⁱ/i! + ε (d2l §4.4). ε ~ N(0, noise²). The
//! first `n_train` samples are the training part, the rest the test part.

use crate::check::data::Synthetic;
use crate::rng;

use super::table::{Features, Table};

/// Generates `n` samples of `kind` with noise σ = `noise`.
pub fn generate(kind: &Synthetic, n: usize, noise: f64, seed: u64) -> Table {
    let kx = rng::key(seed, 0, 9001);
    let ke = rng::key(seed, 0, 9002);
    match kind {
        Synthetic::Linear { w, b } => {
            let f = w.len();
            let x: Vec<f64> = (0..(n * f) as u64).map(|i| rng::normal(kx, i)).collect();
            let y = (0..n)
                .map(|r| {
                    let dot: f64 = (0..f).map(|j| x[r * f + j] * w[j]).sum();
                    dot + b + noise * rng::normal(ke, r as u64)
                })
                .collect();
            Table {
                x: Features::F32(x.iter().map(|v| *v as f32).collect()),
                y,
                width: f,
            }
        }
        Synthetic::Polynomial { w, features } => {
            let f = *features as usize;
            let mut x = Vec::with_capacity(n * f);
            let mut y = Vec::with_capacity(n);
            for r in 0..n {
                let v = rng::normal(kx, r as u64);
                // xⁱ/i!, built up term by term
                let mut term = 1.0;
                let mut t = 0.0;
                for i in 0..f {
                    if i > 0 {
                        term *= v / i as f64;
                    }
                    x.push(term as f32);
                    if let Some(wi) = w.get(i) {
                        t += wi * term;
                    }
                }
                y.push(t + noise * rng::normal(ke, r as u64));
            }
            Table {
                x: Features::F32(x),
                y,
                width: f,
            }
        }
    }
}
