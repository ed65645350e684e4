//! The runtime's unsafe core: the one module that calls JIT code and views
//! buffers as typed slices.
//!
//! Every buffer is a `Vec<u64>` (8-byte aligned, so f32, i32 and f64 views
//! are aligned). Before a kernel runs, `Compiled::run` has checked that every
//! buffer the kernel touches holds at least the bytes its shape needs at the
//! current batch size; the kernels index only within those shapes.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::adapt::{Adapt, Way};

use crate::ir::DType;

pub mod rms;
#[cfg(target_arch = "x86_64")]
mod sgemm;
pub mod wide;

pub use rms::dlc_rms_step;
pub use wide::dlc_wide;

/// A compiled kernel: the buffer table, the batch size, the seed, and the
/// range [lo, hi) of output rows to compute (only matmul kernels split their
/// rows; the others ignore the range).
pub type KernelFn = extern "C" fn(*const *mut u8, i64, i64, i64, i64);

/// Bytes per element in memory (bool is stored as an i32 0/1).
pub fn elem_size(d: DType) -> usize {
    match d {
        DType::F32 | DType::I32 | DType::Bool => 4,
        DType::F64 => 8,
    }
}

/// Writes `values` into `buf` in `dtype`'s memory representation.
pub fn write(buf: &mut [u64], dtype: DType, values: &[f64]) {
    write_at(buf, dtype, 0, values);
}

/// Writes rows `rows` of the row-major table `src` (`width` values a row)
/// into `buf` one after another, in `dtype`'s memory representation.
/// Rows outside `src` are an error.
pub fn write_rows<T: Copy + Into<f64>>(
    buf: &mut [u64],
    dtype: DType,
    src: &[T],
    width: usize,
    rows: &[usize],
) -> Result<(), String> {
    if let Some(&r) = rows.iter().find(|&&r| (r + 1) * width > src.len()) {
        return Err(format!(
            "row {r} is outside the data ({} rows)",
            src.len() / width.max(1)
        ));
    }
    let parts = rows.iter().map(|&r| &src[r * width..(r + 1) * width]);
    store(buf, dtype, 0, rows.len() * width, parts);
    Ok(())
}

/// Writes `values` into `buf` from element `at` on.
pub fn write_at<T: Copy + Into<f64>>(buf: &mut [u64], dtype: DType, at: usize, values: &[T]) {
    store(buf, dtype, at, values.len(), std::iter::once(values));
}

/// Writes the `n` values of `parts`, one after another, into `buf` from
/// element `at` on, converted to `dtype` (one dispatch on it per call).
fn store<'a, T: Copy + Into<f64> + 'a>(
    buf: &mut [u64],
    dtype: DType,
    at: usize,
    n: usize,
    parts: impl Iterator<Item = &'a [T]>,
) {
    fn copy<'a, T: Copy + 'a, D>(
        dst: &mut [D],
        parts: impl Iterator<Item = &'a [T]>,
        conv: impl Fn(T) -> D,
    ) {
        let mut o = 0;
        for p in parts {
            for (x, v) in dst[o..o + p.len()].iter_mut().zip(p) {
                *x = conv(*v);
            }
            o += p.len();
        }
    }
    let end = at + n;
    assert!(
        buf.len() * 8 >= end * elem_size(dtype),
        "compiler bug: buffer too small"
    );
    match dtype {
        DType::F32 => copy(&mut f32s_mut(buf, end)[at..], parts, |v| v.into() as f32),
        DType::F64 => {
            // SAFETY: the buffer is 8-byte aligned and holds at least `end`
            // f64s (checked above); f64 has no invalid bit patterns.
            let s = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<f64>(), end) };
            copy(&mut s[at..], parts, |v| v.into());
        }
        DType::I32 | DType::Bool => {
            // SAFETY: as above, for i32.
            let s = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<i32>(), end) };
            let bool = dtype == DType::Bool;
            copy(&mut s[at..], parts, |v| {
                let v: f64 = v.into();
                if bool {
                    i32::from(v != 0.0)
                } else {
                    v as i32
                }
            });
        }
    }
}

