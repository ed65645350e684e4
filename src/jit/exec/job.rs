//! What a thread runs on its rows ([`Job`]): a JIT kernel, a matmul and its epilogue, a callback.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::gemm::{depth_slice, gemm_part, gemm_rows, own_gemm_rows, GemmArgs, Right, GEMM_BLOCK};

/// A compiled kernel: the buffer table, the batch size, the seed, and the
/// range [lo, hi) of output rows to compute (only matmul kernels split their
/// rows; the others ignore the range).
pub type KernelFn = extern "C" fn(*const *mut u8, i64, i64, i64, i64);

/// The buffer table, shareable with the worker threads of one call.
#[derive(Clone, Copy, Debug)]
pub struct Table(pub(super) *const *mut u8);

// SAFETY: a `Table` is only made by `split` from a table the caller holds
// (with every buffer it points to) until all the jobs sharing it have
// finished: `split` returns only then. The jobs of one call write disjoint
// row ranges of one output buffer and only read the others.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

impl Table {
    pub(super) fn ptr(self) -> *const *mut u8 {
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
    pub(super) call: fn(*const (), usize, usize),
    pub(super) ctx: Ctx,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Ctx(pub(super) *const ());

impl Ctx {
    pub(super) fn ptr(self) -> *const () {
        self.0
    }
}

// SAFETY: a `Ctx` is made only by `for_rows`, from a `&F` with `F: Sync`,
// and by `fill_rows`, from its output slice, whose threads write disjoint
// rows of it; both outlive every job holding them (`split` returns only
// when all have finished, also when one panics).
unsafe impl Send for Ctx {}
unsafe impl Sync for Ctx {}

/// One thread's part in a kernel call: it claims chunks of `chunk` rows of
/// [0, rows) from the call's shared counter and runs them until none is
/// left, so a thread that runs slow (its core shared or busy) claims fewer.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    pub(super) work: Work,
    pub(super) table: Table,
    pub(super) batch: usize,
    pub(super) seed: u64,
    /// The call's rows: [0, rows).
    pub(super) rows: usize,
    pub(super) chunk: usize,
    pub(super) next: Claims,
    /// Which matmul kernel a Gemm work runs, and where it reads B.
    pub(super) right: Right,
    /// Shared, each job runs the chunk of its own index (the calling
    /// thread the first, worker i the (i+1)th) rather than claiming, so
    /// that the same thread runs the same rows call after call: a layer's
    /// weight gradient and update, and the depth slice of its forward
    /// product that reads those rows of W (see [`Work::Depth`]), all on
    /// one core. Alone, the one job claims every chunk.
    pub(super) fixed: Option<usize>,
}

/// The counter of chunks claimed, shared by the jobs of one call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Claims(pub(super) *const AtomicUsize);

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
