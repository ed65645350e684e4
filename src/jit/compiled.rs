//! A compiled graph ([`Compiled`]): its buffers, and running its kernels on them across threads.

use std::time::Instant;

use cranelift_jit::JITModule;

use super::exec::{self, elem_size, KernelFn};
use super::gemm::{Gemm, Matmul};
use super::{adapt, plan, sums};
use crate::interp::{concrete, Env, Tensor};
use crate::ir::{Graph, NodeId, Op};
use crate::opt::Passes;

/// Multiply-adds below which a matmul runs on one thread: under ~1 MFLOP
/// waking a worker costs more than it saves.
const SPLIT_WORK: usize = 500_000;

/// Values a random draw must have for its rows to be split across the
/// threads.
const SPLIT_DRAWS: usize = 16_384;

/// Values a batch's input rows must hold before all the threads copy them.
const SPLIT_COPY: usize = 65_536;

/// A compiled graph, ready to run at any batch size.
pub struct Compiled {
    pub graph: Graph,
    /// Which nodes run in which kernel, and where values live.
    pub plan: plan::Plan,
    /// The passes it was compiled with.
    pub passes: Passes,
    /// One function per kernel of the plan, in order.
    pub(super) kernels: Vec<KernelFn>,
    /// Per kernel headed by (or made of) a matmul the `gemm` crate can do:
    /// that form of the kernel.
    pub(super) gemm: Vec<Option<Gemm>>,
    /// Which matmul kernels run (both forms are compiled).
    pub matmul: Matmul,
    /// Worker threads for large kernels (matmuls split by output rows).
    pub threads: usize,
    /// The buffers' places for the largest batch run so far.
    pub(super) layout: Option<plan::Layout>,
    /// All buffers, in one allocation (8-byte words).
    pub(super) arena: Vec<u64>,
    /// Milliseconds spent compiling.
    pub compile_ms: f64,
    /// Per input: no value of the plan is placed over its buffer (see
    /// [`Compiled::input_kept`]).
    pub(super) kept: Vec<bool>,
    /// Each kernel's Cranelift IR, when asked for.
    pub clif: Vec<(String, String)>,
    /// When profiling: each kernel's total wall time in seconds.
    pub(super) profile: Option<Vec<f64>>,
    /// Per kernel: whether sharing its rows with the workers pays; and
    /// the same for copying a batch's input rows (an `Arc`, so that the
    /// copy can hold it while it borrows the arena mutably).
    pub(super) adapt: Vec<adapt::Adapt>,
    pub(super) copy_adapt: std::sync::Arc<adapt::Adapt>,
    /// Whether whole steps share their kernels' rows at all.
    pub(super) step_adapt: adapt::StepAdapt,
    /// A data-parallel step's sums across processes, and the processes'
    /// collective (set by the caller; without it a sum is its operand, as
    /// in a run of one process).
    pub(super) sums: sums::Sums,
    pub collective: Option<std::sync::Arc<dyn crate::dist::Collective>>,
    /// Seconds spent waiting for sums, since profiling started.
    pub(super) comm_wait: f64,
    pub(super) _module: JITModule,
}

impl Compiled {
    /// The bytes node `id`'s value needs at batch size `batch`.
    fn bytes(&self, id: usize, batch: usize) -> usize {
        let n = &self.graph.nodes[id];
        concrete(&n.ty.shape, batch).iter().product::<usize>() * elem_size(n.ty.dtype)
    }

    /// Runs kernel `ki`; a matmul with enough work is split by output rows
    /// across `threads` threads; a row group runs over the batch's rows.
    fn launch(&self, ki: usize, table: &[*mut u8], env: &Env) {
        if self.matmul == Matmul::Gemm {
            if let Some(gm) = &self.gemm[ki] {
                self.launch_gemm(gm, table, env, &self.adapt[ki]);
                return;
            }
        }
        let k = self.kernels[ki];
        let kernel = &self.plan.kernels[ki];
        if kernel.kind == plan::KernelKind::Rows && !plan::headed(&self.graph, kernel) {
            let rows = concrete(&crate::ir::Shape(vec![kernel.rows]), env.batch)[0];
            exec::call(k, table, env.batch, env.seed, rows);
            return;
        }
        let head = kernel.nodes[0];
        let node = self.graph.node(head);
        let by_rows = matches!(node.op, Op::MatMul | Op::Random { .. });
        let rows = match node.ty.shape.0.first() {
            Some(d) if by_rows => concrete(&crate::ir::Shape(vec![*d]), env.batch)[0],
            _ => 1,
        };
        if self.split_matmul(head, env.batch) || self.split_random(head, env.batch) {
            exec::split(
                exec::Work::Kernel(k),
                table,
                (env.batch, env.seed),
                rows,
                self.threads,
                Some(&self.adapt[ki]),
            );
        } else {
            exec::call(k, table, env.batch, env.seed, rows);
        }
    }

