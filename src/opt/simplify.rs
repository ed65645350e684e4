//! Algebraic simplification. Each rule replaces a node by an existing value
//! or by fewer or cheaper nodes (a sum over a broadcast becomes one
//! multiplication of the small operand), so no rule adds work.

use crate::ir::{CmpOp, DType, Dim, Graph, Node, NodeId, Op};

use super::rewrite::rewrite;

fn is_const(g: &Graph, id: NodeId, v: f64) -> bool {
    g.const_value(id) == Some(v)
}

/// One rewrite of `node` (inputs `ins`, already in `ng`), if a rule applies.
fn rule(ng: &mut Graph, node: &Node, ins: &[NodeId]) -> Option<NodeId> {
    let same = |ng: &Graph, x: NodeId| ng.ty(x) == &node.ty;
    let op_of = |ng: &Graph, x: NodeId| ng.node(x).op.clone();
    match (&node.op, ins) {
        // x·1 = 1·x = x
        (Op::Mul, [a, b]) if is_const(ng, *b, 1.0) && same(ng, *a) => Some(*a),
        (Op::Mul, [a, b]) if is_const(ng, *a, 1.0) && same(ng, *b) => Some(*b),
        // x+0 = 0+x = x
        (Op::Add, [a, b]) if is_const(ng, *b, 0.0) && same(ng, *a) => Some(*a),
        (Op::Add, [a, b]) if is_const(ng, *a, 0.0) && same(ng, *b) => Some(*b),
        // −(−x) = x
        (Op::Neg, [a]) if op_of(ng, *a) == Op::Neg => Some(ng.node(*a).inputs[0]),
        // log(eˣ) = x
        (Op::Log, [a]) if op_of(ng, *a) == Op::Exp => Some(ng.node(*a).inputs[0]),
        // stop_gradient(x) = x once gradients are taken
        (Op::StopGradient, [a]) => Some(*a),
        // broadcast(x) = x when the shape is already x's
        (Op::Broadcast, [a]) if same(ng, *a) => Some(*a),
        // reshape(x) = x when the shape is already x's
        (Op::Reshape, [a]) if same(ng, *a) => Some(*a),
        // reshape(reshape(x)) = reshape(x)
        (Op::Reshape, [a]) if op_of(ng, *a) == Op::Reshape => {
            let x = ng.node(*a).inputs[0];
            if ng.ty(x) == &node.ty {
                Some(x)
            } else {
                ng.add(Op::Reshape, &[x], Some(node.ty.clone()), node.span)
                    .ok()
            }
        }
        // (xᵖ)ᵠ = x^(p∘q); the identity permutation is x
        (Op::Transpose { perm: q }, [a]) => {
            let Op::Transpose { perm: p } = op_of(ng, *a) else {
                return None;
            };
            let x = ng.node(*a).inputs[0];
            let composed: Vec<u8> = q.iter().map(|&i| p[i as usize]).collect();
            if composed.iter().enumerate().all(|(i, &k)| i == k as usize) {
                Some(x)
            } else {
                ng.add(Op::Transpose { perm: composed }, &[x], None, node.span)
                    .ok()
            }
        }
        // x · cast(m) = select(m, x, 0) for a boolean mask m (a one-hot
        // product): no cast, no multiply.
        (Op::Mul, [a, b]) => {
            let masked = |ng: &mut Graph, x: NodeId, c: NodeId| -> Option<NodeId> {
                let cn = ng.node(c).clone();
                if cn.op != Op::Cast || ng.ty(cn.inputs[0]).dtype != DType::Bool {
                    return None;
                }
                let zero = ng.constant(0.0, node.ty.dtype, node.span);
                let id = ng
                    .add(Op::Select, &[cn.inputs[0], x, zero], None, node.span)
                    .ok()?;
                (ng.ty(id) == &node.ty).then_some(id)
            };
            masked(ng, *a, *b)
                .or_else(|| masked(ng, *b, *a))
                .or_else(|| implicit(ng, node, ins))
        }
        // (x > 0) = (max(x, 0) > 0) when max(x, 0) is computed anyway (ReLU's
        // mask in its gradient): x then dies inside the forward pass, as
        // PyTorch's threshold_backward reads the output, not the input.
        (Op::Cmp(CmpOp::Gt), [a, z]) if is_const(ng, *z, 0.0) => {
            let relu = ng.nodes.iter().position(|n| {
                n.op == Op::Max
                    && n.ty == *ng.ty(*a)
                    && ((n.inputs[0] == *a && is_const(ng, n.inputs[1], 0.0))
                        || (n.inputs[1] == *a && is_const(ng, n.inputs[0], 0.0)))
            })?;
            ng.add(
                Op::Cmp(CmpOp::Gt),
                &[NodeId(relu as u32), *z],
                None,
                node.span,
            )
            .ok()
            .filter(|id| ng.ty(*id) == &node.ty)
        }
        // Σ_A broadcast(x) = n·x when A is exactly the axes the broadcast
        // stretched (n their total size): no tensor of the broadcast size.
        (Op::ReduceSum { axes }, [a]) if op_of(ng, *a) == Op::Broadcast => {
            sum_of_broadcast(ng, node, *axes, *a)
        }
        _ => implicit(ng, node, ins),
    }
}

