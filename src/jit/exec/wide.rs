//! tanh, sigmoid and exp over one row of f32, 8 lanes at a time with AVX2
//! where the host has it: the `wide` pass (`plan::wide_members`) has a
//! fused row loop call this for such a member instead of computing it in
//! Cranelift's 4-lane vectors, which are the widest Cranelift emits.
//!
//! The operations are `lower::inline`'s (math.rs's Cephes forms), IEEE
//! operation for IEEE operation in the same order: no product and sum are
//! contracted into a fused multiply-add, clamps and selects keep the same
//! operands. So every lane writes the bits the 4-lane loop and the scalar
//! tail write, and the pass changes no result (tests compare bit for bit).
//! The row's last `n % 8` values go through the same 8-lane code from a
//! padded copy; a host without AVX2 runs math.rs's scalar forms.

use super::super::math;
#[cfg(target_arch = "x86_64")]
use super::super::math::{EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, TANH_P};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The functions, as the kernel passes them (`kind`).
pub const TANH: i64 = 0;
pub const SIGMOID: i64 = 1;
pub const EXP: i64 = 2;

/// y[j] = f(x[j]) for j < n, f by `kind`. Returns 0.
///
/// # Safety
/// `x` and `y` hold `n` f32s each; they are the same row or do not overlap.
pub unsafe extern "C" fn dlc_wide(kind: i64, x: *const f32, y: *mut f32, n: i64) -> i64 {
    let n = n.max(0) as usize;
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the caller's contract, on a host with AVX2.
        unsafe {
            match kind {
                TANH => rows8::<TANH>(x, y, n),
                SIGMOID => rows8::<SIGMOID>(x, y, n),
                _ => rows8::<EXP>(x, y, n),
            }
        }
        return 0;
    }
    let f = match kind {
        TANH => math::tanh,
        SIGMOID => math::sigmoid,
        _ => math::exp,
    };
    for j in 0..n {
        // SAFETY: j < n, inside both rows (the contract).
        unsafe { *y.add(j) = f(*x.add(j)) };
    }
    0
}

/// The row 8 at a time; the last `n % 8` through a padded copy. (The
/// function is a constant, not a closure: a closure would not inherit the
/// target feature, and every intrinsic in it would become a call.)
///
/// # Safety
/// As [`dlc_wide`], on a host with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rows8<const KIND: i64>(x: *const f32, y: *mut f32, n: usize) {
    let f = |v: __m256| match KIND {
        TANH => tanh8(v),
        SIGMOID => sigmoid8(v),
        _ => exp8(v),
    };
    let full = n / 8 * 8;
    let mut j = 0;
    // SAFETY: j + 8 ≤ full ≤ n: inside both rows; each 8 are read before
    // they are written, so a row written over itself is fine.
    unsafe {
        while j < full {
            _mm256_storeu_ps(y.add(j), f(_mm256_loadu_ps(x.add(j))));
            j += 8;
        }
        if full < n {
            let mut t = [0f32; 8];
            std::ptr::copy_nonoverlapping(x.add(full), t.as_mut_ptr(), n - full);
            _mm256_storeu_ps(t.as_mut_ptr(), f(_mm256_loadu_ps(t.as_ptr())));
            std::ptr::copy_nonoverlapping(t.as_ptr(), y.add(full), n - full);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn splat(v: f32) -> __m256 {
    // SAFETY: AVX, which every caller (inside `rows8`) has.
    unsafe { _mm256_set1_ps(v) }
}

/// `inline::sel`: where `mask`, a; else b.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sel(mask: __m256, a: __m256, b: __m256) -> __m256 {
    // SAFETY: AVX (the callers').
    unsafe { _mm256_blendv_ps(b, a, mask) }
}

/// `inline::exp`, 8 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp8(x: __m256) -> __m256 {
    // SAFETY: AVX2 (the callers').
    unsafe {
        let (lo, hi) = (splat(EXP_LO), splat(EXP_HI));
        // Cranelift's fmax/fmin keep a NaN operand; maxps/minps return
        // their second operand when either is NaN, so x goes second.
        let xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(xc, splat(LOG2E)),
        );
        let r1 = _mm256_sub_ps(xc, _mm256_mul_ps(n, splat(LN2_HI)));
        let r = _mm256_sub_ps(r1, _mm256_mul_ps(n, splat(LN2_LO)));
        let mut p = splat(EXP_P[0]);
        for k in &EXP_P[1..] {
            p = _mm256_add_ps(_mm256_mul_ps(p, r), splat(*k));
        }
        let prr = _mm256_mul_ps(_mm256_mul_ps(p, r), r);
        let p = _mm256_add_ps(_mm256_add_ps(prr, r), splat(1.0));
        // n is an integer in [-150, 128] here (NaN lanes end NaN anyway).
        let ni = _mm256_cvttps_epi32(n);
        let h = _mm256_srai_epi32::<1>(ni);
        let rest = _mm256_sub_epi32(ni, h);
        let pow2 = |e: __m256i| {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                e,
                _mm256_set1_epi32(127),
            )))
        };
        let y = _mm256_mul_ps(_mm256_mul_ps(p, pow2(h)), pow2(rest));
        let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, hi);
        let y = sel(over, splat(f32::INFINITY), y);
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, lo);
        sel(under, splat(0.0), y)
    }
}