/// The first `n` f32s of `buf`.
pub fn f32s_mut(buf: &mut [u64], n: usize) -> &mut [f32] {
    assert!(buf.len() * 2 >= n, "compiler bug: buffer too small");
    // SAFETY: the buffer is 8-byte aligned and holds at least `n` f32s
    // (checked above); f32 has no invalid bit patterns; the result
    // borrows `buf` mutably, so nothing else reads or writes it meanwhile.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<f32>(), n) }
}

/// Reads `n` elements of `dtype` from `buf` as f64.
pub fn read(buf: &[u64], dtype: DType, n: usize) -> Vec<f64> {
    assert!(
        buf.len() * 8 >= n * elem_size(dtype),
        "compiler bug: buffer too small"
    );
    match dtype {
        DType::F32 => {
            // SAFETY: aligned, long enough (checked above).
            let s = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<f32>(), n) };
            s.iter().map(|v| f64::from(*v)).collect()
        }
        DType::F64 => {
            // SAFETY: aligned, long enough (checked above).
            let s = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<f64>(), n) };
            s.to_vec()
        }
        DType::I32 | DType::Bool => {
            // SAFETY: aligned, long enough (checked above).
            let s = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<i32>(), n) };
            s.iter().map(|v| f64::from(*v)).collect()
        }
    }
}

/// The callable kernel that `module` compiled for function `id`.
pub fn finalized_kernel(
    module: &cranelift_jit::JITModule,
    id: cranelift_module::FuncId,
) -> KernelFn {
    let ptr = module.get_finalized_function(id);
    // SAFETY: `id` was declared and defined by `jit::compile` with exactly
    // the signature (i64, i64, i64, i64, i64) -> () in the host's C calling
    // convention, and the module has been finalized; the module that owns
    // the code is stored beside the pointers in `Compiled` and outlives
    // every call.
    unsafe { std::mem::transmute::<*const u8, KernelFn>(ptr) }
}

/// Runs one kernel over the buffer table, for output rows [0, rows).
pub fn call(k: KernelFn, table: &[*mut u8], batch: usize, seed: u64, rows: usize) {
    // The callee reads table[i] for the buffers of its node and operands,
    // all of which the caller sized for `batch`; it writes only its own
    // node's buffer, rows [0, rows).
    k(table.as_ptr(), batch as i64, seed as i64, 0, rows as i64)
}

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
fn depth_slice(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC_MAX).max(1))
}

/// Output rows [lo, hi) of a `gemm` matmul.
fn gemm_rows(g: &GemmArgs, table: *const *mut u8, lo: usize, hi: usize) {
    gemm_part(g, table, (lo, hi), (0, g.k), None);
}

/// Output rows [lo, hi) of a `gemm` matmul over depths [k0, k1), in slices
/// of [`depth_slice`]; written to `partial` (an m×n f32 buffer, which
/// takes the product alone, no update) instead of the output when given.
fn gemm_part(
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

/// Starts summing buffer `buf` of `table` (`len` values of `dtype`) across
/// the processes of a data-parallel run; returns its ticket.
pub fn start_sum(
    c: &dyn crate::dist::Collective,
    table: &[*mut u8],
    buf: usize,
    len: usize,
    dtype: DType,
) -> usize {
    // SAFETY: `Compiled::run` sized the buffer for `len` values of `dtype`
    // at this batch; the plan keeps it alive, and no kernel reads or
    // writes it, from the kernel that completes it until the first that
    // reads the sum, before which `launch_summing` waits for the ticket.
    unsafe { c.start_sum(table[buf], len, dtype) }
}

/// [`start_sum`], waiting for the sum to complete.
pub fn sum_now(
    c: &dyn crate::dist::Collective,
    table: &[*mut u8],
    buf: usize,
    len: usize,
    dtype: DType,
) {
    // SAFETY: as `start_sum`; no kernel runs until it returns.
    unsafe { c.sum_now(table[buf], len, dtype) }
}

/// The buffer table, shareable with the worker threads of one call.
#[derive(Clone, Copy, Debug)]
pub struct Table(*const *mut u8);

// SAFETY: a `Table` is only made by `split` from a table the caller holds
// (with every buffer it points to) until all the jobs sharing it have
// finished: `split` returns only then. The jobs of one call write disjoint
// row ranges of one output buffer and only read the others.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

impl Table {
    fn ptr(self) -> *const *mut u8 {
        self.0
    }
}

/// What a job runs on its rows.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// A JIT kernel over output rows [lo, hi).
    Kernel(KernelFn),
    /// A `gemm` matmul over output rows [lo, hi) in blocks of
    /// [`GEMM_BLOCK`], each block followed by the epilogue kernel.
    Gemm(GemmArgs, Option<KernelFn>),
    /// A Rust callback over rows [lo, hi) (see [`for_rows`]).
    Rows(Callback),
    /// An f32 `gemm` matmul of two depth slices ([`depth_split`]) on two
    /// threads: the first slice into the output, the second into a partial
    /// buffer, then their sum and the epilogue by rows ([`depth_halves`]).
    /// The job's range counts the two halves.
    Depth(GemmArgs, Option<KernelFn>),
}

