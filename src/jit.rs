//! The Cranelift JIT: each IR node becomes a native kernel, and
//! [`Compiled::run`] executes a graph on concrete tensors.
//!
//! `compile` builds the ISA from the host's flags (cranelift-native, so
//! FMA and SSE4 are available), lowers each live node into one function
//! (`lower.rs`) and finalizes the module. The batch size is a run-time
//! argument of every kernel, so one compiled graph serves every batch size.
//!
//! Architecture invariant: all `unsafe` of the runtime is in `exec.rs` (and
//! its matmul kernel, `exec/sgemm.rs`, and fused optimizer update,
//! `exec/rms.rs`);
//! `run` checks every buffer against the shapes before any kernel runs.

pub mod adapt;
pub mod exec;
pub mod lower;
pub mod math;
pub mod plan;
pub mod pool;
pub mod sums;
pub mod update;

use std::time::Instant;

use cranelift_codegen::ir::{types, AbiParam, FuncRef, InstBuilder, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

use crate::interp::{concrete, Env, Tensor};
use crate::ir::{Graph, NodeId, Op};
use crate::opt::Passes;
use exec::{elem_size, KernelFn};
use std::collections::HashMap;

/// The Rust functions kernels may call (by declaration id).
pub struct Externs {
    pub expf: FuncId,
    pub logf: FuncId,
    pub tanhf: FuncId,
    pub sinf: FuncId,
    pub cosf: FuncId,
    pub sigmoidf: FuncId,
    pub powf: FuncId,
    pub exp: FuncId,
    pub log: FuncId,
    pub tanh: FuncId,
    pub sin: FuncId,
    pub cos: FuncId,
    pub sigmoid: FuncId,
    pub pow: FuncId,
    pub normal: FuncId,
    pub uniformf: FuncId,
    pub linalg: FuncId,
    pub rms_step: FuncId,
    pub wide: FuncId,
}

/// The externs imported into one function: only those its op calls, so
/// the printed Cranelift IR stays small.
#[derive(Default)]
pub struct ExternRefs {
    pub expf: Option<FuncRef>,
    pub logf: Option<FuncRef>,
    pub tanhf: Option<FuncRef>,
    pub sinf: Option<FuncRef>,
    pub cosf: Option<FuncRef>,
    pub sigmoidf: Option<FuncRef>,
    pub powf: Option<FuncRef>,
    pub exp: Option<FuncRef>,
    pub log: Option<FuncRef>,
    pub tanh: Option<FuncRef>,
    pub sin: Option<FuncRef>,
    pub cos: Option<FuncRef>,
    pub sigmoid: Option<FuncRef>,
    pub pow: Option<FuncRef>,
    pub normal: Option<FuncRef>,
    pub uniformf: Option<FuncRef>,
    pub linalg: Option<FuncRef>,
    pub rms_step: Option<FuncRef>,
    pub wide: Option<FuncRef>,
}

impl Externs {
    fn import(
        &self,
        m: &mut JITModule,
        f: &mut cranelift_codegen::ir::Function,
        nodes: &[&crate::ir::Node],
    ) -> ExternRefs {
        let mut r = ExternRefs::default();
        for node in nodes {
            let f32t = node.ty.dtype == crate::ir::DType::F32;
            let (slot, id) = match &node.op {
                // f32 exp/log/tanh/sigmoid are inline polynomials.
                Op::Exp | Op::Log | Op::Tanh | Op::Sigmoid if f32t => continue,
                Op::Exp => (&mut r.exp, self.exp),
                Op::Log => (&mut r.log, self.log),
                Op::Tanh => (&mut r.tanh, self.tanh),
                Op::Sin if f32t => (&mut r.sinf, self.sinf),
                Op::Cos if f32t => (&mut r.cosf, self.cosf),
                Op::Sin => (&mut r.sin, self.sin),
                Op::Cos => (&mut r.cos, self.cos),
                Op::Sigmoid => (&mut r.sigmoid, self.sigmoid),
                Op::Pow if f32t => (&mut r.powf, self.powf),
                Op::Pow => (&mut r.pow, self.pow),
                Op::Random {
                    dist: crate::ir::Dist::Normal,
                    ..
                } => (&mut r.normal, self.normal),
                Op::Random {
                    dist: crate::ir::Dist::Uniform,
                    ..
                } if f32t => (&mut r.uniformf, self.uniformf),
                Op::Linalg(_) => (&mut r.linalg, self.linalg),
                // A square root may be part of a fused optimizer update.
                Op::Sqrt if f32t => (&mut r.rms_step, self.rms_step),
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(m.declare_func_in_func(id, f));
            }
        }
        r
    }
}

/// An upper bound on the bytes `run` allocates for `g` at batch size
/// `batch` (one buffer per live node, as without the memory plan),
/// computed without allocating anything.
pub fn estimate_bytes(g: &Graph, batch: usize) -> u128 {
    let live = crate::ir::print::live_nodes(g);
    g.nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| live[*i])
        .map(|(_, n)| {
            let count: u128 =
                n.ty.shape
                    .0
                    .iter()
                    .map(|d| match d {
                        crate::ir::Dim::Fixed(k) => u128::from(*k),
                        crate::ir::Dim::Batch => batch as u128,
                    })
                    .product();
            count * elem_size(n.ty.dtype) as u128
        })
        .sum()
}

