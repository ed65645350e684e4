//! The kernel plan: which nodes run together in one kernel (fusion), which
//! values need memory at all, which share it (views and in-place reuse),
//! and where each buffer lives in one arena (a liveness-based memory plan).
//!
//! Fusion forms *row groups*: a run of ops over tensors whose leading axis
//! is the batch `B` and whose every row depends only on the same row of
//! their operands (elementwise ops, broadcasts, reshapes, and reductions
//! and argmax along non-batch axes). One kernel loops over the rows and
//! computes each member's row in turn, so a row's intermediates stay in
//! cache; members used only inside the group get a one-row scratch buffer
//! instead of a whole tensor. Softmax, cross-entropy and its gradient —
//! the whole loss head, forward and backward — become one such kernel per
//! row. A matmul may head a group, whose members then run as its epilogue
//! on each strip of output rows. Transposes that are not a matmul's left
//! operand and reductions over the batch stay kernels of their own.

//!
//! This file groups the nodes and decides their storage (`plan`); what a
//! plan is made of is `plan/kernel.rs`, and where its buffers live at a
//! batch size is `plan/layout.rs`.

mod kernel;
mod layout;

use std::collections::BinaryHeap;

use crate::ir::{DType, Dim, Graph, NodeId, Op};
use crate::opt::Passes;

pub use kernel::{root, Kernel, KernelKind, Plan, Storage};
use layout::{last_uses, STACK_ROW_BYTES};
pub use layout::{layout, row_bytes, Layout};

fn has_batch(s: &crate::ir::Shape) -> bool {
    s.0.contains(&Dim::Batch)
}

/// The leading axis a node's rows run along, if it can be a member of a
/// row group: its shape is [D, ...] with D > 1 (B, or a fixed size with no
/// B anywhere), and each output row is a function of the same row of its
/// row operands and of operands read whole.
pub fn row_axis(g: &Graph, id: NodeId) -> Option<Dim> {
    let n = g.node(id);
    let d = *n.ty.shape.0.first()?;
    let rest_ok = match d {
        Dim::Batch => !n.ty.shape.0[1..].contains(&Dim::Batch),
        Dim::Fixed(k) => k > 1 && !has_batch(&n.ty.shape),
    };
    let op_ok = match &n.op {
        Op::ReduceSum { axes } | Op::ReduceMax { axes } => axes & 1 == 0,
        Op::ArgMax { axis } => *axis != 0,
        Op::Broadcast => true,
        Op::Reshape => d == Dim::Batch,
        op => op.is_elementwise(),
    };
    if !rest_ok || !op_ok {
        return None;
    }
    let ins_ok = n.inputs.iter().all(|x| {
        let s = &g.ty(*x).shape;
        match &n.op {
            // The reduced operand is read row by row.
            Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ArgMax { .. } | Op::Reshape => {
                s.0.first() == Some(&d) && !s.0[1..].contains(&Dim::Batch)
            }
            _ if row_operand(g, id, *x) => !s.0[1..].contains(&Dim::Batch),
            // Read whole by every row: it must not vary along the rows.
            _ => !has_batch(s),
        }
    });
    ins_ok.then_some(d)
}

/// The row axis of a matmul's output, if its rows can head a row group:
/// [D, N] with D = B or a fixed size above 1, and no B in N.
fn matmul_rows(g: &Graph, id: NodeId) -> Option<Dim> {
    match g.ty(id).shape.0.as_slice() {
        [d, n] if *n != Dim::Batch && *d != Dim::Fixed(1) => Some(*d),
        _ => None,
    }
}

/// Whether a kernel is a matmul with an epilogue row group.
pub fn headed(g: &Graph, k: &Kernel) -> bool {
    k.kind == KernelKind::Rows && g.node(k.nodes[0]).op == Op::MatMul
}

