//! The order of an epoch's samples: the run's sampler (shuffle,
//! sequential, or one of the class-rebalancing samplers), seeded per epoch
//! so that a run and its resumption draw the same batches.

use crate::check::run::Sampler;
use crate::data::table::Table;
use crate::rng;

/// The sample order of one epoch. `shuffle`: a seeded Fisher–Yates
/// permutation; `sequential`: as stored; `weighted`: n draws with
/// replacement, each class weighted (inverse class frequency unless
/// weights are given); `oversample` / `undersample`: every class repeated
/// up to, or cut down to, the largest / smallest class's count, shuffled.
pub fn epoch_order(sampler: &Sampler, t: &Table, seed: u64, epoch: u64) -> Vec<usize> {
    let n = t.len();
    let key = rng::key(seed, epoch, 0x5eed);
    let shuffle = |mut v: Vec<usize>| {
        for i in (1..v.len()).rev() {
            let j = (rng::bits(key, i as u64) % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    };
    let classes = t.y.iter().fold(0usize, |m, y| m.max(*y as usize + 1));
    let by_class = || -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); classes];
        for (i, y) in t.y.iter().enumerate() {
            groups[*y as usize].push(i);
        }
        groups
    };
    match sampler {
        Sampler::Sequential => (0..n).collect(),
        Sampler::Shuffle => shuffle((0..n).collect()),
        Sampler::Weighted(weights) => {
            let groups = by_class();
            let w: Vec<f64> = (0..n)
                .map(|i| {
                    let c = t.y[i] as usize;
                    match weights {
                        Some(ws) => ws.get(c).copied().unwrap_or(0.0),
                        None => 1.0 / groups[c].len().max(1) as f64,
                    }
                })
                .collect();
            // Inverse-CDF sampling from the cumulative weights.
            let mut cdf = Vec::with_capacity(n);
            let mut acc = 0.0;
            for x in &w {
                acc += x;
                cdf.push(acc);
            }
            if acc <= 0.0 {
                return shuffle((0..n).collect());
            }
            let k2 = rng::key(seed, epoch, 0x3a3b);
            (0..n as u64)
                .map(|i| {
                    let u = rng::uniform(k2, i) * acc;
                    cdf.partition_point(|c| *c <= u).min(n - 1)
                })
                .collect()
        }
        Sampler::Oversample | Sampler::Undersample => {
            let groups: Vec<Vec<usize>> =
                by_class().into_iter().filter(|g| !g.is_empty()).collect();
            let target = if *sampler == Sampler::Oversample {
                groups.iter().map(Vec::len).max().unwrap_or(0)
            } else {
                groups.iter().map(Vec::len).min().unwrap_or(0)
            };
            let mut all = Vec::new();
            for g in groups {
                let g = shuffle(g);
                all.extend((0..target).map(|i| g[i % g.len()]));
            }
            shuffle(all)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 90 samples of class 0 and 10 of class 1.
    fn imbalanced() -> Table {
        let y: Vec<f64> = (0..100).map(|i| if i < 90 { 0.0 } else { 1.0 }).collect();
        Table {
            x: crate::data::table::Features::F32(vec![0.0; 100]),
            y,
            width: 1,
        }
    }

    fn count(order: &[usize], t: &Table, c: f64) -> usize {
        order.iter().filter(|&&i| t.y[i] == c).count()
    }

    #[test]
    fn shuffle_is_a_seeded_permutation_per_epoch() {
        let t = imbalanced();
        let a = epoch_order(&Sampler::Shuffle, &t, 1, 1);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(&Sampler::Shuffle, &t, 1, 1));
        assert_ne!(a, epoch_order(&Sampler::Shuffle, &t, 1, 2));
        assert_eq!(
            epoch_order(&Sampler::Sequential, &t, 1, 1),
            (0..100).collect::<Vec<_>>()
        );
    }

    #[test]
    fn rebalancing_samplers_balance_the_classes() {
        let t = imbalanced();
        let over = epoch_order(&Sampler::Oversample, &t, 3, 1);
        assert_eq!((count(&over, &t, 0.0), count(&over, &t, 1.0)), (90, 90));
        let under = epoch_order(&Sampler::Undersample, &t, 3, 1);
        assert_eq!((count(&under, &t, 0.0), count(&under, &t, 1.0)), (10, 10));
        // Inverse-frequency weights: about half of 100 draws per class.
        let mut ones = 0;
        for e in 0..50 {
            ones += count(&epoch_order(&Sampler::Weighted(None), &t, 3, e), &t, 1.0);
        }
        let frac = ones as f64 / 5000.0;
        assert!((frac - 0.5).abs() < 0.03, "{frac}");
        // Given weights [1, 0]: only class 0.
        let w = epoch_order(&Sampler::Weighted(Some(vec![1.0, 0.0])), &t, 3, 1);
        assert_eq!(count(&w, &t, 1.0), 0);
    }
}
