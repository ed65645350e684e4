//! IR nodes to Cranelift code: one loop nest per node, alone in its kernel
//! or one of a row group's members (see `plan.rs`).
//!
//! A kernel has the signature `(table: *const *mut u8, batch: i64, seed:
//! i64)`: it finds its operands' and its own buffer in the table by node
//! index, and sizes every loop from the shapes it was compiled for, with
//! `batch` standing for `B`. So one compiled function serves every batch
//! size. Loop nests walk the output with one running offset per operand
//! (stride 0 along broadcast axes), which is also the form fusion will use.
//!
//! This file holds the entry points: a node's kernel (`lower_node`, the one
//! match on `Op`) and a row group's (`lower_rows`, with its fused chains).
//! The kernel builder is `lower/kb.rs`; each family of ops has a file of
//! its own in `lower/`.

mod copy;
mod elementwise;
mod inline;
mod kb;
mod matmul;
mod random;
mod reduce;

use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};

use crate::ir::{DType, Dim, Graph, Node, NodeId, Op, Shape};
use copy::{batch_size, iota, pad, reshape, slice, transpose};
use elementwise::elementwise;
use elementwise::{scalar_op, vector_op, vector_plan};
use kb::{numel, Site};
pub use kb::{Kb, Uses};
use matmul::lower_matmul;
use random::random;
use reduce::{argmax, reduce};

/// Emits a row group's kernel: for each row in [lo, hi), every member's
/// row in order, as if B were 1 and each row-indexed buffer started at the
/// current row. `row_bytes` gives the bytes per row of the buffers read or
/// written row by row.
pub fn lower_rows(
    kb: &mut Kb,
    g: &Graph,
    members: &[NodeId],
    row_bytes: std::collections::HashMap<NodeId, i64>,
) {
    let (lo, hi) = (kb.lo, kb.hi);
    kb.range(lo, hi, 1, &mut |kb, r| {
        lower_row(kb, g, members, &row_bytes, r)
    });
}

/// Row `r` of every member of a row group.
fn lower_row(
    kb: &mut Kb,
    g: &Graph,
    members: &[NodeId],
    row_bytes: &std::collections::HashMap<NodeId, i64>,
    r: Value,
) {
    let real_batch = kb.batch;
    kb.batch = kb.iconst(1);
    kb.row = Some((r, row_bytes.clone()));
    let mut i = 0;
    while i < members.len() {
        match chain(g, &members[i..]) {
            Some((n, width)) => {
                lower_chain_parts(kb, g, &members[i..i + n], width);
                i += n;
            }
            None => {
                lower_node(kb, g, members[i]);
                i += 1;
            }
        }
    }
    kb.row = None;
    kb.batch = real_batch;
}

/// A fused chain: its optimizer updates (`update.rs`) and its `wide`
/// members each one call of a runtime routine, the members between them
/// Cranelift loops (a value one part writes and a later part reads goes
/// through its row buffer, one-row scratch when nothing else reads it).
fn lower_chain_parts(kb: &mut Kb, g: &Graph, chain: &[NodeId], width: u64) {
    enum Routine<'r> {
        Update(&'r super::update::RmsStep),
        Wide(NodeId),
    }
    let (updates, wide) = (kb.updates, kb.wide);
    // (first member, members, routine), in the chain's order. Updates are
    // disjoint runs in the group's order and hold no wide member.
    let mut routines: Vec<(usize, usize, Routine)> = Vec::new();
    for s in updates
        .iter()
        .filter(|s| s.nodes.iter().all(|id| chain.contains(id)))
    {
        if let Some(start) = chain.iter().position(|id| *id == s.nodes[0]) {
            routines.push((start, s.nodes.len(), Routine::Update(s)));
        }
    }
    for (i, id) in chain.iter().enumerate().filter(|(_, id)| wide.contains(id)) {
        routines.push((i, 1, Routine::Wide(*id)));
    }
    routines.sort_by_key(|r| r.0);
    let mut at = 0;
    for (start, len, routine) in routines {
        // One that overlapped another (none does) stays in the chain.
        if start < at {
            continue;
        }
        if start > at {
            lower_chain(kb, g, &chain[at..start], width);
        }
        match routine {
            Routine::Update(s) => lower_rms_step(kb, s, width),
            Routine::Wide(id) => lower_wide(kb, g, id, width),
        }
        at = start + len;
    }
    if at < chain.len() {
        lower_chain(kb, g, &chain[at..], width);
    }
}