/// Whether member `id` of a row group reads operand `x` row by row (else
/// whole: broadcast along the rows).
pub fn row_operand(g: &Graph, id: NodeId, x: NodeId) -> bool {
    let n = g.node(id);
    let s = &g.ty(x).shape;
    match &n.op {
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ArgMax { .. } | Op::Reshape => true,
        _ => s.rank() == n.ty.shape.rank() && s.0.first() == n.ty.shape.0.first(),
    }
}

fn is_leaf(op: &Op) -> bool {
    matches!(op, Op::Input(_) | Op::Const(_) | Op::Literal(_))
}

/// `root` as a union-find over storage that is still changing: a node's
/// parent is its alias or inline target (itself when it owns its memory),
/// and lookups halve the paths they walk, so the in-place pass, which
/// turns a fused chain into one run of aliases, pays near O(1) per query.
struct Roots(Vec<u32>);

impl Roots {
    fn new(storage: &[Storage]) -> Roots {
        Roots(
            storage
                .iter()
                .enumerate()
                .map(|(i, s)| match s {
                    Storage::Alias(r) | Storage::Inline(r) => r.0,
                    _ => i as u32,
                })
                .collect(),
        )
    }

    fn find(&mut self, id: NodeId) -> NodeId {
        let p = &mut self.0;
        let mut x = id.0 as usize;
        while p[x] as usize != x {
            let up = p[p[x] as usize];
            p[x] = up;
            x = up as usize;
        }
        NodeId(x as u32)
    }

    /// Every node's root (aliases point to lower ids, so one pass in order).
    fn resolve(storage: &[Storage]) -> Vec<NodeId> {
        let mut roots: Vec<NodeId> = Vec::with_capacity(storage.len());
        for (i, s) in storage.iter().enumerate() {
            let r = match s {
                Storage::Alias(r) | Storage::Inline(r) if r.index() < i => roots[r.index()],
                Storage::Alias(r) | Storage::Inline(r) => root(storage, *r),
                _ => NodeId(i as u32),
            };
            roots.push(r);
        }
        roots
    }
}

/// The most nodes one kernel takes: Cranelift's register allocation grows
/// faster than linearly in a function's size, so a program of thousands of
/// row-local steps compiles as several kernels (each value crossing a
/// boundary goes through memory once) rather than as one huge function.
const MAX_MEMBERS: usize = 512;

/// Groups the live nodes of `g` into kernels and decides their storage:
/// views first, then the groups, their order, scratch rows, values placed
/// in place and stack rows, each a phase below.
pub fn plan(g: &Graph, p: &Passes) -> Plan {
    let live = crate::ir::print::live_nodes(g);
    let n = g.len();
    let mut is_output = vec![false; n];
    for (_, o) in &g.outputs {
        is_output[o.index()] = true;
    }
    let mut storage = views(g, p, &live, &is_output);
    let grouping = group(g, p, &live, &storage);
    let (mut kernels, kernel_of) = order_kernels(g, &storage, grouping);
    if p.update {
        let uses = super::lower::Uses::of(g);
        for k in kernels.iter_mut().filter(|k| k.kind == KernelKind::Rows) {
            k.updates = super::update::find(g, &k.nodes, &uses.readers, &uses.output);
        }
    }
    if p.wide {
        for k in kernels.iter_mut().filter(|k| k.kind == KernelKind::Rows) {
            k.wide = k.nodes.iter().copied().filter(|id| wide(g, *id)).collect();
        }
    }
    mark_scratch(g, &live, &mut storage, &kernels, &kernel_of);
    if p.inplace {
        place_in_place(g, &mut storage, &kernels, &kernel_of, &is_output);
    }
    let roots = Roots::resolve(&storage);
    mark_stack(g, &live, &mut storage, (&kernels, &kernel_of), &roots);
    Plan {
        kernels,
        storage,
        kernel_of,
        roots,
    }
}

