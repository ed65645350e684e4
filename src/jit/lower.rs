//! IR nodes to Cranelift code: one loop nest per node, alone in its kernel
//! or one of a row group's members (see `plan.rs`).
//!
//! A kernel has the signature `(table: *const *mut u8, batch: i64, seed:
//! i64)`: it finds its operands' and its own buffer in the table by node
//! index, and sizes every loop from the shapes it was compiled for, with
//! `batch` standing for `B`. So one compiled function serves every batch
//! size. Loop nests walk the output with one running offset per operand
//! (stride 0 along broadcast axes), which is also the form fusion will use.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

use super::ExternRefs;
use crate::ir::{CmpOp, DType, Dim, Dist, Graph, Node, NodeId, Op, Shape};

/// A size `c·Bᵖ` (a shape may hold B more than once, as an outer product
/// of two batch vectors does).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sz {
    pub c: u64,
    pub batch: u32,
}

impl Sz {
    const ONE: Sz = Sz { c: 1, batch: 0 };

    fn of(d: Dim) -> Sz {
        match d {
            Dim::Fixed(n) => Sz { c: n, batch: 0 },
            Dim::Batch => Sz { c: 1, batch: 1 },
        }
    }

    fn mul(self, o: Sz) -> Sz {
        Sz {
            c: self.c * o.c,
            batch: self.batch + o.batch,
        }
    }
}

/// Row-major strides of a shape, as sizes.
pub fn strides(s: &Shape) -> Vec<Sz> {
    let mut st = vec![Sz::ONE; s.rank()];
    for i in (0..s.rank().saturating_sub(1)).rev() {
        st[i] = st[i + 1].mul(Sz::of(s.0[i + 1]));
    }
    st
}

pub fn numel(s: &Shape) -> Sz {
    s.0.iter().fold(Sz::ONE, |a, d| a.mul(Sz::of(*d)))
}

pub fn clif_type(d: DType) -> types::Type {
    match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I32 | DType::Bool => types::I32,
    }
}

/// Loops with at most this many iterations, known when the kernel is
/// built, are unrolled: a row group's rows of ten (the MLP's loss head, its
/// reductions and argmax) become straight-line code, which took that
/// kernel from 46 to 35 ms over 705 steps (4 iterations: no change).
const UNROLL: i64 = 16;

/// At most this many copies of any code from nested unrolled loops: a
/// fixed shape of many short axes stays a loop nest, not one straight line
/// per element.
const UNROLL_COPIES: i64 = 64;

/// Who reads each node, built once per compile: a fused chain asks, for
/// each member, whether anything outside the chain reads it.
pub struct Uses {
    /// The nodes with each node among their inputs (each once, in order).
    pub readers: Vec<Vec<NodeId>>,
    /// Whether each node is an output of the graph.
    pub output: Vec<bool>,
}

impl Uses {
    pub fn of(g: &Graph) -> Uses {
        let mut readers: Vec<Vec<NodeId>> = vec![Vec::new(); g.len()];
        for (i, n) in g.nodes.iter().enumerate() {
            for x in &n.inputs {
                let r = &mut readers[x.index()];
                if r.last() != Some(&NodeId(i as u32)) {
                    r.push(NodeId(i as u32));
                }
            }
        }
        let mut output = vec![false; g.len()];
        for (_, o) in &g.outputs {
            output[o.index()] = true;
        }
        Uses { readers, output }
    }
}

/// The state of one kernel being built.
pub struct Kb<'a, 'f> {
    /// The readers of every node (see [`Uses`]).
    pub uses: &'a Uses,
    pub b: &'a mut FunctionBuilder<'f>,
    pub table: Value,
    pub batch: Value,
    pub seed: Value,
    /// The output rows [lo, hi) this call computes (matmul only).
    pub lo: Value,
    pub hi: Value,
    pub ext: &'a ExternRefs,
    /// Whether the host has FMA (then `fma` is one instruction).
    pub fma: bool,
    /// Inside a row group: the row index, and the bytes per row of each
    /// operand read or written row by row (others are read whole: tensors
    /// without B, and one-row scratch buffers).
    pub row: Option<(Value, std::collections::HashMap<NodeId, i64>)>,
    /// Transposes computed inside the matmuls that read them: node → its
    /// untransposed input.
    pub inline: std::collections::HashMap<NodeId, NodeId>,
    /// Scratch rows on this function's stack (see `Storage::Stack`).
    pub stack: std::collections::HashMap<NodeId, cranelift_codegen::ir::StackSlot>,
    /// How many copies of the code being emitted the enclosing unrolled
    /// loops make (see `short_trip`).
    pub unrolled: i64,
    /// The kernel's optimizer updates that run as one routine each.
    pub updates: &'a [super::update::RmsStep],
    /// The kernel's members computed by `exec::dlc_wide` (the `wide` pass).
    pub wide: &'a [NodeId],
}

impl Kb<'_, '_> {
    fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    fn sz(&mut self, s: Sz) -> Value {
        // Inside a row group B is the constant 1: sizes fold to constants,
        // which lets short loops unroll (`range`, `level`).
        if let Some(b) = self.const_of(self.batch) {
            return self.iconst(s.c as i64 * b.pow(s.batch));
        }
        let mut v = self.iconst(s.c as i64);
        for _ in 0..s.batch {
            v = self.b.ins().imul(v, self.batch);
        }
        v
    }