/// One row of a `wide` member: `exec::dlc_wide` from its operand's row to
/// its own.
fn lower_wide(kb: &mut Kb, g: &Graph, id: NodeId, width: u64) {
    use super::exec::wide;
    let node = g.node(id);
    let kind = match node.op {
        Op::Tanh => wide::TANH,
        Op::Sigmoid => wide::SIGMOID,
        Op::Exp => wide::EXP,
        _ => panic!("compiler bug: {} is not a wide member", node.op.name()),
    };
    let x = kb.buf(node.inputs[0]);
    let y = kb.buf(id);
    let k = kb.iconst(kind);
    let n = kb.iconst(width as i64);
    kb.call1(kb.ext.wide, &[k, x, y, n]);
}

/// One row of an optimizer update: its operands' row pointers in an array
/// on the stack (`exec::rms`'s slots), then the call.
fn lower_rms_step(kb: &mut Kb, s: &super::update::RmsStep, width: u64) {
    use super::exec::rms as slot;
    use cranelift_codegen::ir::{StackSlotData, StackSlotKind};
    let args = kb.b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        (slot::ARGS * 8) as u32,
        3,
    ));
    let operands = [
        (slot::G, Some(s.g)),
        (slot::V, Some(s.v)),
        (slot::W, Some(s.w)),
        (slot::M, s.m),
        (slot::BETA2, Some(s.beta2)),
        (slot::DELTA2, Some(s.delta2)),
        (slot::EPS, Some(s.eps)),
        (slot::LR, Some(s.lr)),
        (slot::C2, s.c2),
        (slot::BETA1, s.beta1),
        (slot::DELTA1, s.delta1),
        (slot::C1, s.c1),
        (slot::DECAY, s.decay),
        (slot::V_OUT, Some(s.v_out)),
        (slot::M_OUT, s.m_out),
        (slot::W_OUT, Some(s.w_out)),
    ];
    for (k, id) in operands {
        let p = match id {
            Some(x) => kb.buf(x),
            None => kb.iconst(0),
        };
        kb.b.ins().stack_store(types::I64, p, args, (k * 8) as i32);
    }
    let a = kb.b.ins().stack_addr(types::I64, args, 0);
    let w = kb.iconst(width as i64);
    kb.call1(kb.ext.rms_step, &[w, a]);
}

/// The row width of an elementwise member that can join a fused loop over
/// the row: f32 lanes (the vector plan), a row of any width,
/// and every operand either a row of the same width or one value per row.
pub(super) fn chain_width(g: &Graph, id: NodeId) -> Option<u64> {
    let node = g.node(id);
    let ins: Vec<crate::ir::Type> = node.inputs.iter().map(|x| g.ty(*x).clone()).collect();
    let plan = vector_plan(&node.op, &node.ty, &ins)?;
    let single = |d: &[Dim]| d.iter().all(|d| matches!(d, Dim::Batch | Dim::Fixed(1)));
    let row = |s: &Shape| s.0.split_last().is_some_and(|(_, outer)| single(outer));
    let Some(&Dim::Fixed(width)) = node.ty.shape.0.last() else {
        return None;
    };
    let operands_fit = ins.iter().zip(&plan).all(|(t, contiguous)| {
        if *contiguous {
            row(&t.shape)
        } else {
            single(&t.shape.0)
        }
    });
    (width >= 1 && row(&node.ty.shape) && operands_fit).then_some(width)
}

/// How many members from the start of `ms` run as one fused loop (at
/// least two), and their row width.
fn chain(g: &Graph, ms: &[NodeId]) -> Option<(usize, u64)> {
    let width = chain_width(g, ms[0])?;
    let n = ms
        .iter()
        .take_while(|id| chain_width(g, **id) == Some(width))
        .count();
    (n >= 2).then_some((n, width))
}

