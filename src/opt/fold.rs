//! Constant folding: an elementwise op whose operands are all scalar
//! constants becomes a constant, computed by the reference interpreter (so
//! folding cannot change what a value means).

use crate::interp::{self, Env, Precision};
use crate::ir::{Graph, Node, NodeId};

use super::rewrite::rewrite;

/// The value of `op(consts)` by the interpreter, in the node's dtype.
fn evaluate(node: &Node, values: &[(f64, crate::ir::DType)]) -> Option<f64> {
    let mut g = Graph::new();
    let ins: Vec<NodeId> = values
        .iter()
        .map(|(v, d)| g.constant(*v, *d, node.span))
        .collect();
    let out = g
        .add(node.op.clone(), &ins, Some(node.ty.clone()), node.span)
        .ok()?;
    g.outputs.push(("v".into(), out));
    let r = interp::run(&g, &[], &Env { batch: 1, seed: 0 }, Precision::F32).ok()?;
    r.first()?.data.first().copied()
}

pub fn fold(g: &Graph) -> Graph {
    rewrite(g, &mut |ng, node, ins| {
        if !node.op.is_elementwise() || node.ty.shape.rank() != 0 || ins.is_empty() {
            return None;
        }
        let values: Option<Vec<(f64, crate::ir::DType)>> = ins
            .iter()
            .map(|i| ng.const_value(*i).map(|v| (v, ng.ty(*i).dtype)))
            .collect();
        let v = evaluate(node, &values?)?;
        Some(ng.constant(v, node.ty.dtype, node.span))
    })
}
