//! Matmuls on the buffer table's rows: the `gemm` crate's (depth cut in fixed slices) or dlc's own.

use crate::ir::DType;

#[cfg(target_arch = "x86_64")]
use super::sgemm;

/// A matmul for the `gemm` crate: out[m, n] = a[m, k] · b[k, n], all
/// row-major in the buffers of table entries `a`, `b` and `out`, except
/// that a's buffer holds aᵀ ([k, m]) when `a_transposed`.
#[derive(Clone, Copy, Debug)]
pub struct GemmArgs {
    pub dtype: DType,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_transposed: bool,
    /// b's buffer holds bᵀ ([n, k]).
    pub b_transposed: bool,
    pub a: usize,
    pub b: usize,
    pub out: usize,
    /// `Some(s)`: out already holds W, and becomes W − s·(a·b), with the
    /// scalar s (of `dtype`) in table entry s.
    pub scale: Option<usize>,
}

/// Rows per `gemm` call at most: a block of the output small enough to
/// stay in cache (1 MiB for 256 f32 columns) for the epilogue that follows
/// it, and large enough that gemm packs its operands once per thread for
/// the MLP's products (blocks of 128 measured 3% slower).
pub const GEMM_BLOCK: usize = 1024;

/// The deepest slice of a product one `gemm` call adds: the crate cuts a
/// deeper product itself, where it cuts depending on the block's shape,
/// so dlc cuts it first, always in the same places ([`depth_slice`]): a
/// product computed in two halves of its depth on two threads then adds
/// exactly as one thread does.
const KC_MAX: usize = 512;

/// The depth of each `gemm` call for a product of depth k (the last may be
/// shallower).
pub(super) fn depth_slice(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC_MAX).max(1))
}

/// Output rows [lo, hi) of a `gemm` matmul.
pub(super) fn gemm_rows(g: &GemmArgs, table: *const *mut u8, lo: usize, hi: usize) {
    gemm_part(g, table, (lo, hi), (0, g.k), None);
}

