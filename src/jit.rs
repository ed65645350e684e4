//! The Cranelift JIT: each IR node becomes a native kernel, and
//! [`Compiled::run`] executes a graph on concrete tensors.
//!
//! `compile` builds the ISA from the host's flags (cranelift-native, so
//! FMA and SSE4 are available), lowers each live node into one function
//! (`lower.rs`) and finalizes the module. The batch size is a run-time
//! argument of every kernel, so one compiled graph serves every batch size.
//!
//! Architecture invariant: all `unsafe` of the runtime is in `exec.rs`;
//! `run` checks every buffer against the shapes before any kernel runs.

pub mod exec;
pub mod lower;
pub mod math;

use std::time::Instant;

use cranelift_codegen::ir::{types, AbiParam, FuncRef, InstBuilder, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

use crate::interp::{concrete, Env, Tensor};
use crate::ir::{Graph, NodeId, Op};
use exec::{elem_size, KernelFn};

/// The Rust functions kernels may call (by declaration id).
pub struct Externs {
    pub expf: FuncId,
    pub logf: FuncId,
    pub tanhf: FuncId,
    pub sigmoidf: FuncId,
    pub powf: FuncId,
    pub exp: FuncId,
    pub log: FuncId,
    pub tanh: FuncId,
    pub sigmoid: FuncId,
    pub pow: FuncId,
    pub normal: FuncId,
}

/// The externs imported into one function: only those its op calls, so
/// the printed Cranelift IR stays small.
#[derive(Default)]
pub struct ExternRefs {
    pub expf: Option<FuncRef>,
    pub logf: Option<FuncRef>,
    pub tanhf: Option<FuncRef>,
    pub sigmoidf: Option<FuncRef>,
    pub powf: Option<FuncRef>,
    pub exp: Option<FuncRef>,
    pub log: Option<FuncRef>,
    pub tanh: Option<FuncRef>,
    pub sigmoid: Option<FuncRef>,
    pub pow: Option<FuncRef>,
    pub normal: Option<FuncRef>,
}

impl Externs {
    fn import(
        &self,
        m: &mut JITModule,
        f: &mut cranelift_codegen::ir::Function,
        node: &crate::ir::Node,
    ) -> ExternRefs {
        let mut r = ExternRefs::default();
        let f32t = node.ty.dtype == crate::ir::DType::F32;
        let (slot, id) = match &node.op {
            // f32 exp/log/tanh/sigmoid are inline polynomials.
            Op::Exp | Op::Log | Op::Tanh | Op::Sigmoid if f32t => return r,
            Op::Exp => (&mut r.exp, self.exp),
            Op::Log => (&mut r.log, self.log),
            Op::Tanh => (&mut r.tanh, self.tanh),
            Op::Sigmoid => (&mut r.sigmoid, self.sigmoid),
            Op::Pow if f32t => (&mut r.powf, self.powf),
            Op::Pow => (&mut r.pow, self.pow),
            Op::Random {
                dist: crate::ir::Dist::Normal,
                ..
            } => (&mut r.normal, self.normal),
            _ => return r,
        };
        *slot = Some(m.declare_func_in_func(id, f));
        r
    }
}

/// The bytes `run` would allocate for `g`'s buffers at batch size `batch`
/// (one buffer per live node), computed without allocating anything.
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

/// The memory this machine can give us, from /proc/meminfo (MemAvailable),
/// or `None` where that is unknown.
pub fn available_memory() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A compiled graph, ready to run at any batch size.
pub struct Compiled {
    pub graph: Graph,
    kernels: Vec<(NodeId, KernelFn)>,
    /// Worker threads for large kernels (matmuls split by output rows).
    pub threads: usize,
    buffers: Vec<Vec<u64>>,
    live: Vec<bool>,
    /// Milliseconds spent compiling.
    pub compile_ms: f64,
    /// Each kernel's Cranelift IR, when asked for.
    pub clif: Vec<(String, String)>,
    /// When profiling: each kernel's total wall time in seconds.
    profile: Option<Vec<f64>>,
    _module: JITModule,
}

fn isa() -> Result<std::sync::Arc<dyn cranelift_codegen::isa::TargetIsa>, String> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
    flags.set("is_pic", "false").map_err(|e| e.to_string())?;
    flags
        .set("use_colocated_libcalls", "false")
        .map_err(|e| e.to_string())?;
    let builder =
        cranelift_native::builder().map_err(|e| format!("this host is not supported: {e}"))?;
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| e.to_string())
}