/// Multiply-adds below which a matmul runs on one thread: under ~1 MFLOP
/// waking a worker costs more than it saves.
const SPLIT_WORK: usize = 500_000;

/// Values a random draw must have for its rows to be split across the
/// threads.
const SPLIT_DRAWS: usize = 16_384;

/// Values a batch's input rows must hold before all the threads copy them.
const SPLIT_COPY: usize = 65_536;

/// The process's peak resident memory so far, in bytes (Linux's VmHWM).
pub fn peak_rss() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A compiled graph, ready to run at any batch size.
pub struct Compiled {
    pub graph: Graph,
    /// Which nodes run in which kernel, and where values live.
    pub plan: plan::Plan,
    /// The passes it was compiled with.
    pub passes: Passes,
    /// One function per kernel of the plan, in order.
    kernels: Vec<KernelFn>,
    /// Per kernel headed by (or made of) a matmul the `gemm` crate can do:
    /// that form of the kernel.
    gemm: Vec<Option<Gemm>>,
    /// Which matmul kernels run (both forms are compiled).
    pub matmul: Matmul,
    /// Worker threads for large kernels (matmuls split by output rows).
    pub threads: usize,
    /// The buffers' places for the largest batch run so far.
    layout: Option<plan::Layout>,
    /// All buffers, in one allocation (8-byte words).
    arena: Vec<u64>,
    /// Milliseconds spent compiling.
    pub compile_ms: f64,
    /// Per input: no value of the plan is placed over its buffer (see
    /// [`Compiled::input_kept`]).
    kept: Vec<bool>,
    /// Each kernel's Cranelift IR, when asked for.
    pub clif: Vec<(String, String)>,
    /// When profiling: each kernel's total wall time in seconds.
    profile: Option<Vec<f64>>,
    /// Per kernel: whether sharing its rows with the workers pays; and
    /// the same for copying a batch's input rows (an `Arc`, so that the
    /// copy can hold it while it borrows the arena mutably).
    adapt: Vec<adapt::Adapt>,
    copy_adapt: std::sync::Arc<adapt::Adapt>,
    /// Whether whole steps share their kernels' rows at all.
    step_adapt: adapt::StepAdapt,
    /// A data-parallel step's sums across processes, and the processes'
    /// collective (set by the caller; without it a sum is its operand, as
    /// in a run of one process).
    sums: sums::Sums,
    pub collective: Option<std::sync::Arc<dyn crate::dist::Collective>>,
    /// Seconds spent waiting for sums, since profiling started.
    comm_wait: f64,
    _module: JITModule,
}

fn isa() -> Result<std::sync::Arc<dyn cranelift_codegen::isa::TargetIsa>, String> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
    flags.set("is_pic", "false").map_err(|e| e.to_string())?;
    // The verifier costs about as much as the rest of compilation on long
    // kernels; debug builds (and so the debug test runs) keep it.
    if !cfg!(debug_assertions) {
        flags
            .set("enable_verifier", "false")
            .map_err(|e| e.to_string())?;
    }
    flags
        .set("use_colocated_libcalls", "false")
        .map_err(|e| e.to_string())?;
    let builder =
        cranelift_native::builder().map_err(|e| format!("this host is not supported: {e}"))?;
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| e.to_string())
}

