//! The fused optimizer update over one row (`jit/update.rs` says which
//! IR it replaces): 8 lanes at a time with AVX where the host has it,
//! else 4 (what the compiler makes of the portable loop), with the same
//! IEEE operations in the same order either way, and as the Cranelift
//! chain: a product and a sum are never contracted into a fused
//! multiply-add, so every width writes the same bits.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_div_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps,
    _mm256_sqrt_ps, _mm256_storeu_ps, _mm256_xor_ps,
};

/// The slots of the argument array a kernel passes (`ARGS` pointers).
pub const G: usize = 0;
pub const V: usize = 1;
pub const W: usize = 2;
pub const M: usize = 3;
pub const BETA2: usize = 4;
pub const DELTA2: usize = 5;
pub const EPS: usize = 6;
pub const LR: usize = 7;
pub const C2: usize = 8;
pub const BETA1: usize = 9;
pub const DELTA1: usize = 10;
pub const C1: usize = 11;
pub const DECAY: usize = 12;
pub const V_OUT: usize = 13;
pub const M_OUT: usize = 14;
pub const W_OUT: usize = 15;
pub const ARGS: usize = 16;

/// The update's one-value operands; an absent one is 1.0, whose product
/// is exact, so `x·1` stands for a factor the IR does not have.
#[derive(Clone, Copy)]
struct Scalars {
    beta2: f32,
    delta2: f32,
    eps: f32,
    lr: f32,
    c2: f32,
    beta1: f32,
    delta1: f32,
    c1: f32,
    decay: f32,
}

/// The row's pointers.
struct Row {
    g: *const f32,
    v: *const f32,
    w: *const f32,
    /// Null for RMSprop (no mean).
    m: *const f32,
    v_out: *mut f32,
    m_out: *mut f32,
    w_out: *mut f32,
}

/// Updates `width` elements of one row; `args` holds [`ARGS`] pointers at
/// the slots above (null where the update has no such operand). Returns 0.
///
/// # Safety
/// Every non-null row pointer holds `width` f32s, every non-null
/// one-value pointer one f32; the outputs overlap no input except at the
/// same element (an update written over its own state or parameter).
pub unsafe extern "C" fn dlc_rms_step(width: i64, args: *const *mut f32) -> i64 {
    // SAFETY: the caller's contract.
    unsafe {
        let a = std::slice::from_raw_parts(args, ARGS);
        let one = |k: usize| if a[k].is_null() { 1.0 } else { *a[k] };
        let s = Scalars {
            beta2: one(BETA2),
            delta2: one(DELTA2),
            eps: one(EPS),
            lr: one(LR),
            c2: one(C2),
            beta1: one(BETA1),
            delta1: one(DELTA1),
            c1: one(C1),
            decay: one(DECAY),
        };
        let r = Row {
            g: a[G],
            v: a[V],
            w: a[W],
            m: a[M],
            v_out: a[V_OUT],
            m_out: a[M_OUT],
            w_out: a[W_OUT],
        };
        let width = width.max(0) as usize;
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx") {
            done = if r.m.is_null() {
                lanes8::<false>(&r, s, width)
            } else {
                lanes8::<true>(&r, s, width)
            };
        }
        for j in done..width {
            element(&r, s, j);
        }
    }
    0
}

/// Element j, in the chain's order of operations.
///
/// # Safety
/// As [`dlc_rms_step`], j < width.
#[inline(always)]
unsafe fn element(r: &Row, s: Scalars, j: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        let g = *r.g.add(j);
        let v2 = *r.v.add(j) * s.beta2 + (g * g) * s.delta2;
        let inv = 1.0 / ((v2 * s.c2).sqrt() + s.eps);
        let x = if r.m.is_null() {
            g
        } else {
            let m2 = *r.m.add(j) * s.beta1 + g * s.delta1;
            if !r.m_out.is_null() {
                *r.m_out.add(j) = m2;
            }
            m2 * s.c1
        };
        let w2 = *r.w.add(j) * s.decay + -(s.lr * (x * inv));
        if !r.v_out.is_null() {
            *r.v_out.add(j) = v2;
        }
        *r.w_out.add(j) = w2;
    }
}

/// The first `width / 8 · 8` elements, 8 at a time; returns how many.
///
/// # Safety
/// As [`dlc_rms_step`], on a host with AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn lanes8<const MEAN: bool>(r: &Row, s: Scalars, width: usize) -> usize {
    let k = |x: f32| _mm256_set1_ps(x);
    let (beta2, delta2, eps, lr, c2) = (k(s.beta2), k(s.delta2), k(s.eps), k(s.lr), k(s.c2));
    let (beta1, delta1, c1, decay) = (k(s.beta1), k(s.delta1), k(s.c1), k(s.decay));
    let (one, sign) = (k(1.0), k(-0.0));
    let full = width / 8 * 8;
    let mut j = 0;
    // SAFETY (this block): j + 8 ≤ width, inside every row (the contract);
    // each output is stored after every input of the same elements is read.
    unsafe {
        while j < full {
            let load = |p: *const f32| _mm256_loadu_ps(p.add(j));
            let g = load(r.g);
            let v2 = _mm256_add_ps(
                _mm256_mul_ps(load(r.v), beta2),
                _mm256_mul_ps(_mm256_mul_ps(g, g), delta2),
            );
            let den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(v2, c2)), eps);
            let inv = _mm256_div_ps(one, den);
            let x: __m256 = if MEAN {
                let m2 = _mm256_add_ps(_mm256_mul_ps(load(r.m), beta1), _mm256_mul_ps(g, delta1));
                if !r.m_out.is_null() {
                    _mm256_storeu_ps(r.m_out.add(j), m2);
                }
                _mm256_mul_ps(m2, c1)
            } else {
                g
            };
            let st = _mm256_mul_ps(lr, _mm256_mul_ps(x, inv));
            let w2 = _mm256_add_ps(_mm256_mul_ps(load(r.w), decay), _mm256_xor_ps(st, sign));
            if !r.v_out.is_null() {
                _mm256_storeu_ps(r.v_out.add(j), v2);
            }
            _mm256_storeu_ps(r.w_out.add(j), w2);
            j += 8;
        }
    }
    full
}