/// A callback and the context it is called with.
#[derive(Clone, Copy, Debug)]
pub struct Callback {
    call: fn(*const (), usize, usize),
    ctx: Ctx,
}

#[derive(Clone, Copy, Debug)]
struct Ctx(*const ());

impl Ctx {
    fn ptr(self) -> *const () {
        self.0
    }
}

// SAFETY: a `Ctx` is made only by `for_rows`, from a `&F` with `F: Sync`,
// and by `fill_rows`, from its output slice, whose threads write disjoint
// rows of it; both outlive every job holding them (`split` returns only
// when all have finished, also when one panics).
unsafe impl Send for Ctx {}
unsafe impl Sync for Ctx {}

/// Runs `f(lo, hi)` over row ranges that cover 0..rows once, divided among
/// `threads` threads as [`split`] divides a kernel's rows (with `adapt`,
/// as it learns is faster).
pub fn for_rows<F: Fn(usize, usize) + Sync>(
    rows: usize,
    threads: usize,
    adapt: Option<&Adapt>,
    f: &F,
) {
    fn call<F: Fn(usize, usize) + Sync>(ctx: *const (), lo: usize, hi: usize) {
        // SAFETY: `ctx` is the `&F` `for_rows` was given, alive until it
        // returns, which is after every share has run.
        let f = unsafe { &*ctx.cast::<F>() };
        f(lo, hi);
    }
    let cb = Callback {
        call: call::<F>,
        ctx: Ctx((f as *const F).cast()),
    };
    split(Work::Rows(cb), &[], (0, 0), rows, threads, adapt);
}

