//! Whether a split kernel's rows are worth sharing with the pool's
//! workers, learned from its own calls' times (see [`Adapt`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Whether a kernel's chunks are shared with the pool's workers or all run
/// on the calling thread, learned from the kernel's own calls: a second
/// core that is free makes sharing pay; one that is busy, or an SMT sibling
/// of the first (these 2-vCPU machines have both), can make it cost more
/// than it saves. Either way the chunks are the same, so the results are
/// the same bit for bit; only who runs them changes.
///
/// The first calls warm up (caches, the workers' start) and are not
/// counted; then the two ways alternate until each has [`SAMPLES`] times;
/// from then on each call keeps the way it took last unless the other's
/// recent mean time is lower by a margin ([`SWITCH`]), except every
/// [`EXPLORE`]th, which takes the other and makes its time that way's
/// mean: a core that was busy may have become free, and one such call
/// finds it (a lucky time is corrected by the calls after it, now taking
/// that way and timed).
#[derive(Debug, Default)]
pub struct Adapt {
    /// Calls so far.
    calls: AtomicU64,
    /// Per way (solo, shared): calls timed, and the moving mean of their
    /// seconds (f64 bits).
    timed: [AtomicU64; 2],
    mean: [AtomicU64; 2],
    /// The way chosen last (outside exploring calls).
    shared: AtomicBool,
}

/// How one call of a kernel runs.
#[derive(Clone, Copy, Debug)]
pub enum Way {
    /// Shared with the workers, not timed (warming up, or no `Adapt`).
    Untimed,
    /// Timed; `exploring`: the way not chosen, to refresh its mean.
    Timed { shared: bool, exploring: bool },
}

/// Calls run before any is timed.
const WARMUP: u64 = 2;
/// Timed calls each way before the faster is chosen.
const SAMPLES: u64 = 3;
/// One call in this many takes the way not chosen.
const EXPLORE: u64 = 64;
/// Weight of the newest time in a way's moving mean.
const RECENT: f64 = 0.125;
/// The other way is taken once its mean is below this fraction of the
/// kept way's.
const SWITCH: f64 = 0.9;

impl Adapt {
    /// How this call runs.
    pub fn choose(&self) -> Way {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n < WARMUP {
            return Way::Untimed;
        }
        let timed = |w: usize| self.timed[w].load(Ordering::Relaxed);
        if timed(0) < SAMPLES || timed(1) < SAMPLES {
            return Way::Timed {
                shared: timed(1) <= timed(0),
                exploring: false,
            };
        }
        let mean = |w: usize| f64::from_bits(self.mean[w].load(Ordering::Relaxed));
        // The way taken last is kept unless the other is faster by a margin,
        // so that one slow call (a worker descheduled once) does not send a
        // kernel the other way for EXPLORE calls.
        let last = self.shared.load(Ordering::Relaxed);
        let (kept, other) = (usize::from(last), usize::from(!last));
        let shared = if mean(other) < SWITCH * mean(kept) {
            !last
        } else {
            last
        };
        self.shared.store(shared, Ordering::Relaxed);
        let exploring = n.is_multiple_of(EXPLORE);
        Way::Timed {
            shared: shared != exploring,
            exploring,
        }
    }

    /// A timed call's seconds, the way it ran.
    pub fn record(&self, shared: bool, exploring: bool, secs: f64) {
        let w = usize::from(shared);
        let k = self.timed[w].fetch_add(1, Ordering::Relaxed);
        let old = f64::from_bits(self.mean[w].load(Ordering::Relaxed));
        let new = if k == 0 || exploring {
            secs
        } else {
            old + RECENT * (secs - old)
        };
        self.mean[w].store(new.to_bits(), Ordering::Relaxed);
    }

    /// The fraction of the timed calls that shared their chunks.
    pub fn shared_fraction(&self) -> Option<f64> {
        let (solo, shared) = (
            self.timed[0].load(Ordering::Relaxed),
            self.timed[1].load(Ordering::Relaxed),
        );
        (solo + shared > 0).then(|| shared as f64 / (solo + shared) as f64)
    }
}