/// Compiles every live node of `g` into a kernel. `keep_clif` saves the
/// Cranelift IR text of each kernel (for `dlc ir --stage clif`).
pub fn compile(g: &Graph, keep_clif: bool) -> Result<Compiled, String> {
    let start = Instant::now();
    let isa = isa()?;
    let fma = isa
        .isa_flags()
        .iter()
        .any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    jb.symbol("dlc_expf", exec::dlc_expf as *const u8);
    jb.symbol("dlc_logf", exec::dlc_logf as *const u8);
    jb.symbol("dlc_tanhf", exec::dlc_tanhf as *const u8);
    jb.symbol("dlc_sigmoidf", exec::dlc_sigmoidf as *const u8);
    jb.symbol("dlc_powf", exec::dlc_powf as *const u8);
    jb.symbol("dlc_exp", exec::dlc_exp as *const u8);
    jb.symbol("dlc_log", exec::dlc_log as *const u8);
    jb.symbol("dlc_tanh", exec::dlc_tanh as *const u8);
    jb.symbol("dlc_sigmoid", exec::dlc_sigmoid as *const u8);
    jb.symbol("dlc_pow", exec::dlc_pow as *const u8);
    jb.symbol("dlc_rng_normal", exec::dlc_rng_normal as *const u8);
    let mut module = JITModule::new(jb);
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
    let ext = Externs {
        expf: decl(&mut module, "dlc_expf", &[f32t], f32t)?,
        logf: decl(&mut module, "dlc_logf", &[f32t], f32t)?,
        tanhf: decl(&mut module, "dlc_tanhf", &[f32t], f32t)?,
        sigmoidf: decl(&mut module, "dlc_sigmoidf", &[f32t], f32t)?,
        powf: decl(&mut module, "dlc_powf", &[f32t, f32t], f32t)?,
        exp: decl(&mut module, "dlc_exp", &[f64t], f64t)?,
        log: decl(&mut module, "dlc_log", &[f64t], f64t)?,
        tanh: decl(&mut module, "dlc_tanh", &[f64t], f64t)?,
        sigmoid: decl(&mut module, "dlc_sigmoid", &[f64t], f64t)?,
        pow: decl(&mut module, "dlc_pow", &[f64t, f64t], f64t)?,
        normal: decl(&mut module, "dlc_rng_normal", &[i64t, i64t], f64t)?,
    };
    let live = crate::ir::print::live_nodes(g);
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut ids = Vec::new();
    let mut clif = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        if !live[i] || matches!(node.op, Op::Input(_) | Op::Const(_) | Op::Literal(_)) {
            continue;
        }
        let mut sig = module.make_signature();
        for _ in 0..5 {
            sig.params.push(AbiParam::new(types::I64));
        }
        let name = format!("k{i}_{}", node.op.name());
        let fid = module
            .declare_function(&name, Linkage::Local, &sig)
            .map_err(|e| e.to_string())?;
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, fid.as_u32());
        let refs = ext.import(&mut module, &mut ctx.func, node);
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let params = b.block_params(entry).to_vec();
            let mut kb = lower::Kb {
                b: &mut b,
                table: params[0],
                batch: params[1],
                seed: params[2],
                lo: params[3],
                hi: params[4],
                ext: &refs,
                fma,
            };
            lower::lower_node(&mut kb, g, NodeId(i as u32));
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(module.target_config());
        }
        if keep_clif {
            clif.push((name.clone(), ctx.func.display().to_string()));
        }
        module
            .define_function(fid, &mut ctx)
            .map_err(|e| format!("compiler bug: Cranelift rejected kernel {name}: {e:?}"))?;
        module.clear_context(&mut ctx);
        ids.push((NodeId(i as u32), fid));
    }
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let kernels = ids
        .into_iter()
        .map(|(n, f)| (n, exec::finalized_kernel(&module, f)))
        .collect();
    Ok(Compiled {
        graph: g.clone(),
        kernels,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        buffers: vec![Vec::new(); g.len()],
        live,
        compile_ms: start.elapsed().as_secs_f64() * 1e3,
        clif,
        profile: None,
        _module: module,
    })
}

impl Compiled {
    /// The bytes every buffer needs at batch size `batch`.
    fn sizes(&self, batch: usize) -> Vec<usize> {
        self.graph
            .nodes
            .iter()
            .map(|n| concrete(&n.ty.shape, batch).iter().product::<usize>() * elem_size(n.ty.dtype))
            .collect()
    }

