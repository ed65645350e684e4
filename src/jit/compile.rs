//! Compiling a graph: the IR passes, the kernel plan, and each kernel's Cranelift function.

use std::collections::HashMap;
use std::time::Instant;

use cranelift_codegen::ir::{types, AbiParam, InstBuilder, UserFuncName};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};

use super::compiled::Compiled;
use super::exec::{self, elem_size};
use super::gemm::{fold_update, Gemm, GemmCall, Matmul};
use super::module::{declare_externs, jit_module, Externs};
use super::{adapt, lower, plan, sums, update};
use crate::interp::concrete;
use crate::ir::{Graph, NodeId, Op};
use crate::opt::Passes;

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