/// Every live node's own buffer, but views: a reshape aliases its operand
/// (with the in-place pass), and a transpose read only by matmuls (as
/// either operand: xᵀ·g of a weight gradient, g·Wᵀ of an input gradient)
/// is read in place by them (with fusion).
fn views(g: &Graph, p: &Passes, live: &[bool], is_output: &[bool]) -> Vec<Storage> {
    let n = g.len();
    let mut storage = vec![Storage::Unused; n];
    let mut consumers: Vec<Vec<(NodeId, usize)>> = vec![Vec::new(); n];
    for (i, node) in g.nodes.iter().enumerate() {
        if live[i] {
            for (k, x) in node.inputs.iter().enumerate() {
                consumers[x.index()].push((NodeId(i as u32), k));
            }
        }
    }
    for i in 0..n {
        if !live[i] {
            continue;
        }
        storage[i] = Storage::Own;
        let node = &g.nodes[i];
        if p.inplace && node.op == Op::Reshape {
            storage[i] = Storage::Alias(root(&storage, node.inputs[0]));
        }
        // A sum across processes happens in its operand's buffer, while
        // the kernels after the one computing the operand run
        // (`Compiled::launch_each`): no kernel of its own, whatever the
        // passes.
        if node.op == Op::AllReduce {
            storage[i] = Storage::Alias(root(&storage, node.inputs[0]));
        }
        let transposes = matches!(&node.op, Op::Transpose { perm } if perm.as_slice() == [1, 0]);
        let read_by_matmuls = !consumers[i].is_empty()
            && consumers[i]
                .iter()
                .all(|(c, _)| g.node(*c).op == Op::MatMul);
        if p.fuse && transposes && read_by_matmuls && !is_output[i] {
            storage[i] = Storage::Inline(node.inputs[0]);
        }
    }
    storage
}

/// Row groups: which kernel each node joins.
struct Grouping {
    groups: Vec<Vec<NodeId>>,
    group_of: Vec<Option<usize>>,
    /// Each group's row axis (None for a kernel of its own).
    group_axis: Vec<Option<Dim>>,
}

/// Groups, in node order. A row-local node joins the most recent group
/// (of the last 64) with its row axis whose reads it agrees with, unless
/// one of its inputs comes from a kernel that depends on that group (the
/// group would wait on itself). A matmul heads a new group: the members
/// that join it run as its epilogue.
fn group(g: &Graph, p: &Passes, live: &[bool], storage: &[Storage]) -> Grouping {
    let n = g.len();
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    let mut groups: Vec<Vec<NodeId>> = Vec::new();
    // Each group's row axis (None for a kernel of its own).
    let mut group_axis: Vec<Option<Dim>> = Vec::new();
    // How each group reads each value: row by row (true) or whole.
    let mut roles: Vec<std::collections::HashMap<NodeId, bool>> = Vec::new();
    // Each kernel's transitive dependencies (kernel indices), kept only
    // among the groups a later node could still join (the last `SEARCH`
    // when it was added: the window only moves on, so an older group is
    // never asked about), and for each such group the kernels depending on
    // it. Without fusion nothing joins a group and neither is needed.
    let mut deps: Vec<std::collections::HashSet<usize>> = Vec::new();
    let mut dependents: Vec<Vec<usize>> = Vec::new();
    const SEARCH: usize = 64;
    // Values summed across processes (and views of them): a node reading
    // one waits for the sum, so it never joins the kernel whose output is
    // being summed (an optimizer's update would otherwise run as the
    // gradient's matmul epilogue, before the sum).
    let mut summed = vec![false; n];
    for i in 0..n {
        let node = &g.nodes[i];
        summed[i] = node.op == Op::AllReduce
            || (matches!(storage[i], Storage::Alias(_))
                && node.inputs.iter().any(|x| summed[x.index()]));
    }
    for i in 0..n {
        let node = &g.nodes[i];
        if !live[i]
            || is_leaf(&node.op)
            || matches!(storage[i], Storage::Alias(_) | Storage::Inline(_))
        {
            continue;
        }
        let id = NodeId(i as u32);
        // The kernels this node's inputs come from.
        let sources: Vec<usize> = node
            .inputs
            .iter()
            .filter_map(|x| group_of[root(storage, *x).index()])
            .collect();
        let axis = if p.fuse { row_axis(g, id) } else { None };
        let joinable = |gi: usize| {
            let agrees = node.inputs.iter().all(|x| {
                let row = row_operand(g, id, *x);
                let member = group_of[root(storage, *x).index()] == Some(gi);
                (!member || row) && roles[gi].get(x).is_none_or(|r| *r == row)
            });
            let waits = sources.iter().any(|k| *k != gi && deps[*k].contains(&gi));
            let room = groups[gi].len() < MAX_MEMBERS;
            group_axis[gi] == axis && agrees && !waits && room
        };
        let waits_for_sum = node.inputs.iter().any(|x| summed[x.index()]);
        let target = match axis {
            Some(_) if waits_for_sum => None,
            Some(_) => (groups.len().saturating_sub(SEARCH)..groups.len())
                .rev()
                .find(|gi| joinable(*gi)),
            None => None,
        };
        let gi = match target {
            Some(gi) => {
                groups[gi].push(id);
                gi
            }
            None => {
                // A new kernel: a group (row-local node or matmul head), or
                // a node of its own.
                let head = if p.fuse && node.op == Op::MatMul {
                    matmul_rows(g, id)
                } else {
                    None
                };
                groups.push(vec![id]);
                group_axis.push(axis.or(head));
                roles.push(std::collections::HashMap::new());
                deps.push(std::collections::HashSet::new());
                dependents.push(Vec::new());
                // Out of the window for good: nothing asks about it again.
                if let Some(old) = groups.len().checked_sub(SEARCH + 1) {
                    dependents[old] = Vec::new();
                }
                groups.len() - 1
            }
        };
        group_of[i] = Some(gi);
        for x in &node.inputs {
            roles[gi].insert(*x, row_operand(g, id, *x));
        }
        // The group now also depends on the inputs' kernels and theirs; so
        // does every kernel that depends on the group.
        if !p.fuse {
            continue;
        }
        let window = groups.len().saturating_sub(SEARCH);
        Deps {
            deps: &mut deps,
            dependents: &mut dependents,
        }
        .add(gi, &sources, window);
    }
    Grouping {
        groups,
        group_of,
        group_axis,
    }
}