    /// `v`'s value, when it is an integer constant.
    fn const_of(&self, v: Value) -> Option<i64> {
        use cranelift_codegen::ir::{InstructionData, Opcode, ValueDef};
        let dfg = &self.b.func.dfg;
        match dfg.value_def(v) {
            ValueDef::Result(inst, 0) => match dfg.insts[inst] {
                InstructionData::UnaryImm {
                    opcode: Opcode::Iconst,
                    imm,
                } => Some(imm.bits()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The trip count of a loop from `start` to `end` by `step`, when both
    /// bounds are constants and it is at most `UNROLL`: such a loop is
    /// emitted as that many copies of its body (a row of 10 values is two
    /// f32x4 steps and two scalar ones, with no branches between them).
    fn short_trip(&self, start: Value, end: Value, step: i64) -> Option<i64> {
        let (a, b) = (self.const_of(start)?, self.const_of(end)?);
        let n = if b > a { (b - a + step - 1) / step } else { 0 };
        (n <= UNROLL && self.unrolled * n.max(1) <= UNROLL_COPIES).then_some(n)
    }

    /// Emits `body` `n` times, the unrolled copies counted against
    /// `UNROLL_COPIES` by the loops inside it.
    fn unroll(&mut self, n: i64, body: &mut dyn FnMut(&mut Self, i64)) {
        let outer = self.unrolled;
        self.unrolled = outer * n.max(1);
        for k in 0..n {
            body(self, k);
        }
        self.unrolled = outer;
    }

    /// The buffer pointer of node `id` (in a row group, of its current row).
    fn buf(&mut self, id: NodeId) -> Value {
        if let Some(slot) = self.stack.get(&id) {
            return self.b.ins().stack_addr(types::I64, *slot, 0);
        }
        // The table does not change while a kernel runs: its loads may be
        // merged and hoisted out of the row loop.
        let base = self.b.ins().load(
            types::I64,
            MemFlagsData::trusted().with_readonly().with_can_move(),
            self.table,
            (id.index() * 8) as i32,
        );
        match &self.row {
            Some((r, bytes)) => match bytes.get(&id) {
                Some(&n) => {
                    let off = self.b.ins().imul_imm_s(*r, n);
                    self.b.ins().iadd(base, off)
                }
                None => base,
            },
            None => base,
        }
    }

    fn addr(&mut self, ptr: Value, off: Value, d: DType) -> Value {
        let size = super::exec::elem_size(d) as i64;
        let bytes = self.b.ins().imul_imm_s(off, size);
        self.b.ins().iadd(ptr, bytes)
    }

    fn load(&mut self, ptr: Value, off: Value, d: DType) -> Value {
        let a = self.addr(ptr, off, d);
        self.b
            .ins()
            .load(clif_type(d), MemFlagsData::trusted(), a, 0)
    }

    fn store(&mut self, ptr: Value, off: Value, d: DType, v: Value) {
        let a = self.addr(ptr, off, d);
        self.b.ins().store(MemFlagsData::trusted(), v, a, 0);
    }

    fn fconst(&mut self, d: DType, v: f64) -> Value {
        match d {
            DType::F32 => self.b.ins().f32const(v as f32),
            DType::F64 => self.b.ins().f64const(v),
            DType::I32 | DType::Bool => self.b.ins().iconst(types::I32, v as i64),
        }
    }

    fn call1(&mut self, f: Option<cranelift_codegen::ir::FuncRef>, args: &[Value]) -> Value {
        let f = f
            .unwrap_or_else(|| panic!("compiler bug: a kernel calls a function it did not import"));
        let inst = self.b.ins().call(f, args);
        self.b.inst_results(inst)[0]
    }

    /// Loops over `dims` (outermost first); `strides[k][l]` advances
    /// operand k along dim l; `body` gets each operand's offset and the
    /// loop indices.
    // The body closure's type is spelled out once here and in `level`.
    #[allow(clippy::type_complexity)]
    fn nest(
        &mut self,
        dims: &[Value],
        strides: &[Vec<Value>],
        bases: &[Value],
        body: &mut dyn FnMut(&mut Self, &[Value], &[Value]),
    ) {
        self.level(0, dims, strides, bases.to_vec(), Vec::new(), body);
    }

    #[allow(clippy::type_complexity)]
    fn level(
        &mut self,
        l: usize,
        dims: &[Value],
        strides: &[Vec<Value>],
        offs: Vec<Value>,
        idx: Vec<Value>,
        body: &mut dyn FnMut(&mut Self, &[Value], &[Value]),
    ) {
        if l == dims.len() {
            body(self, &offs, &idx);
            return;
        }
        let zero = self.iconst(0);
        if let Some(n) = self.short_trip(zero, dims[l], 1) {
            let mut cur = offs;
            self.unroll(n, &mut |kb, k| {
                let mut idx2 = idx.clone();
                idx2.push(kb.iconst(k));
                kb.level(l + 1, dims, strides, cur.clone(), idx2, body);
                cur = cur
                    .iter()
                    .enumerate()
                    .map(|(o, v)| kb.b.ins().iadd(*v, strides[o][l]))
                    .collect();
            });
            return;
        }
        let i = self.b.declare_var(types::I64);
        let zero = self.iconst(0);
        self.b.def_var(i, zero);
        let ov: Vec<_> = offs
            .iter()
            .map(|o| {
                let v = self.b.declare_var(types::I64);
                self.b.def_var(v, *o);
                v
            })
            .collect();
        let header = self.b.create_block();
        let inner = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let iv = self.b.use_var(i);
        let c = self.b.ins().icmp(IntCC::UnsignedLessThan, iv, dims[l]);
        self.b.ins().brif(c, inner, &[], exit, &[]);
        self.b.switch_to_block(inner);
        let cur: Vec<Value> = ov.iter().map(|v| self.b.use_var(*v)).collect();
        let iv = self.b.use_var(i);
        let mut idx2 = idx.clone();
        idx2.push(iv);
        self.level(l + 1, dims, strides, cur, idx2, body);
        let iv = self.b.use_var(i);
        let next = self.b.ins().iadd_imm_s(iv, 1);
        self.b.def_var(i, next);
        for (k, v) in ov.iter().enumerate() {
            let o = self.b.use_var(*v);
            let n = self.b.ins().iadd(o, strides[k][l]);
            self.b.def_var(*v, n);
        }
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(exit);
    }

    /// `for i in (start..end).step_by(step)`.
    fn range(
        &mut self,
        start: Value,
        end: Value,
        step: i64,
        body: &mut dyn FnMut(&mut Self, Value),
    ) {
        if let Some(n) = self.short_trip(start, end, step) {
            let a = self.const_of(start).unwrap_or(0);
            self.unroll(n, &mut |kb, k| {
                let j = kb.iconst(a + k * step);
                body(kb, j);
            });
            return;
        }
        let i = self.b.declare_var(types::I64);
        self.b.def_var(i, start);
        let header = self.b.create_block();
        let inner = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let iv = self.b.use_var(i);
        let c = self.b.ins().icmp(IntCC::SignedLessThan, iv, end);
        self.b.ins().brif(c, inner, &[], exit, &[]);
        self.b.switch_to_block(inner);
        let iv = self.b.use_var(i);
        body(self, iv);
        let iv = self.b.use_var(i);
        let next = self.b.ins().iadd_imm_s(iv, step);
        self.b.def_var(i, next);
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(exit);
    }

    /// Row-major strides of `s` with `axis` stepped by `step`, and the
    /// offset of element `start` along it.
    fn stepped_strides(
        &mut self,
        s: &Shape,
        axis: u32,
        start: u64,
        step: u64,
    ) -> (Vec<Value>, Value) {
        let mut st = self.strides_v(s);
        let a = axis as usize;
        let base = self.b.ins().imul_imm_s(st[a], start as i64);
        st[a] = self.b.ins().imul_imm_s(st[a], step as i64);
        (st, base)
    }

    fn dims(&mut self, s: &Shape) -> Vec<Value> {
        s.0.iter().map(|d| self.sz(Sz::of(*d))).collect()
    }

    fn strides_v(&mut self, s: &Shape) -> Vec<Value> {
        strides(s).into_iter().map(|z| self.sz(z)).collect()
    }

    /// Strides of an operand of shape `inp` read while walking `out`
    /// (NumPy broadcasting: stride 0 along stretched or missing axes).
    fn bstrides(&mut self, inp: &Shape, out: &Shape) -> Vec<Value> {
        let st = strides(inp);
        let off = out.rank() - inp.rank();
        (0..out.rank())
            .map(|i| {
                if i >= off && inp.0[i - off] != Dim::Fixed(1) {
                    self.sz(st[i - off])
                } else {
                    self.iconst(0)
                }
            })
            .collect()
    }

    /// A flat loop over `n` elements.
    fn flat(&mut self, n: Sz, body: &mut dyn FnMut(&mut Self, Value)) {
        let nv = self.sz(n);
        let one = self.iconst(1);
        let zero = self.iconst(0);
        self.nest(&[nv], &[vec![one]], &[zero], &mut |kb, offs, _| {
            body(kb, offs[0])
        });
    }
}

/// Copies element by element over `dims`, reading node `src` with (strides,
/// base) and writing buffer `out` with its (strides, base): transpose,
/// slice and pad are this loop with different strides.
fn strided_copy(
    kb: &mut Kb,
    src: NodeId,
    (sst, sbase): (Vec<Value>, Value),
    out: Value,
    (ost, obase): (Vec<Value>, Value),
    dims: &[Value],
    d: DType,
) {
    let sp = kb.buf(src);
    kb.nest(dims, &[sst, ost], &[sbase, obase], &mut |kb, offs, _| {
        let v = kb.load(sp, offs[0], d);
        kb.store(out, offs[1], d, v);
    });
}

/// Converts a scalar between dtypes (bool is i32 0/1).
fn convert(kb: &mut Kb, v: Value, from: DType, to: DType) -> Value {
    let b = &mut kb.b;
    match (from, to) {
        _ if from == to => v,
        (DType::F32, DType::F64) => b.ins().fpromote(types::F64, v),
        (DType::F64, DType::F32) => b.ins().fdemote(types::F32, v),
        (DType::F32 | DType::F64, DType::I32) => b.ins().fcvt_to_sint_sat(types::I32, v),
        (DType::I32 | DType::Bool, DType::F32 | DType::F64) => {
            b.ins().fcvt_from_sint(clif_type(to), v)
        }
        (DType::F32 | DType::F64, DType::Bool) => {
            let z = if from == DType::F32 {
                b.ins().f32const(0.0)
            } else {
                b.ins().f64const(0.0)
            };
            let c = b.ins().fcmp(FloatCC::NotEqual, v, z);
            b.ins().uextend(types::I32, c)
        }
        (DType::I32, DType::Bool) => {
            let c = b.ins().icmp_imm_s(IntCC::NotEqual, v, 0);
            b.ins().uextend(types::I32, c)
        }
        (DType::Bool, DType::I32) => v,
        _ => v,
    }
}

fn unary(kb: &mut Kb, op: &Op, x: Value, d: DType) -> Value {
    let float = d.is_float();
    let f32t = d == DType::F32;
    match op {
        Op::Neg if float => kb.b.ins().fneg(x),
        Op::Neg => kb.b.ins().ineg(x),
        Op::Recip => {
            let one = kb.fconst(d, 1.0);
            kb.b.ins().fdiv(one, x)
        }
        // f32: inline polynomials (math.rs); f64: libm through Rust.
        Op::Exp if f32t => inline::exp(kb.b, false, x),
        Op::Log if f32t => inline::ln(kb.b, false, x),
        Op::Tanh if f32t => inline::tanh(kb.b, false, x),
        Op::Sigmoid if f32t => inline::sigmoid(kb.b, false, x),
        Op::Exp => kb.call1(kb.ext.exp, &[x]),
        Op::Log => kb.call1(kb.ext.log, &[x]),
        Op::Tanh => kb.call1(kb.ext.tanh, &[x]),
        Op::Sin if f32t => kb.call1(kb.ext.sinf, &[x]),
        Op::Cos if f32t => kb.call1(kb.ext.cosf, &[x]),
        Op::Sin => kb.call1(kb.ext.sin, &[x]),
        Op::Cos => kb.call1(kb.ext.cos, &[x]),
        Op::Floor => kb.b.ins().floor(x),
        Op::Sigmoid => kb.call1(kb.ext.sigmoid, &[x]),
        Op::Sqrt => kb.b.ins().sqrt(x),
        Op::Abs if float => kb.b.ins().fabs(x),
        Op::Abs => kb.b.ins().iabs(x),
        _ => x,
    }
}

fn binary(kb: &mut Kb, op: &Op, x: Value, y: Value, d: DType) -> Value {
    let float = d.is_float();
    match op {
        Op::Add if float => kb.b.ins().fadd(x, y),
        Op::Add => kb.b.ins().iadd(x, y),
        Op::Mul if float => kb.b.ins().fmul(x, y),
        Op::Mul => kb.b.ins().imul(x, y),
        Op::Max if float => kb.b.ins().fmax(x, y),
        Op::Max => kb.b.ins().smax(x, y),
        Op::Pow => kb.call1(
            if d == DType::F32 {
                kb.ext.powf
            } else {
                kb.ext.pow
            },
            &[x, y],
        ),
        Op::Cmp(c) => {
            let r = if float {
                kb.b.ins().fcmp(float_cc(*c), x, y)
            } else {
                let cc = match c {
                    CmpOp::Eq => IntCC::Equal,
                    CmpOp::Ne => IntCC::NotEqual,
                    CmpOp::Lt => IntCC::SignedLessThan,
                    CmpOp::Le => IntCC::SignedLessThanOrEqual,
                    CmpOp::Gt => IntCC::SignedGreaterThan,
                    CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
                };
                kb.b.ins().icmp(cc, x, y)
            };
            kb.b.ins().uextend(types::I32, r)
        }
        _ => x,
    }
}

fn float_cc(c: CmpOp) -> FloatCC {
    match c {
        CmpOp::Eq => FloatCC::Equal,
        CmpOp::Ne => FloatCC::NotEqual,
        CmpOp::Lt => FloatCC::LessThan,
        CmpOp::Le => FloatCC::LessThanOrEqual,
        CmpOp::Gt => FloatCC::GreaterThan,
        CmpOp::Ge => FloatCC::GreaterThanOrEqual,
    }
}

/// splitmix64's finalizer in CLIF (see `rng::mix`).
fn mix(kb: &mut Kb, z: Value) -> Value {
    let b = &mut kb.b;
    let s = b.ins().ushr_imm_u(z, 30);
    let z = b.ins().bxor(z, s);
    let z = b.ins().imul_imm_s(z, 0xbf58_476d_1ce4_e5b9_u64 as i64);
    let s = b.ins().ushr_imm_u(z, 27);
    let z = b.ins().bxor(z, s);
    let z = b.ins().imul_imm_s(z, 0x94d0_49bb_1331_11eb_u64 as i64);
    let s = b.ins().ushr_imm_u(z, 31);
    b.ins().bxor(z, s)
}

const GOLDEN: i64 = 0x9e37_79b9_7f4a_7c15_u64 as i64;

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

/// What every node's lowering starts from: its type, dtype and buffer, its
/// operands and their types.
struct Site {
    out_t: crate::ir::Type,
    d: DType,
    out: Value,
    ins: Vec<NodeId>,
    in_t: Vec<crate::ir::Type>,
}

impl Site {
    /// The output's type, dtype and buffer, the operands and their types.
    fn parts(
        &self,
    ) -> (
        &crate::ir::Type,
        DType,
        Value,
        &[NodeId],
        &[crate::ir::Type],
    ) {
        (&self.out_t, self.d, self.out, &self.ins, &self.in_t)
    }
}

/// Elementwise ops (unary, binary, `select`, casts and broadcasts): one
/// loop nest over the output, f32x4 where `vector_plan` allows.
fn elementwise(kb: &mut Kb, g: &Graph, id: NodeId, site: &Site) {
    let (out_t, d, out, ins, in_t) = site.parts();
    let node = g.node(id);
    let dims = kb.dims(&out_t.shape);
    let mut strides = vec![kb.strides_v(&out_t.shape)];
    let mut ptrs = Vec::new();
    for (i, t) in ins.iter().zip(in_t) {
        strides.push(kb.bstrides(&t.shape, &out_t.shape));
        ptrs.push(kb.buf(*i));
    }
    let zero = kb.iconst(0);
    let bases = vec![zero; strides.len()];
    let op = node.op.clone();
    let in_dt: Vec<DType> = in_t.iter().map(|t| t.dtype).collect();
    if let Some(inner) = vector_plan(&op, out_t, in_t) {
        elementwise_f32x4(kb, &op, out, &ptrs, &in_dt, d, &dims, &strides, &inner);
        return;
    }
    kb.nest(&dims, &strides, &bases, &mut |kb, offs, _| {
        let vals: Vec<Value> = ptrs
            .iter()
            .zip(&in_dt)
            .zip(&offs[1..])
            .map(|((p, t), o)| kb.load(*p, *o, *t))
            .collect();
        let r = match &op {
            Op::Cast => convert(kb, vals[0], in_dt[0], d),
            Op::StopGradient | Op::Broadcast | Op::AllReduce => vals[0],
            Op::Add | Op::Mul | Op::Max | Op::Pow | Op::Cmp(_) => {
                binary(kb, &op, vals[0], vals[1], in_dt[0])
            }
            Op::Select => {
                let c = kb.b.ins().icmp_imm_s(IntCC::NotEqual, vals[0], 0);
                kb.b.ins().select(c, vals[1], vals[2])
            }
            other => unary(kb, other, vals[0], d),
        };
        kb.store(out, offs[0], d, r);
    });
}

/// A reshape: the values copied in order.
fn reshape(kb: &mut Kb, site: &Site) {
    let (out_t, d, out, ins, _) = site.parts();
    let src = kb.buf(ins[0]);
    kb.flat(numel(&out_t.shape), &mut |kb, o| {
        let v = kb.load(src, o, d);
        kb.store(out, o, d, v);
    });
}

/// A transpose: the input read with permuted strides.
fn transpose(kb: &mut Kb, site: &Site, perm: &[u8]) {
    let (out_t, d, out, ins, in_t) = site.parts();
    // out[i] = x[i permuted]: the input read with permuted strides.
    let dims = kb.dims(&out_t.shape);
    let ist = kb.strides_v(&in_t[0].shape);
    let pst: Vec<Value> = perm.iter().map(|p| ist[*p as usize]).collect();
    let ost = kb.strides_v(&out_t.shape);
    let zero = kb.iconst(0);
    strided_copy(kb, ins[0], (pst, zero), out, (ost, zero), &dims, d);
}

/// A strided slice along `axis`.
fn slice(kb: &mut Kb, site: &Site, (axis, start, step): (u32, u64, u64)) {
    let (out_t, d, out, ins, in_t) = site.parts();
    // The input read from `start` with its axis stride scaled by `step`.
    let dims = kb.dims(&out_t.shape);
    let (ist, base) = kb.stepped_strides(&in_t[0].shape, axis, start, step);
    let ost = kb.strides_v(&out_t.shape);
    let zero = kb.iconst(0);
    strided_copy(kb, ins[0], (ist, base), out, (ost, zero), &dims, d);
}

/// Zeros with the input written at strided positions along `axis`.
fn pad(kb: &mut Kb, site: &Site, (axis, start, step): (u32, u64, u64)) {
    let (out_t, d, out, ins, in_t) = site.parts();
    // Zeros, then the input written at its strided positions (the
    // mirror image of Slice).
    kb.flat(numel(&out_t.shape), &mut |kb, o| {
        let z = kb.fconst(d, 0.0);
        kb.store(out, o, d, z);
    });
    let dims = kb.dims(&in_t[0].shape);
    let ist = kb.strides_v(&in_t[0].shape);
    let (ost, base) = kb.stepped_strides(&out_t.shape, axis, start, step);
    let zero = kb.iconst(0);
    strided_copy(kb, ins[0], (ist, zero), out, (ost, base), &dims, d);
}

/// The index along `axis` at every position.
fn iota(kb: &mut Kb, site: &Site, axis: u32) {
    let (out_t, d, out, _, _) = site.parts();
    let dims = kb.dims(&out_t.shape);
    let ost = kb.strides_v(&out_t.shape);
    let zero = kb.iconst(0);
    let a = axis as usize;
    kb.nest(&dims, &[ost], &[zero], &mut |kb, offs, idx| {
        let i32v = kb.b.ins().ireduce(types::I32, idx[a]);
        let v = convert(kb, i32v, DType::I32, d);
        kb.store(out, offs[0], d, v);
    });
}

/// The run-time batch size as a scalar.
fn batch_size(kb: &mut Kb, site: &Site) {
    let (_, d, out, _, _) = site.parts();
    let b32 = kb.b.ins().ireduce(types::I32, kb.batch);
    let v = convert(kb, b32, DType::I32, d);
    let zero = kb.iconst(0);
    kb.store(out, zero, d, v);
}

/// Counter-based random numbers keyed by the seed, the step and the
/// stream, as `rng::key` computes them (f32 uniforms by a call to
/// `exec::dlc_rng_uniformf`).
fn random(kb: &mut Kb, site: &Site, dist: Dist, stream: u32) {
    let (out_t, d, out, ins, _) = site.parts();
    // key = mix((mix(seed ^ GOLDEN) + step) ^ (stream << 32 | 0x5bd1)), as rng::key
    let sb = kb.buf(ins[0]);
    let zero = kb.iconst(0);
    let step32 = kb.load(sb, zero, DType::I32);
    let step = kb.b.ins().sextend(types::I64, step32);
    let g1 = kb.b.ins().bxor_imm_s(kb.seed, GOLDEN);
    let m1 = mix(kb, g1);
    let s1 = kb.b.ins().iadd(m1, step);
    let x =
        kb.b.ins()
            .bxor_imm_s(s1, ((u64::from(stream) << 32) | 0x5bd1) as i64);
    let key = mix(kb, x);
    // Rows [lo, hi) of the first axis (a scalar is one row), so that a
    // large draw is split across threads; element i is bits(key, i)
    // whichever thread computes it.
    let n = kb.sz(numel(&out_t.shape));
    let inner = Shape(out_t.shape.0.iter().skip(1).copied().collect());
    let inner = kb.sz(numel(&inner));
    let start = kb.b.ins().imul(kb.lo, inner);
    let end = kb.b.ins().imul(kb.hi, inner);
    let end = kb.b.ins().smin(end, n);
    let start = kb.b.ins().smin(start, end);
    // A data-parallel step's first row is row `first` of the global batch:
    // element i here is element first·inner + i of the global draw.
    let first = match ins.get(1) {
        Some(f) => {
            let fb = kb.buf(*f);
            let f32v = kb.load(fb, zero, DType::I32);
            let f64v = kb.b.ins().sextend(types::I64, f32v);
            kb.b.ins().imul(f64v, inner)
        }
        None => kb.iconst(0),
    };
    if dist == Dist::Uniform && d == DType::F32 {
        // In Rust, eight at a time with AVX2 where the host has it (the
        // 64-bit mixes as 32-bit vector multiplies, which Cranelift's
        // 128-bit vectors cannot do for 64-bit lanes).
        kb.call1(kb.ext.uniformf, &[key, first, start, end, out]);
        return;
    }
    kb.range(start, end, 1, &mut |kb, i| {
        let at = kb.b.ins().iadd(i, first);
        let v = match dist {
            Dist::Uniform => {
                let t = kb.b.ins().imul_imm_s(at, GOLDEN);
                let z = kb.b.ins().iadd(key, t);
                let bits = mix(kb, z);
                // 24 bits: exact as an i32, and times 2⁻²⁴ exact.
                let top = kb.b.ins().ushr_imm_u(bits, 40);
                let top = kb.b.ins().ireduce(types::I32, top);
                let f = kb.b.ins().fcvt_from_sint(types::F64, top);
                let scale = kb.fconst(DType::F64, 1.0 / (1u64 << 24) as f64);
                let u = kb.b.ins().fmul(f, scale);
                convert(kb, u, DType::F64, d)
            }
            Dist::Normal => {
                let n = kb.call1(kb.ext.normal, &[key, at]);
                convert(kb, n, DType::F64, d)
            }
        };
        kb.store(out, i, d, v);
    });
}

/// A sum or max over the `axes` bitmask.
fn reduce(kb: &mut Kb, g: &Graph, id: NodeId, site: &Site, axes: u32) {
    let (out_t, d, out, ins, in_t) = site.parts();
    let node = g.node(id);
    let is_sum = matches!(node.op, Op::ReduceSum { .. });
    let init = if is_sum {
        0.0
    } else if d.is_float() {
        f64::NEG_INFINITY
    } else {
        f64::from(i32::MIN)
    };
    kb.flat(numel(&out_t.shape), &mut |kb, o| {
        let z = kb.fconst(d, init);
        kb.store(out, o, d, z);
    });
    let src = kb.buf(ins[0]);
    let it = &in_t[0].shape;
    let dims = kb.dims(it);
    let ist = kb.strides_v(it);
    // Output strides along the input's axes: 0 on reduced ones.
    let kept: Vec<usize> = (0..it.rank()).filter(|i| axes & (1 << i) == 0).collect();
    let ost_kept = kb.strides_v(&out_t.shape);
    let ost: Vec<Value> = (0..it.rank())
        .map(|i| match kept.iter().position(|k| *k == i) {
            Some(p) => ost_kept[p],
            None => kb.iconst(0),
        })
        .collect();
    let zero = kb.iconst(0);
    let r = it.rank();
    if d == DType::F32 && r >= 2 && axes & (1 << (r - 1)) == 0 {
        reduce_f32x4(kb, (src, out), (&dims, &ist, &ost), (axes, zero), is_sum);
        return;
    }
    kb.nest(&dims, &[ist, ost], &[zero, zero], &mut |kb, offs, _| {
        let v = kb.load(src, offs[0], d);
        let acc = kb.load(out, offs[1], d);
        let r = match (is_sum, d.is_float()) {
            (true, true) => kb.b.ins().fadd(acc, v),
            (true, false) => kb.b.ins().iadd(acc, v),
            (false, true) => kb.b.ins().fmax(acc, v),
            (false, false) => kb.b.ins().smax(acc, v),
        };
        kb.store(out, offs[1], d, r);
    });
}

/// A float32 reduction that keeps the innermost axis, contiguous in input
/// and output: four accumulators at a time, each summed in the same order
/// as the scalar loop.
fn reduce_f32x4(
    kb: &mut Kb,
    (src, out): (Value, Value),
    (dims, ist, ost): (&[Value], &[Value], &[Value]),
    (axes, zero): (u32, Value),
    is_sum: bool,
) {
    let d = DType::F32;
    let r = dims.len();
    let len = dims[r - 1];
    let flags = MemFlagsData::new().with_notrap();
    let v4 = types::F32X4;
    // Column sums first, sixteen at a time; the columns left over take
    // the loop below.
    let mut start = kb.iconst(0);
    if (0..r - 1).all(|i| axes & (1 << i) != 0) {
        start = column_sums_x16(kb, (src, out), (dims, ist), start, is_sum);
    }
    let outer: Vec<Vec<Value>> = vec![ist[..r - 1].to_vec(), ost[..r - 1].to_vec()];
    kb.nest(&dims[..r - 1], &outer, &[zero, zero], &mut |kb, offs, _| {
        let len4 = match kb.const_of(len) {
            Some(n) => kb.iconst(n & !3),
            None => kb.b.ins().band_imm_s(len, !3),
        };
        let (si, so) = (offs[0], offs[1]);
        kb.range(start, len4, 4, &mut |kb, j| {
            let oi = kb.b.ins().iadd(si, j);
            let ai = kb.addr(src, oi, d);
            let oo = kb.b.ins().iadd(so, j);
            let ao = kb.addr(out, oo, d);
            let v = kb.b.ins().load(v4, flags, ai, 0);
            let acc = kb.b.ins().load(v4, flags, ao, 0);
            let r = if is_sum {
                kb.b.ins().fadd(acc, v)
            } else {
                kb.b.ins().fmax(acc, v)
            };
            kb.b.ins().store(flags, r, ao, 0);
        });
        kb.range(len4, len, 1, &mut |kb, j| {
            let oi = kb.b.ins().iadd(si, j);
            let oo = kb.b.ins().iadd(so, j);
            let v = kb.load(src, oi, d);
            let acc = kb.load(out, oo, d);
            let r = if is_sum {
                kb.b.ins().fadd(acc, v)
            } else {
                kb.b.ins().fmax(acc, v)
            };
            kb.store(out, oo, d, r);
        });
    });
}

/// Every axis but the innermost reduced (a bias gradient's column sums):
/// sixteen columns at a time go down all the rows in four vector
/// registers, each column still summed in row order. Returns where the
/// columns left over start.
fn column_sums_x16(
    kb: &mut Kb,
    (src, out): (Value, Value),
    (dims, ist): (&[Value], &[Value]),
    start: Value,
    is_sum: bool,
) -> Value {
    let d = DType::F32;
    let r = dims.len();
    let len = dims[r - 1];
    let flags = MemFlagsData::new().with_notrap();
    let v4 = types::F32X4;
    let len16 = match kb.const_of(len) {
        Some(n) => kb.iconst(n & !15),
        None => kb.b.ins().band_imm_s(len, !15),
    };
    let outer_ist = vec![ist[..r - 1].to_vec()];
    kb.range(start, len16, 16, &mut |kb, j| {
        let vars: Vec<_> = (0..4)
            .map(|k| {
                let o = kb.b.ins().iadd_imm_s(j, 4 * k);
                let a = kb.addr(out, o, d);
                let acc = kb.b.ins().load(v4, flags, a, 0);
                let var = kb.b.declare_var(v4);
                kb.b.def_var(var, acc);
                (var, a)
            })
            .collect();
        let z = kb.iconst(0);
        kb.nest(&dims[..r - 1], &outer_ist, &[z], &mut |kb, offs, _| {
            for (k, (var, _)) in vars.iter().enumerate() {
                let o = kb.b.ins().iadd(offs[0], j);
                let o = kb.b.ins().iadd_imm_s(o, 4 * k as i64);
                let a = kb.addr(src, o, d);
                let v = kb.b.ins().load(v4, flags, a, 0);
                let acc = kb.b.use_var(*var);
                let r = if is_sum {
                    kb.b.ins().fadd(acc, v)
                } else {
                    kb.b.ins().fmax(acc, v)
                };
                kb.b.def_var(*var, r);
            }
        });
        for (var, a) in &vars {
            let acc = kb.b.use_var(*var);
            kb.b.ins().store(flags, acc, *a, 0);
        }
    });
    len16
}

/// The index of the largest value along `axis` (NaN counts as the
/// largest; the first wins).
fn argmax(kb: &mut Kb, site: &Site, axis: u32) {
    let (out_t, _, out, ins, in_t) = site.parts();
    let src = kb.buf(ins[0]);
    let it = in_t[0].clone();
    let a = axis as usize;
    let dims = kb.dims(&out_t.shape);
    let ost = kb.strides_v(&out_t.shape);
    let ist_all = kb.strides_v(&it.shape);
    let ist: Vec<Value> = (0..it.shape.rank())
        .filter(|i| *i != a)
        .map(|i| ist_all[i])
        .collect();
    let len = kb.sz(Sz::of(it.shape.0[a]));
    let astride = ist_all[a];
    let idt = it.dtype;
    let zero = kb.iconst(0);
    kb.nest(&dims, &[ost, ist], &[zero, zero], &mut |kb, offs, _| {
        let base = offs[1];
        let best_i = kb.b.declare_var(types::I64);
        let best_v = kb.b.declare_var(clif_type(idt));
        let z = kb.iconst(0);
        kb.b.def_var(best_i, z);
        let v0 = kb.load(src, base, idt);
        kb.b.def_var(best_v, v0);
        let one = kb.iconst(1);
        kb.nest(
            &[len],
            &[vec![astride], vec![one]],
            &[base, z],
            &mut |kb, o, _| {
                let v = kb.load(src, o[0], idt);
                let cur = kb.b.use_var(best_v);
                let better = if idt.is_float() {
                    // NaN counts as the maximum; the first one wins.
                    let gt = kb.b.ins().fcmp(FloatCC::GreaterThan, v, cur);
                    let vnan = kb.b.ins().fcmp(FloatCC::Unordered, v, v);
                    let cnan = kb.b.ins().fcmp(FloatCC::Unordered, cur, cur);
                    let either = kb.b.ins().bor(gt, vnan);
                    let notc = kb.b.ins().bxor_imm_s(cnan, 1);
                    kb.b.ins().band(either, notc)
                } else {
                    kb.b.ins().icmp(IntCC::SignedGreaterThan, v, cur)
                };
                let ci = kb.b.use_var(best_i);
                let ni = kb.b.ins().select(better, o[1], ci);
                let nv = kb.b.ins().select(better, v, cur);
                kb.b.def_var(best_i, ni);
                kb.b.def_var(best_v, nv);
            },
        );
        let bi = kb.b.use_var(best_i);
        let b32 = kb.b.ins().ireduce(types::I32, bi);
        kb.store(out, offs[0], DType::I32, b32);
    });
}

/// A call into `linalg.rs` (nalgebra) on the whole matrix.
fn linalg(kb: &mut Kb, site: &Site, kind: crate::ir::Linalg) {
    let (out_t, d, out, ins, in_t) = site.parts();
    // A call into `linalg.rs` (nalgebra) on the whole matrix.
    let code = super::exec::LINALG
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

/// A matmul over output rows [lo, hi) (the whole output, or one thread's
/// share), strip by strip: f32 in 4×8 register tiles of f32x4
/// accumulators, 1×8 tiles for the rows left over and scalar dot products
/// for the ragged right columns; other dtypes by scalar dot products.
/// After each strip, `epilogue(start, end)` runs on its rows.
fn lower_matmul(
    kb: &mut Kb,
    g: &Graph,
    id: NodeId,
    epilogue: &mut dyn FnMut(&mut Kb, Value, Value),
) {
    let node = g.node(id);
    let d = node.ty.dtype;
    let ins = &node.inputs;
    let (ta, tb) = (g.ty(ins[0]), g.ty(ins[1]));
    let (m, k, n) = (
        Sz::of(ta.shape.0[0]),
        Sz::of(ta.shape.0[1]),
        Sz::of(tb.shape.0[1]),
    );
    let (mv, kv, nv) = (kb.sz(m), kb.sz(k), kb.sz(n));
    let one = kb.iconst(1);
    // a[i, p] is at i·sa_i + p·sa_p: [k, 1] as stored, or [1, m] when a is
    // a transpose read from its untransposed input.
    let (pa, sa) = match kb.inline.get(&ins[0]).copied() {
        Some(x) => (kb.buf(x), (one, mv)),
        None => (kb.buf(ins[0]), (kv, one)),
    };
    // b[p, j] at p·sb_p + j·sb_j: [n, 1] as stored, or [1, k] when b is a
    // transpose read from its untransposed input (g·Wᵀ).
    let (pb, sb) = match kb.inline.get(&ins[1]).copied() {
        Some(x) => (kb.buf(x), (one, kv)),
        None => (kb.buf(ins[1]), (nv, one)),
    };
    let out = kb.buf(id);
    let zero = kb.iconst(0);
    let (lo, hi) = (kb.lo, kb.hi);
    if d != DType::F32 {
        kb.range(lo, hi, 1, &mut |kb, i| {
            kb.range(zero, nv, 1, &mut |kb, j| {
                scalar_dot(kb, pa, sa, pb, sb, out, i, j, kv, nv, d)
            });
            let next = kb.b.ins().iadd_imm_s(i, 1);
            epilogue(kb, i, next);
        });
        return;
    }
    let n8 = kb.b.ins().band_imm_s(nv, !7);
    // Blocks of `TILE_ROWS` rows: a full block is one strip of 4, the last
    // (short) one strips of 1 (loops of one trip or none, so that the
    // epilogue, often most of the kernel's code, is emitted only once).
    kb.range(lo, hi, TILE_ROWS as i64, &mut |kb, i| {
        let full = kb.b.ins().iadd_imm_s(i, TILE_ROWS as i64);
        let next = kb.b.ins().smin(full, hi);
        let whole = kb.b.ins().isub(next, i);
        let whole = kb.b.ins().udiv_imm_u(whole, TILE_ROWS as i64);
        let whole = kb.b.ins().imul_imm_s(whole, TILE_ROWS as i64);
        let tiled = kb.b.ins().iadd(i, whole);
        for (start, end, rows) in [(i, tiled, TILE_ROWS), (tiled, next, 1)] {
            kb.range(start, end, rows as i64, &mut |kb, r0| {
                matmul_strip(kb, pa, sa, pb, sb, out, r0, n8, kv, nv, rows);
                let r1 = kb.b.ins().iadd_imm_s(r0, rows as i64);
                kb.range(r0, r1, 1, &mut |kb, r| {
                    kb.range(n8, nv, 1, &mut |kb, j| {
                        scalar_dot(kb, pa, sa, pb, sb, out, r, j, kv, nv, d)
                    });
                });
            });
        }
        epilogue(kb, i, next);
    });
}

/// The f32 math of `math.rs`, emitted inline (same operation order), on
/// one f32 or on four lanes of an f32x4: constants are splat and selects
/// become bit-selects on lane masks.
pub mod inline {
    use cranelift_codegen::ir::condcodes::FloatCC;
    use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};
    use cranelift_frontend::FunctionBuilder;

    use super::super::math::{EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, LOG_P, TANH_P};

    /// Lane types: (float, int).
    fn tys(vector: bool) -> (Type, Type) {
        if vector {
            (types::F32X4, types::I32X4)
        } else {
            (types::F32, types::I32)
        }
    }

    fn c(b: &mut FunctionBuilder, vector: bool, v: f32) -> Value {
        let x = b.ins().f32const(v);
        if vector {
            b.ins().splat(types::F32X4, x)
        } else {
            x
        }
    }

    fn ci(b: &mut FunctionBuilder, vector: bool, v: i32) -> Value {
        let x = b.ins().iconst(types::I32, i64::from(v));
        if vector {
            b.ins().splat(types::I32X4, x)
        } else {
            x
        }
    }

    fn bits(vector: bool) -> MemFlagsData {
        if vector {
            MemFlagsData::new().with_endianness(Endianness::Little)
        } else {
            MemFlagsData::new()
        }
    }

    /// where(cond, a, b) for a comparison result `cond`.
    fn sel(b: &mut FunctionBuilder, vector: bool, cond: Value, x: Value, y: Value) -> Value {
        if vector {
            let mask = b.ins().bitcast(types::F32X4, bits(true), cond);
            b.ins().bitselect(mask, x, y)
        } else {
            b.ins().select(cond, x, y)
        }
    }

    fn pow2i(b: &mut FunctionBuilder, vector: bool, n: Value) -> Value {
        let (ft, _) = tys(vector);
        let k = ci(b, vector, 127);
        let biased = b.ins().iadd(n, k);
        let sh = b.ins().ishl_imm_u(biased, 23);
        b.ins().bitcast(ft, bits(vector), sh)
    }

    pub fn exp(b: &mut FunctionBuilder, vector: bool, x: Value) -> Value {
        let (_, it) = tys(vector);
        let (lo, hi) = (c(b, vector, EXP_LO), c(b, vector, EXP_HI));
        let xm = b.ins().fmax(x, lo);
        let xc = b.ins().fmin(xm, hi);
        let l2e = c(b, vector, LOG2E);
        let t = b.ins().fmul(xc, l2e);
        let n = b.ins().nearest(t);
        let (h1, h2) = (c(b, vector, LN2_HI), c(b, vector, LN2_LO));
        let t1 = b.ins().fmul(n, h1);
        let r1 = b.ins().fsub(xc, t1);
        let t2 = b.ins().fmul(n, h2);
        let r = b.ins().fsub(r1, t2);
        let mut p = c(b, vector, EXP_P[0]);
        for k in &EXP_P[1..] {
            let m = b.ins().fmul(p, r);
            let kc = c(b, vector, *k);
            p = b.ins().fadd(m, kc);
        }
        let pr = b.ins().fmul(p, r);
        let prr = b.ins().fmul(pr, r);
        let s = b.ins().fadd(prr, r);
        let one = c(b, vector, 1.0);
        let p = b.ins().fadd(s, one);
        let ni = b.ins().fcvt_to_sint_sat(it, n);
        let h = b.ins().sshr_imm_u(ni, 1);
        let rest = b.ins().isub(ni, h);
        let ph = pow2i(b, vector, h);
        let pr = pow2i(b, vector, rest);
        let y1 = b.ins().fmul(p, ph);
        let y = b.ins().fmul(y1, pr);
        let over = b.ins().fcmp(FloatCC::GreaterThan, x, hi);
        let inf = c(b, vector, f32::INFINITY);
        let y = sel(b, vector, over, inf, y);
        let under = b.ins().fcmp(FloatCC::LessThan, x, lo);
        let zero = c(b, vector, 0.0);
        sel(b, vector, under, zero, y)
    }

    pub fn ln(b: &mut FunctionBuilder, vector: bool, x: Value) -> Value {
        let (ft, it) = tys(vector);
        let minp = c(b, vector, f32::MIN_POSITIVE);
        let small = b.ins().fcmp(FloatCC::LessThan, x, minp);
        let scale = c(b, vector, 8_388_608.0);
        let xscaled = b.ins().fmul(x, scale);
        let xs = sel(b, vector, small, xscaled, x);
        let bts = b.ins().bitcast(it, bits(vector), xs);
        let sh = b.ins().ushr_imm_u(bts, 23);
        let ff = ci(b, vector, 0xff);
        let ex = b.ins().band(sh, ff);
        let k126 = ci(b, vector, -126);
        let e0 = b.ins().iadd(ex, k126);
        let k23 = ci(b, vector, -23);
        let e23 = b.ins().iadd(e0, k23);
        // Integer lanes select through the same mask (as floats).
        let e0f = b.ins().bitcast(ft, bits(vector), e0);
        let e23f = b.ins().bitcast(ft, bits(vector), e23);
        let ef = sel(b, vector, small, e23f, e0f);
        let e = b.ins().bitcast(it, bits(vector), ef);
        let mmask = ci(b, vector, 0x807f_ffff_u32 as i32);
        let mb = b.ins().band(bts, mmask);
        let half_exp = ci(b, vector, 0x3f00_0000);
        let mb = b.ins().bor(mb, half_exp);
        let m = b.ins().bitcast(ft, bits(vector), mb);
        let rt = c(b, vector, std::f32::consts::FRAC_1_SQRT_2);
        let lt = b.ins().fcmp(FloatCC::LessThan, m, rt);
        let m1i = ci(b, vector, -1);
        let em1 = b.ins().iadd(e, m1i);
        let em1f = b.ins().bitcast(ft, bits(vector), em1);
        let ef = b.ins().bitcast(ft, bits(vector), e);
        let ef = sel(b, vector, lt, em1f, ef);
        let e = b.ins().bitcast(it, bits(vector), ef);
        let one = c(b, vector, 1.0);
        let m2 = b.ins().fadd(m, m);
        let m2 = b.ins().fsub(m2, one);
        let m1 = b.ins().fsub(m, one);
        let m = sel(b, vector, lt, m2, m1);
        let z = b.ins().fmul(m, m);
        let mut y = c(b, vector, LOG_P[0]);
        for k in &LOG_P[1..] {
            let t = b.ins().fmul(y, m);
            let kc = c(b, vector, *k);
            y = b.ins().fadd(t, kc);
        }
        let ym = b.ins().fmul(y, m);
        let y = b.ins().fmul(ym, z);
        let ef = b.ins().fcvt_from_sint(ft, e);
        let lo = c(b, vector, LN2_LO);
        let t = b.ins().fmul(ef, lo);
        let y = b.ins().fadd(y, t);
        let half = c(b, vector, -0.5);
        let t = b.ins().fmul(half, z);
        let y = b.ins().fadd(y, t);
        let hi = c(b, vector, LN2_HI);
        let t = b.ins().fmul(ef, hi);
        let s = b.ins().fadd(m, y);
        let r = b.ins().fadd(s, t);
        // x < 0 or NaN → NaN; 0 → −inf; +inf → +inf
        let zero = c(b, vector, 0.0);
        let nan = c(b, vector, f32::NAN);
        let neg = b.ins().fcmp(FloatCC::UnorderedOrLessThan, x, zero);
        let r = sel(b, vector, neg, nan, r);
        let is0 = b.ins().fcmp(FloatCC::Equal, x, zero);
        let ninf = c(b, vector, f32::NEG_INFINITY);
        let r = sel(b, vector, is0, ninf, r);
        let inf = c(b, vector, f32::INFINITY);
        let isinf = b.ins().fcmp(FloatCC::Equal, x, inf);
        sel(b, vector, isinf, inf, r)
    }

    pub fn tanh(b: &mut FunctionBuilder, vector: bool, x: Value) -> Value {
        let a = b.ins().fabs(x);
        let z = b.ins().fmul(x, x);
        let mut p = c(b, vector, TANH_P[0]);
        for k in &TANH_P[1..] {
            let t = b.ins().fmul(p, z);
            let kc = c(b, vector, *k);
            p = b.ins().fadd(t, kc);
        }
        let pz = b.ins().fmul(p, z);
        let pzx = b.ins().fmul(pz, x);
        let small = b.ins().fadd(pzx, x);
        let a2 = b.ins().fadd(a, a);
        let e = exp(b, vector, a2);
        let one = c(b, vector, 1.0);
        let two = c(b, vector, 2.0);
        let e1 = b.ins().fadd(e, one);
        let q = b.ins().fdiv(two, e1);
        let big = b.ins().fsub(one, q);
        let zero = c(b, vector, 0.0);
        let negx = b.ins().fcmp(FloatCC::LessThan, x, zero);
        let nbig = b.ins().fneg(big);
        let big = sel(b, vector, negx, nbig, big);
        let lim = c(b, vector, 0.625);
        let is_small = b.ins().fcmp(FloatCC::LessThan, a, lim);
        sel(b, vector, is_small, small, big)
    }

    pub fn sigmoid(b: &mut FunctionBuilder, vector: bool, x: Value) -> Value {
        let nx = b.ins().fneg(x);
        let e = exp(b, vector, nx);
        let one = c(b, vector, 1.0);
        let d = b.ins().fadd(one, e);
        b.ins().fdiv(one, d)
    }
}

/// out[i, j] = Σₚ a[i, p]·b[p, j], one element (the ragged edges).
#[allow(clippy::too_many_arguments)]
fn scalar_dot(
    kb: &mut Kb,
    pa: Value,
    (sa_i, sa_p): (Value, Value),
    pb: Value,
    (sb_p, sb_j): (Value, Value),
    out: Value,
    i: Value,
    j: Value,
    kv: Value,
    nv: Value,
    d: DType,
) {
    let acc = kb.b.declare_var(clif_type(d));
    let z = kb.fconst(d, 0.0);
    kb.b.def_var(acc, z);
    let a0 = kb.b.ins().imul(i, sa_i);
    let b0 = kb.b.ins().imul(j, sb_j);
    let zero = kb.iconst(0);
    kb.range(zero, kv, 1, &mut |kb, p| {
        let pa_off = kb.b.ins().imul(p, sa_p);
        let ao = kb.b.ins().iadd(a0, pa_off);
        let pb_off = kb.b.ins().imul(p, sb_p);
        let bo = kb.b.ins().iadd(b0, pb_off);
        let x = kb.load(pa, ao, d);
        let y = kb.load(pb, bo, d);
        let prod = kb.b.ins().fmul(x, y);
        let a = kb.b.use_var(acc);
        let s = kb.b.ins().fadd(a, prod);
        kb.b.def_var(acc, s);
    });
    let a = kb.b.use_var(acc);
    let io = kb.b.ins().imul(i, nv);
    let o = kb.b.ins().iadd(io, j);
    kb.store(out, o, d, a);
}

/// Rows per register tile. Five or six rows (10 or 12 accumulators) fit the
/// 16 xmm registers on paper, but Cranelift's register allocator then
/// spills accumulators to the stack on every step (seen in the machine
/// code): measured 22 and 26 GFLOP/s against 32 for four rows.
pub const TILE_ROWS: usize = 4;

/// One strip of a matmul: output rows [i, i + rows), columns [0, n8). For
/// each `rows`-row × 8-column tile of the output, 2·rows f32x4 accumulators
/// live in registers through the whole k loop; each step loads two vectors
/// of b's row p and broadcasts `rows` elements of a's column p. Pointers
/// advance by addition and the loads use base + offset addressing (no
/// multiplications in the k loop).
#[allow(clippy::too_many_arguments)]
fn matmul_strip(
    kb: &mut Kb,
    pa: Value,
    (sa_i, sa_p): (Value, Value),
    pb: Value,
    (sb_p, sb_j): (Value, Value),
    out: Value,
    i: Value,
    n8: Value,
    kv: Value,
    nv: Value,
    rows: usize,
) {
    let v4 = types::F32X4;
    let flags = MemFlagsData::new().with_notrap();
    let zero = kb.iconst(0);
    // Byte offsets of a's rows within a tile, and per-step advances.
    let row_bytes_a = kb.b.ins().imul_imm_s(sa_i, 4);
    let a_offs: Vec<Value> = (0..rows)
        .map(|r| kb.b.ins().imul_imm_s(row_bytes_a, r as i64))
        .collect();
    let a_step = kb.b.ins().imul_imm_s(sa_p, 4);
    let b_step = kb.b.ins().imul_imm_s(sb_p, 4);
    // Bytes between b's columns: 4 when its rows are contiguous (two
    // vector loads a step), else a transposed b's column stride (eight
    // element loads a step, gathered into the two vectors).
    let b_col = kb.b.ins().imul_imm_s(sb_j, 4);
    let b_rows_contiguous = kb.const_of(sb_j) == Some(1);
    let out_row = kb.b.ins().imul_imm_s(nv, 4);
    {
        let ia = kb.b.ins().imul(i, row_bytes_a);
        let a_tile = kb.b.ins().iadd(pa, ia);
        kb.range(zero, n8, 8, &mut |kb, j| {
            let accs: Vec<_> = (0..2 * rows)
                .map(|_| {
                    let v = kb.b.declare_var(v4);
                    let z = kb.b.ins().f32const(0.0);
                    let zv = kb.b.ins().splat(v4, z);
                    kb.b.def_var(v, zv);
                    v
                })
                .collect();
            let ap = kb.b.declare_var(types::I64);
            kb.b.def_var(ap, a_tile);
            let bp = kb.b.declare_var(types::I64);
            let jb = kb.b.ins().imul(j, b_col);
            let b0p = kb.b.ins().iadd(pb, jb);
            kb.b.def_var(bp, b0p);
            kb.range(zero, kv, 1, &mut |kb, _p| {
                let bq = kb.b.use_var(bp);
                let aq = kb.b.use_var(ap);
                let (b0, b1) = if b_rows_contiguous {
                    (
                        kb.b.ins().load(v4, flags, bq, 0),
                        kb.b.ins().load(v4, flags, bq, 16),
                    )
                } else {
                    let mut half = |h: i64| {
                        let mut v = None;
                        for c in 0..4 {
                            let off = kb.b.ins().imul_imm_s(b_col, h * 4 + c);
                            let at = kb.b.ins().iadd(bq, off);
                            let x = kb.b.ins().load(types::F32, flags, at, 0);
                            v = Some(match v {
                                None => kb.b.ins().scalar_to_vector(v4, x),
                                Some(v) => kb.b.ins().insertlane(v, x, c as u8),
                            });
                        }
                        v.expect("four lanes")
                    };
                    (half(0), half(1))
                };
                for r in 0..rows {
                    let addr = kb.b.ins().iadd(aq, a_offs[r]);
                    let a = kb.b.ins().load(types::F32, flags, addr, 0);
                    let av = kb.b.ins().splat(v4, a);
                    for c in 0..2 {
                        let acc = accs[r * 2 + c];
                        let cur = kb.b.use_var(acc);
                        let bv = if c == 0 { b0 } else { b1 };
                        let nv = if kb.fma {
                            kb.b.ins().fma(av, bv, cur)
                        } else {
                            let prod = kb.b.ins().fmul(av, bv);
                            kb.b.ins().fadd(prod, cur)
                        };
                        kb.b.def_var(acc, nv);
                    }
                }
                let bn = kb.b.ins().iadd(bq, b_step);
                kb.b.def_var(bp, bn);
                let an = kb.b.ins().iadd(aq, a_step);
                kb.b.def_var(ap, an);
            });
            let io = kb.b.ins().imul(i, out_row);
            let base = kb.b.ins().iadd(out, io);
            let jo = kb.b.ins().imul_imm_s(j, 4);
            let base = kb.b.ins().iadd(base, jo);
            for r in 0..rows {
                let ro = kb.b.ins().imul_imm_s(out_row, r as i64);
                let op = kb.b.ins().iadd(base, ro);
                for c in 0..2 {
                    let v = kb.b.use_var(accs[r * 2 + c]);
                    kb.b.ins().store(flags, v, op, (c * 16) as i32);
                }
            }
        });
    }
}

/// Whether an elementwise node runs four lanes at a time: f32 in and out, an
/// op with a vector form, and along the innermost axis every operand either
/// contiguous (`true`) or broadcast (`false`, loaded once and splat).
fn vector_plan(op: &Op, out: &crate::ir::Type, ins: &[crate::ir::Type]) -> Option<Vec<bool>> {
    let vectorizes = matches!(
        op,
        Op::Add
            | Op::Mul
            | Op::Max
            | Op::Neg
            | Op::Recip
            | Op::Sqrt
            | Op::Abs
            | Op::Exp
            | Op::Log
            | Op::Tanh
            | Op::Sigmoid
            | Op::StopGradient
            | Op::Broadcast
            | Op::AllReduce
    );
    let r = out.shape.rank();
    let f32s = |ts: &[crate::ir::Type]| ts.iter().all(|t| t.dtype == DType::F32);
    let typed = match op {
        // A comparison of f32s gives a bool (an i32 0 or 1 per element).
        Op::Cmp(_) => out.dtype == DType::Bool && f32s(ins),
        // where(mask, x, y) over f32s.
        Op::Select => out.dtype == DType::F32 && ins[0].dtype == DType::Bool && f32s(&ins[1..]),
        _ => vectorizes && out.dtype == DType::F32 && f32s(ins),
    };
    if !typed || r == 0 {
        return None;
    }
    let last = out.shape.0[r - 1];
    Some(
        ins.iter()
            .map(|t| matches!(t.shape.0.last(), Some(d) if *d == last && *d != Dim::Fixed(1)))
            .collect(),
    )
}

/// The elementwise loop nest with its innermost loop four lanes wide
/// (f32x4), and a scalar tail for lengths that are not multiples of 4.
#[allow(clippy::too_many_arguments)]
fn elementwise_f32x4(
    kb: &mut Kb,
    op: &Op,
    out: Value,
    ptrs: &[Value],
    in_dt: &[DType],
    out_dt: DType,
    dims: &[Value],
    strides: &[Vec<Value>],
    inner: &[bool],
) {
    let r = dims.len();
    let outer_dims = &dims[..r - 1];
    let outer_strides: Vec<Vec<Value>> = strides.iter().map(|s| s[..r - 1].to_vec()).collect();
    let inner_strides: Vec<Value> = strides.iter().map(|s| s[r - 1]).collect();
    let len = dims[r - 1];
    let zero = kb.iconst(0);
    let bases = vec![zero; strides.len()];
    let flags = MemFlagsData::new().with_notrap();
    let v4 = types::F32X4;
    kb.nest(outer_dims, &outer_strides, &bases, &mut |kb, offs, _| {
        let len4 = match kb.const_of(len) {
            Some(n) => kb.iconst(n & !3),
            None => kb.b.ins().band_imm_s(len, !3),
        };
        let zero = kb.iconst(0);
        // Splat the broadcast operands once per row.
        let splats: Vec<Option<Value>> = ptrs
            .iter()
            .zip(inner)
            .zip(&offs[1..])
            .map(|((p, contiguous), o)| {
                (!contiguous).then(|| {
                    let x = kb.load(*p, *o, DType::F32);
                    kb.b.ins().splat(v4, x)
                })
            })
            .collect();
        kb.range(zero, len4, 4, &mut |kb, j| {
            let vals: Vec<Value> = ptrs
                .iter()
                .zip(&splats)
                .zip(&offs[1..])
                .map(|((p, sp), o)| match sp {
                    Some(v) => *v,
                    None => {
                        let oj = kb.b.ins().iadd(*o, j);
                        let a = kb.addr(*p, oj, DType::F32);
                        kb.b.ins().load(v4, flags, a, 0)
                    }
                })
                .collect();
            let v = vector_op(kb.b, op, &vals);
            let oj = kb.b.ins().iadd(offs[0], j);
            let a = kb.addr(out, oj, DType::F32);
            kb.b.ins().store(flags, v, a, 0);
        });
        // The scalar tail.
        let offs = offs.to_vec();
        let inner_strides = inner_strides.clone();
        kb.range(len4, len, 1, &mut |kb, j| {
            let at: Vec<Value> = offs
                .iter()
                .zip(&inner_strides)
                .map(|(o, s)| {
                    let js = kb.b.ins().imul(j, *s);
                    kb.b.ins().iadd(*o, js)
                })
                .collect();
            let vals: Vec<Value> = ptrs
                .iter()
                .zip(&at[1..])
                .zip(in_dt)
                .map(|((p, o), t)| kb.load(*p, *o, *t))
                .collect();
            let v = scalar_op(kb, op, &vals);
            kb.store(out, at[0], out_dt, v);
        });
    });
}

/// One elementwise op on f32x4 lanes (a bool is an i32 0 or 1 per lane,
/// carried in an f32x4).
fn vector_op(b: &mut FunctionBuilder, op: &Op, vals: &[Value]) -> Value {
    let v4 = types::F32X4;
    match op {
        // Lanes of all ones where the comparison holds, then 0 or 1.
        Op::Cmp(c) => {
            let mask = b.ins().fcmp(float_cc(*c), vals[0], vals[1]);
            let one = b.ins().iconst(types::I32, 1);
            let ones = b.ins().splat(types::I32X4, one);
            let r = b.ins().band(mask, ones);
            b.ins().bitcast(
                v4,
                MemFlagsData::new().with_endianness(Endianness::Little),
                r,
            )
        }
        // The bool lanes (loaded as f32 bits) become all-ones masks.
        Op::Select => {
            let le = MemFlagsData::new().with_endianness(Endianness::Little);
            let c = b.ins().bitcast(types::I32X4, le, vals[0]);
            let zero = b.ins().iconst(types::I32, 0);
            let zeros = b.ins().splat(types::I32X4, zero);
            let m = b.ins().icmp(IntCC::NotEqual, c, zeros);
            let m = b.ins().bitcast(v4, le, m);
            b.ins().bitselect(m, vals[1], vals[2])
        }
        Op::Add => b.ins().fadd(vals[0], vals[1]),
        Op::Mul => b.ins().fmul(vals[0], vals[1]),
        Op::Max => b.ins().fmax(vals[0], vals[1]),
        Op::Neg => b.ins().fneg(vals[0]),
        Op::Recip => {
            let one = b.ins().f32const(1.0);
            let ones = b.ins().splat(v4, one);
            b.ins().fdiv(ones, vals[0])
        }
        Op::Sqrt => b.ins().sqrt(vals[0]),
        Op::Abs => b.ins().fabs(vals[0]),
        Op::Exp => inline::exp(b, true, vals[0]),
        Op::Log => inline::ln(b, true, vals[0]),
        Op::Tanh => inline::tanh(b, true, vals[0]),
        Op::Sigmoid => inline::sigmoid(b, true, vals[0]),
        _ => vals[0],
    }
}

/// One elementwise op of the vector plan on a single f32 (a bool as i32).
fn scalar_op(kb: &mut Kb, op: &Op, vals: &[Value]) -> Value {
    match op {
        Op::Add | Op::Mul | Op::Max | Op::Cmp(_) => binary(kb, op, vals[0], vals[1], DType::F32),
        Op::Select => {
            let c = kb.b.ins().icmp_imm_s(IntCC::NotEqual, vals[0], 0);
            kb.b.ins().select(c, vals[1], vals[2])
        }
        Op::StopGradient | Op::Broadcast | Op::AllReduce => vals[0],
        other => unary(kb, other, vals[0], DType::F32),
    }
}