/// Whether a whole step runs its kernels as their [`Adapt`]s choose or
/// every chunk on the calling thread, learned from the steps' own times.
/// Each kernel's `Adapt` weighs its own calls, but a kernel's rows shared
/// with a second core leave its data in that core's cache for the next
/// kernels that read it (a weight the forward product reads on both cores
/// and the next update writes on one): a cost the next kernel pays, that
/// no single kernel sees. Timing whole steps sees it. The steps run in
/// bursts of [`BURST`] one way, the first step of a burst (which pays for
/// moving the data) not counted; after [`STEP_SAMPLES`] bursts each way
/// the faster is kept, and every [`STEP_EXPLORE`]th burst takes the other.
/// Either way every kernel runs the same chunks, so the results are the
/// same bit for bit.
#[derive(Debug, Default)]
pub struct StepAdapt {
    /// Steps so far.
    steps: u64,
    /// Per way (kernels' choice, all alone): bursts timed and the moving
    /// mean of their seconds per step.
    bursts: [u64; 2],
    mean: [f64; 2],
    /// The current burst: its way, its steps so far, the seconds of those
    /// after the first.
    solo: bool,
    run: u64,
    secs: f64,
    /// The way kept between exploring bursts.
    kept: bool,
}

/// Steps run (the kernels' way) before any is timed.
const STEP_WARMUP: u64 = 4;
/// Steps in a burst.
const BURST: u64 = 8;
/// Bursts each way before the faster is kept.
const STEP_SAMPLES: u64 = 2;
/// One burst in this many takes the way not kept.
const STEP_EXPLORE: u64 = 64;

impl StepAdapt {
    /// Whether this step runs every chunk on the calling thread.
    pub fn solo(&mut self) -> bool {
        self.steps += 1;
        self.steps > STEP_WARMUP && self.solo
    }

    /// This step's seconds, the way [`StepAdapt::solo`] chose.
    pub fn record(&mut self, secs: f64) {
        if self.steps <= STEP_WARMUP {
            return;
        }
        self.run += 1;
        if self.run > 1 {
            self.secs += secs;
        }
        if self.run < BURST {
            return;
        }
        let w = usize::from(self.solo);
        let per_step = self.secs / (BURST - 1) as f64;
        let explored = self.bursts[0] >= STEP_SAMPLES
            && self.bursts[1] >= STEP_SAMPLES
            && self.solo != self.kept;
        self.mean[w] = if self.bursts[w] == 0 || explored {
            per_step
        } else {
            self.mean[w] + 0.25 * (per_step - self.mean[w])
        };
        self.bursts[w] += 1;
        (self.run, self.secs) = (0, 0.0);
        let [shared, solo] = self.bursts;
        if shared < STEP_SAMPLES || solo < STEP_SAMPLES {
            // Alternate until both ways have their samples.
            self.solo = solo < shared;
            return;
        }
        let (kept, other) = (usize::from(self.kept), usize::from(!self.kept));
        if self.mean[other] < SWITCH * self.mean[kept] {
            self.kept = !self.kept;
        }
        self.solo = if (shared + solo).is_multiple_of(STEP_EXPLORE) {
            !self.kept
        } else {
            self.kept
        };
    }

    /// The fraction of the timed steps that ran alone (0 when none was
    /// timed).
    pub fn solo_fraction(&self) -> f64 {
        let [shared, solo] = self.bursts;
        if shared + solo == 0 {
            0.0
        } else {
            solo as f64 / (shared + solo) as f64
        }
    }