    /// Runs one kernel; a matmul with enough work is split by output rows
    /// across `threads` threads.
    fn launch(&self, id: NodeId, k: KernelFn, table: &[*mut u8], env: &Env) {
        let node = self.graph.node(id);
        let rows = match node.ty.shape.0.first() {
            Some(d) if node.op == Op::MatMul => concrete(&crate::ir::Shape(vec![*d]), env.batch)[0],
            _ => 1,
        };
        let work = if node.op == Op::MatMul {
            let ins = &node.inputs;
            let k_dim = concrete(&self.graph.ty(ins[0]).shape, env.batch)[1];
            let n_dim = concrete(&node.ty.shape, env.batch)[1];
            rows * k_dim * n_dim
        } else {
            0
        };
        // Below ~1 MFLOP a thread costs more than it saves.
        if self.threads > 1 && work >= 500_000 && rows >= 8 {
            exec::call_split(k, table, env.batch, env.seed, rows, self.threads);
        } else {
            exec::call(k, table, env.batch, env.seed, rows);
        }
    }

    /// Starts timing every kernel of every later [`Compiled::run`].
    pub fn start_profile(&mut self) {
        self.profile = Some(vec![0.0; self.kernels.len()]);
    }

    /// Each kernel's node and total seconds so far, when profiling.
    pub fn kernel_times(&self) -> Vec<(NodeId, f64)> {
        match &self.profile {
            Some(times) => self
                .kernels
                .iter()
                .map(|(id, _)| *id)
                .zip(times.iter().copied())
                .collect(),
            None => Vec::new(),
        }
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
        let table: Vec<*mut u8> = self
            .buffers
            .iter_mut()
            .map(|b| b.as_mut_ptr().cast::<u8>())
            .collect();
        let start = Instant::now();
        for _ in 0..reps {
            for (id, k) in &self.kernels {
                self.launch(*id, *k, &table, env);
            }
        }
        Ok(start.elapsed().as_secs_f64() / reps.max(1) as f64)
    }

    /// Runs the graph on `inputs` (in `graph.inputs` order).
    pub fn run(&mut self, inputs: &[Tensor], env: &Env) -> Result<Vec<Tensor>, String> {
        let g = &self.graph;
        if inputs.len() != g.inputs.len() {
            return Err(format!(
                "{} inputs given, the graph takes {}",
                inputs.len(),
                g.inputs.len()
            ));
        }
        let sizes = self.sizes(env.batch);
        for (i, need) in sizes.iter().enumerate() {
            if self.live[i] && self.buffers[i].len() * 8 < *need {
                self.buffers[i] = vec![0u64; need.div_ceil(8).max(1)];
            }
        }
        for (info, t) in g.inputs.iter().zip(inputs) {
            let want = concrete(&g.ty(info.node).shape, env.batch);
            if t.shape != want {
                return Err(format!(
                    "input {} has shape {:?}, expected {:?}",
                    info.name, t.shape, want
                ));
            }
            exec::write(
                &mut self.buffers[info.node.index()],
                g.ty(info.node).dtype,
                &t.data,
            );
        }
        for (i, n) in g.nodes.iter().enumerate() {
            if !self.live[i] {
                continue;
            }
            match &n.op {
                Op::Const(bits) => {
                    exec::write(&mut self.buffers[i], n.ty.dtype, &[f64::from_bits(*bits)])
                }
                Op::Literal(k) => {
                    let v = g.literals.get(*k as usize).ok_or("literal missing")?;
                    exec::write(&mut self.buffers[i], n.ty.dtype, v);
                }
                _ => {}
            }
        }
        // Memory safety: every buffer a kernel can touch is large enough
        // for its shape at this batch size.
        for (i, need) in sizes.iter().enumerate() {
            if self.live[i] && self.buffers[i].len() * 8 < *need {
                return Err(format!("compiler bug: buffer %{i} is too small"));
            }
        }
        let table: Vec<*mut u8> = self
            .buffers
            .iter_mut()
            .map(|b| b.as_mut_ptr().cast::<u8>())
            .collect();
        match self.profile.take() {
            None => {
                for (id, k) in &self.kernels {
                    self.launch(*id, *k, &table, env);
                }
            }
            Some(mut times) => {
                for ((id, k), t) in self.kernels.iter().zip(times.iter_mut()) {
                    let start = Instant::now();
                    self.launch(*id, *k, &table, env);
                    *t += start.elapsed().as_secs_f64();
                }
                self.profile = Some(times);
            }
        }
        let g = &self.graph;
        Ok(g.outputs
            .iter()
            .map(|(_, id)| {
                let n = g.node(*id);
                let shape = concrete(&n.ty.shape, env.batch);
                let count = shape.iter().product();
                Tensor::new(
                    n.ty.dtype,
                    shape,
                    exec::read(&self.buffers[id.index()], n.ty.dtype, count),
                )
            })
            .collect())
    }
}