/// The kernels' transitive dependencies within the search window, and for
/// each group the kernels depending on it.
struct Deps<'a> {
    deps: &'a mut [std::collections::HashSet<usize>],
    dependents: &'a mut [Vec<usize>],
}

impl Deps<'_> {
    /// Group `gi` now also depends on the kernels `sources` and theirs (at
    /// or after `window`); so does every kernel that depends on it.
    fn add(&mut self, gi: usize, sources: &[usize], window: usize) {
        let mut new: Vec<usize> = Vec::new();
        for k in sources.iter().filter(|k| **k != gi) {
            new.push(*k);
            new.extend(self.deps[*k].iter().copied());
        }
        new.retain(|k| *k >= window && !self.deps[gi].contains(k));
        new.sort_unstable();
        new.dedup();
        if !new.is_empty() {
            let mut to: Vec<usize> = self.dependents[gi].clone();
            to.push(gi);
            for d in to {
                for &w in &new {
                    if self.deps[d].insert(w) {
                        self.dependents[w].push(d);
                    }
                }
            }
        }
    }
}

/// The kernels in order: dependencies first, else by first node; and the
/// kernel of each node.
fn order_kernels(
    g: &Graph,
    storage: &[Storage],
    grouping: Grouping,
) -> (Vec<Kernel>, Vec<Option<usize>>) {
    let Grouping {
        groups,
        group_of,
        group_axis,
    } = grouping;
    let n = g.len();
    let m = groups.len();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); m];
    let mut indeg = vec![0usize; m];
    // The last kernel that counted each source, so each edge counts once.
    let mut seen: Vec<usize> = vec![usize::MAX; m];
    for (k, members) in groups.iter().enumerate() {
        for id in members {
            for x in &g.node(*id).inputs {
                let r = root(storage, *x);
                if let Some(src) = group_of[r.index()] {
                    if src != k && seen[src] != k {
                        seen[src] = k;
                        deps[src].push(k);
                        indeg[k] += 1;
                    }
                }
            }
        }
    }
    let mut ready: BinaryHeap<std::cmp::Reverse<(u32, usize)>> = BinaryHeap::new();
    for k in 0..m {
        if indeg[k] == 0 {
            ready.push(std::cmp::Reverse((groups[k][0].0, k)));
        }
    }
    let mut order = Vec::with_capacity(m);
    while let Some(std::cmp::Reverse((_, k))) = ready.pop() {
        order.push(k);
        for &d in &deps[k] {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                ready.push(std::cmp::Reverse((groups[d][0].0, d)));
            }
        }
    }
    assert_eq!(order.len(), m, "compiler bug: the kernel graph has a cycle");
    let mut kernels = Vec::with_capacity(m);
    let mut kernel_of = vec![None; n];
    for k in order {
        let members = groups[k].clone();
        let rows = group_axis[k].unwrap_or(Dim::Fixed(1));
        for id in &members {
            kernel_of[id.index()] = Some(kernels.len());
        }
        let kind = if members.len() > 1 {
            KernelKind::Rows
        } else {
            KernelKind::Node
        };
        kernels.push(Kernel {
            kind,
            nodes: members,
            rows,
            updates: Vec::new(),
            wide: Vec::new(),
        });
    }
    (kernels, kernel_of)
}

