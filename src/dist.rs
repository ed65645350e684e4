//! Data-parallel training across processes (issue #19): every process of a
//! run trains the same compiled step on its share of each global batch,
//! and the step sums its gradients, loss and metric sums across the
//! processes before the update reads them (`Op::AllReduce`, placed by
//! [`crate::step::data_parallel`]).
//!
//! This module is the part that does not depend on MPI: where a process's
//! rows lie in a global batch ([`Share`]), and the operations across
//! processes that the compiled step and the training loop call
//! ([`Collective`]). The MPI implementation (`--features mpi`) lives in
//! [`mpi`]; without it, or with one process, no collective is installed and
//! a run is the single-process run it always was.

// The collective's operations take the compiled step's buffers as raw
// pointers (the arena the kernels write), which only an `unsafe fn` can
// state the contract of.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::ir::DType;

#[cfg(feature = "mpi")]
pub mod mpi;

/// This process's place among the processes of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranks {
    pub rank: usize,
    pub size: usize,
}

impl Ranks {
    /// A run of one process.
    pub const ONE: Ranks = Ranks { rank: 0, size: 1 };

    /// Whether this process prints, plots and writes files for the run.
    pub fn leads(self) -> bool {
        self.rank == 0
    }
}

/// Where one process's rows lie in a step's global batch: rows
/// `first..first + rows` of its `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub first: usize,
    pub rows: usize,
    pub total: usize,
}

impl Share {
    /// The whole batch of `rows` rows (one process).
    pub fn whole(rows: usize) -> Share {
        Share {
            first: 0,
            rows,
            total: rows,
        }
    }

    /// Rank `r`'s share of a global batch of `total` rows: as even as it
    /// can be, the first `total % size` ranks one row more (a last batch
    /// smaller than the number of processes leaves some ranks none).
    pub fn of(total: usize, ranks: Ranks) -> Share {
        let size = ranks.size.max(1);
        let (base, extra) = (total / size, total % size);
        let r = ranks.rank.min(size - 1);
        let first = r * base + r.min(extra);
        Share {
            first,
            rows: base + usize::from(r < extra),
            total,
        }
    }

    /// The positions of this share's rows within the batch's rows.
    pub fn range(self) -> std::ops::Range<usize> {
        self.first..self.first + self.rows
    }
}

/// The operations across the processes of a data-parallel run.
pub trait Collective: Send + Sync {
    /// This process's place in the run.
    fn ranks(&self) -> Ranks;

    /// Starts summing, across the processes, the `len` values of `dtype`
    /// at `buf`, in place, without waiting; returns a ticket for
    /// [`Collective::wait`]. Every process starts the same sums in the same
    /// order.
    ///
    /// # Safety
    /// `buf` holds `len` values of `dtype` and is neither read nor written
    /// by anything else until the ticket is waited for.
    unsafe fn start_sum(&self, buf: *mut u8, len: usize, dtype: DType) -> usize;

    /// Sums, across the processes, the `len` values of `dtype` at `buf`, in
    /// place, and waits (every process calls it at the same point of the
    /// order of sums).
    ///
    /// # Safety
    /// As [`Collective::start_sum`], until it returns.
    unsafe fn sum_now(&self, buf: *mut u8, len: usize, dtype: DType);

    /// Lets sums in flight advance (called between kernels).
    fn progress(&self);

    /// Waits for the sum of `ticket` to be complete in its buffer.
    fn wait(&self, ticket: usize);

    /// Sums `values` across the processes, in place, and waits.
    fn sum_f64(&self, values: &mut [f64]);

    /// Every process's `value`, in rank order.
    fn gather_u64(&self, value: u64) -> Vec<u64>;

    /// Ends every process of the run with exit code `code`: after an
    /// error on this one, so that no other waits for it forever.
    fn abort(&self, code: i32) -> !;
}

static COLLECTIVE: OnceLock<Arc<dyn Collective>> = OnceLock::new();

