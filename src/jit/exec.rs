//! The runtime's unsafe core: the one module that calls JIT code and views
//! buffers as typed slices.
//!
//! Every buffer is a `Vec<u64>` (8-byte aligned, so f32, i32 and f64 views
//! are aligned). Before a kernel runs, `Compiled::run` has checked that every
//! buffer the kernel touches holds at least the bytes its shape needs at the
//! current batch size; the kernels index only within those shapes.
//!
//! This file holds the buffers' reads and writes and the splitting of a
//! kernel's rows across threads; what one thread runs on its rows is
//! `exec/job.rs`, the matmuls `exec/gemm.rs` (dlc's own kernel
//! `exec/sgemm.rs`), and the functions kernels call `exec/externs.rs`,
//! `exec/rms.rs` and `exec/wide.rs`.
#![allow(unsafe_code)]

use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use super::adapt::{Adapt, Way};

use crate::ir::DType;

pub mod externs;
mod gemm;
pub(super) mod job;
pub mod rms;
#[cfg(target_arch = "x86_64")]
mod sgemm;
#[cfg(test)]
mod test_values;
pub mod wide;

#[cfg(target_arch = "x86_64")]
use gemm::b_strides;
pub use gemm::{depth_split, GemmArgs};
use gemm::{own_gemm, Right};
use job::{Callback, Claims, Ctx, Job, Table};
pub use job::{KernelFn, Work};
pub use rms::dlc_rms_step;
pub use wide::dlc_wide;

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
/// four at a time as its tiles use them (B packed through memory first
/// measured 15–18% slower at 64 rows and 5–15% at 256, in 2026-11: the git
/// history of docs/performance.md);
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

#[cfg(test)]
mod tests {
    use super::for_rows;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A share that panics, on a worker or on the calling thread, panics
    /// the call (after every share has stopped), and the pool keeps
    /// working afterwards.
    #[test]
    fn a_panicking_share_panics_the_call_and_the_pool_survives() {
        for panicking_lo in [0, 1] {
            let r = std::panic::catch_unwind(|| {
                for_rows(64, 2, None, &|lo, _hi| {
                    if (lo > 0) == (panicking_lo == 1) {
                        panic!("share at {lo}");
                    }
                })
            });
            assert!(r.is_err());
        }
        let rows = AtomicUsize::new(0);
        for_rows(64, 2, None, &|lo, hi| {
            rows.fetch_add(hi - lo, Ordering::Relaxed);
        });
        assert_eq!(rows.into_inner(), 64);
    }
}