/// Elementwise members over one row, fused into a single loop: each
/// element of the row goes through the whole chain in registers, four
/// lanes at a time, and only the values read outside the chain (by later
/// members, other kernels or as outputs) are stored. Every member reads
/// its operands at the element it writes (or one value per row, loaded
/// once: it cannot be a chain member's buffer, whose rows are wider), so
/// element-by-element order computes what member-by-member order does,
/// also when a member writes over an operand's buffer in place.
fn lower_chain(kb: &mut Kb, g: &Graph, chain: &[NodeId], width: u64) {
    let pos: std::collections::HashMap<NodeId, usize> =
        chain.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    // Buffer pointers are loaded where they are used (the table's loads
    // are hoisted out of loops): loaded up front, a long chain's pointers
    // would all be live at once, and register allocation grows with that.
    let stored: Vec<bool> = chain
        .iter()
        .enumerate()
        .map(|(i, id)| {
            // Read by a node that is not a later member of the chain.
            let uses = kb.uses;
            uses.output[id.index()]
                || uses.readers[id.index()]
                    .iter()
                    .any(|r| pos.get(r).is_none_or(|p| *p <= i))
        })
        .collect();
    // Each member's operands: a chain member (by position), or a buffer
    // read along the row (`true`) or once per row (`false`).
    enum Src {
        Member(usize),
        Buffer(NodeId, bool, DType),
    }
    let mut srcs: Vec<Vec<Src>> = Vec::new();
    for id in chain {
        let node = g.node(*id);
        let ins: Vec<crate::ir::Type> = node.inputs.iter().map(|x| g.ty(*x).clone()).collect();
        let plan = vector_plan(&node.op, &node.ty, &ins).unwrap_or_default();
        let mut v = Vec::new();
        for ((x, t), contiguous) in node.inputs.iter().zip(&ins).zip(plan) {
            v.push(match pos.get(x) {
                Some(p) => Src::Member(*p),
                None => Src::Buffer(*x, contiguous, t.dtype),
            });
        }
        srcs.push(v);
    }
    let v4 = types::F32X4;
    let flags = MemFlagsData::new().with_notrap();
    // One value per row: loaded and splat before the loop (which a row of
    // fewer than four values does not have).
    let zero = kb.iconst(0);
    let mut splats: std::collections::HashMap<(usize, usize), Value> = Default::default();
    for (m, ops) in srcs.iter().enumerate().filter(|_| width >= 4) {
        for (k, src) in ops.iter().enumerate() {
            if let Src::Buffer(x, false, _) = src {
                let p = kb.buf(*x);
                let x = kb.load(p, zero, DType::F32);
                let v = kb.b.ins().splat(v4, x);
                splats.insert((m, k), v);
            }
        }
    }
    let len4 = (width & !3) as i64;
    let (start, end) = (kb.iconst(0), kb.iconst(len4));
    kb.range(start, end, 4, &mut |kb, j| {
        let mut vals: Vec<Value> = Vec::new();
        for (m, id) in chain.iter().enumerate() {
            let mut operands = Vec::new();
            for (k, src) in srcs[m].iter().enumerate() {
                operands.push(match src {
                    Src::Member(p) => vals[*p],
                    Src::Buffer(x, true, _) => {
                        let p = kb.buf(*x);
                        let a = kb.addr(p, j, DType::F32);
                        kb.b.ins().load(v4, flags, a, 0)
                    }
                    Src::Buffer(_, false, _) => splats[&(m, k)],
                });
            }
            let v = vector_op(kb.b, &g.node(*id).op, &operands);
            if stored[m] {
                let out = kb.buf(*id);
                let a = kb.addr(out, j, DType::F32);
                kb.b.ins().store(flags, v, a, 0);
            }
            vals.push(v);
        }
    });
    // The scalar tail, element by element in each operand's dtype.
    let (start, end) = (kb.iconst(len4), kb.iconst(width as i64));
    kb.range(start, end, 1, &mut |kb, j| {
        let mut vals: Vec<Value> = Vec::new();
        for (m, id) in chain.iter().enumerate() {
            let mut operands = Vec::new();
            for src in &srcs[m] {
                operands.push(match src {
                    Src::Member(p) => vals[*p],
                    Src::Buffer(x, contiguous, d) => {
                        let p = kb.buf(*x);
                        let at = if *contiguous { j } else { kb.iconst(0) };
                        kb.load(p, at, *d)
                    }
                });
            }
            let v = scalar_op(kb, &g.node(*id).op, &operands);
            if stored[m] {
                let out = kb.buf(*id);
                kb.store(out, j, g.ty(*id).dtype, v);
            }
            vals.push(v);
        }
    });
}

