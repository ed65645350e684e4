//! What a plan is made of: kernels, each value's [`Storage`], and whose memory a value reads.

use crate::ir::{Dim, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// One node, its own loop nest.
    Node,
    /// A row group: for each row, every member's row in order (after the
    /// strip's matmul when the group is headed by one).
    Rows,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub kind: KernelKind,
    pub nodes: Vec<NodeId>,
    /// A row group's row axis (B or a fixed size).
    pub rows: Dim,
    /// The optimizer updates among a row group's members that run as one
    /// routine each (`update.rs`; the `update` pass).
    pub updates: Vec<crate::jit::update::RmsStep>,
    /// A row group's tanh, sigmoid and exp members that run as one
    /// 8-lane routine over the row each (`exec::wide`; the `wide` pass).
    pub wide: Vec<NodeId>,
}

/// Where a node's value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Not needed by any output.
    Unused,
    /// A buffer of its own.
    Own,
    /// The same memory as another node: a reshape is a view of its input;
    /// an elementwise op whose input dies here writes over that input.
    Alias(NodeId),
    /// One row, reused for every row of its group (used only inside it).
    Scratch,
    /// One row on the stack of each thread that runs the kernel: a scratch
    /// member of a matmul-headed group, whose rows several threads compute
    /// at once.
    Stack,
    /// Computed inside its consumer, no memory: a transpose read only by
    /// matmuls (as either operand), which read the untransposed input
    /// with swapped strides.
    Inline(NodeId),
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub kernels: Vec<Kernel>,
    pub storage: Vec<Storage>,
    /// The kernel each node is computed in.
    pub kernel_of: Vec<Option<usize>>,
    /// Each node's [`root`], resolved once: the in-place pass makes a fused
    /// chain one long run of aliases, which `root` would walk per query.
    pub roots: Vec<NodeId>,
}

impl Plan {
    /// The node whose memory `id` reads (see [`root`]), in O(1).
    pub fn root(&self, id: NodeId) -> NodeId {
        self.roots[id.index()]
    }
}

/// The node whose memory `id` reads: through views, in-place writes and
/// transposes read by their matmuls.
pub fn root(storage: &[Storage], mut id: NodeId) -> NodeId {
    while let Storage::Alias(r) | Storage::Inline(r) = storage[id.index()] {
        id = r;
    }
    id
}
