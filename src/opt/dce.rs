//! Dead-code elimination: nodes no output needs are dropped (function
//! inputs stay, so callers pass the same arguments).

use crate::ir::Graph;

use super::rewrite::rebuild;

pub fn dce(g: &Graph) -> Graph {
    let live = crate::ir::print::live_nodes(g);
    rebuild(g, &|i| live[i], &mut |_, _, _| None)
}
