//! Rebuilding a graph node by node: the one loop every IR pass shares.

use crate::ir::{Graph, Node, NodeId, Op};

/// A rewrite rule: given the new graph, an old node and its inputs' new
/// ids, the id that replaces the node, if any.
pub type Rule<'a> = dyn FnMut(&mut Graph, &Node, &[NodeId]) -> Option<NodeId> + 'a;

/// Copies `g` into a new graph in node order. For each node, `rule` sees the
/// new graph, the old node and its inputs' new ids, and may return the id
/// that replaces it; otherwise the node is copied with its new inputs.
/// Function inputs keep their order and names; outputs, literals and the
/// `grad_of` annotations follow their nodes. `keep(i)` = false drops node
/// `i` (dead-code elimination); inputs are always kept.
pub fn rebuild(g: &Graph, keep: &dyn Fn(usize) -> bool, rule: &mut Rule) -> Graph {
    let mut ng = Graph::with_capacity(g.len());
    ng.literals = g.literals.clone();
    let mut map: Vec<NodeId> = Vec::with_capacity(g.len());
    for (i, node) in g.nodes.iter().enumerate() {
        if let Op::Input(k) = node.op {
            let info = &g.inputs[k as usize];
            let id = ng.input(&info.name, info.role.clone(), node.ty.clone(), node.span);
            map.push(id);
            continue;
        }
        if !keep(i) {
            // Never read: a placeholder that no kept node refers to.
            map.push(NodeId(u32::MAX));
            continue;
        }
        let ins: Vec<NodeId> = node.inputs.iter().map(|x| map[x.index()]).collect();
        let id = match rule(&mut ng, node, &ins) {
            Some(id) => id,
            None => ng.push(Node {
                op: node.op.clone(),
                inputs: ins,
                ty: node.ty.clone(),
                span: node.span,
            }),
        };
        // The annotation follows a backward node when its forward node came
        // before it. A rule may return an older node (a constant interned
        // earlier) than the forward node's copy: annotating it would point
        // forward in the graph, so it is left without one.
        if let Some(&fwd) = g
            .grad_of
            .get(&NodeId(i as u32))
            .and_then(|f| map.get(f.index()))
        {
            if fwd.0 != u32::MAX && fwd.0 < id.0 && !matches!(ng.node(id).op, Op::Input(_)) {
                ng.grad_of.entry(id).or_insert(fwd);
            }
        }
        map.push(id);
    }
    ng.outputs = g
        .outputs
        .iter()
        .map(|(n, id)| (n.clone(), map[id.index()]))
        .collect();
    ng
}

/// Copies `g` unchanged except for the rule's replacements.
pub fn rewrite(g: &Graph, rule: &mut Rule) -> Graph {
    rebuild(g, &|_| true, rule)
}
