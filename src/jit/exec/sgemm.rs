//! dlc's own f32 matmul for hosts with AVX2 and FMA (and a 512-bit tile for
//! hosts with AVX-512): C = A·B (or C + α·A·B)
//! over packed panels, GotoBLAS/BLIS-style, so that one call packs B once
//! for every thread and every block of rows.
//!
//! Why not the `gemm` crate here: each `gemm` call packs its right operand
//! again, so rows divided into many small shares (claimed by whichever
//! thread is free, and each followed by its epilogue while in cache) would
//! pack B once per share. Here the caller packs B once ([`pack_b`]) and the
//! shares only read it. Measured beside `gemm` on the MLP's products
//! (2026-11; the git history of docs/performance.md), interleaved: level
//! at best, ahead in the median.
//!
//! The blocking, for one block of at most [`MC`] rows:
//! for each slice of [`KC`] columns of A (rows of B): pack the block's A
//! slice into [`MR`]-row panels (in L2), then for each [`NR`]-column panel
//! of packed B (kc×16, in L1) and each A panel, the 6×16 micro-kernel: 12
//! ymm accumulators, per k two loads of B, six broadcasts of A, twelve FMAs.
//! B is packed [`GROUP`] panels at a time (rows read 64 floats wide, 8×8
//! transposes for a Bᵀ read in place), and each tile prefetches its C. On
//! an AVX-512 host a tile spans the whole group ([`micro512`]: 6×64, 24
//! zmm accumulators, per k four loads of B, six broadcasts of A, 24 FMAs),
//! the group (64 KiB at kc = 256) then read from L2.
//!
//! This file holds the blocking and the micro-kernels; the operands and
//! their packing are `sgemm/pack.rs`.

use std::arch::x86_64::{
    __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps,
    _mm256_setzero_ps, _mm256_storeu_ps, _mm_prefetch, _MM_HINT_T0,
};
use std::cell::RefCell;
use std::sync::OnceLock;

mod pack;

use pack::{pack_a, pack_panels, GROUP, KC};
pub use pack::{
    pack_b, packed_len, slice_depth, supported, Operands, Right, MAX_PACKED, MC, MR, NR,
};

/// Whether an f32 matmul runs here rather than in the `gemm` crate, given
/// whether its right operand is a transpose read in place: every one on
/// hosts with AVX2 and FMA but not AVX-512; on AVX-512 hosts only those
/// with a Bᵀ. There, measured call by call on the sweep's products
/// (2026-11-29; docs/performance.md today has the table), the crate's 512-bit kernels were
/// 4–6% ahead of [`micro512`] with B row-major (the crate reads such a B
/// in place, where this kernel packs it) and level on weight gradients,
/// and in the epochs its static halves beat this kernel's shares on two
/// full cores; but its products dZ·Wᵀ ran at 69–70 GFLOP/s against 102–106
/// here.
pub fn preferred(b_transposed: bool) -> bool {
    supported() && (b_transposed || !wide())
}