/// Compiles `g` with every optimization (see [`compile_with`]).
pub fn compile(g: &Graph, keep_clif: bool) -> Result<Compiled, String> {
    compile_with(g, keep_clif, &Passes::all())
}

/// Runs the IR passes `passes` switches on, plans the kernels and compiles
/// each into a Cranelift function. `keep_clif` saves the Cranelift IR text
/// of each kernel (for `dlc ir --stage clif`).
pub fn compile_with(g: &Graph, keep_clif: bool, passes: &Passes) -> Result<Compiled, String> {
    let start = Instant::now();
    let g = &crate::opt::optimize(g, passes);
    let plan = plan::plan(g, passes);
    let (mut module, fma) = jit_module()?;
    let ext = declare_externs(&mut module)?;
    let inline: HashMap<NodeId, NodeId> = plan
        .storage
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            plan::Storage::Inline(x) => Some((NodeId(i as u32), *x)),
            _ => None,
        })
        .collect();
    let mut em = Emitter {
        module,
        ctx: None,
        fctx: FunctionBuilderContext::new(),
        ext,
        fma,
        inline,
        keep_clif,
        clif: Vec::new(),
        stack: Vec::new(),
        updates: Vec::new(),
        wide: Vec::new(),
        uses: lower::Uses::of(g),
    };
    // Each stack-scratch member's row is shared by the nodes rooted in it.
    let mut sharing: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for i in 0..g.len() {
        let id = NodeId(i as u32);
        let r = plan.root(id);
        if plan.storage[r.index()] == plan::Storage::Stack {
            sharing.entry(r).or_default().push(id);
        }
    }
    let mut ids = Vec::new();
    let mut gemm_ids = Vec::new();
    for (ki, kernel) in plan.kernels.iter().enumerate() {
        let (fid, gemm) = emit_kernel(&mut em, g, &plan, (ki, kernel), &sharing)?;
        ids.push(fid);
        gemm_ids.push(gemm);
    }
    let Emitter {
        mut module, clif, ..
    } = em;
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let kernels = ids
        .into_iter()
        .map(|f| exec::finalized_kernel(&module, f))
        .collect();
    let gemm = gemm_ids
        .into_iter()
        .map(|c| {
            c.map(|(call, epi)| Gemm {
                call,
                epilogue: epi.map(|f| exec::finalized_kernel(&module, f)),
            })
        })
        .collect();
    let kept = kept_inputs(g, &plan);
    let adapt = std::iter::repeat_with(adapt::Adapt::default)
        .take(plan.kernels.len())
        .collect();
    let sums = sums::Sums::of(g, &plan);
    Ok(Compiled {
        kept,
        graph: g.clone(),
        plan,
        passes: *passes,
        kernels,
        gemm,
        matmul: Matmul::default(),
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        layout: None,
        arena: Vec::new(),
        compile_ms: start.elapsed().as_secs_f64() * 1e3,
        clif,
        profile: None,
        adapt,
        copy_adapt: Default::default(),
        step_adapt: Default::default(),
        sums,
        collective: None,
        comm_wait: 0.0,
        _module: module,
    })
}

