//! A matmul's `gemm`-crate form: which matmuls the crate computes, and the SGD step it folds in.

use super::exec::KernelFn;
use super::{lower, plan};
use crate::ir::{Graph, NodeId, Op};

/// How matmuls run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Matmul {
    /// The JIT's own register-tiled kernel, with the epilogue fused into
    /// each strip of four rows.
    Jit,
    /// The `gemm` crate on blocks of rows, each followed by the JIT-compiled
    /// epilogue while the block is in cache (f32 and f64; other dtypes use
    /// the JIT's kernel).
    #[default]
    Gemm,
}

/// A matmul the `gemm` crate can compute: out = a · b, a read from its
/// untransposed input when the transpose is inline.
#[derive(Clone, Copy, Debug)]
pub struct GemmCall {
    pub dtype: crate::ir::DType,
    /// a's buffer, and whether it holds aᵀ (an inline transpose).
    pub a: NodeId,
    pub a_transposed: bool,
    /// b's buffer, and whether it holds bᵀ.
    pub b: NodeId,
    pub b_transposed: bool,
    pub out: NodeId,
    /// The group's epilogue is the SGD step W ← W − s·(a·b) written into
    /// W's own buffer: gemm does it as it stores each tile.
    pub update: Option<Update>,
}

/// W ← W − s·(a·b), with `dst` (the updated W, in W's buffer) and the
/// scalar `scale` s.
#[derive(Clone, Copy, Debug)]
pub struct Update {
    pub dst: NodeId,
    pub scale: NodeId,
}

/// Whether a matmul-headed group's `members` are exactly the SGD step
/// W ← W + (−(s·M)) of the matmul M = `head`, for a scalar s, updating W in
/// place, with nothing else reading M or the partial products: then gemm
/// computes W − s·M in one pass over W (`dst := dst + (−s)·a·b`), and
/// neither the gradient nor the epilogue is stored.
pub(super) fn fold_update(
    g: &Graph,
    plan: &plan::Plan,
    uses: &lower::Uses,
    head: NodeId,
    members: &[NodeId],
) -> Option<Update> {
    let [mul, neg, add] = *members else {
        return None;
    };
    let (mn, nn, an) = (g.node(mul), g.node(neg), g.node(add));
    let scale = match mn.inputs[..] {
        [x, y] if mn.op == Op::Mul && x == head => y,
        [x, y] if mn.op == Op::Mul && y == head => x,
        _ => return None,
    };
    let st = g.ty(scale);
    if st.shape.rank() != 0 || st.dtype != g.ty(head).dtype {
        return None;
    }
    if nn.op != Op::Neg || nn.inputs[..] != [mul] {
        return None;
    }
    let w = match an.inputs[..] {
        [x, y] if an.op == Op::Add && y == neg => x,
        [x, y] if an.op == Op::Add && x == neg => y,
        _ => return None,
    };
    let root = |id: NodeId| plan.root(id);
    let in_place = root(add) == root(w) && g.ty(w) == g.ty(head) && g.ty(add) == g.ty(head);
    let operands = &g.node(head).inputs;
    if !in_place || operands.iter().any(|x| root(*x) == root(w)) {
        return None;
    }
    // M, s·M and −s·M are read only by the next link, and are not outputs.
    for (x, next) in [(head, mul), (mul, neg), (neg, add)] {
        if uses.readers[x.index()].iter().any(|r| *r != next) || uses.output[x.index()] {
            return None;
        }
    }
    Some(Update { dst: add, scale })
}

impl GemmCall {
    /// The call for node `id`, if it is a 2-D f32 or f64 matmul.
    pub(super) fn of(g: &Graph, plan: &plan::Plan, id: NodeId) -> Option<GemmCall> {
        let node = g.node(id);
        let dtype = node.ty.dtype;
        if node.op != Op::MatMul
            || !matches!(dtype, crate::ir::DType::F32 | crate::ir::DType::F64)
            || node.ty.shape.0.len() != 2
        {
            return None;
        }
        let read = |x: NodeId| match plan.storage[x.index()] {
            plan::Storage::Inline(src) => (src, true),
            _ => (x, false),
        };
        let ((a, a_transposed), (b, b_transposed)) = (read(node.inputs[0]), read(node.inputs[1]));
        Some(GemmCall {
            dtype,
            a,
            a_transposed,
            b,
            b_transposed,
            out: id,
            update: None,
        })
    }
}

/// A kernel's `gemm` form: the call, then its epilogue over the same rows.
pub(super) struct Gemm {
    pub(super) call: GemmCall,
    pub(super) epilogue: Option<KernelFn>,
}