thread_local! {
    /// Each thread's packed block of A (MC×KC floats) and group of B's
    /// panels (GROUP×KC×NR, for [`Right::Panels`]), made once.
    static PACKED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Rows [lo, hi) of C, in blocks of at most MC rows.
///
/// # Safety
/// The operands describe buffers that hold them (A: m×k elements at its
/// strides, packed B: `packed_len(k, n)` floats, or B: k×n elements at its
/// strides; C: m×n floats), C overlaps neither, and no other thread writes
/// rows [lo, hi) of C meanwhile.
pub unsafe fn rows(o: &Operands, lo: usize, hi: usize) {
    // SAFETY: the contract, every column.
    unsafe { tiles(o, (lo, hi), (0, o.n.div_ceil(NR))) }
}

/// Every row of C's NR-column panels [p0, p1) (columns p0·NR.. up to
/// p1·NR or n).
///
/// # Safety
/// As [`rows`], with no other thread writing those columns meanwhile.
pub unsafe fn columns(o: &Operands, p0: usize, p1: usize) {
    // SAFETY: the contract.
    unsafe { tiles(o, (0, o.m), (p0, p1.min(o.n.div_ceil(NR)))) }
}

/// Rows [lo, hi) of C's column panels [p0, p1), in blocks of at most MC
/// rows.
///
/// # Safety
/// As [`rows`], for these rows and columns.
unsafe fn tiles(o: &Operands, (lo, hi): (usize, usize), (p0, p1): (usize, usize)) {
    let hi = hi.min(o.m);
    if lo >= hi || p0 >= p1 {
        return;
    }
    PACKED.with_borrow_mut(|(ap, bp)| {
        if ap.len() < MC * KC {
            ap.resize(MC * KC, 0.0);
            bp.resize(GROUP * KC * NR, 0.0);
        }
        let mut i0 = lo;
        while i0 < hi {
            let mc = (hi - i0).min(MC);
            // SAFETY: rows i0..i0 + mc ⊆ [lo, hi), as the contract needs.
            unsafe { block(o, (i0, mc), (p0, p1), ap, bp) };
            i0 += mc;
        }
    });
}

/// Rows [i0, i0 + mc) of C's column panels [p0, p1), mc ≤ MC.
unsafe fn block(
    o: &Operands,
    (i0, mc): (usize, usize),
    (p0, p1): (usize, usize),
    ap: &mut [f32],
    panel: &mut [f32],
) {
    let panels = o.n.div_ceil(NR);
    if o.k == 0 {
        if o.alpha.is_none() {
            let (j0, j1) = (p0 * NR, (p1 * NR).min(o.n));
            for i in i0..i0 + mc {
                // SAFETY: row i's columns j0..j1 are inside C and this thread's.
                unsafe { std::ptr::write_bytes(o.c.add(i * o.n + j0), 0, j1 - j0) };
            }
        }
        return;
    }
    let depth = slice_depth(o.k);
    let mut k0 = 0;
    while k0 < o.k {
        let kc = (o.k - k0).min(depth);
        pack_a(o, i0, mc, k0, kc, ap);
        let accumulate = k0 > 0 || o.alpha.is_some();
        let alpha = o.alpha.unwrap_or(1.0);
        let width = tile_panels();
        let mut p = p0;
        while p < p1 {
            let count = (p1 - p).min(width);
            let j0 = p * NR;
            let cols = (o.n - j0).min(count * NR);
            let bp = match o.b {
                // SAFETY: slice k0's panel p is inside packed B (pack_b's layout).
                Right::Packed(b) => unsafe { b.add(k0 * panels * NR + p * kc * NR) },
                Right::Panels(b, strides) => {
                    // Every GROUP panels, the next GROUP packed together.
                    let g = (p - p0) % GROUP;
                    if g == 0 {
                        let group = &mut panel[..(p1 - p).min(GROUP) * kc * NR];
                        // SAFETY: rows k0..k0 + kc ≤ k and columns j0.. ≤ n
                        // are inside B (the contract); kc ≤ KC.
                        unsafe { pack_panels(b, strides, (k0, kc), (j0, o.n), group) };
                    }
                    // SAFETY: panel g of the group is inside the buffer.
                    unsafe { panel.as_ptr().add(g * kc * NR) }
                }
            };
            // SAFETY: the packed block holds mc.div_ceil(MR) panels of
            // kc×MR floats; their rows i0.. (mc of them) and columns j0..
            // (cols of them) are inside C and this thread's.
            unsafe {
                tile_column(
                    (kc, ap.as_ptr(), mc),
                    (bp, count),
                    o.c.add(i0 * o.n + j0),
                    o.n,
                    cols,
                    (accumulate, alpha),
                )
            };
            p += count;
        }
        k0 += kc;
    }
}

/// One column of tiles: the mc rows of a packed block of A (its panels
/// kc·MR floats apart) times `count` consecutive packed kc×NR panels of B
/// from `b`, into C's rows from `c` (ldc apart), `cols` columns. On an
/// AVX-512 host all `count` (at most [`GROUP`]) panels a tile
/// ([`micro512`]); else `count` is 1 ([`micro`]).
///
/// # Safety
/// `a` holds mc.div_ceil(MR) panels of kc·MR floats and `b` count·kc·NR;
/// rows < mc and columns < cols from `c` are inside C and this thread's.
unsafe fn tile_column(
    (kc, a, mc): (usize, *const f32, usize),
    (b, count): (*const f32, usize),
    c: *mut f32,
    ldc: usize,
    cols: usize,
    (accumulate, alpha): (bool, f32),
) {
    let wide = wide();
    debug_assert!(wide || count == 1, "several panels a tile need AVX-512");
    for q in 0..mc.div_ceil(MR) {
        let rows = (mc - q * MR).min(MR);
        // SAFETY: panel q is at a + q·kc·MR and its rows start at row
        // q·MR of the tile column (the contract); `micro512` only where
        // the host has AVX-512F.
        unsafe {
            let (a, c) = (a.add(q * kc * MR), c.add(q * MR * ldc));
            let tile = (c, ldc, rows, cols);
            match (wide, count) {
                (true, 4) => micro512::<4>((kc, a, b), tile, (accumulate, alpha)),
                (true, 3) => micro512::<3>((kc, a, b), tile, (accumulate, alpha)),
                (true, 2) => micro512::<2>((kc, a, b), tile, (accumulate, alpha)),
                (true, _) => micro512::<1>((kc, a, b), tile, (accumulate, alpha)),
                (false, _) => micro(kc, a, b, c, ldc, rows, cols, accumulate, alpha),
            }
        }
    }
}

/// B's panels a tile takes at once: [`GROUP`] with 512-bit vectors (6×64
/// tiles, 24 accumulators), else one (6×16 tiles in 12 ymm).
fn tile_panels() -> usize {
    if wide() {
        GROUP
    } else {
        1
    }
}

/// The 6×16 tile: C[..rows, ..cols] := Σ_k a[k]·b[k] (or C + α·Σ when
/// `accumulate`), a MR floats a k, b NR floats a k.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
    alpha: f32,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    // SAFETY (this block): a holds kc·MR floats and b kc·NR (the caller's
    // packed panels); the tile's rows < rows and columns < cols are inside
    // C, ldc apart.
    unsafe {
        // C's tile is read (or written) only after the k loop: start its
        // lines on their way now, so that a C too large for the caches
        // does not stall every tile at its end.
        for i in 0..rows {
            let pc = c.add(i * ldc);
            _mm_prefetch::<_MM_HINT_T0>(pc.cast());
            _mm_prefetch::<_MM_HINT_T0>(pc.add(cols - 1).cast());
        }
        let step = |acc: &mut [[__m256; 2]; MR], a: *const f32, b: *const f32| {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.add(i));
                row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                row[1] = _mm256_fmadd_ps(x, b1, row[1]);
            }
        };
        let (mut pa, mut pb) = (a, b);
        for _ in 0..kc / 4 {
            for u in 0..4 {
                step(&mut acc, pa.add(u * MR), pb.add(u * NR));
            }
            pa = pa.add(4 * MR);
            pb = pb.add(4 * NR);
        }
        for _ in 0..kc % 4 {
            step(&mut acc, pa, pb);
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        let al = _mm256_set1_ps(alpha);
        if rows == MR && cols == NR {
            for (i, row) in acc.iter().enumerate() {
                let pc = c.add(i * ldc);
                for (h, v) in row.iter().enumerate() {
                    let out = if accumulate {
                        _mm256_fmadd_ps(al, *v, _mm256_loadu_ps(pc.add(8 * h)))
                    } else {
                        *v
                    };
                    _mm256_storeu_ps(pc.add(8 * h), out);
                }
            }
        } else {
            let mut t = [[0f32; NR]; MR];
            for (dst, row) in t.iter_mut().zip(&acc) {
                _mm256_storeu_ps(dst.as_mut_ptr(), row[0]);
                _mm256_storeu_ps(dst.as_mut_ptr().add(8), row[1]);
            }
            for (i, trow) in t.iter().enumerate().take(rows) {
                for (j, v) in trow.iter().enumerate().take(cols) {
                    let p = c.add(i * ldc + j);
                    *p = if accumulate {
                        alpha.mul_add(*v, *p)
                    } else {
                        *v
                    };
                }
            }
        }
    }
}

