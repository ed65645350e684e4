//! Common-subexpression elimination: two nodes with the same op, the same
//! inputs and the same type are one value. (Inputs and literals are never
//! merged: two inputs of one type are different values.)

use std::collections::HashMap;

use crate::ir::{Graph, NodeId, Op, Type};

use super::rewrite::rewrite;

pub fn cse(g: &Graph) -> Graph {
    let mut seen: HashMap<(Op, Vec<NodeId>, Type), NodeId> = HashMap::new();
    rewrite(g, &mut |ng, node, ins| {
        if matches!(node.op, Op::Input(_) | Op::Literal(_)) {
            return None;
        }
        let key = (node.op.clone(), ins.to_vec(), node.ty.clone());
        if let Some(id) = seen.get(&key) {
            return Some(*id);
        }
        let id = ng.push(crate::ir::Node {
            op: node.op.clone(),
            inputs: ins.to_vec(),
            ty: node.ty.clone(),
            span: node.span,
        });
        seen.insert(key, id);
        Some(id)
    })
}