    /// Whether the steps now run alone (the way kept).
    #[cfg(test)]
    fn kept_solo(&self) -> bool {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::{Adapt, Way};

    /// Drives an [`Adapt`] with a kernel that takes `solo` or `shared`
    /// seconds a call for `calls` calls; returns how many calls shared.
    fn drive(a: &Adapt, calls: usize, solo: f64, shared: f64) -> usize {
        (0..calls)
            .filter(|_| match a.choose() {
                Way::Untimed => true,
                Way::Timed {
                    shared: share,
                    exploring,
                } => {
                    a.record(share, exploring, if share { shared } else { solo });
                    share
                }
            })
            .count()
    }

    /// The faster way is found after the warm-up and the samples, kept for
    /// all but one call in EXPLORE, and given up within a few calls when
    /// the other way becomes faster (a second core that turns busy, then
    /// free again).
    #[test]
    fn sharing_follows_the_faster_way() {
        let a = Adapt::default();
        // A free second core: sharing halves the time.
        let shared = drive(&a, 640, 2.0, 1.0);
        assert!(shared >= 640 - 10 - 8, "shared {shared} of 640 calls");
        // It turns busy: sharing now takes three times as long as alone.
        let shared = drive(&a, 640, 2.0, 6.0);
        assert!(shared <= 10 + 10, "shared {shared} of 640 busy calls");
        // Free again: found at the next exploring call, within EXPLORE.
        let shared = drive(&a, 640, 2.0, 1.0);
        assert!(shared >= 640 - 64 - 10 - 8, "shared {shared} of 640 calls");
        let f = a.shared_fraction().expect("timed calls");
        assert!((0.3..0.8).contains(&f), "fraction {f}");
    }

    /// One slow shared call (a worker descheduled once) does not send a
    /// kernel that gains from sharing off alone for the next EXPLORE calls.
    #[test]
    fn one_slow_call_changes_nothing() {
        let a = Adapt::default();
        drive(&a, 64, 2.0, 1.0);
        drive(&a, 1, 2.0, 6.0);
        let shared = drive(&a, 63, 2.0, 1.0);
        assert!(
            shared >= 62,
            "shared {shared} of 63 calls after one slow one"
        );
    }

    /// With nothing timed yet there is no fraction to report.
    #[test]
    fn an_untimed_kernel_reports_nothing() {
        assert_eq!(Adapt::default().shared_fraction(), None);
    }

    /// Drives a [`StepAdapt`] with steps of `shared` or `solo` seconds;
    /// returns how many of `steps` ran alone.
    fn drive_steps(a: &mut super::StepAdapt, steps: usize, shared: f64, solo: f64) -> usize {
        (0..steps)
            .filter(|_| {
                let alone = a.solo();
                a.record(if alone { solo } else { shared });
                alone
            })
            .count()
    }

    /// Steps that are faster shared stay shared but for the sampling and
    /// one burst in STEP_EXPLORE; steps faster alone go alone; and back.
    #[test]
    fn steps_follow_the_faster_way() {
        let mut a = super::StepAdapt::default();
        let alone = drive_steps(&mut a, 1024, 1.0, 2.0);
        assert!(!a.kept_solo());
        // Two sampling bursts alone, then one exploring burst in 64.
        assert!(alone <= 2 * 8 + 3 * 8, "{alone} of 1024 steps alone");
        let alone = drive_steps(&mut a, 1024, 1.5, 1.0);
        assert!(a.kept_solo());
        assert!(alone >= 1024 - 8 - 3 * 8, "{alone} of 1024 steps alone");
        // The second core free again: found at the next exploring burst.
        let alone = drive_steps(&mut a, 1024, 1.0, 2.0);
        assert!(!a.kept_solo());
        assert!(alone <= 64 * 8 + 3 * 8, "{alone} of 1024 steps alone");
    }

    /// The first step of a burst (moving the data between cores) is not
    /// counted: a way that is faster but for its first step is kept.
    #[test]
    fn a_bursts_first_step_is_not_counted() {
        let mut a = super::StepAdapt::default();
        let mut n = 0u64;
        for _ in 0..1024 {
            let alone = a.solo();
            n += 1;
            // Alone: 1.0 a step, but 20.0 for a burst's first step.
            let first = a.run == 0;
            a.record(if alone && first {
                20.0
            } else if alone {
                1.0
            } else {
                1.5
            });
        }
        assert!(n == 1024 && a.kept_solo());
    }
}
