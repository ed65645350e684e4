//! The Rust functions JIT kernels call: libm math, random draws and the `linalg` ops.

/// The `linalg` ops, called by their kernels: `kind` is the op's index in
/// [`LINALG`], `f64s` whether the buffers hold f64 (else f32); `a` holds an
/// n×n matrix, `b` (for solve) n·k values, `out` `len` values.
#[allow(clippy::too_many_arguments)]
pub extern "C" fn dlc_linalg(
    kind: i64,
    f64s: i64,
    n: i64,
    k: i64,
    len: i64,
    a: *const u8,
    b: *const u8,
    out: *mut u8,
) -> i64 {
    let (n, k, len) = (n as usize, k as usize, len as usize);
    let Some(kind) = LINALG.get(kind as usize).copied() else {
        return 1;
    };
    let read = |p: *const u8, count: usize| -> Vec<f64> {
        if count == 0 {
            return Vec::new();
        }
        // SAFETY: the kernel passes buffers that `Compiled::run` sized for
        // the op's operands: `a` n·n and `b` n·k elements of the dtype.
        unsafe {
            if f64s != 0 {
                std::slice::from_raw_parts(p.cast::<f64>(), count).to_vec()
            } else {
                std::slice::from_raw_parts(p.cast::<f32>(), count)
                    .iter()
                    .map(|v| f64::from(*v))
                    .collect()
            }
        }
    };
    let (va, vb) = (read(a, n * n), read(b, n * k));
    let mut res = vec![0.0; len];
    crate::linalg::apply(kind, n, &va, &vb, &mut res);
    // SAFETY: `out` is the op's own buffer, `len` elements of the dtype,
    // which no operand shares (the plan never computes a linalg op in place).
    unsafe {
        if f64s != 0 {
            std::slice::from_raw_parts_mut(out.cast::<f64>(), len).copy_from_slice(&res);
        } else {
            for (d, v) in std::slice::from_raw_parts_mut(out.cast::<f32>(), len)
                .iter_mut()
                .zip(&res)
            {
                *d = *v as f32;
            }
        }
    }
    0
}

/// The `linalg` ops by the index their kernels pass.
pub const LINALG: [crate::ir::Linalg; 6] = [
    crate::ir::Linalg::Inv,
    crate::ir::Linalg::Det,
    crate::ir::Linalg::Solve,
    crate::ir::Linalg::Cholesky,
    crate::ir::Linalg::EigVals,
    crate::ir::Linalg::EigVecs,
];

// Math the kernels call per element (polynomial inline versions replace
// these in the performance work).
pub extern "C" fn dlc_expf(x: f32) -> f32 {
    x.exp()
}
pub extern "C" fn dlc_logf(x: f32) -> f32 {
    x.ln()
}
pub extern "C" fn dlc_tanhf(x: f32) -> f32 {
    x.tanh()
}
pub extern "C" fn dlc_sinf(x: f32) -> f32 {
    x.sin()
}
pub extern "C" fn dlc_cosf(x: f32) -> f32 {
    x.cos()
}
pub extern "C" fn dlc_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
}
pub extern "C" fn dlc_sigmoidf(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
pub extern "C" fn dlc_exp(x: f64) -> f64 {
    x.exp()
}
pub extern "C" fn dlc_log(x: f64) -> f64 {
    x.ln()
}
pub extern "C" fn dlc_tanh(x: f64) -> f64 {
    x.tanh()
}
pub extern "C" fn dlc_sin(x: f64) -> f64 {
    x.sin()
}
pub extern "C" fn dlc_cos(x: f64) -> f64 {
    x.cos()
}
pub extern "C" fn dlc_pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}
pub extern "C" fn dlc_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
pub extern "C" fn dlc_rng_normal(key: i64, i: i64) -> f64 {
    crate::rng::normal(key as u64, i as u64)
}