/// Whether row-group member `id` runs as `exec::wide`'s 8-lane routine:
/// an f32 tanh, sigmoid or exp of a row of its own shape, in a fused loop
/// over rows at least 16 wide (narrower ones, like a 10-class softmax,
/// gain less from 8 lanes than the call costs).
fn wide(g: &Graph, id: NodeId) -> bool {
    let node = g.node(id);
    matches!(node.op, Op::Tanh | Op::Sigmoid | Op::Exp)
        && node.ty.dtype == DType::F32
        && node.inputs.len() == 1
        && *g.ty(node.inputs[0]) == node.ty
        && super::lower::chain_width(g, id).is_some_and(|w| w >= 16)
}

/// Scratch: a row group's member read only inside its group and not an
/// output keeps one row at a time.
fn mark_scratch(
    g: &Graph,
    live: &[bool],
    storage: &mut [Storage],
    kernels: &[Kernel],
    kernel_of: &[Option<usize>],
) {
    let n = g.len();
    let mut roots = Roots::new(storage);
    let mut outside_use = vec![false; n];
    for (_, id) in &g.outputs {
        outside_use[roots.find(*id).index()] = true;
    }
    for i in 0..n {
        if !live[i] || matches!(storage[i], Storage::Alias(_) | Storage::Inline(_)) {
            continue;
        }
        let ki = kernel_of[i];
        for x in &g.nodes[i].inputs {
            let r = roots.find(*x);
            if kernel_of[r.index()] != ki || ki.is_none() {
                outside_use[r.index()] = true;
            }
        }
    }
    for k in kernels {
        // A headed group runs on several threads (its matmul's row split):
        // no shared one-row scratch there (see Stack below).
        if k.kind != KernelKind::Rows || headed(g, k) {
            continue;
        }
        for id in &k.nodes {
            if !outside_use[id.index()] {
                storage[id.index()] = Storage::Scratch;
            }
        }
    }
}