/// The JIT module for this machine, with the runtime's math, random and
/// linear-algebra functions as symbols, and whether the CPU has FMA.
fn jit_module() -> Result<(JITModule, bool), String> {
    let isa = isa()?;
    let fma = isa
        .isa_flags()
        .iter()
        .any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    let symbols: [(&str, *const u8); 19] = [
        ("dlc_expf", exec::dlc_expf as *const u8),
        ("dlc_logf", exec::dlc_logf as *const u8),
        ("dlc_tanhf", exec::dlc_tanhf as *const u8),
        ("dlc_sinf", exec::dlc_sinf as *const u8),
        ("dlc_cosf", exec::dlc_cosf as *const u8),
        ("dlc_sigmoidf", exec::dlc_sigmoidf as *const u8),
        ("dlc_powf", exec::dlc_powf as *const u8),
        ("dlc_exp", exec::dlc_exp as *const u8),
        ("dlc_log", exec::dlc_log as *const u8),
        ("dlc_tanh", exec::dlc_tanh as *const u8),
        ("dlc_sin", exec::dlc_sin as *const u8),
        ("dlc_cos", exec::dlc_cos as *const u8),
        ("dlc_sigmoid", exec::dlc_sigmoid as *const u8),
        ("dlc_pow", exec::dlc_pow as *const u8),
        ("dlc_rng_normal", exec::dlc_rng_normal as *const u8),
        ("dlc_rng_uniformf", exec::dlc_rng_uniformf as *const u8),
        ("dlc_linalg", exec::dlc_linalg as *const u8),
        ("dlc_rms_step", exec::dlc_rms_step as *const u8),
        ("dlc_wide", exec::dlc_wide as *const u8),
    ];
    for (name, f) in symbols {
        jb.symbol(name, f);
    }
    Ok((JITModule::new(jb), fma))
}

/// Declares the runtime functions kernels call.
fn declare_externs(module: &mut JITModule) -> Result<Externs, String> {
    let decl = |m: &mut JITModule,
                name: &str,
                params: &[types::Type],
                ret: types::Type|
     -> Result<FuncId, String> {
        let mut sig = m.make_signature();
        for p in params {
            sig.params.push(AbiParam::new(*p));
        }
        sig.returns.push(AbiParam::new(ret));
        m.declare_function(name, Linkage::Import, &sig)
            .map_err(|e| e.to_string())
    };
    let (f32t, f64t, i64t) = (types::F32, types::F64, types::I64);
    Ok(Externs {
        expf: decl(module, "dlc_expf", &[f32t], f32t)?,
        logf: decl(module, "dlc_logf", &[f32t], f32t)?,
        tanhf: decl(module, "dlc_tanhf", &[f32t], f32t)?,
        sinf: decl(module, "dlc_sinf", &[f32t], f32t)?,
        cosf: decl(module, "dlc_cosf", &[f32t], f32t)?,
        sigmoidf: decl(module, "dlc_sigmoidf", &[f32t], f32t)?,
        powf: decl(module, "dlc_powf", &[f32t, f32t], f32t)?,
        exp: decl(module, "dlc_exp", &[f64t], f64t)?,
        log: decl(module, "dlc_log", &[f64t], f64t)?,
        tanh: decl(module, "dlc_tanh", &[f64t], f64t)?,
        sin: decl(module, "dlc_sin", &[f64t], f64t)?,
        cos: decl(module, "dlc_cos", &[f64t], f64t)?,
        sigmoid: decl(module, "dlc_sigmoid", &[f64t], f64t)?,
        pow: decl(module, "dlc_pow", &[f64t, f64t], f64t)?,
        normal: decl(module, "dlc_rng_normal", &[i64t, i64t], f64t)?,
        uniformf: decl(module, "dlc_rng_uniformf", &[i64t; 5], i64t)?,
        linalg: decl(module, "dlc_linalg", &[i64t; 8], i64t)?,
        rms_step: decl(module, "dlc_rms_step", &[i64t; 2], i64t)?,
        wide: decl(module, "dlc_wide", &[i64t; 4], i64t)?,
    })
}

/// The kernel's (`Gemm`) form: the call and the epilogue's function.
type GemmForm = Option<(GemmCall, Option<FuncId>)>;

