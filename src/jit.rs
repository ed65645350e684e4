//! The Cranelift JIT: each IR node becomes a native kernel, and
//! [`Compiled::run`] executes a graph on concrete tensors.
//!
//! `compile` builds the ISA from the host's flags (cranelift-native, so
//! FMA and SSE4 are available), lowers each live node into one function
//! (`lower.rs`) and finalizes the module. The batch size is a run-time
//! argument of every kernel, so one compiled graph serves every batch size.
//!
//! The files: `compile.rs` (the passes, the plan, one Cranelift function
//! per kernel), `compiled.rs` (running a compiled graph), `module.rs` (the
//! ISA and the runtime functions kernels call), `gemm.rs` (matmuls run by
//! the `gemm` crate), `plan.rs` (fusion and memory; `describe.rs` prints
//! it), `lower.rs` (IR to CLIF), `exec.rs` (the runtime), `pool.rs`
//! (worker threads).
//!
//! Architecture invariant: all `unsafe` of the runtime is in `exec.rs` and
//! the files under `exec/` (its matmul kernel, `exec/sgemm.rs`, and fused
//! optimizer update, `exec/rms.rs`, among them);
//! `run` checks every buffer against the shapes before any kernel runs.

pub mod adapt;
mod compile;
mod compiled;
pub mod describe;
pub mod exec;
mod gemm;
pub mod lower;
pub mod math;
pub mod module;
pub mod plan;
pub mod pool;
pub mod sums;
pub mod update;

pub use compile::{compile, compile_with};
pub use compiled::Compiled;
pub use gemm::Matmul;

use crate::ir::Graph;
use exec::elem_size;

/// An upper bound on the bytes `run` allocates for `g` at batch size
/// `batch` (one buffer per live node, as without the memory plan),
/// computed without allocating anything.
pub fn estimate_bytes(g: &Graph, batch: usize) -> u128 {
    let live = crate::ir::print::live_nodes(g);
    g.nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| live[*i])
        .map(|(_, n)| {
            let count: u128 =
                n.ty.shape
                    .0
                    .iter()
                    .map(|d| match d {
                        crate::ir::Dim::Fixed(k) => u128::from(*k),
                        crate::ir::Dim::Batch => batch as u128,
                    })
                    .product();
            count * elem_size(n.ty.dtype) as u128
        })
        .sum()
}

/// The process's peak resident memory so far, in bytes (Linux's VmHWM).
pub fn peak_rss() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
