//! The collective over MPI (`--features mpi`): Open MPI or MPICH, as a
//! cluster's launcher (`mpirun`, Slurm's `srun`) starts the processes.
//!
//! MPI is initialized only when a launcher started this process (its
//! environment says so), on the thread that runs the command, and every
//! MPI call is made from that thread (`MPI_THREAD_FUNNELED`): the compiled
//! step's worker threads never call MPI. A sum starts as `MPI_Iallreduce`
//! in place, and `MPI_Test` between kernels lets it advance. The bindings
//! do not export `MPI_IN_PLACE`, a constant of each implementation's
//! `mpi.h`: for Open MPI and the MPICH family, whose values are known, it
//! is used; another MPI sums from a staging copy of the buffer.

use std::cell::RefCell;
use std::os::raw::{c_int, c_void};
use std::sync::{Arc, Mutex};

use mpi::ffi;

use super::{Collective, Ranks};
use crate::ir::DType;

thread_local! {
    /// The initialized MPI environment; dropping it finalizes MPI.
    static UNIVERSE: RefCell<Option<mpi::environment::Universe>> = const { RefCell::new(None) };
}

/// Whether a launcher started this process as one of a parallel job.
fn launched() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Initializes MPI when a launcher started this process, and installs the
/// collective when the job has more than one process. Returns this
/// process's place (rank 0 of 1 when not launched).
pub fn start() -> Result<Ranks, String> {
    if !launched() {
        return Ok(Ranks::ONE);
    }
    let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Funneled)
        .ok_or("MPI was initialized twice")?;
    if level < mpi::Threading::Funneled {
        return Err("this MPI cannot be called from the thread that runs dlc's command".into());
    }
    let ranks = {
        use mpi::traits::Communicator;
        let world = universe.world();
        Ranks {
            rank: world.rank().max(0) as usize,
            size: world.size().max(1) as usize,
        }
    };
    UNIVERSE.with_borrow_mut(|u| *u = Some(universe));
    if ranks.size > 1 {
        super::install(Arc::new(Mpi {
            ranks,
            inflight: Mutex::new(Inflight::default()),
            in_place: in_place(),
        }));
    }
    Ok(ranks)
}

/// This process's place among the processes a launcher started, for a
/// command that does not train across them: MPI is initialized and
/// finalized at once (every process of the job must do both, or Open MPI
/// ends the job), and no collective is installed. Rank 0 of 1 when not
/// launched.
pub fn place() -> Result<Ranks, String> {
    if !launched() {
        return Ok(Ranks::ONE);
    }
    let universe = mpi::initialize().ok_or("MPI was initialized twice")?;
    let ranks = {
        use mpi::traits::Communicator;
        let world = universe.world();
        Ranks {
            rank: world.rank().max(0) as usize,
            size: world.size().max(1) as usize,
        }
    };
    drop(universe);
    Ok(ranks)
}

/// `MPI_IN_PLACE` of the MPI this process runs on, as an address, where
/// it is known: `((void *) 1)` in Open MPI's `mpi.h`, `((void *) -1)` in
/// MPICH's (and its derivatives': Intel MPI, MVAPICH, Cray MPICH).
fn in_place() -> Option<usize> {
    let v = mpi::environment::library_version().unwrap_or_default();
    if v.contains("Open MPI") {
        Some(1)
    } else if ["MPICH", "Intel(R) MPI", "MVAPICH", "CRAY MPICH"]
        .iter()
        .any(|m| v.contains(m))
    {
        Some(usize::MAX)
    } else {
        None
    }
}

/// Finalizes MPI, if [`start`] initialized it (on the same thread).
pub fn finish() {
    UNIVERSE.with_borrow_mut(|u| drop(u.take()));
}

/// Sums in flight: their requests and staging copies (kept between steps,
/// so that a step allocates nothing).
#[derive(Default)]
struct Inflight {
    requests: Vec<ffi::MPI_Request>,
    staging: Vec<Vec<u8>>,
    open: usize,
}

// SAFETY: an `MPI_Request` is a handle (a pointer in Open MPI) that only
// the thread that initialized MPI passes to MPI (see the module's doc);
// the mutex orders any other access.
unsafe impl Send for Inflight {}

struct Mpi {
    ranks: Ranks,
    inflight: Mutex<Inflight>,
    /// `MPI_IN_PLACE`'s address, when known ([`in_place`]).
    in_place: Option<usize>,
}

impl Mpi {
    /// The send buffer of a sum of the `bytes` bytes at `buf` in place:
    /// `MPI_IN_PLACE`, or else a copy of them in `stage`.
    ///
    /// # Safety
    /// `buf` holds `bytes` bytes.
    unsafe fn send_buffer(
        &self,
        buf: *const u8,
        bytes: usize,
        stage: &mut Vec<u8>,
    ) -> *const c_void {
        match self.in_place {
            Some(p) => p as *const c_void,
            None => {
                stage.resize(bytes, 0);
                // SAFETY: the caller's contract; `stage` holds `bytes` bytes.
                unsafe { std::ptr::copy_nonoverlapping(buf, stage.as_mut_ptr(), bytes) };
                stage.as_ptr().cast::<c_void>()
            }
        }
    }
}

