//! Helpers shared by the JIT test files.

use dlc::interp::concrete;
use dlc::ir::{Graph, Op};

/// The longest reduction in `g` at batch size `batch`: the K of DESIGN.md's
/// bound |a − b| ≤ 1e-5·(1 + K)·max|b|.
pub fn longest_reduction(g: &Graph, batch: usize) -> usize {
    g.nodes
        .iter()
        .map(|n| match &n.op {
            Op::ReduceSum { axes } | Op::ReduceMax { axes } => {
                let s = concrete(&g.ty(n.inputs[0]).shape, batch);
                s.iter()
                    .enumerate()
                    .filter(|(i, _)| axes & (1 << i) != 0)
                    .map(|(_, d)| *d)
                    .product()
            }
            Op::MatMul => concrete(&g.ty(n.inputs[0]).shape, batch)[1],
            _ => 1,
        })
        .max()
        .unwrap_or(1)
}