    /// Whether matmul `id` at batch `batch` is split across the threads:
    /// enough multiply-adds (`SPLIT_WORK`) over at least 8 output rows.
    fn split_matmul(&self, id: NodeId, batch: usize) -> bool {
        let n = self.graph.node(id);
        if self.threads <= 1 || n.op != Op::MatMul || n.inputs.is_empty() {
            return false;
        }
        let out = concrete(&n.ty.shape, batch);
        let lhs = concrete(&self.graph.ty(n.inputs[0]).shape, batch);
        let dim = |s: &[usize], i: usize| s.get(i).copied().unwrap_or(1);
        let (m, k, cols) = (dim(&out, 0), dim(&lhs, 1), dim(&out, 1));
        m >= 8 && m * k * cols >= SPLIT_WORK
    }

    /// Whether random draw `id` at batch `batch` is split across the
    /// threads by rows: at least `SPLIT_DRAWS` values over at least 8 rows
    /// (a dropout mask of 256×256: each value is two 64-bit mixes).
    fn split_random(&self, id: NodeId, batch: usize) -> bool {
        let n = self.graph.node(id);
        if self.threads <= 1 || !matches!(n.op, Op::Random { .. }) {
            return false;
        }
        let shape = concrete(&n.ty.shape, batch);
        shape.first().is_some_and(|&rows| rows >= 8)
            && shape.iter().product::<usize>() >= SPLIT_DRAWS
    }

    /// Whether some kernel at batch `batch` is split across the threads.
    fn splits_a_kernel(&self, batch: usize) -> bool {
        self.plan
            .kernels
            .iter()
            .any(|k| self.split_matmul(k.nodes[0], batch))
    }

    /// Runs a kernel's `gemm` form: its output rows split among the
    /// threads when the product is large enough, each thread's rows in
    /// blocks, each block's epilogue right after its product; or, on two
    /// threads, a first layer's product cut in two halves of its depth
    /// (`exec::depth_split`), the epilogue after their sum.
    fn launch_gemm(&self, gm: &Gemm, table: &[*mut u8], env: &Env, adapt: &adapt::Adapt) {
        let c = gm.call;
        let out = concrete(&self.graph.ty(c.out).shape, env.batch);
        let lhs = self.graph.node(c.out).inputs[0];
        let k = concrete(&self.graph.ty(lhs).shape, env.batch)[1];
        let args = exec::GemmArgs {
            dtype: c.dtype,
            m: out[0],
            k,
            n: out[1],
            a_transposed: c.a_transposed,
            b_transposed: c.b_transposed,
            a: c.a.index(),
            b: c.b.index(),
            out: c.update.map_or(c.out, |u| u.dst).index(),
            scale: c.update.map(|u| u.scale.index()),
        };
        let threads = if self.split_matmul(c.out, env.batch) {
            self.threads
        } else {
            1
        };
        let work = if exec::depth_split(&args, threads) {
            exec::Work::Depth(args, gm.epilogue)
        } else {
            exec::Work::Gemm(args, gm.epilogue)
        };
        exec::split(
            work,
            table,
            (env.batch, env.seed),
            args.m,
            threads,
            Some(adapt),
        );
    }

    /// Starts timing every kernel of every later [`Compiled::run`].
    pub fn start_profile(&mut self) {
        self.profile = Some(vec![0.0; self.kernels.len()]);
    }

    /// Per kernel whose rows were split across threads: the fraction of
    /// its timed calls that shared them with the workers (else it ran
    /// them all on the calling thread, found faster; see `adapt::Adapt`),
    /// counting the steps that ran every kernel alone (`adapt::StepAdapt`).
    pub fn shared_fractions(&self) -> Vec<Option<f64>> {
        let steps_shared = 1.0 - self.step_adapt.solo_fraction();
        self.adapt
            .iter()
            .map(|a| a.shared_fraction().map(|f| f * steps_shared))
            .collect()
    }