/// In place: an elementwise op may write over an operand of its own type
/// whose value nothing reads afterwards. In a row group the members run
/// one after another on each row, so a chain (v → μ·v → μ·v + g) can live
/// in one buffer: each member overwrites the value the buffer holds when
/// no later member reads it. This is how an optimizer's update lands in
/// the parameter's (and its state's) own buffer.
fn place_in_place(
    g: &Graph,
    storage: &mut [Storage],
    kernels: &[Kernel],
    kernel_of: &[Option<usize>],
    is_output: &[bool],
) {
    let n = g.len();
    let mut roots = Roots::new(storage);
    let last = last_uses(g, storage, kernel_of, kernels.len(), |x| roots.find(x));
    // Per kernel: 1 + the position of the last member reading each
    // root's memory (0: none), kept up to date as members move onto
    // their operands' buffers, so "does a later member read it" is one
    // lookup instead of a scan of the later members.
    let mut last_reader: Vec<usize> = vec![0; n];
    for (ki, k) in kernels.iter().enumerate() {
        for (pos, m) in k.nodes.iter().enumerate() {
            for y in &g.node(*m).inputs {
                let r = roots.find(*y).index();
                last_reader[r] = last_reader[r].max(pos + 1);
            }
        }
        // Every strip of a headed group's matmul reads its operands
        // whole: nothing may overwrite them.
        let head_roots: Vec<NodeId> = if headed(g, k) {
            let ins = g.node(k.nodes[0]).inputs.clone();
            ins.iter().map(|y| roots.find(*y)).collect()
        } else {
            Vec::new()
        };
        for (pos, &id) in k.nodes.iter().enumerate() {
            let node = g.node(id);
            let was = storage[id.index()];
            // A one-row scratch value stays in cache; it moves onto an
            // operand's buffer only in groups over a parameter's rows,
            // which write every row of it anyway (and so end in place).
            let movable = match was {
                Storage::Own => true,
                Storage::Scratch | Storage::Stack => k.rows != Dim::Batch,
                Storage::Unused | Storage::Alias(_) | Storage::Inline(_) => false,
            };
            if !node.op.is_elementwise() || !movable {
                continue;
            }
            for x in &node.inputs {
                // `last` was computed before any op was placed in place,
                // so it tells when x's own value is last read.
                let r = roots.find(*x);
                let free = last[x.index()] == Some(ki)
                    && !is_output[x.index()]
                    && storage[r.index()] == Storage::Own
                    && !matches!(g.node(r).op, Op::Const(_) | Op::Literal(_));
                let same = g.ty(*x) == &node.ty;
                let row_ok = k.kind == KernelKind::Node || row_operand(g, id, *x);
                let head_reads = head_roots.iter().any(|h| roots.find(*h) == r);
                let read_later = last_reader[r.index()] > pos + 1;
                if free && same && row_ok && !read_later && !head_reads {
                    storage[id.index()] = Storage::Alias(*x);
                    // What read `id` now reads `r`'s memory.
                    let own = last_reader[id.index()];
                    last_reader[r.index()] = last_reader[r.index()].max(own);
                    last_reader[id.index()] = 0;
                    roots.0[id.index()] = r.0;
                    break;
                }
            }
        }
        for m in &k.nodes {
            for y in &g.node(*m).inputs {
                let r = roots.find(*y).index();
                last_reader[r] = 0;
            }
        }
    }
}

/// Stack rows: a headed group's members that still need a buffer of their
/// own but are read only inside the group keep one row each on the stack
/// of the thread computing it (after the in-place phase, which may have
/// put a whole chain in the matmul's own buffer).
fn mark_stack(
    g: &Graph,
    live: &[bool],
    storage: &mut [Storage],
    (kernels, kernel_of): (&[Kernel], &[Option<usize>]),
    roots: &[NodeId],
) {
    let n = g.len();
    let mut read_outside = vec![false; n];
    for (_, id) in &g.outputs {
        read_outside[roots[id.index()].index()] = true;
    }
    for i in 0..n {
        if !live[i] {
            continue;
        }
        for x in &g.nodes[i].inputs {
            let r = roots[x.index()];
            if kernel_of[r.index()] != kernel_of[i] || kernel_of[i].is_none() {
                read_outside[r.index()] = true;
            }
        }
    }
    for k in kernels.iter().filter(|k| headed(g, k)) {
        for id in &k.nodes[1..] {
            if storage[id.index()] == Storage::Own
                && !read_outside[id.index()]
                && row_bytes(g, *id) <= STACK_ROW_BYTES
            {
                storage[id.index()] = Storage::Stack;
            }
        }
    }
}
