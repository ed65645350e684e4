//! The tensor IR: an arena of typed nodes, shared by forward and backward.
//!
//! A [`Graph`] is a list of [`Node`]s indexed by [`NodeId`]; a node's inputs
//! always have smaller ids, so `0..len` is a topological order. Nodes are
//! immutable and interned: adding a node identical to an existing one (same
//! op, inputs and type) returns the existing id, so CSE is free. Every node
//! has a dtype, a shape whose dimensions are fixed or the symbolic batch
//! `B`, and the source span it came from.
//!
//! Architecture invariant: the IR knows nothing of syntax or diagnostics;
//! shape errors are [`IrError`] values that the checker turns into
//! diagnostics with spans.

// Every stage matches on `Op` exhaustively, so adding an op makes the
// compiler list each rule still missing (STYLE.md).
#![warn(clippy::wildcard_enum_match_arm)]

pub mod op;
pub mod print;
mod types;
pub mod verify;

use std::collections::HashMap;
use std::fmt;

pub use op::{CmpOp, Dist, Linalg, Op};
pub use types::{DType, Dim, IrError, IrErrorKind, Shape, Type};

use crate::span::Span;

/// A node's index in its graph, printed `%7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub ty: Type,
    pub span: Span,
}

/// What a function input is.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// A trained parameter, with its initializer as written.
    Param { init: String },
    /// A batch of features.
    Features,
    /// A batch of labels (class indices or regression targets).
    Label,
    /// The global step counter (keys the dropout RNG).
    Step,
    /// The epochs completed before this step's (a schedule's counter).
    Epoch,
    /// A value bound in a REPL session or by a top-level `let`.
    Value,
    /// A hyper-parameter given at run time (the learning rate), so changing
    /// it does not recompile.
    Hyper,
    /// Optimizer state carried between steps, by its slot's name
    /// ([`crate::optim::Slot`]: `velocity`, a parameter's momentum).
    State(&'static str),
    /// A data-parallel step's global batch size: the samples that every
    /// process's rows together make, the count of its means
    /// (`step::data_parallel`).
    Samples,
    /// The index in a data-parallel step's global batch of this process's
    /// first row (keys its dropout masks).
    FirstSample,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputInfo {
    pub name: String,
    pub role: Role,
    pub node: NodeId,
}

/// A function in the IR: nodes, named inputs and named outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub inputs: Vec<InputInfo>,
    pub outputs: Vec<(String, NodeId)>,
    /// Tensor literals from the source, row-major, referenced by `Op::Literal`.
    pub literals: Vec<Vec<f64>>,
    /// For nodes autodiff added: the forward node whose derivative rule
    /// created them (printed as `d(%k op)`).
    pub grad_of: HashMap<NodeId, NodeId>,
    /// Interning without copies of the keys: the hash of a node's (op,
    /// inputs, type) → the first node with that hash; `same_hash[i]` links
    /// node i to the next node with its hash (or `NONE`).
    intern: HashMap<u64, u32, FastHash>,
    same_hash: Vec<u32>,
}

/// The end of a `same_hash` chain.
const NONE: u32 = u32::MAX;

fn key_hash(op: &Op, inputs: &[NodeId], ty: &Type) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = FastHash.build_hasher();
    op.hash(&mut h);
    inputs.hash(&mut h);
    ty.hash(&mut h);
    h.finish()
}

/// The interning table's hasher: FxHash's multiply-rotate, a few times
/// faster than SipHash on these small keys. The keys are the compiler's
/// own nodes, not input an attacker chooses, so SipHash's resistance to
/// collisions is not needed; each pass rebuilds the graph, so hashing is
/// a large share of compiling a long program.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

