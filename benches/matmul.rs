//! The JIT's matmul against the `gemm` crate, on 1 and 2 threads, on the MLP's
//! shapes (batch 256, 784-256-10: forward, and the backward products
//! Xᵀ·G and G·Wᵀ) and on 512³. Run with:
//!
//!     cargo bench --features bench
//!
//! Prints one line per shape, GFLOP/s (2mnk flops) of: the JIT's own kernel
//! (`--matmul jit`), dlc's gemm path (`--matmul gemm`, the default: the gemm
//! crate on blocks of rows split among dlc's threads), and the gemm crate
//! called whole (with its own rayon threads at 2t). Arguments after `--`
//! keep only the shapes whose names contain them all.

// The gemm crate is only callable through `unsafe`; this benchmark is the
// one place outside src/jit/exec.rs that needs it.
#![allow(unsafe_code)]

use std::time::Instant;

use dlc::interp::{Env, Tensor};
use dlc::ir::{DType, Graph, Op, Role, Shape, Type};
use dlc::jit::Matmul;
use dlc::span::Span;

/// `at`: a is given as aᵀ ([k, m]) and transposed in the graph, which the
/// passes turn into a matmul reading it in place.
fn dlc_gflops(m: usize, k: usize, n: usize, at: bool, threads: usize, matmul: Matmul) -> f64 {
    let mut g = Graph::new();
    let sp = Span::default();
    let dims = if at { [k, m] } else { [m, k] };
    let a = g.input(
        "a",
        Role::Features,
        Type::new(DType::F32, Shape::fixed(&dims.map(|d| d as u64))),
        sp,
    );
    let a = if at {
        g.add(Op::Transpose { perm: vec![1, 0] }, &[a], None, sp)
            .expect("transpose")
    } else {
        a
    };
    let b = g.input(
        "b",
        Role::Features,
        Type::new(DType::F32, Shape::fixed(&[k as u64, n as u64])),
        sp,
    );
    let c = g.add(Op::MatMul, &[a, b], None, sp).expect("matmul");
    g.outputs = vec![("c".into(), c)];
    let mut compiled = dlc::jit::compile(&g, false).expect("compiles");
    (compiled.threads, compiled.matmul) = (threads, matmul);
    let ta = Tensor::new(
        DType::F32,
        dims.to_vec(),
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

fn gemm_gflops(m: usize, k: usize, n: usize, at: bool, threads: usize) -> f64 {
    // a[i, p] at i·a_rs + p·a_cs: row-major [m, k], or aᵀ row-major.
    let (a_rs, a_cs) = if at { (1, m as isize) } else { (k as isize, 1) };
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; m * n];
    let flops = 2.0 * (m * k * n) as f64;
    let reps = ((2e9 / flops) as usize).clamp(3, 2000);
    let mut run = || {
        // SAFETY: a holds m·k elements (a[i, p] at i·a_rs + p·a_cs), b is
        // k×n and c is m×n row-major (column stride 1, row stride = width),
        // so every index gemm forms is in bounds; the buffers do not overlap.
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
                a_cs,
                a_rs,
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
    // `cargo bench --features bench --bench matmul -- 1024`: only the
    // shapes whose names contain every argument (cargo's own flags aside).
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    println!(
        "{:<36} {:>6} {:>6} {:>6}   {:>6} {:>6} {:>6}",
        "GFLOP/s", "JIT 1t", "dlc 1t", "gemm", "JIT 2t", "dlc 2t", "gemm"
    );
    for (name, m, k, n, at) in [
        ("X·W1   256×784 @ 784×256", 256, 784, 256, false),
        ("H·W2   256×256 @ 256×10", 256, 256, 10, false),
        ("Xᵀ·G1  784×256 @ 256×256", 784, 256, 256, false),
        ("  Xᵀ read in place", 784, 256, 256, true),
        ("Hᵀ·G2  256×256 @ 256×10", 256, 256, 10, false),
        ("G2·W2ᵀ 256×10 @ 10×256", 256, 10, 256, false),
        ("square 512×512 @ 512×512", 512, 512, 512, false),
        // The shape sweep's small batches (benches/frameworks/sweep).
        ("X·W1   32×784 @ 784×128", 32, 784, 128, false),
        ("Xᵀ·G1  784×32 @ 32×128, in place", 784, 32, 128, true),
        ("X·W1   64×784 @ 784×256", 64, 784, 256, false),
        ("H·W2   64×256 @ 256×256", 64, 256, 256, false),
        ("G·W2ᵀ  64×256 @ 256×256", 64, 256, 256, false),
        // The sweep's matmul-bound points: a wide first layer at batch 512
        // and 256, a 1024-wide hidden layer, and their weight gradients.
        ("X·W0   512×784 @ 784×1024", 512, 784, 1024, false),
        ("Xᵀ·G0  784×512 @ 512×1024, in place", 784, 512, 1024, true),
        ("H·W1   256×1024 @ 1024×1024", 256, 1024, 1024, false),
        (
            "Hᵀ·G1  1024×256 @ 256×1024, in place",
            1024,
            256,
            1024,
            true,
        ),
    ] {
        if !filter.iter().all(|f| name.contains(f.as_str())) {
            continue;
        }
        let row: Vec<f64> = [1, 2]
            .into_iter()
            .flat_map(|t| {
                [
                    dlc_gflops(m, k, n, at, t, Matmul::Jit),
                    dlc_gflops(m, k, n, at, t, Matmul::Gemm),
                    gemm_gflops(m, k, n, at, t),
                ]
            })
            .collect();
        println!(
            "{name:<36} {:>6.1} {:>6.1} {:>6.1}   {:>6.1} {:>6.1} {:>6.1}",
            row[0], row[1], row[2], row[3], row[4], row[5]
        );
    }
}