    /// Seconds so far per kernel (with the nodes it computes), when
    /// profiling.
    pub fn kernel_times(&self) -> Vec<(Vec<NodeId>, f64)> {
        let Some(times) = &self.profile else {
            return Vec::new();
        };
        self.plan
            .kernels
            .iter()
            .zip(times)
            .map(|(k, t)| (k.nodes.clone(), *t))
            .collect()
    }

    /// The memory layout for batch size `batch` (planned for the largest
    /// batch so far).
    pub fn layout_for(&self, batch: usize) -> plan::Layout {
        plan::layout(&self.graph, &self.plan, batch, self.passes.inplace)
    }

    /// Buffers' places and the table of pointers for `batch`, growing the
    /// arena when a larger batch comes.
    fn prepare(&mut self, batch: usize) -> Result<Vec<*mut u8>, String> {
        if self.layout.as_ref().is_none_or(|l| l.batch < batch) {
            let l = self.layout_for(batch);
            let words = l.words.max(1);
            // The old arena's values are not kept: free it first. The new
            // one is refused, not aborted, when it cannot be had.
            self.arena = Vec::new();
            self.layout = None;
            crate::memory::check("the compiled function's buffer arena", words as u128 * 8)?;
            let mut arena = Vec::new();
            arena.try_reserve_exact(words).map_err(|_| {
                format!(
                    "the compiled function's buffer arena needs {}, which cannot be allocated",
                    crate::memory::format_bytes(words as u128 * 8)
                )
            })?;
            arena.resize(words, 0u64);
            self.arena = arena;
            self.layout = Some(l);
        }
        let base = self.arena.as_mut_ptr();
        let offsets = self
            .layout
            .as_ref()
            .map(|l| l.offsets.clone())
            .unwrap_or_default();
        Ok(offsets
            .iter()
            .map(|o| match o {
                // In bounds: the layout placed every buffer inside the arena.
                Some(w) => base.wrapping_add(*w).cast::<u8>(),
                None => std::ptr::null_mut(),
            })
            .collect())
    }

    /// The words of node `id`'s buffer at `batch`.
    fn slot(&mut self, id: usize, batch: usize) -> Result<&mut [u64], String> {
        let words = self.bytes(id, batch).div_ceil(8);
        let off = self
            .layout
            .as_ref()
            .and_then(|l| l.offsets[id])
            .ok_or_else(|| format!("compiler bug: %{id} has no buffer"))?;
        self.arena
            .get_mut(off..off + words)
            .ok_or_else(|| format!("compiler bug: buffer %{id} is outside the arena"))
    }

    /// Times the kernels alone: runs the graph once on `inputs`, then its
    /// kernels `reps` more times on the same buffers; seconds per run.
    pub fn time_kernels(
        &mut self,
        inputs: &[Tensor],
        env: &Env,
        reps: usize,
    ) -> Result<f64, String> {
        self.run(inputs, env)?;
        let table = self.prepare(env.batch)?;
        let start = Instant::now();
        for _ in 0..reps {
            for ki in 0..self.kernels.len() {
                self.launch(ki, &table, env);
            }
        }
        Ok(start.elapsed().as_secs_f64() / reps.max(1) as f64)
    }

    /// Runs the graph on `inputs` (in `graph.inputs` order).
    pub fn run(&mut self, inputs: &[Tensor], env: &Env) -> Result<Vec<Tensor>, String> {
        let given: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let want = vec![true; self.graph.outputs.len()];
        if inputs.len() != self.graph.inputs.len() {
            return Err(format!(
                "{} inputs given, the graph takes {}",
                inputs.len(),
                self.graph.inputs.len()
            ));
        }
        self.run_some(&given, &want, env)?
            .into_iter()
            .map(|t| t.ok_or_else(|| "compiler bug: an output was not read".to_string()))
            .collect()
    }

    /// The current value of output `name` (one that does not depend on the
    /// batch size, such as a parameter), from its buffer.
    pub fn output(&mut self, name: &str) -> Result<Tensor, String> {
        let id = self
            .graph
            .outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .ok_or_else(|| format!("no output {name}"))?;
        let batch = self.layout.as_ref().map_or(1, |l| l.batch);
        let n = self.graph.node(id).clone();
        let shape = concrete(&n.ty.shape, batch);
        let count = shape.iter().product();
        let buf = self.slot(id.index(), batch)?;
        Ok(Tensor::new(
            n.ty.dtype,
            shape,
            exec::read(buf, n.ty.dtype, count),
        ))
    }

