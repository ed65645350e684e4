//! The JIT's matmul against the `gemm` crate, on 1 and 2 threads, on the MLP's
//! shapes (batch 256, 784-256-10: forward, and the backward products
//! Xᵀ·G and G·Wᵀ) and on 512³. Run with:
//!
//!     cargo bench --features bench
//!
//! Prints one line per shape: GFLOP/s of each and their ratio (2mnk flops).

// The gemm crate is only callable through `unsafe`; this benchmark is the
// one place outside src/jit/exec.rs that needs it.
#![allow(unsafe_code)]

use std::time::Instant;

use dlc::interp::{Env, Tensor};
use dlc::ir::{DType, Graph, Op, Role, Shape, Type};
use dlc::span::Span;

fn jit_gflops(m: usize, k: usize, n: usize, threads: usize) -> f64 {
    let mut g = Graph::new();
    let sp = Span::default();
    let a = g.input(
        "a",
        Role::Features,
        Type::new(DType::F32, Shape::fixed(&[m as u64, k as u64])),
        sp,
    );
    let b = g.input(
        "b",
        Role::Features,
        Type::new(DType::F32, Shape::fixed(&[k as u64, n as u64])),
        sp,
    );
    let c = g.add(Op::MatMul, &[a, b], None, sp).expect("matmul");
    g.outputs = vec![("c".into(), c)];
    let mut compiled = dlc::jit::compile(&g, false).expect("compiles");
    compiled.threads = threads;
    let ta = Tensor::new(
        DType::F32,
        vec![m, k],
        (0..m * k).map(|i| (i % 7) as f64 * 0.1).collect(),
    );
    let tb = Tensor::new(
        DType::F32,
        vec![k, n],
        (0..k * n).map(|i| (i % 5) as f64 * 0.1).collect(),
    );
    let flops = 2.0 * (m * k * n) as f64;
    let reps = ((2e9 / flops) as usize).clamp(3, 2000);
    let env = Env { batch: 1, seed: 0 };
    let secs = compiled.time_kernels(&[ta, tb], &env, reps).expect("runs");
    flops / secs / 1e9
}

fn gemm_gflops(m: usize, k: usize, n: usize, threads: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; m * n];
    let flops = 2.0 * (m * k * n) as f64;
    let reps = ((2e9 / flops) as usize).clamp(3, 2000);
    let mut run = || {
        // SAFETY: a is m×k, b is k×n, c is m×n, all row-major (column
        // stride 1, row stride = width), so every index gemm forms is in
        // bounds; the three buffers do not overlap.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                if threads > 1 {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                },
            )
        }
    };
    run();
    let start = Instant::now();
    for _ in 0..reps {
        run();
    }
    flops / (start.elapsed().as_secs_f64() / reps as f64) / 1e9
}

fn main() {
    println!(
        "{:<30} {:>8} {:>8} {:>6}   {:>8} {:>8} {:>6}",
        "GFLOP/s", "JIT 1t", "gemm 1t", "ratio", "JIT 2t", "gemm 2t", "ratio"
    );
    for (name, m, k, n) in [
        ("X·W1     256×784 @ 784×256", 256, 784, 256),
        ("H·W2     256×256 @ 256×10", 256, 256, 10),
        ("Xᵀ·G1    784×256 @ 256×256", 784, 256, 256),
        ("Hᵀ·G2    256×256 @ 256×10", 256, 256, 10),
        ("G2·W2ᵀ   256×10 @ 10×256", 256, 10, 256),
        ("square   512×512 @ 512×512", 512, 512, 512),
    ] {
        let (j1, g1) = (jit_gflops(m, k, n, 1), gemm_gflops(m, k, n, 1));
        let (j2, g2) = (jit_gflops(m, k, n, 2), gemm_gflops(m, k, n, 2));
        println!(
            "{name:<30} {j1:>8.1} {g1:>8.1} {:>6.2}   {j2:>8.1} {g2:>8.1} {:>6.2}",
            j1 / g1,
            j2 / g2
        );
    }
}