/// Fills rows 0..`rows` of `out` (`width` values each) with `fill(i,
/// row)`, the rows divided among `threads` threads (see [`for_rows`]);
/// false when a `fill` returned `None`.
pub fn fill_rows(
    out: &mut [f32],
    (width, rows): (usize, usize),
    (threads, adapt): (usize, Option<&Adapt>),
    fill: &(dyn Fn(usize, &mut [f32]) -> Option<()> + Sync),
) -> bool {
    assert!(out.len() >= rows * width, "compiler bug: buffer too small");
    let base = Ctx(out.as_mut_ptr().cast_const().cast());
    let ok = std::sync::atomic::AtomicBool::new(true);
    for_rows(rows, threads, adapt, &|lo, hi| {
        // SAFETY: the shares' ranges [lo, hi) are disjoint and inside
        // 0..rows, so each thread writes its own rows of `out`, which this
        // function borrows mutably until every share has run.
        let part = unsafe {
            std::slice::from_raw_parts_mut(
                base.ptr().cast::<f32>().cast_mut().add(lo * width),
                (hi - lo) * width,
            )
        };
        for (k, row) in part.chunks_mut(width.max(1)).enumerate() {
            if fill(lo + k, row).is_none() {
                ok.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    ok.into_inner()
}

/// One thread's part in a kernel call: it claims chunks of `chunk` rows of
/// [0, rows) from the call's shared counter and runs them until none is
/// left, so a thread that runs slow (its core shared or busy) claims fewer.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    work: Work,
    table: Table,
    batch: usize,
    seed: u64,
    /// The call's rows: [0, rows).
    rows: usize,
    chunk: usize,
    next: Claims,
    /// Which matmul kernel a Gemm work runs, and where it reads B.
    right: Right,
    /// Shared, each job runs the chunk of its own index (the calling
    /// thread the first, worker i the (i+1)th) rather than claiming, so
    /// that the same thread runs the same rows call after call: a layer's
    /// weight gradient and update, and the depth slice of its forward
    /// product that reads those rows of W (see [`Work::Depth`]), all on
    /// one core. Alone, the one job claims every chunk.
    fixed: Option<usize>,
}

/// The matmul kernel of a Gemm work and its right operand.
#[derive(Clone, Copy, Debug)]
enum Right {
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

/// The counter of chunks claimed, shared by the jobs of one call.
#[derive(Clone, Copy, Debug)]
struct Claims(*const AtomicUsize);

// SAFETY: `split` makes a `Claims` from a counter on its stack and returns
// only when every job holding it has finished; the counter is only used
// atomically.
unsafe impl Send for Claims {}
unsafe impl Sync for Claims {}

impl Job {
    pub fn run(&self) {
        if let Some(i) = self.fixed {
            let lo = i.saturating_mul(self.chunk);
            if lo < self.rows {
                self.run_rows(lo, (lo + self.chunk).min(self.rows));
            }
            return;
        }
        loop {
            // SAFETY: the counter outlives the job (see `Claims`).
            let c = unsafe { &*self.next.0 }.fetch_add(1, Ordering::Relaxed);
            let lo = c.saturating_mul(self.chunk);
            if lo >= self.rows {
                return;
            }
            self.run_rows(lo, (lo + self.chunk).min(self.rows));
        }
    }

    /// Rows [lo, hi) of the work.
    fn run_rows(&self, lo: usize, hi: usize) {
        let (t, batch, seed) = (self.table.0, self.batch as i64, self.seed as i64);
        match self.work {
            // The callee reads table[i] for the buffers of its node and
            // operands, all sized for `batch` by the caller, and writes only
            // its own rows [lo, hi) of its output buffers.
            Work::Kernel(k) => k(t, batch, seed, lo as i64, hi as i64),
            Work::Gemm(g, epilogue) => {
                let block = match self.right {
                    Right::Crate => GEMM_BLOCK,
                    Right::Packed(_) | Right::Panels | Right::Columns | Right::Partial(_) => {
                        hi - lo
                    }
                };
                let mut r = lo;
                while r < hi {
                    let e = (r + block).min(hi);
                    match self.right {
                        Right::Crate => gemm_rows(&g, t, r, e),
                        own => own_gemm_rows(&g, t, own, r, e),
                    }
                    if let Some(f) = epilogue {
                        f(t, batch, seed, r as i64, e as i64);
                    }
                    r = e;
                }
            }
            Work::Rows(cb) => (cb.call)(cb.ctx.ptr(), lo, hi),
            Work::Depth(g, _) => {
                let half = depth_slice(g.k);
                for part in lo..hi {
                    match (part, self.right) {
                        (0, _) => gemm_part(&g, t, (0, g.m), (0, half), None),
                        (_, Right::Partial(p)) => gemm_part(&g, t, (0, g.m), (half, g.k), Some(p)),
                        _ => unreachable!("compiler bug: a depth split without its partial buffer"),
                    }
                }
            }
        }
    }
}

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
fn own_gemm(g: &GemmArgs) -> bool {
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
fn own_gemm_rows(g: &GemmArgs, table: *const *mut u8, right: Right, lo: usize, hi: usize) {
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
fn own_gemm_rows(_: &GemmArgs, _: *const *mut u8, _: Right, _: usize, _: usize) {
    unreachable!("compiler bug: own_gemm is false off x86_64")
}

/// B's (row, column) strides: row-major k×n, or its n×k transpose read in
/// place.
fn b_strides(g: &GemmArgs) -> (usize, usize) {
    if g.b_transposed {
        (1, g.k)
    } else {
        (g.n, 1)
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The calling thread's packed B, reused call after call.
    static PACKED_B: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `work` over output rows [0, rows): on this thread alone when
/// `threads` is 1, else on `threads` threads (this one and the pool's
/// workers) that claim chunks of rows as they go. Returns when every row is
/// done.
///
/// The chunks: for dlc's own matmul, blocks of whole 6-row tiles small
/// enough that each is followed by its epilogue while in L2, and that a
/// slow thread holds up the others by one chunk at most; B is packed once,
/// here, for all of them. A call of at most [`sgemm::MC`] rows (a batch of
/// up to 264) has one chunk per thread instead, each packing B's panels
/// four at a time as its tiles use them (docs/performance.md measured B
/// packed through memory first 15–18% slower at 64 rows and 5–15% at 256);
/// when B has more columns than the call has rows, the threads share B's
/// column panels instead (each packs half of B), then the epilogue's rows.
/// For a `gemm` crate matmul, one chunk per thread (every `gemm` call
/// packs B again); for a JIT kernel, four per thread.
///
/// With `adapt`, each call either shares the chunks or runs them all here,
/// as [`Adapt`] learns is faster for this kernel.
pub fn split(
    work: Work,
    table: &[*mut u8],
    (batch, seed): (usize, u64),
    rows: usize,
    threads: usize,
    adapt: Option<&Adapt>,
) {
    let threads = threads.max(1);
    let next = AtomicUsize::new(0);
    let job = |chunk: usize, right: Right| Job {
        work,
        table: Table(table.as_ptr()),
        batch,
        seed,
        rows,
        chunk: chunk.max(1),
        next: Claims(&next),
        right,
        fixed: None,
    };
    let per_thread = |parts: usize| rows.div_ceil(threads * parts).next_multiple_of(4);
    if let Work::Depth(g, epilogue) = work {
        depth_halves(g, epilogue, table, (batch, seed), adapt);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Work::Gemm(g, _) = work {
        if own_gemm(&g) {
            let panels = g.n.div_ceil(sgemm::NR);
            if rows <= sgemm::MC && threads > 1 && g.n > rows && panels >= threads {
                // One block of rows, B wider than A is tall: the threads
                // share B's column panels, each packing only its own (cut
                // by rows, each would pack all of B), then the epilogue's
                // rows.
                let product = Job {
                    work: Work::Gemm(g, None),
                    rows: panels,
                    ..job(panels.div_ceil(threads), Right::Columns)
                };
                run_jobs(product, threads, panels, adapt);
                if let Work::Gemm(_, Some(epilogue)) = work {
                    split(
                        Work::Kernel(epilogue),
                        table,
                        (batch, seed),
                        rows,
                        threads,
                        None,
                    );
                }
                return;
            }
            if rows <= sgemm::MC {
                // One block of rows: B's panels packed (four at a time) as
                // the tiles use them, by each thread for its share (one
                // share per thread, so that each packs B once).
                let chunk = rows.div_ceil(threads).next_multiple_of(sgemm::MR);
                run_jobs(job(chunk, Right::Panels), threads, rows, adapt);
                return;
            }
            let chunk = if threads == 1 {
                sgemm::MC
            } else {
                per_thread(3).next_multiple_of(12).clamp(24, sgemm::MC)
            };
            PACKED_B.with_borrow_mut(|packed| {
                // SAFETY: b's buffer holds k×n f32s at this batch (`run`
                // sized it), row-major, or its n×k transpose when
                // `b_transposed`. Packing it on this thread measured
                // as fast as sharing its panels with the workers (they are
                // still waking up while it runs).
                unsafe {
                    let b = (*table.as_ptr().add(g.b)).cast::<f32>().cast_const();
                    sgemm::pack_b(b, b_strides(&g), g.k, g.n, packed);
                }
                run_jobs(
                    job(chunk, Right::Packed(packed.as_ptr())),
                    threads,
                    rows,
                    adapt,
                );
            });
            return;
        }
    }
    let chunk = match work {
        _ if threads == 1 => rows,
        Work::Gemm(..) => per_thread(1),
        Work::Kernel(_) | Work::Rows(_) | Work::Depth(..) => per_thread(4),
    };
    // A `gemm` crate matmul: one chunk per thread, each thread the same
    // rows every call (see `Job::fixed`).
    let fixed = matches!(work, Work::Gemm(..)).then_some(0);
    run_jobs(
        Job {
            fixed,
            ..job(chunk, Right::Crate)
        },
        threads,
        rows,
        adapt,
    );
}

thread_local! {
    /// The calling thread's partial sums of a depth split, reused.
    static PARTIAL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Outputs from which a depth split's sum and epilogue are shared by the
/// two threads (a dropout mask draws two 64-bit mixes a value: on two
/// threads mlp_dropout's epochs took 0.284–0.301 s with its 256×256 first
/// layer's on the calling thread, 0.276–0.293 shared), below which they run
/// on the calling thread (a batch of 32 by 128 tanh units: a second round
/// of the pool measured 0.323 → 0.377 s an epoch).
const DEPTH_SHARED_OUTPUTS: usize = 16 << 10;

/// A [`Work::Depth`] matmul: its two depth slices as two fixed shares (or
/// both here, when `adapt` finds that faster: the same sums either way),
/// then output += partial and the epilogue, row by row (the rows shared by
/// the two threads from [`DEPTH_SHARED_OUTPUTS`] outputs on).
fn depth_halves(
    g: GemmArgs,
    epilogue: Option<KernelFn>,
    table: &[*mut u8],
    (batch, seed): (usize, u64),
    adapt: Option<&Adapt>,
) {
    let next = AtomicUsize::new(0);
    PARTIAL.with_borrow_mut(|partial| {
        if partial.len() < g.m * g.n {
            partial.resize(g.m * g.n, 0.0);
        }
        let job = Job {
            work: Work::Depth(g, None),
            table: Table(table.as_ptr()),
            batch,
            seed,
            rows: 2,
            chunk: 1,
            next: Claims(&next),
            right: Right::Partial(partial.as_mut_ptr()),
            fixed: Some(0),
        };
        run_jobs(job, 2, 2, adapt);
        let (out, partial) = (Ctx(table[g.out].cast_const().cast()), &*partial);
        let t = Table(table.as_ptr());
        let threads = if g.m * g.n >= DEPTH_SHARED_OUTPUTS {
            2
        } else {
            1
        };
        for_rows(g.m, threads, None, &|lo, hi| {
            // SAFETY: both halves have finished; the output holds m×n f32s
            // at this batch (`Compiled::run` sized it) and overlaps no
            // operand; each share adds and finishes its own rows [lo, hi).
            let rows = unsafe {
                std::slice::from_raw_parts_mut(
                    out.ptr().cast::<f32>().cast_mut().add(lo * g.n),
                    (hi - lo) * g.n,
                )
            };
            for (o, p) in rows.iter_mut().zip(&partial[lo * g.n..hi * g.n]) {
                *o += *p;
            }
            if let Some(f) = epilogue {
                f(t.ptr(), batch as i64, seed as i64, lo as i64, hi as i64);
            }
        });
    });
}

thread_local! {
    /// Set: this thread's split kernels run all their chunks here (a step
    /// that `adapt::StepAdapt` runs alone), their `Adapt`s not consulted.
    static SOLO: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the split kernels this thread launches run all their chunks on
/// it (`true`) or share them as their `Adapt`s choose (`false`).
pub fn set_solo(solo: bool) {
    SOLO.set(solo);
}

/// Runs `job` on `threads` threads (this one first), or on this one alone
/// when one thread, one chunk, or `adapt` finds that faster.
fn run_jobs(job: Job, threads: usize, rows: usize, adapt: Option<&Adapt>) {
    let sharers = threads.min(rows.div_ceil(job.chunk));
    if sharers <= 1 {
        Job { fixed: None, ..job }.run();
        return;
    }
    let way = if SOLO.get() {
        Way::Timed {
            shared: false,
            exploring: false,
        }
    } else {
        adapt.map_or(Way::Untimed, Adapt::choose)
    };
    let shared = matches!(way, Way::Untimed | Way::Timed { shared: true, .. });
    let start = Instant::now();
    if shared {
        let jobs: Vec<Job> = (0..sharers)
            .map(|i| Job {
                fixed: job.fixed.map(|_| i),
                ..job
            })
            .collect();
        super::pool::run(&jobs);
    } else if let Right::Panels = job.right {
        // Alone, as one share: each share packs all of B's panels. The
        // rows' values do not depend on how they are cut into shares.
        Job {
            chunk: job.rows,
            ..job
        }
        .run();
    } else {
        Job { fixed: None, ..job }.run();
    }
    if let (Way::Timed { exploring, .. }, Some(a), false) = (way, adapt, SOLO.get()) {
        a.record(shared, exploring, start.elapsed().as_secs_f64());
    }
}

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

/// Test values in [-0.5, 0.5) from a 64-bit LCG: the same sequence for
/// the same seed.
#[cfg(test)]
pub(crate) struct TestValues(pub u64);

#[cfg(test)]
impl TestValues {
    /// The next `n` values.
    pub fn take(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
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
            let mut values = TestValues(7);
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