    /// Writes rows `rows` of the row-major table `src` (`width` values a
    /// row) as input `k`'s value at batch size `rows.len()`, converting to
    /// its dtype, without building a tensor; a later
    /// [`Compiled::run_some`] given `None` for input `k` uses it. The
    /// buffers must be sized for that batch (see [`Compiled::reserve`]).
    pub fn write_input_rows<T: Copy + Into<f64>>(
        &mut self,
        k: usize,
        src: &[T],
        width: usize,
        rows: &[usize],
    ) -> Result<(), String> {
        match self.input_rows(k, width, rows.len())? {
            Some((buf, dtype)) => exec::write_rows(buf, dtype, src, width, rows),
            None => Ok(()),
        }
    }

    /// As [`Compiled::write_input_rows`], for a table that writes its own
    /// rows as f32: `fill(i, r, out)` writes row r (the i-th of `rows`)
    /// into `out` (`width` values), or returns `None` for a row it does
    /// not have. An f32 input
    /// is filled in place, with no copy in between.
    pub fn fill_input_rows(
        &mut self,
        k: usize,
        width: usize,
        rows: &[usize],
        fill: impl Fn(usize, usize, &mut [f32]) -> Option<()> + Sync,
    ) -> Result<(), String> {
        // Copied by all the threads when the batch is large and the
        // function splits a kernel at this batch too (so the workers are
        // awake); alone, waking them costs more than the copy.
        let all = if rows.len() * width >= SPLIT_COPY && self.splits_a_kernel(rows.len()) {
            self.threads
        } else {
            1
        };
        let copying = std::sync::Arc::clone(&self.copy_adapt);
        let Some((buf, dtype)) = self.input_rows(k, width, rows.len())? else {
            return Ok(());
        };
        let missing = |r: usize| format!("row {r} is outside the data");
        if dtype == crate::ir::DType::F32 {
            let out = exec::f32s_mut(buf, rows.len() * width);
            let adapt = Some(&*copying);
            let ok = exec::fill_rows(out, (width, rows.len()), (all, adapt), &|i, row| {
                fill(i, rows[i], row)
            });
            return match ok {
                true => Ok(()),
                false => Err("a row is outside the data".to_string()),
            };
        }
        let mut row = vec![0.0f32; width];
        for (i, &r) in rows.iter().enumerate() {
            fill(i, r, &mut row).ok_or_else(|| missing(r))?;
            exec::write_at(buf, dtype, i * width, &row);
        }
        Ok(())
    }

    /// Input `k`'s buffer and dtype, checked to hold `rows` rows of
    /// `width` values at the reserved batch; `None` when no kernel reads
    /// the input.
    fn input_rows(
        &mut self,
        k: usize,
        width: usize,
        rows: usize,
    ) -> Result<Option<(&mut [u64], crate::ir::DType)>, String> {
        let info = self
            .graph
            .inputs
            .get(k)
            .ok_or_else(|| format!("compiler bug: no input {k}"))?;
        let (node, ty) = (info.node.index(), self.graph.ty(info.node).clone());
        let shape = concrete(&ty.shape, rows);
        if shape.iter().product::<usize>() != rows * width {
            return Err(format!(
                "input {} has shape {shape:?}, not {rows} rows of {width}",
                info.name,
            ));
        }
        if self.layout.as_ref().is_none_or(|l| l.batch < rows) {
            return Err(format!(
                "compiler bug: batch {rows} exceeds the reserved buffers"
            ));
        }
        if self.plan.storage[node] == plan::Storage::Unused {
            return Ok(None);
        }
        Ok(Some((self.slot(node, rows)?, ty.dtype)))
    }

    /// Sizes the buffers for batches up to `batch` now, so that values left
    /// in them (see [`Compiled::resident`]) survive later runs.
    pub fn reserve(&mut self, batch: usize) -> Result<(), String> {
        self.prepare(batch).map(|_| ())
    }

    /// Whether input `k`'s buffer still holds what was written there after
    /// a run: no value of the plan is placed over it.
    pub fn input_kept(&self, k: usize) -> bool {
        self.kept.get(k).copied().unwrap_or(false)
    }