/// Whether this host has AVX-512F (checked once): then [`micro512`] runs
/// the tiles.
fn wide() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    #[cfg(test)]
    if tests::NARROW.get() {
        return false;
    }
    *HAS.get_or_init(|| is_x86_feature_detected!("avx512f"))
}

/// [`micro`]'s tile with 512-bit vectors, G of B's panels wide: C[..rows,
/// ..cols] (6 × up to 16·G) := Σ_k a[k]·b[k] (or C + α·Σ), `a` MR floats a
/// k, B's panel g at `b + g·kc·NR`. One zmm accumulator per row and panel
/// (24 at G = 4), per k G loads of B, six broadcasts of A, 6·G FMAs. Each
/// output adds the same products in the same order as in [`micro`], so the
/// two give the same bits. Columns past `cols` are neither read nor
/// written (masked), rows past `rows` neither.
///
/// # Safety
/// As [`micro`], with G panels of B, on a host with AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn micro512<const G: usize>(
    (kc, a, b): (usize, *const f32, *const f32),
    (c, ldc, rows, cols): (*mut f32, usize, usize, usize),
    (accumulate, alpha): (bool, f32),
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
        _mm512_set1_ps, _mm512_setzero_ps,
    };
    let mut acc = [[_mm512_setzero_ps(); G]; MR];
    // SAFETY (this block): a holds kc·MR floats and b G panels of kc·NR
    // (the caller's packed panels); the tile's rows < rows and columns <
    // cols are inside C, ldc apart.
    unsafe {
        // As in `micro`: C's lines on their way before the k loop.
        for i in 0..rows {
            let pc = c.add(i * ldc);
            for j in (0..cols).step_by(NR) {
                _mm_prefetch::<_MM_HINT_T0>(pc.add(j).cast());
            }
            _mm_prefetch::<_MM_HINT_T0>(pc.add(cols - 1).cast());
        }
        let step = |acc: &mut [[__m512; G]; MR], k: usize| {
            let bv: [__m512; G] =
                std::array::from_fn(|g| _mm512_loadu_ps(b.add((g * kc + k) * NR)));
            for (i, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(k * MR + i));
                for (v, bg) in row.iter_mut().zip(&bv) {
                    *v = _mm512_fmadd_ps(x, *bg, *v);
                }
            }
        };
        let mut k = 0;
        while k + 4 <= kc {
            for u in 0..4 {
                step(&mut acc, k + u);
            }
            k += 4;
        }
        while k < kc {
            step(&mut acc, k);
            k += 1;
        }
        let al = _mm512_set1_ps(alpha);
        for (i, row) in acc.iter().enumerate().take(rows) {
            for (g, v) in row.iter().enumerate() {
                let w = cols.saturating_sub(g * NR).min(NR);
                if w == 0 {
                    break;
                }
                let mask = if w == NR { u16::MAX } else { (1u16 << w) - 1 };
                let pc = c.add(i * ldc + g * NR);
                let out = if accumulate {
                    _mm512_fmadd_ps(al, *v, _mm512_maskz_loadu_ps(mask, pc))
                } else {
                    *v
                };
                _mm512_mask_storeu_ps(pc, mask, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Set: this thread's tiles run in [`micro`] even on an AVX-512 host.
        pub static NARROW: Cell<bool> = const { Cell::new(false) };
    }

    /// Every shape class the blocking meets — ragged rows, columns and
    /// depth, several KC slices and MC blocks, Aᵀ and Bᵀ read in place,
    /// the folded update, row ranges that start inside a block — against a
    /// scalar f64 product, with B packed once and packed per panel.
    #[test]
    fn agrees_with_a_scalar_product() {
        if !supported() {
            eprintln!("skipped: this host has no AVX2/FMA");
            return;
        }
        let mut values = super::super::test_values::TestValues(7);
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 3, 17),
            (6, 4, 16),
            (13, 257, 33),
            (150, 300, 40),
            (7, 600, 1),
            (300, 513, 15),
            (9, 20, 70),
            (30, 37, 130),
            (7, 16, 80),
            (11, 40, 16),
            (4, 0, 20),
        ] {
            for (transposed, b_transposed) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                for alpha in [None, Some(-0.25f32)] {
                    for (lo, hi) in [(0, m), (m / 3, m)] {
                        let (a, b, c0) =
                            (values.take(m * k), values.take(k * n), values.take(m * n));
                        let (a_rs, a_cs) = if transposed { (1, m) } else { (k, 1) };
                        // B itself, or Bᵀ ([n, k]) read at swapped strides.
                        let (b_mem, b_strides) = if b_transposed {
                            let bt: Vec<f32> = (0..n * k).map(|q| b[(q % k) * n + q / k]).collect();
                            (bt, (1, k))
                        } else {
                            (b.clone(), (n, 1))
                        };
                        let mut packed = Vec::new();
                        // SAFETY: b_mem holds the k×n elements at b_strides.
                        unsafe { pack_b(b_mem.as_ptr(), b_strides, k, n, &mut packed) };
                        // C from c0 with B read as `b`, over rows lo..hi, or
                        // (with `cut`) over column panels cut..end, then 0..cut.
                        let product = |b: Right, cut: Option<usize>| {
                            let mut c = c0.clone();
                            let (a, c_ptr) = (a.as_ptr(), c.as_mut_ptr());
                            let o = Operands {
                                m,
                                k,
                                n,
                                a,
                                a_rs,
                                a_cs,
                                b,
                                c: c_ptr,
                                alpha,
                            };
                            // SAFETY: the buffers hold the shapes above.
                            unsafe {
                                match cut {
                                    None => rows(&o, lo, hi),
                                    Some(cut) => {
                                        columns(&o, cut, n.div_ceil(NR));
                                        columns(&o, 0, cut);
                                    }
                                }
                            }
                            c
                        };
                        let c = product(Right::Packed(packed.as_ptr()), None);
                        let panels = Right::Panels(b_mem.as_ptr(), b_strides);
                        // The same tiles from the same packed values.
                        let c_panels = product(panels, None);
                        assert_eq!(c, c_panels, "{m}×{k}×{n}: B packed per panel differs");
                        // The 256-bit tiles add the same products in the
                        // same order as the 512-bit ones (where the host
                        // has them): the same bits.
                        NARROW.set(true);
                        let c_narrow = product(Right::Packed(packed.as_ptr()), None);
                        NARROW.set(false);
                        assert_eq!(c, c_narrow, "{m}×{k}×{n}: 256- and 512-bit tiles differ");
                        if (lo, hi) == (0, m) {
                            // Cut by column panels instead: the same bits.
                            let c_cols = product(panels, Some(n.div_ceil(NR) / 2));
                            assert_eq!(c, c_cols, "{m}×{k}×{n}: cut by columns differs");
                        }
                        let case = format!(
                            "{m}×{k}×{n} aᵀ {transposed} bᵀ {b_transposed} α {alpha:?} rows {lo}..{hi}"
                        );
                        let a_at = |i: usize, p: usize| a[i * a_rs + p * a_cs];
                        assert_matches_scalar(
                            &case,
                            (m, k, n),
                            (a_at, &b),
                            (&c0, &c),
                            alpha,
                            (lo, hi),
                        );
                    }
                }
            }
        }
    }

    /// Asserts that `c` is, in rows lo..hi, the f64 product A·B (or c0 + α·A·B),
    /// and c0 elsewhere.
    fn assert_matches_scalar(
        case: &str,
        (m, k, n): (usize, usize, usize),
        (a, b): (impl Fn(usize, usize) -> f32, &[f32]),
        (c0, c): (&[f32], &[f32]),
        alpha: Option<f32>,
        (lo, hi): (usize, usize),
    ) {
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|p| f64::from(a(i, p)) * f64::from(b[p * n + j]))
                    .sum();
                let old = f64::from(c0[i * n + j]);
                let want = match alpha {
                    _ if !(lo..hi).contains(&i) => old,
                    Some(s) => old + f64::from(s) * dot,
                    None => dot,
                };
                let got = f64::from(c[i * n + j]);
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + (k as f64).sqrt()),
                    "{case}: c[{i},{j}] = {got}, want {want}"
                );
            }
        }
    }
}