/// See [`FastHash`].
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// An empty graph with room for `n` nodes (a pass rebuilding a graph
    /// of `n` nodes).
    pub fn with_capacity(n: usize) -> Graph {
        let mut g = Graph::default();
        g.nodes.reserve(n);
        g.same_hash.reserve(n);
        g.intern.reserve(n);
        g
    }

    /// The node already in the graph with this op, these inputs and this
    /// type, if any (common-subexpression elimination asks).
    pub fn existing(&self, op: &Op, inputs: &[NodeId], ty: &Type) -> Option<NodeId> {
        self.find(key_hash(op, inputs, ty), op, inputs, ty)
    }

    /// The first node equal to (op, inputs, ty), whose key hashes to `h`.
    fn find(&self, h: u64, op: &Op, inputs: &[NodeId], ty: &Type) -> Option<NodeId> {
        let mut i = *self.intern.get(&h)?;
        while i != NONE {
            let n = &self.nodes[i as usize];
            if n.op == *op && n.inputs == inputs && n.ty == *ty {
                return Some(NodeId(i));
            }
            i = self.same_hash[i as usize];
        }
        None
    }

    /// Appends `node`, interned under `h` (after the first node of that
    /// hash, which stays the one `find` meets first); `h` is `None` for
    /// function inputs, which are never shared.
    fn append(&mut self, node: Node, h: Option<u64>) -> NodeId {
        let id = self.nodes.len() as u32;
        self.nodes.push(node);
        self.same_hash.push(NONE);
        if let Some(h) = h {
            match self.intern.get(&h) {
                Some(&head) => {
                    self.same_hash[id as usize] = self.same_hash[head as usize];
                    self.same_hash[head as usize] = id;
                }
                None => {
                    self.intern.insert(h, id);
                }
            }
        }
        NodeId(id)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn ty(&self, id: NodeId) -> &Type {
        &self.nodes[id.index()].ty
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds (or finds) a node. `out` gives the result type for ops whose
    /// type is not determined by their inputs (leaves, casts, reshapes,
    /// broadcasts); see [`op::infer`].
    pub fn add(
        &mut self,
        op: Op,
        inputs: &[NodeId],
        out: Option<Type>,
        span: Span,
    ) -> Result<NodeId, IrError> {
        let types: Vec<&Type> = inputs.iter().map(|&i| self.ty(i)).collect();
        let ty = op::infer(&op, &types, out.as_ref())?;
        let h = key_hash(&op, inputs, &ty);
        if let Some(id) = self.find(h, &op, inputs, &ty) {
            return Ok(id);
        }
        Ok(self.append(
            Node {
                op,
                inputs: inputs.to_vec(),
                ty,
                span,
            },
            Some(h),
        ))
    }

    /// [`Graph::add`] for a node the compiler builds itself (derivatives,
    /// optimizer updates, the training step's plumbing), well-typed by
    /// construction: an ill-typed one is a compiler bug, and panics naming
    /// the op.
    pub fn emit(&mut self, op: Op, inputs: &[NodeId], out: Option<Type>, span: Span) -> NodeId {
        let name = op.name();
        self.add(op, inputs, out, span)
            .unwrap_or_else(|e| panic!("compiler bug: built an ill-typed {name}: {}", e.message))
    }

    /// Appends `node` as it is (no shape inference, no sharing): for
    /// rewrites that copy an already checked node with new inputs.
    pub fn push(&mut self, node: Node) -> NodeId {
        let h = key_hash(&node.op, &node.inputs, &node.ty);
        self.append(node, Some(h))
    }

    /// Adds a function input of type `ty`.
    pub fn input(&mut self, name: &str, role: Role, ty: Type, span: Span) -> NodeId {
        let index = self.inputs.len() as u32;
        // Inputs are never interned: two inputs of one type are different values.
        let id = self.append(
            Node {
                op: Op::Input(index),
                inputs: Vec::new(),
                ty,
                span,
            },
            None,
        );
        self.inputs.push(InputInfo {
            name: name.to_string(),
            role,
            node: id,
        });
        id
    }

    /// A scalar constant of dtype `dtype`.
    pub fn constant(&mut self, value: f64, dtype: DType, span: Span) -> NodeId {
        let stored = match dtype {
            DType::F32 => value as f32 as f64,
            DType::F64 => value,
            DType::I32 => value as i32 as f64,
            DType::Bool => {
                if value != 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        };
        let op = Op::Const(stored.to_bits());
        let ty = Type::scalar(dtype);
        let h = key_hash(&op, &[], &ty);
        if let Some(id) = self.find(h, &op, &[], &ty) {
            return id;
        }
        self.append(
            Node {
                op,
                inputs: Vec::new(),
                ty,
                span,
            },
            Some(h),
        )
    }

    /// A tensor literal (values row-major).
    pub fn literal(&mut self, values: Vec<f64>, ty: Type, span: Span) -> NodeId {
        let index = self.literals.len() as u32;
        self.literals.push(values);
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Node {
            op: Op::Literal(index),
            inputs: Vec::new(),
            ty,
            span,
        });
        id
    }

    /// The value of a scalar `Const` node, if `id` is one.
    pub fn const_value(&self, id: NodeId) -> Option<f64> {
        if let Op::Const(bits) = self.node(id).op {
            Some(f64::from_bits(bits))
        } else {
            None
        }
    }
}
