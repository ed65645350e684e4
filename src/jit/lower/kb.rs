//! The kernel builder: loop nests, sizes and strides, buffer addresses, loads and stores.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

use crate::ir::{DType, Dim, Graph, NodeId, Shape};
use crate::jit::module::ExternRefs;

/// A size `c·Bᵖ` (a shape may hold B more than once, as an outer product
/// of two batch vectors does).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sz {
    pub c: u64,
    pub batch: u32,
}

impl Sz {
    const ONE: Sz = Sz { c: 1, batch: 0 };

    pub(super) fn of(d: Dim) -> Sz {
        match d {
            Dim::Fixed(n) => Sz { c: n, batch: 0 },
            Dim::Batch => Sz { c: 1, batch: 1 },
        }
    }

    pub(super) fn mul(self, o: Sz) -> Sz {
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
    pub updates: &'a [crate::jit::update::RmsStep],
    /// The kernel's members computed by `exec::dlc_wide` (the `wide` pass).
    pub wide: &'a [NodeId],
}

impl Kb<'_, '_> {
    pub(super) fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    pub(super) fn sz(&mut self, s: Sz) -> Value {
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
    pub(super) fn const_of(&self, v: Value) -> Option<i64> {
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
    pub(super) fn unroll(&mut self, n: i64, body: &mut dyn FnMut(&mut Self, i64)) {
        let outer = self.unrolled;
        self.unrolled = outer * n.max(1);
        for k in 0..n {
            body(self, k);
        }
        self.unrolled = outer;
    }

    /// The buffer pointer of node `id` (in a row group, of its current row).
    pub(super) fn buf(&mut self, id: NodeId) -> Value {
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

    pub(super) fn addr(&mut self, ptr: Value, off: Value, d: DType) -> Value {
        let size = crate::jit::exec::elem_size(d) as i64;
        let bytes = self.b.ins().imul_imm_s(off, size);
        self.b.ins().iadd(ptr, bytes)
    }

    pub(super) fn load(&mut self, ptr: Value, off: Value, d: DType) -> Value {
        let a = self.addr(ptr, off, d);
        self.b
            .ins()
            .load(clif_type(d), MemFlagsData::trusted(), a, 0)
    }

    pub(super) fn store(&mut self, ptr: Value, off: Value, d: DType, v: Value) {
        let a = self.addr(ptr, off, d);
        self.b.ins().store(MemFlagsData::trusted(), v, a, 0);
    }

    pub(super) fn fconst(&mut self, d: DType, v: f64) -> Value {
        match d {
            DType::F32 => self.b.ins().f32const(v as f32),
            DType::F64 => self.b.ins().f64const(v),
            DType::I32 | DType::Bool => self.b.ins().iconst(types::I32, v as i64),
        }
    }

    pub(super) fn call1(
        &mut self,
        f: Option<cranelift_codegen::ir::FuncRef>,
        args: &[Value],
    ) -> Value {
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
    pub(super) fn nest(
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
    pub(super) fn range(
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
    pub(super) fn stepped_strides(
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

    pub(super) fn dims(&mut self, s: &Shape) -> Vec<Value> {
        s.0.iter().map(|d| self.sz(Sz::of(*d))).collect()
    }

    pub(super) fn strides_v(&mut self, s: &Shape) -> Vec<Value> {
        strides(s).into_iter().map(|z| self.sz(z)).collect()
    }

    /// Strides of an operand of shape `inp` read while walking `out`
    /// (NumPy broadcasting: stride 0 along stretched or missing axes).
    pub(super) fn bstrides(&mut self, inp: &Shape, out: &Shape) -> Vec<Value> {
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
    pub(super) fn flat(&mut self, n: Sz, body: &mut dyn FnMut(&mut Self, Value)) {
        let nv = self.sz(n);
        let one = self.iconst(1);
        let zero = self.iconst(0);
        self.nest(&[nv], &[vec![one]], &[zero], &mut |kb, offs, _| {
            body(kb, offs[0])
        });
    }
}

/// What every node's lowering starts from: its type, dtype and buffer, its
/// operands and their types.
pub(super) struct Site {
    pub(super) out_t: crate::ir::Type,
    pub(super) d: DType,
    pub(super) out: Value,
    pub(super) ins: Vec<NodeId>,
    pub(super) in_t: Vec<crate::ir::Type>,
}

impl Site {
    /// The output's type, dtype and buffer, the operands and their types.
    pub(super) fn parts(
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