/// Output rows [lo, hi) of a `gemm` matmul over depths [k0, k1), in slices
/// of [`depth_slice`]; written to `partial` (an m×n f32 buffer, which
/// takes the product alone, no update) instead of the output when given.
pub(super) fn gemm_part(
    g: &GemmArgs,
    table: *const *mut u8,
    (lo, hi): (usize, usize),
    (k0, k1): (usize, usize),
    partial: Option<*mut f32>,
) {
    let (m, k, n) = (g.m, g.k, g.n);
    if lo >= hi || n == 0 {
        return;
    }
    // Element strides of a and b: row, column.
    let (a_rs, a_cs) = if g.a_transposed { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if g.b_transposed { (1, k) } else { (n, 1) };
    // SAFETY: `Compiled::run` sized the three buffers for the shapes above
    // at this batch ([m, k] or [k, m], [k, n] or [n, k], [m, n] elements
    // of `dtype`)
    // and the scalar's (one element of `dtype`),
    // the plan never places a matmul's output over its operands, and the
    // threads of one call write disjoint row ranges [lo, hi) ⊆ [0, m) of
    // `out`, or one of them `partial` (m×n f32s of `split`'s, for an f32
    // product, which no other thread touches until it returns); every
    // index gemm forms from these sizes and strides is inside those
    // buffers.
    unsafe {
        let (pa, pb, po) = (*table.add(g.a), *table.add(g.b), *table.add(g.out));
        macro_rules! call {
            ($t:ty) => {{
                let po = match partial {
                    Some(p) => p.cast::<u8>(),
                    None => po,
                };
                let (pa, pb, po) = (pa.cast::<$t>(), pb.cast::<$t>(), po.cast::<$t>());
                let out = po.add(lo * n);
                // W − s·(a·b): keep what out holds, add −s times the product.
                let (read_dst, beta) = match (g.scale, partial) {
                    (Some(s), None) => (true, -*(*table.add(s)).cast::<$t>()),
                    _ => (false, 1.0),
                };
                if k1 <= k0 {
                    if !read_dst {
                        std::ptr::write_bytes(out, 0, (hi - lo) * n);
                    }
                    return;
                }
                let slice = depth_slice(k);
                let mut d = k0;
                while d < k1 {
                    let kc = slice.min(k1 - d);
                    gemm::gemm::<$t>(
                        hi - lo,
                        n,
                        kc,
                        out,
                        1,
                        n as isize,
                        read_dst || d > k0,
                        pa.add(lo * a_rs + d * a_cs),
                        a_cs as isize,
                        a_rs as isize,
                        pb.add(d * b_rs),
                        b_cs as isize,
                        b_rs as isize,
                        1.0,
                        beta,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                    d += kc;
                }
            }};
        }
        match g.dtype {
            DType::F32 => call!(f32),
            DType::F64 => call!(f64),
            // `GemmCall::of` admits only f32 and f64.
            DType::I32 | DType::Bool => {}
        }
    }
}

/// The matmul kernel of a Gemm work and its right operand.
#[derive(Clone, Copy, Debug)]
pub(super) enum Right {
    /// The `gemm` crate's (each call packs B itself).
    Crate,
    /// dlc's own ([`sgemm`]), B packed once by `split` for all the jobs of
    /// the call, at this address.
    Packed(*const f32),
    /// dlc's own, each panel of B packed as a block of rows uses it.
    Panels,
    /// dlc's own over every row, the job's range being B's NR-column
    /// panels (packed as they are used), not rows.
    Columns,
    /// A [`Work::Depth`] job's partial buffer (m×n f32s).
    Partial(*mut f32),
}

// SAFETY: `split` packs B into its thread's buffer before making the jobs,
// and neither writes nor frees it until every job has finished; the jobs
// only read it.
unsafe impl Send for Right {}
unsafe impl Sync for Right {}

/// Whether an f32 `gemm` matmul shared by two threads is better cut in two
/// slices of its depth than by rows: the `gemm` crate's product (dlc's own
/// kernel cuts its depth elsewhere), no fused SGD step, exactly two depth
/// slices ([`depth_slice`]: 512 < k ≤ 1024, as a first layer of 784
/// inputs), and an output smaller than half of B. Cut by rows, both
/// threads read all of B: a layer's W, whose rows the weight update (cut
/// by rows, [`Job::fixed`]) writes half on each core, so that half of W
/// crossed between the cores every step. Cut by depth, each core reads
/// the rows of W it updates, and only the m×n partial sum crosses.
pub fn depth_split(g: &GemmArgs, threads: usize) -> bool {
    threads == 2
        && g.dtype == DType::F32
        && g.scale.is_none()
        && !own_gemm(g)
        && g.k > KC_MAX
        && g.k.div_ceil(KC_MAX) == 2
        && g.m * 2 < g.k
}

/// Whether a `gemm` matmul runs in dlc's own kernel ([`sgemm`]): f32, on a
/// host with AVX2 and FMA (on an AVX-512 host only a product with a Bᵀ
/// read in place: [`sgemm::preferred`]), at
/// least 16 columns wide (narrower products, like a 10-class output layer,
/// waste most of a 16-wide tile; the `gemm` crate has kernels for them),
/// with a right operand whose packed copy fits [`sgemm::MAX_PACKED`].
pub(super) fn own_gemm(g: &GemmArgs) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        g.dtype == DType::F32
            && g.n >= sgemm::NR
            && g.k > 0
            && sgemm::packed_len(g.k, g.n) <= sgemm::MAX_PACKED
            && sgemm::preferred(g.b_transposed)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = g;
        false
    }
}