    /// Whether output `name` is written into the buffer of input `k`, so
    /// that after a run the input already holds it: the in-place pass makes
    /// a parameter's SGD update resident between steps.
    pub fn resident(&self, k: usize, name: &str) -> bool {
        let Some(info) = self.graph.inputs.get(k) else {
            return false;
        };
        self.graph
            .outputs
            .iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, id)| self.plan.root(*id) == info.node)
    }

    /// Runs the graph writing only the inputs given (`None` keeps what the
    /// input's buffer holds, which must be sized: see [`Compiled::reserve`])
    /// and reading only the outputs wanted.
    pub fn run_some(
        &mut self,
        inputs: &[Option<&Tensor>],
        want: &[bool],
        env: &Env,
    ) -> Result<Vec<Option<Tensor>>, String> {
        self.run_core(inputs, &mut [], want, env)
    }

    /// Runs the graph with some inputs living in the caller's buffers
    /// (`external`: input index, then its words in the JIT's memory format,
    /// see [`exec::write`]), the others given as tensors (`None` for an
    /// external one). Kernels read those inputs there, and a value the plan
    /// places in an input's buffer (an update in place, `x += 1`) is
    /// written there: the buffer keeps its address. Returns every output.
    pub fn run_external(
        &mut self,
        inputs: &[Option<&Tensor>],
        external: &mut [(usize, &mut [u64])],
        env: &Env,
    ) -> Result<Vec<Tensor>, String> {
        let want = vec![true; self.graph.outputs.len()];
        self.run_core(inputs, external, &want, env)?
            .into_iter()
            .map(|t| t.ok_or_else(|| "compiler bug: an output was not read".to_string()))
            .collect()
    }

    fn run_core(
        &mut self,
        inputs: &[Option<&Tensor>],
        external: &mut [(usize, &mut [u64])],
        want: &[bool],
        env: &Env,
    ) -> Result<Vec<Option<Tensor>>, String> {
        // An external input's node, and its buffer.
        let mut ext: Vec<(NodeId, usize)> = Vec::new();
        for (i, (k, buf)) in external.iter().enumerate() {
            let info = self
                .graph
                .inputs
                .get(*k)
                .ok_or_else(|| format!("compiler bug: no input {k}"))?;
            let need = self.bytes(info.node.index(), env.batch);
            if buf.len() * 8 < need {
                return Err(format!(
                    "input {}: its buffer holds {} bytes, {need} needed",
                    info.name,
                    buf.len() * 8
                ));
            }
            ext.push((info.node, i));
        }
        let external_of = |plan: &plan::Plan, id: NodeId| {
            let r = plan.root(id);
            ext.iter().find(|(n, _)| *n == r).map(|(_, i)| *i)
        };
        if let Some(l) = &self.layout {
            if l.batch < env.batch && inputs.iter().any(|t| t.is_none()) {
                return Err(format!(
                    "compiler bug: batch {} exceeds the reserved {} with inputs kept in place",
                    env.batch, l.batch
                ));
            }
        }
        let mut table = self.prepare(env.batch)?;
        // Every value placed in an external input's buffer is read and
        // written there.
        if !ext.is_empty() {
            for (i, entry) in table.iter_mut().enumerate() {
                if self.plan.storage[i] == plan::Storage::Unused {
                    continue;
                }
                if let Some(e) = external_of(&self.plan, NodeId(i as u32)) {
                    *entry = external[e].1.as_mut_ptr().cast::<u8>();
                }
            }
        }
        self.write_inputs(inputs, env.batch)?;
        self.launch_all(&table, env);
        let outputs = self.graph.outputs.clone();
        outputs
            .iter()
            .zip(want)
            .map(|((_, id), wanted)| {
                if !wanted {
                    return Ok(None);
                }
                let n = self.graph.node(*id).clone();
                let shape = concrete(&n.ty.shape, env.batch);
                let count = shape.iter().product();
                let buf = match external_of(&self.plan, *id) {
                    Some(e) => &external[e].1[..],
                    None => self.slot(id.index(), env.batch)?,
                };
                Ok(Some(Tensor::new(
                    n.ty.dtype,
                    shape,
                    exec::read(buf, n.ty.dtype, count),
                )))
            })
            .collect()
    }

    /// Writes the given inputs, checked against their shapes, and every
    /// constant and literal into their buffers.
    fn write_inputs(&mut self, inputs: &[Option<&Tensor>], batch: usize) -> Result<(), String> {
        for (k, t) in inputs.iter().enumerate() {
            let Some(t) = t else { continue };
            let info = &self.graph.inputs[k];
            let (node, dtype) = (info.node.index(), self.graph.ty(info.node).dtype);
            let shape = concrete(&self.graph.ty(info.node).shape, batch);
            if t.shape != shape {
                return Err(format!(
                    "input {} has shape {:?}, expected {:?}",
                    info.name, t.shape, shape
                ));
            }
            if self.plan.storage[node] == plan::Storage::Unused {
                continue;
            }
            exec::write(self.slot(node, batch)?, dtype, &t.data);
        }
        for i in 0..self.graph.len() {
            if self.plan.storage[i] == plan::Storage::Unused {
                continue;
            }
            let (op, dtype) = (self.graph.nodes[i].op.clone(), self.graph.nodes[i].ty.dtype);
            match op {
                Op::Const(bits) => {
                    exec::write(self.slot(i, batch)?, dtype, &[f64::from_bits(bits)])
                }
                Op::Literal(k) => {
                    let v = self
                        .graph
                        .literals
                        .get(k as usize)
                        .ok_or("literal missing")?
                        .clone();
                    exec::write(self.slot(i, batch)?, dtype, &v);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs every kernel in order: the split ones sharing their rows as
    /// their `Adapt`s choose, or all alone when `StepAdapt` finds whole
    /// steps faster that way.
    fn launch_all(&mut self, table: &[*mut u8], env: &Env) {
        let timed = self.threads > 1 && self.splits_a_kernel(env.batch);
        let solo = timed && self.step_adapt.solo();
        exec::set_solo(solo);
        let start = Instant::now();
        self.launch_each(table, env);
        exec::set_solo(false);
        if timed {
            self.step_adapt.record(start.elapsed().as_secs_f64());
        }
    }

    /// Launches every kernel in order (timing each when profiling).
    fn launch_each(&mut self, table: &[*mut u8], env: &Env) {
        if let Some(c) = self.collective.clone() {
            if !self.sums.sums.is_empty() {
                self.launch_summing(&*c, table, env);
                return;
            }
        }
        match self.profile.take() {
            None => {
                for ki in 0..self.kernels.len() {
                    self.launch(ki, table, env);
                }
            }
            Some(mut times) => {
                for (ki, t) in times.iter_mut().enumerate() {
                    let start = Instant::now();
                    self.launch(ki, table, env);
                    *t += start.elapsed().as_secs_f64();
                }
                self.profile = Some(times);
            }
        }
    }

    /// [`Compiled::launch_each`] for a data-parallel step: each sum
    /// across processes starts after the kernel that completes its operand
    /// and is waited for before the first kernel that reads it; the others
    /// run meanwhile, and let the sums in flight advance between them.
    fn launch_summing(&mut self, c: &dyn crate::dist::Collective, table: &[*mut u8], env: &Env) {
        let mut tickets: Vec<Option<usize>> = vec![None; self.sums.sums.len()];
        // Seconds the step stands waiting for sums (a blocking one whole).
        let mut waited = 0.0;
        let start = |si: usize, tickets: &mut Vec<Option<usize>>, waited: &mut f64| {
            let s = &self.sums.sums[si];
            let ty = self.graph.ty(s.node);
            let len = concrete(&ty.shape, env.batch).iter().product();
            if s.overlapped {
                tickets[si] = Some(exec::start_sum(c, table, s.buf.index(), len, ty.dtype));
            } else {
                let w = Instant::now();
                exec::sum_now(c, table, s.buf.index(), len, ty.dtype);
                *waited += w.elapsed().as_secs_f64();
            }
        };
        for si in self.sums.at_start() {
            start(si, &mut tickets, &mut waited);
        }
        let mut times = self.profile.take();
        for ki in 0..self.kernels.len() {
            for &si in &self.sums.waits[ki] {
                if let Some(t) = tickets[si].take() {
                    let w = Instant::now();
                    c.wait(t);
                    waited += w.elapsed().as_secs_f64();
                }
            }
            let t0 = Instant::now();
            self.launch(ki, table, env);
            if let Some(times) = &mut times {
                times[ki] += t0.elapsed().as_secs_f64();
            }
            for &si in &self.sums.starts[ki] {
                start(si, &mut tickets, &mut waited);
            }
            c.progress();
        }
        // The outputs read after the step (the loss, the metric sums).
        let w = Instant::now();
        for t in tickets.iter_mut().filter_map(Option::take) {
            c.wait(t);
        }
        waited += w.elapsed().as_secs_f64();
        if times.is_some() {
            self.comm_wait += waited;
        }
        self.profile = times;
    }

    /// Seconds the profiled steps spent waiting for sums across processes.
    pub fn comm_wait_seconds(&self) -> f64 {
        self.comm_wait
    }
}