/// Writes the f32 uniforms `rng::uniform(key, i)` for i in [start, end)
/// into elements [start, end) of the f32 buffer `out`: eight at a time with
/// AVX2 where the host has it (the 64-bit mixes as 32-bit multiplies in
/// four u64 lanes), else one at a time; the same bits either way.
pub extern "C" fn dlc_rng_uniformf(
    key: i64,
    first: i64,
    start: i64,
    end: i64,
    out: *mut u8,
) -> i64 {
    let (key, start, end) = (key as u64, start.max(0) as usize, end.max(0) as usize);
    if start >= end {
        return 0;
    }
    // Element j of `out` is element first + j of the draw (a data-parallel
    // step's rows start inside the global batch's).
    let first = first.max(0) as u64;
    // SAFETY: the kernel passes its own output buffer, which `run` sized
    // for at least `end` f32s at this batch, and a range of it that this
    // call alone writes (the threads' row ranges are disjoint).
    let out = unsafe { std::slice::from_raw_parts_mut(out.cast::<f32>().add(start), end - start) };
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the host has AVX2 (checked above).
        done = unsafe { uniforms_avx2(key, first + start as u64, out) };
    }
    for (k, o) in out.iter_mut().enumerate().skip(done) {
        *o = uniform_f32(crate::rng::bits(key, first + (start + k) as u64));
    }
    0
}

/// An f32 uniform from 64 random bits: the top 24, times 2⁻²⁴ (exact).
fn uniform_f32(bits: u64) -> f32 {
    (bits >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// Fills `out` (indices first, first + 1, ...) eight values at a time;
/// returns how many it filled (a multiple of eight).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn uniforms_avx2(key: u64, first: u64, out: &mut [f32]) -> usize {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_cvtepi32_ps, _mm256_mul_epu32, _mm256_mul_ps,
        _mm256_or_si256, _mm256_set1_epi64x, _mm256_set1_ps, _mm256_set_epi64x, _mm256_slli_epi64,
        _mm256_srli_epi64, _mm256_storeu_ps, _mm256_xor_si256,
    };
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    // a·c mod 2⁶⁴ in each lane, c split into halves: lo·lo + (hi·lo + lo·hi) << 32.
    let mul = |a: __m256i, c_lo: __m256i, c_hi: __m256i| {
        let ll = _mm256_mul_epu32(a, c_lo);
        let hl = _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), c_lo);
        let lh = _mm256_mul_epu32(a, c_hi);
        _mm256_add_epi64(ll, _mm256_slli_epi64::<32>(_mm256_add_epi64(hl, lh)))
    };
    let halves = |c: u64| {
        (
            _mm256_set1_epi64x((c & 0xffff_ffff) as i64),
            _mm256_set1_epi64x((c >> 32) as i64),
        )
    };
    let (c1l, c1h) = halves(0xbf58_476d_1ce4_e5b9);
    let (c2l, c2h) = halves(0x94d0_49bb_1331_11eb);
    // rng::mix, lane by lane.
    let mix = |z: __m256i| {
        let z = mul(_mm256_xor_si256(z, _mm256_srli_epi64::<30>(z)), c1l, c1h);
        let z = mul(_mm256_xor_si256(z, _mm256_srli_epi64::<27>(z)), c2l, c2h);
        _mm256_xor_si256(z, _mm256_srli_epi64::<31>(z))
    };
    let lane = |i: u64| key.wrapping_add(first.wrapping_add(i).wrapping_mul(GOLDEN)) as i64;
    // The even indices of each eight in `even`'s u64 lanes, the odd ones in
    // `odd`'s: their top 24 bits, put side by side as 32-bit lanes, are the
    // eight values in order.
    let mut even = _mm256_set_epi64x(lane(6), lane(4), lane(2), lane(0));
    let mut odd = _mm256_set_epi64x(lane(7), lane(5), lane(3), lane(1));
    let step = _mm256_set1_epi64x(GOLDEN.wrapping_mul(8) as i64);
    let scale = _mm256_set1_ps(1.0 / (1u64 << 24) as f32);
    let full = out.len() / 8 * 8;
    for chunk in out[..full].chunks_exact_mut(8) {
        let e = _mm256_srli_epi64::<40>(mix(even));
        let o = _mm256_slli_epi64::<32>(_mm256_srli_epi64::<40>(mix(odd)));
        // Below 2²⁴: exact as i32 and as f32, and times 2⁻²⁴ exact too.
        let v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_or_si256(e, o)), scale);
        // SAFETY: the chunk holds eight f32s.
        unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), v) };
        even = _mm256_add_epi64(even, step);
        odd = _mm256_add_epi64(odd, step);
    }
    full
}