/// A matmul whose output rows feed a row group (its epilogue): each strip
/// of output rows is computed, then the group's members run on those rows
/// while they are in cache. `view` is the graph the members are lowered
/// in (see `as_batch_rows`).
pub fn lower_matmul_rows(
    kb: &mut Kb,
    g: &Graph,
    head: NodeId,
    view: &Graph,
    members: &[NodeId],
    row_bytes: std::collections::HashMap<NodeId, i64>,
) {
    lower_matmul(kb, g, head, &mut |kb, start, end| {
        kb.range(start, end, 1, &mut |kb, r| {
            lower_row(kb, view, members, &row_bytes, r)
        });
    });
}
/// Emits the body of node `id`'s kernel.
pub fn lower_node(kb: &mut Kb, g: &Graph, id: NodeId) {
    let node: &Node = g.node(id);
    let site = Site {
        out_t: node.ty.clone(),
        d: node.ty.dtype,
        out: kb.buf(id),
        ins: node.inputs.clone(),
        in_t: node.inputs.iter().map(|i| g.ty(*i).clone()).collect(),
    };
    match &node.op {
        Op::Input(_) | Op::Const(_) | Op::Literal(_) => {}
        Op::Neg
        | Op::Recip
        | Op::Exp
        | Op::Log
        | Op::Sqrt
        | Op::Abs
        | Op::Tanh
        | Op::Sin
        | Op::Cos
        | Op::Floor
        | Op::Sigmoid
        | Op::Cast
        | Op::StopGradient
        | Op::Broadcast
        | Op::Add
        | Op::Mul
        | Op::Max
        | Op::Pow
        | Op::Cmp(_)
        | Op::Select => elementwise(kb, g, id, &site),
        // One process's sum is its own value: a copy. Across processes the
        // runtime runs the reduction instead of this kernel (`dist`).
        Op::AllReduce => elementwise(kb, g, id, &site),
        Op::Reshape => reshape(kb, &site),
        Op::Transpose { perm } => transpose(kb, &site, perm),
        Op::Slice {
            axis, start, step, ..
        } => slice(kb, &site, (*axis, *start, *step)),
        Op::Pad {
            axis, start, step, ..
        } => pad(kb, &site, (*axis, *start, *step)),
        Op::Iota { axis } => iota(kb, &site, *axis),
        Op::BatchSize => batch_size(kb, &site),
        Op::Random { dist, stream } => random(kb, &site, *dist, *stream),
        Op::ReduceSum { axes } | Op::ReduceMax { axes } => reduce(kb, g, id, &site, *axes),
        Op::ArgMax { axis } => argmax(kb, &site, *axis),
        Op::MatMul => lower_matmul(kb, g, id, &mut |_, _, _| {}),
        Op::Linalg(kind) => linalg(kb, &site, *kind),
    }
}

/// A call into `linalg.rs` (nalgebra) on the whole matrix.
fn linalg(kb: &mut Kb, site: &Site, kind: crate::ir::Linalg) {
    let (out_t, d, out, ins, in_t) = site.parts();
    // A call into `linalg.rs` (nalgebra) on the whole matrix.
    let code = super::exec::externs::LINALG
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0) as i64;
    let n = match in_t[0].shape.0.first() {
        Some(Dim::Fixed(n)) => *n as i64,
        _ => 0,
    };
    let len = numel(&out_t.shape).c as i64;
    let (k, b) = match kind {
        crate::ir::Linalg::Solve => {
            let nb = numel(&in_t[1].shape).c as i64;
            (nb / n.max(1), kb.buf(ins[1]))
        }
        _ => (0, kb.iconst(0)),
    };
    let a = kb.buf(ins[0]);
    let args = [
        kb.iconst(code),
        kb.iconst(i64::from(d == DType::F64)),
        kb.iconst(n),
        kb.iconst(k),
        kb.iconst(len),
        a,
        b,
        out,
    ];
    if let Some(f) = kb.ext.linalg {
        kb.b.ins().call(f, &args);
    }
}
