//! The JIT module: the host's ISA, and the runtime functions kernels call (symbols, declarations).

use cranelift_codegen::ir::{types, AbiParam, FuncRef};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

use super::exec;
use crate::ir::Op;

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
    pub(super) fn import(
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

/// The JIT module for this machine, with the runtime's math, random and
/// linear-algebra functions as symbols, and whether the CPU has FMA.
pub(super) fn jit_module() -> Result<(JITModule, bool), String> {
    let isa = isa()?;
    let fma = isa
        .isa_flags()
        .iter()
        .any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    let symbols: [(&str, *const u8); 19] = [
        ("dlc_expf", exec::externs::dlc_expf as *const u8),
        ("dlc_logf", exec::externs::dlc_logf as *const u8),
        ("dlc_tanhf", exec::externs::dlc_tanhf as *const u8),
        ("dlc_sinf", exec::externs::dlc_sinf as *const u8),
        ("dlc_cosf", exec::externs::dlc_cosf as *const u8),
        ("dlc_sigmoidf", exec::externs::dlc_sigmoidf as *const u8),
        ("dlc_powf", exec::externs::dlc_powf as *const u8),
        ("dlc_exp", exec::externs::dlc_exp as *const u8),
        ("dlc_log", exec::externs::dlc_log as *const u8),
        ("dlc_tanh", exec::externs::dlc_tanh as *const u8),
        ("dlc_sin", exec::externs::dlc_sin as *const u8),
        ("dlc_cos", exec::externs::dlc_cos as *const u8),
        ("dlc_sigmoid", exec::externs::dlc_sigmoid as *const u8),
        ("dlc_pow", exec::externs::dlc_pow as *const u8),
        ("dlc_rng_normal", exec::externs::dlc_rng_normal as *const u8),
        (
            "dlc_rng_uniformf",
            exec::externs::dlc_rng_uniformf as *const u8,
        ),
        ("dlc_linalg", exec::externs::dlc_linalg as *const u8),
        ("dlc_rms_step", exec::dlc_rms_step as *const u8),
        ("dlc_wide", exec::dlc_wide as *const u8),
    ];
    for (name, f) in symbols {
        jb.symbol(name, f);
    }
    Ok((JITModule::new(jb), fma))
}

/// Declares the runtime functions kernels call.
pub(super) fn declare_externs(module: &mut JITModule) -> Result<Externs, String> {
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