/// Defines kernel `ki`'s function, and its gemm form when its matmul can
/// run in the `gemm` crate: only the epilogue (the group's other members)
/// is JIT code then, or nothing at all when the epilogue is the update
/// gemm folds into its accumulation.
fn emit_kernel(
    em: &mut Emitter,
    g: &Graph,
    plan: &plan::Plan,
    (ki, kernel): (usize, &plan::Kernel),
    sharing: &HashMap<NodeId, Vec<NodeId>>,
) -> Result<(FuncId, GemmForm), String> {
    let first = kernel.nodes[0];
    let name = match kernel.kind {
        plan::KernelKind::Node => format!("k{ki}_{}", g.node(first).op.name()),
        plan::KernelKind::Rows => format!("k{ki}_rows{}", kernel.nodes.len()),
    };
    let headed = kernel.kind == plan::KernelKind::Rows && plan::headed(g, kernel);
    let members = if headed {
        &kernel.nodes[1..]
    } else {
        &kernel.nodes[..]
    };
    // Only a group over a fixed axis needs other types (a copy of the
    // graph); every other kernel is lowered in `g` itself.
    let view: std::borrow::Cow<Graph> =
        if kernel.kind == plan::KernelKind::Rows && kernel.rows != crate::ir::Dim::Batch {
            std::borrow::Cow::Owned(as_batch_rows(g, members))
        } else {
            std::borrow::Cow::Borrowed(g)
        };
    let bytes = if kernel.kind == plan::KernelKind::Rows {
        row_bytes(g, plan, members)
    } else {
        HashMap::new()
    };
    // Stack scratch rows: each member kept on the stack, with the
    // aliases that share its row.
    let stack: Vec<(Vec<NodeId>, usize)> = members
        .iter()
        .filter(|id| plan.storage[id.index()] == plan::Storage::Stack)
        .map(|id| {
            let shared = sharing.get(id).cloned().unwrap_or_default();
            (shared, plan::row_bytes(g, *id))
        })
        .collect();
    em.stack = stack;
    em.updates = kernel.updates.clone();
    em.wide = kernel.wide.clone();
    let fid = em.define(&name, &kernel.nodes, g, &mut |kb| match kernel.kind {
        plan::KernelKind::Node => lower::lower_node(kb, g, first),
        plan::KernelKind::Rows if headed => {
            lower::lower_matmul_rows(kb, g, first, &view, members, bytes.clone())
        }
        plan::KernelKind::Rows => lower::lower_rows(kb, &view, members, bytes.clone()),
    })?;
    // The same kernel with its matmul done by the `gemm` crate: only
    // the epilogue (the group's other members) is JIT code.
    let gemm = match GemmCall::of(g, plan, first) {
        Some(mut call) if headed => match fold_update(g, plan, &em.uses, first, members) {
            Some(u) => {
                call.update = Some(u);
                Some((call, None))
            }
            None => {
                let name = format!("{name}_epilogue");
                let fid = em.define(&name, members, g, &mut |kb| {
                    lower::lower_rows(kb, &view, members, bytes.clone())
                })?;
                Some((call, Some(fid)))
            }
        },
        Some(call) if headed => {
            let name = format!("{name}_epilogue");
            let fid = em.define(&name, members, g, &mut |kb| {
                lower::lower_rows(kb, &view, members, bytes.clone())
            })?;
            Some((call, Some(fid)))
        }
        Some(call) if kernel.kind == plan::KernelKind::Node => Some((call, None)),
        _ => None,
    };
    Ok((fid, gemm))
}

/// Per input of `g`: whether its buffer keeps what was written there
/// after a run, i.e. no other value of `plan` (but views) is placed over it.
fn kept_inputs(g: &Graph, plan: &plan::Plan) -> Vec<bool> {
    let mut overwritten = vec![false; g.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        let r = plan.root(NodeId(i as u32));
        if r.index() != i
            && plan.storage[i] != plan::Storage::Unused
            && !matches!(node.op, Op::Reshape)
        {
            overwritten[r.index()] = true;
        }
    }
    g.inputs
        .iter()
        .map(|info| !overwritten[info.node.index()])
        .collect()
}

/// Builds the kernels' Cranelift functions into one module.
struct Emitter {
    module: JITModule,
    ctx: Option<cranelift_codegen::Context>,
    fctx: FunctionBuilderContext,
    ext: Externs,
    fma: bool,
    inline: HashMap<NodeId, NodeId>,
    keep_clif: bool,
    clif: Vec<(String, String)>,
    /// The current kernel's stack scratch rows: the nodes sharing each, and
    /// its bytes.
    stack: Vec<(Vec<NodeId>, usize)>,
    /// The current kernel's fused optimizer updates (see `update.rs`).
    updates: Vec<update::RmsStep>,
    /// The current kernel's members computed by `exec::dlc_wide`.
    wide: Vec<NodeId>,
    /// The readers of every node of the graph being compiled.
    uses: lower::Uses,
}