/// Installs the run's collective (once, at start-up, for more than one
/// process).
pub fn install(c: Arc<dyn Collective>) {
    let _ = COLLECTIVE.set(c);
}

/// The run's collective, when it has more than one process.
pub fn collective() -> Option<Arc<dyn Collective>> {
    COLLECTIVE.get().cloned()
}

/// This process's place in the run (rank 0 of 1 without a collective).
pub fn ranks() -> Ranks {
    COLLECTIVE.get().map_or(Ranks::ONE, |c| c.ranks())
}

/// Set when [`agree`] found the processes to differ: every process knows,
/// and each ends by itself with exit 1.
static DISAGREED: AtomicBool = AtomicBool::new(false);

/// Across processes: that every process holds the same `digest` of `what`
/// (called by every process at the same point). When one differs, every
/// process returns the error, naming the ranks that differ from rank 0;
/// with one process, `Ok`.
pub fn agree(digest: u64, what: &str) -> Result<(), String> {
    let Some(c) = COLLECTIVE.get() else {
        return Ok(());
    };
    let all = c.gather_u64(digest);
    let differ: Vec<String> = (0..all.len())
        .filter(|r| all[*r] != all[0])
        .map(|r| r.to_string())
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    DISAGREED.store(true, Ordering::Relaxed);
    let r = c.ranks();
    let mine = if r.leads() {
        String::new()
    } else {
        format!("rank {} of {}: ", r.rank, r.size)
    };
    let (s, verb) = if differ.len() > 1 {
        ("s", "differ")
    } else {
        ("", "differs")
    };
    Err(format!(
        "{mine}the processes disagree on {what}: rank{s} {} of {} {verb} from rank 0 (every process must run the same command on the same files)",
        differ.join(", "),
        r.size
    ))
}

/// After `message`, an error on this process: across processes, prints it
/// naming this rank and ends every process of the run now, so that none
/// waits for this one; with one process, or after the processes found
/// together that they disagree ([`agree`]: each fails by itself), returns
/// (the caller reports the error and exits 1 as always).
pub fn fail_everywhere(message: &str) {
    if DISAGREED.load(Ordering::Relaxed) {
        return;
    }
    if let Some(c) = COLLECTIVE.get() {
        let r = c.ranks();
        // One write, so that it does not interleave with another's line.
        let line = format!("error: rank {} of {}: {message}\n", r.rank, r.size);
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        c.abort(1)
    }
}

/// This process's rank as the launcher that started it as one of a
/// parallel job (`mpirun`, `srun`) gave it in the environment: Open MPI's
/// `OMPI_COMM_WORLD_RANK`, PMIx's `PMIX_RANK`, MPICH's and Slurm's PMI
/// `PMI_RANK`. `None` when no launcher started it.
pub fn launched_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .map(|r| r.trim().parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row goes to exactly one rank, in order, the shares differing by
    /// one row at most, for totals below, at and above the ranks' count.
    #[test]
    fn shares_cover_the_batch_once() {
        for size in 1..=5 {
            for total in 0..=13 {
                let shares: Vec<Share> = (0..size)
                    .map(|rank| Share::of(total, Ranks { rank, size }))
                    .collect();
                let mut next = 0;
                for s in &shares {
                    assert_eq!(s.first, next, "size {size}, total {total}");
                    assert_eq!(s.total, total);
                    next += s.rows;
                }
                assert_eq!(next, total);
                let (lo, hi) = (
                    shares.iter().map(|s| s.rows).min().unwrap_or(0),
                    shares.iter().map(|s| s.rows).max().unwrap_or(0),
                );
                assert!(hi - lo <= 1, "size {size}, total {total}: {shares:?}");
            }
        }
        assert_eq!(Share::of(256, Ranks { rank: 1, size: 2 }).range(), 128..256);
        assert_eq!(Share::of(100, Ranks { rank: 2, size: 3 }).range(), 67..100);
    }
}