fn sum_of_broadcast(ng: &mut Graph, node: &Node, axes: u32, b: NodeId) -> Option<NodeId> {
    let x = ng.node(b).inputs[0];
    let (xs, bs) = (ng.ty(x).shape.clone(), ng.ty(b).shape.clone());
    let dt = node.ty.dtype;
    if !dt.is_float() {
        return None;
    }
    let off = bs.rank() - xs.rank();
    let (mut n, mut batches) = (1u64, 0);
    for (k, d) in bs.0.iter().enumerate() {
        let stretched = k < off || (xs.0[k - off] == Dim::Fixed(1) && *d != Dim::Fixed(1));
        let summed = axes & (1 << k) != 0;
        match (summed, stretched, d) {
            (true, true, Dim::Fixed(c)) => n *= c,
            (true, true, Dim::Batch) => batches += 1,
            (true, false, Dim::Fixed(1)) | (false, false, _) => {}
            _ => return None,
        }
    }
    if batches > 1 {
        return None;
    }
    let sp = node.span;
    let x2 = if ng.ty(x).shape == node.ty.shape {
        x
    } else {
        ng.add(Op::Reshape, &[x], Some(node.ty.clone()), sp).ok()?
    };
    let mut r = x2;
    if n != 1 {
        let c = ng.constant(n as f64, dt, sp);
        r = ng.add(Op::Mul, &[r, c], None, sp).ok()?;
    }
    if batches == 1 {
        let bsz = ng
            .add(Op::BatchSize, &[], Some(crate::ir::Type::scalar(dt)), sp)
            .ok()?;
        r = ng.add(Op::Mul, &[r, bsz], None, sp).ok()?;
    }
    (ng.ty(r) == &node.ty).then_some(r)
}

/// op(broadcast(x), y) = op(x, y): elementwise ops broadcast their operands
/// themselves, so an explicit broadcast feeding one is a copy to drop.
fn implicit(ng: &mut Graph, node: &Node, ins: &[NodeId]) -> Option<NodeId> {
    if !node.op.is_elementwise() || ins.len() < 2 {
        return None;
    }
    let unwrapped: Vec<NodeId> = ins
        .iter()
        .map(|&x| match ng.node(x).op {
            Op::Broadcast => ng.node(x).inputs[0],
            _ => x,
        })
        .collect();
    if unwrapped == ins {
        return None;
    }
    let id = ng.add(node.op.clone(), &unwrapped, None, node.span).ok()?;
    (ng.ty(id) == &node.ty).then_some(id)
}

pub fn simplify(g: &Graph) -> Graph {
    rewrite(g, &mut rule)
}