impl Emitter {
    /// Defines kernel function `name` with the kernel signature (table,
    /// batch, seed, lo, hi), its body emitted by `body`; `nodes` are the
    /// nodes whose math may call externs.
    fn define(
        &mut self,
        name: &str,
        nodes: &[NodeId],
        g: &Graph,
        body: &mut dyn FnMut(&mut lower::Kb),
    ) -> Result<FuncId, String> {
        let mut ctx = self
            .ctx
            .take()
            .unwrap_or_else(|| self.module.make_context());
        let mut sig = self.module.make_signature();
        for _ in 0..5 {
            sig.params.push(AbiParam::new(types::I64));
        }
        let fid = self
            .module
            .declare_function(name, Linkage::Local, &sig)
            .map_err(|e| e.to_string())?;
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, fid.as_u32());
        let members: Vec<&crate::ir::Node> = nodes.iter().map(|id| g.node(*id)).collect();
        let mut refs = self.ext.import(&mut self.module, &mut ctx.func, &members);
        if !self.wide.is_empty() {
            refs.wide = Some(
                self.module
                    .declare_func_in_func(self.ext.wide, &mut ctx.func),
            );
        }
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let params = b.block_params(entry).to_vec();
            let mut stack = HashMap::new();
            for (ids, bytes) in &self.stack {
                let slot = b.create_sized_stack_slot(cranelift_codegen::ir::StackSlotData::new(
                    cranelift_codegen::ir::StackSlotKind::ExplicitSlot,
                    (*bytes).max(16) as u32,
                    4,
                ));
                for id in ids {
                    stack.insert(*id, slot);
                }
            }
            let mut kb = lower::Kb {
                uses: &self.uses,
                b: &mut b,
                table: params[0],
                batch: params[1],
                seed: params[2],
                lo: params[3],
                hi: params[4],
                ext: &refs,
                fma: self.fma,
                row: None,
                inline: self.inline.clone(),
                stack,
                unrolled: 1,
                updates: &self.updates,
                wide: &self.wide,
            };
            body(&mut kb);
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(self.module.target_config());
        }
        if self.keep_clif {
            self.clif
                .push((name.to_string(), ctx.func.display().to_string()));
        }
        self.module
            .define_function(fid, &mut ctx)
            .map_err(|e| format!("compiler bug: Cranelift rejected kernel {name}: {e:?}"))?;
        self.module.clear_context(&mut ctx);
        self.ctx = Some(ctx);
        Ok(fid)
    }
}

/// How matmuls run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Matmul {
    /// The JIT's own register-tiled kernel, with the epilogue fused into
    /// each strip of four rows.
    Jit,
    /// The `gemm` crate on blocks of rows, each followed by the JIT-compiled
    /// epilogue while the block is in cache (f32 and f64; other dtypes use
    /// the JIT's kernel).
    #[default]
    Gemm,
}

/// A matmul the `gemm` crate can compute: out = a · b, a read from its
/// untransposed input when the transpose is inline.
#[derive(Clone, Copy, Debug)]
pub struct GemmCall {
    pub dtype: crate::ir::DType,
    /// a's buffer, and whether it holds aᵀ (an inline transpose).
    pub a: NodeId,
    pub a_transposed: bool,
    /// b's buffer, and whether it holds bᵀ.
    pub b: NodeId,
    pub b_transposed: bool,
    pub out: NodeId,
    /// The group's epilogue is the SGD step W ← W − s·(a·b) written into
    /// W's own buffer: gemm does it as it stores each tile.
    pub update: Option<Update>,
}

/// W ← W − s·(a·b), with `dst` (the updated W, in W's buffer) and the
/// scalar `scale` s.
#[derive(Clone, Copy, Debug)]
pub struct Update {
    pub dst: NodeId,
    pub scale: NodeId,
}