/// The MPI datatype of a dlc dtype (a bool is stored as an i32).
fn datatype(d: DType) -> ffi::MPI_Datatype {
    // SAFETY: reading the bindings' datatype handles, which MPI's
    // initialization set.
    unsafe {
        match d {
            DType::F32 => ffi::RSMPI_FLOAT,
            DType::F64 => ffi::RSMPI_DOUBLE,
            DType::I32 | DType::Bool => ffi::RSMPI_INT32_T,
        }
    }
}

fn world() -> ffi::MPI_Comm {
    // SAFETY: as `datatype`.
    unsafe { ffi::RSMPI_COMM_WORLD }
}

impl Collective for Mpi {
    fn ranks(&self) -> Ranks {
        self.ranks
    }

    unsafe fn start_sum(&self, buf: *mut u8, len: usize, dtype: DType) -> usize {
        let mut f = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = f.requests.len();
        let bytes = len * crate::jit::exec::elem_size(dtype);
        if f.staging.len() <= ticket {
            f.staging.push(Vec::new());
        }
        let mut stage = std::mem::take(&mut f.staging[ticket]);
        // SAFETY: the caller's contract: `buf` holds `len` values of
        // `dtype` (`bytes` bytes) that nothing else touches until the
        // ticket is waited for; a staging copy is as long, and is neither
        // moved nor resized until then (it goes back into `staging`, which
        // only `start_sum` touches, and only at a ticket not in flight).
        unsafe {
            let send = self.send_buffer(buf, bytes, &mut stage);
            let mut request = ffi::RSMPI_REQUEST_NULL;
            ffi::MPI_Iallreduce(
                send,
                buf.cast::<c_void>(),
                len as c_int,
                datatype(dtype),
                ffi::RSMPI_SUM,
                world(),
                &mut request,
            );
            f.requests.push(request);
        }
        f.staging[ticket] = stage;
        f.open += 1;
        ticket
    }

    unsafe fn sum_now(&self, buf: *mut u8, len: usize, dtype: DType) {
        let mut stage = Vec::new();
        // SAFETY: the caller's contract, as `start_sum`'s; the call returns
        // when the sum is complete.
        unsafe {
            let send = self.send_buffer(buf, len * crate::jit::exec::elem_size(dtype), &mut stage);
            ffi::MPI_Allreduce(
                send,
                buf.cast::<c_void>(),
                len as c_int,
                datatype(dtype),
                ffi::RSMPI_SUM,
                world(),
            );
        }
    }

    fn progress(&self) {
        let mut f = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: as `datatype`.
        let null = unsafe { ffi::RSMPI_REQUEST_NULL };
        if let Some(r) = f.requests.iter_mut().find(|r| **r != null) {
            let mut done: c_int = 0;
            // SAFETY: a request this process started and has not completed;
            // MPI sets it to MPI_REQUEST_NULL when it completes.
            unsafe {
                ffi::MPI_Test(r, &mut done, ffi::RSMPI_STATUS_IGNORE);
            }
        }
    }

    fn wait(&self, ticket: usize) {
        let mut f = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = f.requests.get_mut(ticket) {
            // SAFETY: a request this process started (or MPI_REQUEST_NULL,
            // for which MPI_Wait returns at once).
            unsafe {
                ffi::MPI_Wait(r, ffi::RSMPI_STATUS_IGNORE);
            }
            f.open = f.open.saturating_sub(1);
        }
        if f.open == 0 {
            f.requests.clear();
        }
    }

    fn sum_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        // SAFETY: both buffers hold `values.len()` f64s and do not overlap.
        unsafe {
            ffi::MPI_Allreduce(
                send.as_ptr().cast::<c_void>(),
                values.as_mut_ptr().cast::<c_void>(),
                values.len() as c_int,
                ffi::RSMPI_DOUBLE,
                ffi::RSMPI_SUM,
                world(),
            );
        }
    }

    fn gather_u64(&self, value: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.ranks.size];
        // SAFETY: one u64 sent, `size` received.
        unsafe {
            ffi::MPI_Allgather(
                (&raw const value).cast::<c_void>(),
                1,
                ffi::RSMPI_UINT64_T,
                all.as_mut_ptr().cast::<c_void>(),
                1,
                ffi::RSMPI_UINT64_T,
                world(),
            );
        }
        all
    }

    fn abort(&self, code: i32) -> ! {
        // SAFETY: MPI is initialized; MPI_Abort ends every process of the
        // job (and does not return).
        unsafe {
            ffi::MPI_Abort(world(), code);
        }
        std::process::exit(code)
    }
}
