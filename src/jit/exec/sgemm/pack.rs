//! The operands and their packing: tile and block sizes, A in MR-row and B in NR-column panels.

use std::arch::x86_64::{__m256, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps};
use std::sync::OnceLock;

/// Rows and columns of the micro-kernel's tile.
pub const MR: usize = 6;
pub const NR: usize = 16;
/// Depth of one packed slice: a kc×16 panel of B is 16 KiB, half of L1.
pub const KC: usize = 256;
/// Rows of A packed at a time (a multiple of MR and of 4): with KC, 264 KiB,
/// which stays in a 512 KiB L2 beside the B panels streaming through. A
/// batch of up to 264 rows is then one block, whose B panels can be packed
/// as they are used (`Right::Panels`): in the epochs of a 1024-wide MLP at
/// batch 256, 144-row blocks with B packed first took 5–9% longer per
/// product on one thread and 10–15% on two (2026-11; the git history of
/// docs/performance.md).
pub const MC: usize = 264;

/// Whether this host can run the kernel (AVX2 and FMA, checked once).
pub fn supported() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// The depth of the slices of a product k deep: at most KC, all but the
/// last equal, and the last not much shorter (784 = 4 × 196, not 3 × 256 +
/// 16: a 16-deep slice would load and store C for little work).
pub fn slice_depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC).max(1)).max(1)
}

/// The most floats a packed B may take (64 MiB): a larger right operand
/// runs in the `gemm` crate, whose packing buffers are bounded, so that no
/// product allocates a second copy of a huge weight (memory is estimated
/// before a run from its buffers, not from this copy).
pub const MAX_PACKED: usize = 16 << 20;

/// Floats [`pack_b`] writes for a k×n right operand.
pub fn packed_len(k: usize, n: usize) -> usize {
    k * n.div_ceil(NR) * NR
}

/// Packs B (k×n, element (p, j) at `b + p·b_rs + j·b_cs`: row-major when
/// `b_cs` is 1, a transpose read in place when `b_rs` is 1) into `out`
/// (grown to [`packed_len`]): for each slice of [`slice_depth`] rows, for
/// each NR-column panel, kc rows of NR values, the last panel's missing
/// columns zero. The slice that starts at row k0 starts at
/// `k0 · panels · NR`, its panel p `p · kc · NR` further. Every float is
/// written (padding included), so a reused buffer needs no zeroing pass.
///
/// # Safety
/// Every element (p, j), p < k, j < n, is inside `b` at those strides.
pub unsafe fn pack_b(
    b: *const f32,
    strides: (usize, usize),
    k: usize,
    n: usize,
    out: &mut Vec<f32>,
) {
    if out.len() < packed_len(k, n) {
        out.resize(packed_len(k, n), 0.0);
    }
    let panels = n.div_ceil(NR);
    let depth = slice_depth(k);
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(depth);
        let slice = &mut out[k0 * panels * NR..(k0 + kc) * panels * NR];
        for (g, group) in slice.chunks_mut(GROUP * kc * NR).enumerate() {
            // SAFETY: rows k0..k0 + kc < k and the group's columns (up to
            // n) are inside B (the contract).
            unsafe { pack_panels(b, strides, (k0, kc), (g * GROUP * NR, n), group) };
        }
        k0 += kc;
    }
}

/// Panels packed together: a row of B is read GROUP·NR floats at a time,
/// so that each page B's rows lie on is touched once for GROUP panels, not
/// once a panel (at 1024 columns, every row of a panel is on its own page).
pub const GROUP: usize = 4;

/// Consecutive panels of [`pack_b`]'s layout: rows k0..k0 + kc of B's
/// columns from j0 (a multiple of NR) into `out`, which holds whole panels
/// (kc·NR floats each, as many as fit and n allows), the columns past n
/// zero.
///
/// # Safety
/// Elements (k0 + r, j), r < kc, j0 ≤ j < n, are inside `b` at its strides.
pub(super) unsafe fn pack_panels(
    b: *const f32,
    strides: (usize, usize),
    (k0, kc): (usize, usize),
    (j0, n): (usize, usize),
    out: &mut [f32],
) {
    let count = (out.len() / (kc * NR)).min((n - j0).div_ceil(NR));
    let full = ((n - j0) / NR).min(count);
    if strides.1 == 1 && full > 0 {
        // Rows read GROUP·NR floats wide, each NR to its own panel.
        for r in 0..kc {
            // SAFETY: row k0 + r's columns j0..j0 + full·NR are inside B.
            let src = unsafe { b.add((k0 + r) * strides.0 + j0) };
            for q in 0..full {
                let dst = &mut out[q * kc * NR + r * NR..][..NR];
                if let Ok(dst) = <&mut [f32; NR]>::try_from(dst) {
                    // SAFETY: as above.
                    *dst = unsafe { *src.add(q * NR).cast::<[f32; NR]>() };
                }
            }
        }
    } else if strides.0 == 1 && full > 0 && supported() {
        for q in 0..full {
            let panel = &mut out[q * kc * NR..][..kc * NR];
            // SAFETY: B's columns j0 + q·NR.. (NR of them, rows k0..k0 +
            // kc) are inside B, each contiguous.
            unsafe {
                transpose_columns(b.add(k0 + (j0 + q * NR) * strides.1), strides.1, kc, panel)
            };
        }
    } else {
        for q in 0..full {
            let panel = &mut out[q * kc * NR..][..kc * NR];
            // SAFETY: the contract, at the general strides.
            unsafe { pack_strided(b, strides, k0, kc, j0 + q * NR, NR, panel) };
        }
    }
    for q in full..count {
        let jq = j0 + q * NR;
        let panel = &mut out[q * kc * NR..][..kc * NR];
        // SAFETY: the last panel's columns jq..n are inside B.
        unsafe { pack_panel(b, strides, (k0, kc), (jq, (n - jq).min(NR)), panel) };
    }
}

