//! Counter-based random draws in CLIF: splitmix64 keyed by the seed, step and stream.

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::elementwise::convert;
use super::kb::{numel, Kb, Site};
use crate::ir::{DType, Dist, Shape};

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

/// Counter-based random numbers keyed by the seed, the step and the
/// stream, as `rng::key` computes them (f32 uniforms by a call to
/// `exec::dlc_rng_uniformf`).
pub(super) fn random(kb: &mut Kb, site: &Site, dist: Dist, stream: u32) {
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