/// Rows [lo, hi) of an `own_gemm` matmul, B packed at `Right::Packed`'s
/// address or panel by panel.
#[cfg(target_arch = "x86_64")]
pub(super) fn own_gemm_rows(
    g: &GemmArgs,
    table: *const *mut u8,
    right: Right,
    lo: usize,
    hi: usize,
) {
    // SAFETY: as in `gemm_rows`: the buffers hold the shapes at this batch,
    // the output overlaps neither operand, this thread alone writes rows
    // [lo, hi) of it; `split` packed b into `Packed`'s address for this
    // call (`packed_len(k, n)` floats), which no one writes until it
    // returns; `Panels` reads b itself, k×n at `b_strides`.
    unsafe {
        let (pa, po) = (*table.add(g.a), *table.add(g.out));
        let (a_rs, a_cs) = if g.a_transposed { (1, g.m) } else { (g.k, 1) };
        let b = match right {
            Right::Packed(b) => sgemm::Right::Packed(b),
            Right::Panels | Right::Columns => {
                let b = (*table.add(g.b)).cast::<f32>().cast_const();
                sgemm::Right::Panels(b, b_strides(g))
            }
            Right::Crate | Right::Partial(_) => {
                unreachable!("compiler bug: a gemm crate job in dlc's kernel")
            }
        };
        let o = sgemm::Operands {
            m: g.m,
            k: g.k,
            n: g.n,
            a: pa.cast::<f32>().cast_const(),
            a_rs,
            a_cs,
            b,
            c: po.cast::<f32>(),
            alpha: g.scale.map(|s| -*(*table.add(s)).cast::<f32>()),
        };
        if let Right::Columns = right {
            sgemm::columns(&o, lo, hi);
        } else {
            sgemm::rows(&o, lo, hi);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn own_gemm_rows(_: &GemmArgs, _: *const *mut u8, _: Right, _: usize, _: usize) {
    unreachable!("compiler bug: own_gemm is false off x86_64")
}

/// B's (row, column) strides: row-major k×n, or its n×k transpose read in
/// place.
pub(super) fn b_strides(g: &GemmArgs) -> (usize, usize) {
    if g.b_transposed {
        (1, g.k)
    } else {
        (g.n, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A product of depth 513–1024 in its two depth halves (the second into
    /// a partial buffer, then added) gives the bits of the whole product on
    /// one thread, at shapes where the `gemm` crate, left to cut the depth
    /// itself, cuts it elsewhere (a batch of 32 or 64 against 784 inputs).
    #[test]
    fn depth_halves_add_as_the_whole_product() {
        for (m, k, n) in [
            (32, 784, 64),
            (32, 784, 128),
            (64, 784, 256),
            (97, 1000, 48),
        ] {
            let mut values = crate::jit::exec::test_values::TestValues(7);
            let (mut a, mut b) = (values.take(m * k), values.take(k * n));
            let (mut whole, mut halves) = (vec![0f32; m * n], vec![0f32; m * n]);
            let g = GemmArgs {
                dtype: DType::F32,
                m,
                k,
                n,
                a_transposed: false,
                b_transposed: false,
                a: 0,
                b: 1,
                out: 2,
                scale: None,
            };
            let table = |out: &mut Vec<f32>, a: &mut Vec<f32>, b: &mut Vec<f32>| -> Vec<*mut u8> {
                vec![
                    a.as_mut_ptr().cast(),
                    b.as_mut_ptr().cast(),
                    out.as_mut_ptr().cast(),
                ]
            };
            let t = table(&mut whole, &mut a, &mut b);
            gemm_rows(&g, t.as_ptr(), 0, m);
            let t = table(&mut halves, &mut a, &mut b);
            let half = depth_slice(k);
            assert!(half < k, "two slices at depth {k}");
            let mut partial = vec![0f32; m * n];
            gemm_part(&g, t.as_ptr(), (0, m), (0, half), None);
            gemm_part(
                &g,
                t.as_ptr(),
                (0, m),
                (half, k),
                Some(partial.as_mut_ptr()),
            );
            for (o, p) in halves.iter_mut().zip(&partial) {
                *o += *p;
            }
            let differ = whole
                .iter()
                .zip(&halves)
                .filter(|(x, y)| x.to_bits() != y.to_bits())
                .count();
            assert_eq!(
                differ,
                0,
                "{m}×{k}·{k}×{n}: {differ} of {} outputs differ",
                m * n
            );
        }
    }
}
