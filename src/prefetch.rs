//! The table's row gathers' CPU specifics (`data::table`), the one
//! `unsafe` outside `jit/exec.rs`: a cache hint, and byte features decoded
//! 8 lanes wide where the host has AVX2.

#![allow(unsafe_code)]

/// Asks the CPU to start loading `values` into cache (a hint: no effect on
/// what any load returns), so that a gather touching rows at random finds
/// the next rows there instead of waiting for memory row by row.
pub fn prefetch<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = values.as_ptr().cast::<i8>();
        for off in (0..std::mem::size_of_val(values)).step_by(64) {
            // SAFETY: a prefetch never faults and changes no memory; the
            // address is inside `values`.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(off),
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// `out[i] = f(codes[i])`, the byte features' exact decode (pixels
/// divided by 255): the same IEEE operation per value at any width, 8
/// lanes wide where the host has AVX2 (the build targets baseline x86-64,
/// whose loops are 4 lanes wide, and a division costs the same per
/// instruction on 8 lanes as on 4).
pub fn decode_bytes(codes: &[u8], out: &mut [f32], f: impl Fn(u8) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the host has AVX2 (checked above).
        unsafe { decode_bytes_avx2(codes, out, f) };
        return;
    }
    for (o, c) in out.iter_mut().zip(codes) {
        *o = f(*c);
    }
}

/// [`decode_bytes`]'s loop, compiled for AVX2 (`f` inlined into it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn decode_bytes_avx2(codes: &[u8], out: &mut [f32], f: impl Fn(u8) -> f32) {
    for (o, c) in out.iter_mut().zip(codes) {
        *o = f(*c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte, at lengths that leave every tail, against the scalar
    /// operation (the wide loop must not change a bit).
    #[test]
    fn wide_decodes_are_the_scalar_ones() {
        let codes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in [0, 1, 7, 8, 9, 31, 33, 255, codes.len()] {
            for (d, m) in [(255.0f32, 1.0f32 / 255.0), (3.0, 0.1), (7.5, 2.0)] {
                let mut out = vec![f32::NAN; len];
                decode_bytes(&codes[..len], &mut out, |c| f32::from(c) / d);
                for (o, c) in out.iter().zip(&codes) {
                    assert_eq!(o.to_bits(), (f32::from(*c) / d).to_bits());
                }
                decode_bytes(&codes[..len], &mut out, |c| f32::from(c) * m);
                for (o, c) in out.iter().zip(&codes) {
                    assert_eq!(o.to_bits(), (f32::from(*c) * m).to_bits());
                }
            }
        }
    }
}
