//! The IR verifier: every node's inputs precede it and its type is the one
//! its shape rule gives. Run between passes in debug builds and in tests.

use super::{op, Graph, Op};

/// Checks the graph's invariants; returns a description of the first
/// violation.
pub fn verify(g: &Graph) -> Result<(), String> {
    for (i, node) in g.nodes.iter().enumerate() {
        for inp in &node.inputs {
            if inp.index() >= i {
                return Err(format!("%{i} uses %{} which does not precede it", inp.0));
            }
        }
        let ins: Vec<_> = node.inputs.iter().map(|&x| g.ty(x)).collect();
        let ty = op::infer(&node.op, &ins, Some(&node.ty))
            .map_err(|e| format!("%{i}: {}", e.message))?;
        if ty != node.ty {
            return Err(format!("%{i}: type {} but its rule gives {ty}", node.ty));
        }
        if let Op::Input(k) = node.op {
            match g.inputs.get(k as usize) {
                Some(info) if info.node.index() == i => {}
                _ => return Err(format!("%{i}: input {k} is not registered")),
            }
        }
    }
    for (name, id) in &g.outputs {
        if id.index() >= g.len() {
            return Err(format!("output {name} refers to a missing node"));
        }
    }
    Ok(())
}
