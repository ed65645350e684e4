//! Common-subexpression elimination: two nodes with the same op, the same
//! inputs and the same type are one value. (Inputs and literals are never
//! merged: two inputs of one type are different values.)

use crate::ir::{Graph, Op};

use super::rewrite::rewrite;

pub fn cse(g: &Graph) -> Graph {
    // The new graph interns what it is given: an equal node already in it
    // is the value to reuse.
    rewrite(g, &mut |ng, node, ins| {
        if matches!(node.op, Op::Input(_) | Op::Literal(_)) {
            return None;
        }
        ng.existing(&node.op, ins, &node.ty)
    })
}