/// `inline::tanh`, 8 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tanh8(x: __m256) -> __m256 {
    // SAFETY: AVX2 (the callers').
    unsafe {
        let sign = splat(-0.0);
        let a = _mm256_andnot_ps(sign, x);
        let z = _mm256_mul_ps(x, x);
        let mut p = splat(TANH_P[0]);
        for k in &TANH_P[1..] {
            p = _mm256_add_ps(_mm256_mul_ps(p, z), splat(*k));
        }
        let small = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, z), x), x);
        let e = exp8(_mm256_add_ps(a, a));
        let one = splat(1.0);
        let q = _mm256_div_ps(splat(2.0), _mm256_add_ps(e, one));
        let big = _mm256_sub_ps(one, q);
        let negx = _mm256_cmp_ps::<_CMP_LT_OQ>(x, splat(0.0));
        let big = sel(negx, _mm256_xor_ps(big, sign), big);
        let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, splat(0.625));
        sel(is_small, small, big)
    }
}

/// `inline::sigmoid`, 8 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sigmoid8(x: __m256) -> __m256 {
    // SAFETY: AVX2 (the callers').
    unsafe {
        let one = splat(1.0);
        let e = exp8(_mm256_xor_ps(x, splat(-0.0)));
        _mm256_div_ps(one, _mm256_add_ps(one, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lane position and tail length, over values that reach each
    /// branch (tanh's polynomial and its exp form, exp's overflow,
    /// underflow and subnormal results) and random bit patterns: the
    /// same bits as math.rs's scalar forms, which are the Cranelift
    /// sequence's (NaN stays NaN).
    #[test]
    fn wide_rows_are_the_scalar_forms() {
        let mut vals: Vec<f32> = vec![
            0.0,
            -0.0,
            0.624,
            0.625,
            -0.626,
            1.0,
            -3.5,
            9.0,
            20.0,
            -20.0,
            88.0,
            88.8,
            89.0,
            -87.5,
            -100.0,
            -103.9,
            -104.5,
            -150.0,
            1e-30,
            -1e-40,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
        ];
        let mut seed = 11u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bits = (seed >> 32) as u32;
            // Half random bits, half values spread over [-120, 120].
            vals.push(if seed & 1 == 0 {
                f32::from_bits(bits)
            } else {
                (bits as f32 / u32::MAX as f32 - 0.5) * 240.0
            });
        }
        for (kind, f) in [
            (TANH, math::tanh as fn(f32) -> f32),
            (SIGMOID, math::sigmoid),
            (EXP, math::exp),
        ] {
            for n in [vals.len(), 1, 7, 8, 9, 15, 17] {
                let x = &vals[..n];
                let mut y = vec![0f32; n];
                // SAFETY: both rows hold n values.
                unsafe { dlc_wide(kind, x.as_ptr(), y.as_mut_ptr(), n as i64) };
                for (xv, yv) in x.iter().zip(&y) {
                    let want = f(*xv);
                    assert!(
                        want.to_bits() == yv.to_bits() || (want.is_nan() && yv.is_nan()),
                        "kind {kind}: f({xv:e}) = {yv:e}, want {want:e}"
                    );
                }
                // Written over its own row.
                let mut z = x.to_vec();
                // SAFETY: the same row, n values.
                unsafe { dlc_wide(kind, z.as_ptr(), z.as_mut_ptr(), n as i64) };
                assert!(z
                    .iter()
                    .zip(&y)
                    .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())));
            }
        }
    }
}