/// Whether a matmul-headed group's `members` are exactly the SGD step
/// W ← W + (−(s·M)) of the matmul M = `head`, for a scalar s, updating W in
/// place, with nothing else reading M or the partial products: then gemm
/// computes W − s·M in one pass over W (`dst := dst + (−s)·a·b`), and
/// neither the gradient nor the epilogue is stored.
fn fold_update(
    g: &Graph,
    plan: &plan::Plan,
    uses: &lower::Uses,
    head: NodeId,
    members: &[NodeId],
) -> Option<Update> {
    let [mul, neg, add] = *members else {
        return None;
    };
    let (mn, nn, an) = (g.node(mul), g.node(neg), g.node(add));
    let scale = match mn.inputs[..] {
        [x, y] if mn.op == Op::Mul && x == head => y,
        [x, y] if mn.op == Op::Mul && y == head => x,
        _ => return None,
    };
    let st = g.ty(scale);
    if st.shape.rank() != 0 || st.dtype != g.ty(head).dtype {
        return None;
    }
    if nn.op != Op::Neg || nn.inputs[..] != [mul] {
        return None;
    }
    let w = match an.inputs[..] {
        [x, y] if an.op == Op::Add && y == neg => x,
        [x, y] if an.op == Op::Add && x == neg => y,
        _ => return None,
    };
    let root = |id: NodeId| plan.root(id);
    let in_place = root(add) == root(w) && g.ty(w) == g.ty(head) && g.ty(add) == g.ty(head);
    let operands = &g.node(head).inputs;
    if !in_place || operands.iter().any(|x| root(*x) == root(w)) {
        return None;
    }
    // M, s·M and −s·M are read only by the next link, and are not outputs.
    for (x, next) in [(head, mul), (mul, neg), (neg, add)] {
        if uses.readers[x.index()].iter().any(|r| *r != next) || uses.output[x.index()] {
            return None;
        }
    }
    Some(Update { dst: add, scale })
}

impl GemmCall {
    /// The call for node `id`, if it is a 2-D f32 or f64 matmul.
    fn of(g: &Graph, plan: &plan::Plan, id: NodeId) -> Option<GemmCall> {
        let node = g.node(id);
        let dtype = node.ty.dtype;
        if node.op != Op::MatMul
            || !matches!(dtype, crate::ir::DType::F32 | crate::ir::DType::F64)
            || node.ty.shape.0.len() != 2
        {
            return None;
        }
        let read = |x: NodeId| match plan.storage[x.index()] {
            plan::Storage::Inline(src) => (src, true),
            _ => (x, false),
        };
        let ((a, a_transposed), (b, b_transposed)) = (read(node.inputs[0]), read(node.inputs[1]));
        Some(GemmCall {
            dtype,
            a,
            a_transposed,
            b,
            b_transposed,
            out: id,
            update: None,
        })
    }
}

/// A kernel's `gemm` form: the call, then its epilogue over the same rows.
struct Gemm {
    call: GemmCall,
    epilogue: Option<KernelFn>,
}

/// Bytes per row of the buffers a row group reads or writes row by row:
/// its members (unless one-row scratch) and their row operands.
fn row_bytes(g: &Graph, plan: &plan::Plan, members: &[NodeId]) -> HashMap<NodeId, i64> {
    let mut out = HashMap::new();
    let root = |id: NodeId| plan.root(id);
    for id in members {
        let rows = std::iter::once(*id).chain(
            g.node(*id)
                .inputs
                .iter()
                .copied()
                .filter(|x| plan::row_operand(g, *id, *x)),
        );
        for x in rows {
            if matches!(
                plan.storage[root(x).index()],
                plan::Storage::Scratch | plan::Storage::Stack
            ) {
                continue;
            }
            let t = g.ty(x);
            let per_row: usize = concrete(&crate::ir::Shape(t.shape.0[1..].to_vec()), 1)
                .iter()
                .product();
            out.insert(x, (per_row * elem_size(t.dtype)) as i64);
        }
    }
    out
}

/// A row group over a fixed axis, seen as one over B: its members' and row
/// operands' leading axis becomes B, so the row loop can run them with B = 1.
fn as_batch_rows(g: &Graph, members: &[NodeId]) -> Graph {
    let mut v = g.clone();
    for id in members {
        let rows: Vec<NodeId> = g
            .node(*id)
            .inputs
            .iter()
            .copied()
            .filter(|x| plan::row_operand(g, *id, *x))
            .chain(std::iter::once(*id))
            .collect();
        for x in rows {
            if let Some(d) = v.nodes[x.index()].ty.shape.0.first_mut() {
                *d = crate::ir::Dim::Batch;
            }
        }
    }
    v
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