/// The ragged last panel of [`pack_panels`]: rows k0..k0 + kc of B's
/// columns j0..j0 + w (w < NR) into `panel` (kc·NR floats), NR values a
/// row, the columns past w zero.
///
/// # Safety
/// Elements (k0 + r, j0 + c), r < kc, c < w, are inside `b` at its strides.
unsafe fn pack_panel(
    b: *const f32,
    (b_rs, b_cs): (usize, usize),
    (k0, kc): (usize, usize),
    (j0, w): (usize, usize),
    panel: &mut [f32],
) {
    if b_cs != 1 {
        // SAFETY: the contract, at the general strides.
        unsafe { pack_strided(b, (b_rs, b_cs), k0, kc, j0, w, panel) };
        return;
    }
    for (r, dst) in panel[..kc * NR].chunks_exact_mut(NR).enumerate() {
        // SAFETY: row k0 + r and columns j0..j0 + w are inside B.
        unsafe {
            let src = b.add((k0 + r) * b_rs + j0);
            for (j, d) in dst.iter_mut().enumerate() {
                *d = if j < w { *src.add(j) } else { 0.0 };
            }
        }
    }
}

/// One panel of [`pack_b`] from a B whose rows are not contiguous: rows
/// k0..k0 + kc of columns j0..j0 + w, column by column (a transposed B's
/// column is contiguous in memory), the panel's columns past w zero.
///
/// # Safety
/// Elements (k0 + r, j0 + c), r < kc, c < w, are inside `b` at its strides.
unsafe fn pack_strided(
    b: *const f32,
    (b_rs, b_cs): (usize, usize),
    k0: usize,
    kc: usize,
    j0: usize,
    w: usize,
    panel: &mut [f32],
) {
    for c in 0..NR {
        if c >= w {
            for r in 0..kc {
                panel[r * NR + c] = 0.0;
            }
            continue;
        }
        // SAFETY: (k0 + r, j0 + c) is inside B (the contract).
        let col = unsafe { b.add(k0 * b_rs + (j0 + c) * b_cs) };
        for r in 0..kc {
            panel[r * NR + c] = unsafe { *col.add(r * b_rs) };
        }
    }
}

/// Where a call's right operand is read from.
#[derive(Clone, Copy, Debug)]
pub enum Right {
    /// Packed once for the call by [`pack_b`] and shared by its row blocks.
    Packed(*const f32),
    /// B itself (element (p, j) at `b + p·rs + j·cs`), its panels packed
    /// [`GROUP`] at a time into a buffer in L2 just before the block's
    /// tiles use them (each 16-wide panel then in L1 while its tiles run;
    /// a 512-bit tile reads the whole group). For a
    /// call whose rows are one block (a small batch), that packs every
    /// float once as [`pack_b`] would, but the packed copy is never
    /// written to memory and read back; each further block packs B again.
    Panels(*const f32, (usize, usize)),
}

/// One call's operands: C[m, n] (row-major, n floats a row) from A (element
/// (i, k) at `a + i·a_rs + k·a_cs`) and B.
#[derive(Clone, Copy, Debug)]
pub struct Operands {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: *const f32,
    pub a_rs: usize,
    pub a_cs: usize,
    pub b: Right,
    pub c: *mut f32,
    /// `Some(α)`: C := C + α·A·B (the SGD step folded into the product);
    /// `None`: C := A·B.
    pub alpha: Option<f32>,
}

