//! Worker threads kept for the life of the process, so that a kernel split
//! across threads costs a wake-up (microseconds) rather than a thread
//! spawn (~30 µs measured here) on every call.
//!
//! A worker waits for a job by spinning briefly, then sleeping on a
//! condition variable; the calling thread runs the first share itself,
//! then takes back any share no worker has picked up yet and runs it too,
//! and waits only for shares already running. One caller uses the pool at a time;
//! a second caller at the same moment (tests run in parallel) gets scoped
//! threads instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::exec::job::Job;

/// How long an idle worker spins before it sleeps: long enough to cover
/// the small kernels between two large ones in a training step.
const SPIN: Duration = Duration::from_micros(200);

/// One worker's mailbox.
struct Slot {
    job: Mutex<Option<Job>>,
    wake: Condvar,
    /// Jobs posted, and jobs finished.
    posted: AtomicU64,
    done: AtomicU64,
    /// A panic of the worker's last job, for the caller to resume.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A job never panics while a lock is held (they hold no locks), so a
    // poisoned lock's data is still sound.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker(slot: Arc<Slot>) {
    let mut seen = 0;
    loop {
        let start = Instant::now();
        while slot.posted.load(Ordering::Acquire) == seen && start.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        // The job and its number are read together, under the lock the
        // caller posts them under. The job is gone when the caller took it
        // back (it found the worker late and ran the job itself).
        let (job, n) = {
            let g = lock(&slot.job);
            let mut g = slot
                .wake
                .wait_while(g, |_| slot.posted.load(Ordering::Acquire) == seen)
                .unwrap_or_else(|e| e.into_inner());
            (g.take(), slot.posted.load(Ordering::Acquire))
        };
        if let Some(job) = job {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()));
            if let Err(p) = ran {
                *lock(&slot.panic) = Some(p);
            }
        }
        seen = n;
        slot.done.store(n, Ordering::Release);
    }
}

fn pool() -> &'static Mutex<Vec<Arc<Slot>>> {
    static POOL: OnceLock<Mutex<Vec<Arc<Slot>>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(Vec::new()))
}

/// Runs `jobs` (the first on this thread), returning when all are done.
pub fn run(jobs: &[Job]) {
    let Some((first, rest)) = jobs.split_first() else {
        return;
    };
    let mut workers = match pool().try_lock() {
        Ok(w) => w,
        // A job that panicked (the panic went to its caller) left the
        // workers as sound as ever.
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            std::thread::scope(|s| {
                for job in rest {
                    s.spawn(move || job.run());
                }
                first.run();
            });
            return;
        }
    };
    while workers.len() < rest.len() {
        let slot = Arc::new(Slot {
            job: Mutex::new(None),
            wake: Condvar::new(),
            posted: AtomicU64::new(0),
            done: AtomicU64::new(0),
            panic: Mutex::new(None),
        });
        let s = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name("dlc-worker".into())
            .spawn(move || worker(s));
        if spawned.is_err() {
            break;
        }
        workers.push(slot);
    }
    let mut posted = Vec::new();
    for (job, slot) in rest.iter().zip(workers.iter()) {
        // A panic left from an earlier call that panicked on this thread
        // too (it unwound before taking the workers' panics) is not this
        // call's.
        drop(lock(&slot.panic).take());
        let n = {
            let mut g = lock(&slot.job);
            *g = Some(*job);
            slot.posted.fetch_add(1, Ordering::AcqRel) + 1
        };
        slot.wake.notify_one();
        posted.push((&**slot, n));
    }
    // From here on, every share a worker may be running is waited for
    // before this function returns, also when a share run here panics:
    // the jobs borrow the caller's buffers.
    let mut running = Running(posted);
    // Jobs no worker could take (a thread failed to start) run here.
    for job in rest.iter().skip(running.0.len()) {
        job.run();
    }
    first.run();
    // A worker that has not picked its share up yet (asleep, or its core
    // busy with something else) loses it: this thread runs it rather than
    // wait for the worker to wake.
    let mut k = 0;
    while k < running.0.len() {
        let unclaimed = lock(&running.0[k].0.job).take();
        match unclaimed {
            Some(job) => {
                running.0.remove(k);
                job.run();
            }
            None => k += 1,
        }
    }
    let slots: Vec<&Slot> = running.0.iter().map(|(s, _)| *s).collect();
    drop(running);
    // A worker's panic is this call's.
    for slot in slots {
        if let Some(p) = lock(&slot.panic).take() {
            std::panic::resume_unwind(p);
        }
    }
}

/// Shares posted to workers (slot, job number), waited for on drop.
struct Running<'a>(Vec<(&'a Slot, u64)>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        for (slot, n) in &self.0 {
            let start = Instant::now();
            while slot.done.load(Ordering::Acquire) < *n {
                if start.elapsed() < SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}
