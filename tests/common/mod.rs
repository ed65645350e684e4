//! Helpers shared by the test files (each file uses some of them).
#![allow(dead_code)]

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

/// `src` parsed and checked, with no diagnostic (else the test fails and
/// prints them as `file`).
pub fn check_clean(src: &str, file: &str) -> dlc::check::Checked {
    let (program, mut diags) = dlc::syntax::parse(src);
    let (checked, cd) = dlc::check::check(&program, &Default::default());
    diags.extend(cd);
    assert!(
        diags.is_empty(),
        "{}",
        dlc::diag::render(&diags, file, src, false)
    );
    checked
}