/// Packs A[i0..i0 + mc, k0..k0 + kc] into MR-row panels, k-major (MR values
/// per k), rows past mc zero.
pub(super) fn pack_a(o: &Operands, i0: usize, mc: usize, k0: usize, kc: usize, ap: &mut [f32]) {
    for (q, panel) in ap[..mc.div_ceil(MR) * MR * kc]
        .chunks_exact_mut(MR * kc)
        .enumerate()
    {
        let r = (mc - q * MR).min(MR);
        let row0 = i0 + q * MR;
        // SAFETY: every element read is (i, k) with i < i0 + mc ≤ m and
        // k < k0 + kc ≤ k, inside A at its strides.
        unsafe {
            if o.a_rs == 1 && r == MR {
                // Aᵀ read in place: the panel's MR values of one k are adjacent.
                for (k, dst) in panel.chunks_exact_mut(MR).enumerate() {
                    let src = &*o.a.add(row0 + (k0 + k) * o.a_cs).cast::<[f32; MR]>();
                    if let Ok(dst) = <&mut [f32; MR]>::try_from(dst) {
                        *dst = *src;
                    }
                }
            } else if o.a_cs == 1 && r == MR {
                transpose_rows(o.a.add(row0 * o.a_rs + k0), o.a_rs, kc, panel);
            } else {
                for (k, dst) in panel.chunks_exact_mut(MR).enumerate() {
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = if i < r {
                            *o.a.add((row0 + i) * o.a_rs + (k0 + k) * o.a_cs)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// `panel[k·MR + i] = a[i·lda + k]` for i < MR, k < kc: six rows of a
/// row-major A, eight columns at a time as an 8×8 transpose of the six rows
/// (two rows of padding), each transposed column stored MR values apart.
///
/// # Safety
/// `a` points to MR rows of kc floats, `lda` apart; `panel` holds kc·MR.
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_rows(a: *const f32, lda: usize, kc: usize, panel: &mut [f32]) {
    let full = kc / 8 * 8;
    // SAFETY (this block): the loads read columns k..k + 8 ≤ kc of rows
    // < MR; the stores write panel[k·MR..k·MR + 8·MR) ≤ kc·MR, in order, an
    // 8-wide store's two extra lanes overwritten by the next column's
    // store, except the last column's, which stores 6 lanes through the
    // scalar tail's array.
    unsafe {
        let z = _mm256_setzero_ps();
        let mut k = 0;
        while k < full {
            // Column c of the eight holds rows 0..8 at k + c (rows 6, 7 zero).
            let cols = transpose8(|i| {
                if i < MR {
                    _mm256_loadu_ps(a.add(i * lda + k))
                } else {
                    z
                }
            });
            let dst = panel.as_mut_ptr().add(k * MR);
            for (c, v) in cols.iter().enumerate().take(7) {
                _mm256_storeu_ps(dst.add(c * MR), *v);
            }
            let mut last = [0f32; 8];
            _mm256_storeu_ps(last.as_mut_ptr(), cols[7]);
            std::ptr::copy_nonoverlapping(last.as_ptr(), dst.add(7 * MR), MR);
            k += 8;
        }
        for k in full..kc {
            for i in 0..MR {
                panel[k * MR + i] = *a.add(i * lda + k);
            }
        }
    }
}

/// `panel[r·NR + c] = col_c[r]` for c < NR, r < kc, where column c starts
/// at `b + c·ldb` and is contiguous (a transposed B read in place): 8×8
/// blocks transposed in registers, each block's rows stored 8 wide.
///
/// # Safety
/// `b` points to NR columns of kc floats, `ldb` apart; `panel` holds kc·NR.
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_columns(b: *const f32, ldb: usize, kc: usize, panel: &mut [f32]) {
    let full = kc / 8 * 8;
    // SAFETY (this block): the loads read rows r..r + 8 ≤ kc of columns
    // < NR; the stores write panel[(r + j)·NR + h..+8], inside kc·NR.
    unsafe {
        for h in [0, 8] {
            let mut r = 0;
            while r < full {
                let rows = transpose8(|i| _mm256_loadu_ps(b.add((h + i) * ldb + r)));
                for (j, v) in rows.iter().enumerate() {
                    _mm256_storeu_ps(panel.as_mut_ptr().add((r + j) * NR + h), *v);
                }
                r += 8;
            }
        }
        for r in full..kc {
            for c in 0..NR {
                panel[r * NR + c] = *b.add(c * ldb + r);
            }
        }
    }
}

/// The 8×8 transpose of the rows `row(0..8)`: element j of the result's
/// vector i is element i of row j.
///
/// # Safety
/// The host has AVX2: only call it from a `#[target_feature(enable =
/// "avx2")]` function (it is inlined there, intrinsics and all).
#[inline(always)]
unsafe fn transpose8(row: impl Fn(usize) -> __m256) -> [__m256; 8] {
    use std::arch::x86_64::{
        _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };
    // SAFETY: register operations only (the caller has AVX2 enabled).
    unsafe {
        let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
        let (r4, r5, r6, r7) = (row(4), row(5), row(6), row(7));
        let t0 = _mm256_unpacklo_ps(r0, r1);
        let t1 = _mm256_unpackhi_ps(r0, r1);
        let t2 = _mm256_unpacklo_ps(r2, r3);
        let t3 = _mm256_unpackhi_ps(r2, r3);
        let t4 = _mm256_unpacklo_ps(r4, r5);
        let t5 = _mm256_unpackhi_ps(r4, r5);
        let t6 = _mm256_unpacklo_ps(r6, r7);
        let t7 = _mm256_unpackhi_ps(r6, r7);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }
}
