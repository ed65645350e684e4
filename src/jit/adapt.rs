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
}
