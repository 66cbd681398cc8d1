//! Paired ratios: two contenders timed in the same rounds give one ratio per round, so whatever
//! drifts between rounds (another tenant, memory bandwidth, frequency) moves both and cancels.
//! The figure is the median of the rounds' ratios, with a distribution-free 95 % interval from
//! order statistics (the binomial ranks of the median, normal approximation: ranks
//! n/2 -/+ 0.98 sqrt(n), as in Conover, "Practical Nonparametric Statistics", 3.2), which
//! needs no allocator and no resampling.

/// The most samples (rounds) one contender keeps: the harness's buffer, one per contender.
pub const MAX_SAMPLES: usize = 512;

/// The index of the `p`-th percentile in `n` sorted samples (nearest rank; `n` > 0).
pub fn nearest_rank(p: usize, n: usize) -> usize {
    (p * n).div_ceil(100).clamp(1, n) - 1
}

/// The median of per-round ratios `ours / other` and its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Rounds with both figures (a round where `other` took no time is left out).
    pub rounds: usize,
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

/// How the interval is obtained, as the `ratio` record says it.
pub const METHOD: &str = "median of per-round ratios; 95 % interval from order statistics";

/// Fewer rounds than this give no 95 % interval from order statistics: the interval is then
/// the rounds' whole range (wider than 95 % would be; the record says how many rounds).
pub const MIN_ROUNDS: usize = 6;

impl Paired {
    /// The ratio the other way round (`other / ours`): its median and interval inverted.
    pub fn inverse(self) -> Paired {
        Paired {
            rounds: self.rounds,
            median: 1.0 / self.median,
            low: 1.0 / self.high,
            high: 1.0 / self.low,
        }
    }

    /// From `ours` and `other` ticks per round (same index, same round), each round divided by
    /// its operations. `None` if no round has both.
    pub fn of(ours: &[u64], ours_ops: u64, other: &[u64], other_ops: u64) -> Option<Paired> {
        let mut r = [0f64; MAX_SAMPLES];
        let mut n = 0;
        let (a_ops, b_ops) = (ours_ops.max(1) as f64, other_ops.max(1) as f64);
        for (&a, &b) in ours.iter().zip(other) {
            if b == 0 || n == MAX_SAMPLES {
                continue;
            }
            r[n] = (a as f64 / a_ops) / (b as f64 / b_ops);
            n += 1;
        }
        Paired::of_ratios(&mut r[..n])
    }

    /// From the rounds' ratios (sorted in place).
    pub fn of_ratios(r: &mut [f64]) -> Option<Paired> {
        let n = r.len();
        if n == 0 {
            return None;
        }
        r.sort_unstable_by(|a, b| a.total_cmp(b));
        let (lo, hi) = ranks(n);
        Some(Paired {
            rounds: n,
            median: r[nearest_rank(50, n)],
            low: r[lo],
            high: r[hi],
        })
    }
}

/// The 0-based ranks of a 95 % interval of the median of `n` values (`n` > 0).
pub fn ranks(n: usize) -> (usize, usize) {
    if n < MIN_ROUNDS {
        return (0, n - 1);
    }
    let half = 0.98 * sqrt(n as f64);
    let lo = (n as f64 / 2.0 - half) as usize; // floor: 1-based rank lo, 0-based lo - 1
    let hi = ceil(n as f64 / 2.0 + 1.0 + half);
    (lo.saturating_sub(1), hi.clamp(1, n) - 1)
}

fn ceil(x: f64) -> usize {
    let f = x as usize;
    if (f as f64) < x {
        f + 1
    } else {
        f
    }
}

/// Square root without the standard library (core has none): Newton's method.
fn sqrt(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut g = if x > 1.0 { x / 2.0 } else { 1.0 };
    for _ in 0..64 {
        g = 0.5 * (g + x / g);
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_the_binomial_ranks_of_the_median() {
        // n = 100: 1-based ranks 40 and 61 (n/2 -/+ 0.98 * 10, +1 above).
        assert_eq!(ranks(100), (39, 60));
        assert_eq!(ranks(5), (0, 4), "too few rounds: the whole range");
        assert_eq!(ranks(1), (0, 0));
        for n in 1..=MAX_SAMPLES {
            let (lo, hi) = ranks(n);
            assert!(lo <= nearest_rank(50, n) && hi < n, "{n}");
        }
    }

    #[test]
    fn a_round_by_round_ratio_per_operation() {
        let p = Paired::of(&[200, 400, 220], 2, &[100, 200, 110], 1).unwrap();
        assert_eq!((p.rounds, p.median, p.low, p.high), (3, 1.0, 1.0, 1.0));
        let inv = Paired::of(&[100, 300], 1, &[100, 100], 1)
            .unwrap()
            .inverse();
        assert_eq!((inv.median, inv.low, inv.high), (1.0, 1.0 / 3.0, 1.0));
        assert_eq!(
            Paired::of(&[1, 2], 1, &[0, 0], 1),
            None,
            "no round with both"
        );
        assert!((sqrt(2.0) - core::f64::consts::SQRT_2).abs() < 1e-12);
    }
}
