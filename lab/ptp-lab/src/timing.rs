//! Timing: the [`Timer`] every benchmark is measured through, and its RDTSC implementation
//! ([`Harness`]), shared by the bench kernel and the host runner (the criterion driver brings
//! the other one).
//!
//! - Reads are fenced on both sides ([`tsc::start`], [`tsc::stop`]), so the timed work can
//!   neither leak out nor in.
//! - The harness's own overhead (an empty timed interval, minimum of many) is measured once
//!   and subtracted from every sample.
//! - Warm-up runs are discarded; each sample times one batch of operations; the number of
//!   samples adapts to a tick budget (as kvm-unit-tests' cycle goal does), between a minimum
//!   and the sample buffer's size.
//! - The summary is per operation: n, min, p50, p90, p99, max, mean, overhead.
//! - The contenders of one benchmark that are compared ([`Timer::time_rounds`]) are timed in
//!   interleaved rounds: after a warm-up of each, every round takes one sample of each, in an
//!   order drawn anew each round from the run's seed; the tick budget is the benchmark's (each
//!   contender's budget times the contenders), spread over the rounds. Each round gives the
//!   ratio of a contender to its reference ([`crate::paired`]): what drifts between rounds
//!   cancels in it. Criterion cannot interleave: its timer times them one after the other.

use crate::json::{Obj, ToJson};
use crate::paired::Paired;
use crate::tsc;

pub use crate::paired::{nearest_rank, MAX_SAMPLES};

/// The most contenders one benchmark times in rounds (the unmap benchmarks' seven).
pub const MAX_CONTENDERS: usize = 7;

/// How hard to try: a tick budget per benchmark and sample bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub ticks: u64,
    pub min_samples: usize,
    pub max_samples: usize,
    pub warmup: usize,
}

impl Budget {
    /// Default run: ~0.2 s of TSC per benchmark at 2.5 GHz.
    pub const FULL: Budget = Budget {
        ticks: 500_000_000,
        min_samples: 10,
        max_samples: MAX_SAMPLES,
        warmup: 2,
    };
    /// `--quick`: a few samples each.
    pub const QUICK: Budget = Budget {
        ticks: 20_000_000,
        min_samples: 3,
        max_samples: 32,
        warmup: 1,
    };
    /// Self-test: one sample, no warm-up; only the checks matter.
    pub const SELFTEST: Budget = Budget {
        ticks: 0,
        min_samples: 1,
        max_samples: 1,
        warmup: 0,
    };

    /// The budget a run configuration asks for.
    pub fn of(cfg: &crate::config::Config) -> Budget {
        use crate::config::Mode;
        match (cfg.mode, cfg.quick) {
            (Mode::Selftest, _) => Budget::SELFTEST,
            (Mode::Bench, true) => Budget::QUICK,
            (Mode::Bench, false) => Budget::FULL,
        }
    }
}

/// What a benchmark times: `setup` prepares the state (untimed), `batch` performs
/// `ops_per_sample` operations on it (timed).
pub trait Work {
    fn setup(&mut self);
    fn batch(&mut self);
}

/// [`Work`] from a state and two closures.
pub struct Closures<'a, T, S, B> {
    pub state: &'a mut T,
    pub setup: S,
    pub batch: B,
}

impl<T, S: FnMut(&mut T), B: FnMut(&mut T)> Work for Closures<'_, T, S, B> {
    #[inline]
    fn setup(&mut self) {
        (self.setup)(self.state)
    }
    #[inline]
    fn batch(&mut self) {
        (self.batch)(self.state)
    }
}

/// What is being measured: the identity of one measurement, which the timer (criterion names
/// its benchmarks by it) and the measurement record share.
#[derive(Debug, Clone, Copy)]
pub struct Id<'a> {
    pub suite: &'a str,
    pub bench: &'a str,
    pub imp: &'static str,
    pub pool_pages: u32,
    /// "op" or "page": what `ops_per_sample` counts.
    pub per: &'a str,
    /// The benchmark's parameters, one JSON object.
    pub params: crate::json::Fields<'a>,
}

/// Something that times [`Work`]: the RDTSC [`Harness`], or criterion on the host.
pub trait Timer {
    /// Time `work` (each batch performs `ops_per_sample` operations) and summarise it per
    /// operation; `None` if nothing was measured (e.g. criterion filtered this one out).
    fn time(&mut self, id: Id<'_>, ops_per_sample: u64, work: &mut dyn Work) -> Option<Summary>;

    /// Time the contenders of one benchmark together, and the paired ratio of each of
    /// `pairs` (`(ours, other)`, indices into `entries`) into `ratios`. This default, for a
    /// timer that cannot interleave (criterion), times them one after the other and pairs
    /// nothing.
    fn time_rounds(
        &mut self,
        entries: &mut [Entry<'_, '_>],
        pairs: &[(usize, usize)],
        summaries: &mut [Option<Summary>],
        ratios: &mut [Option<Paired>],
    ) {
        let _ = (pairs, ratios);
        for (e, s) in entries.iter_mut().zip(summaries) {
            *s = self.time(e.id, e.ops, e.work);
        }
    }
}

/// One contender of a benchmark timed with the others ([`Timer::time_rounds`]).
pub struct Entry<'a, 'w> {
    pub id: Id<'a>,
    /// Operations per batch.
    pub ops: u64,
    pub work: &'w mut dyn Work,
}

impl<'a, 'w> Entry<'a, 'w> {
    /// The same contender, held for less long: to time it with contenders that live less
    /// long than it (an entry's work is behind `&mut`, which does not shorten by itself).
    pub fn shorter<'v>(self) -> Entry<'a, 'v>
    where
        'w: 'v,
    {
        Entry {
            id: self.id,
            ops: self.ops,
            work: self.work,
        }
    }
}

/// The clock a [`Harness`] reads: the TSC, fenced ([`tsc::start`], [`tsc::stop`]), or for the
/// harness's own tests a clock of their making.
#[derive(Clone, Copy)]
pub enum Clock {
    Tsc { rdtscp: bool },
    Other(fn() -> u64),
}

impl Clock {
    #[inline(always)]
    fn start(self) -> u64 {
        match self {
            Clock::Tsc { .. } => tsc::start(),
            Clock::Other(f) => f(),
        }
    }
    #[inline(always)]
    fn stop(self) -> u64 {
        match self {
            Clock::Tsc { rdtscp } => tsc::stop(rdtscp),
            Clock::Other(f) => f(),
        }
    }
}

/// Hands out the timer for one benchmark (all its entries, at every pool size): the RDTSC
/// harness is its own scope; criterion opens one benchmark group per benchmark, so that the
/// contenders are drawn side by side.
pub trait TimerScope {
    /// The run record's `timer` object: which timer, and how it is set.
    fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result;
    fn with_timer(
        &mut self,
        suite: &'static str,
        bench: &'static str,
        run: &mut dyn FnMut(&mut dyn Timer),
    );
}

impl TimerScope for Harness {
    fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        Harness::write_json(self, w)
    }
    fn with_timer(
        &mut self,
        _: &'static str,
        _: &'static str,
        run: &mut dyn FnMut(&mut dyn Timer),
    ) {
        run(self)
    }
}

/// The unit of a summary's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// TSC ticks (RDTSC harness).
    Ticks,
    /// Nanoseconds of the OS clock (criterion).
    Ns,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Ticks => "ticks",
            Unit::Ns => "ns",
        }
    }
}

impl crate::json::JsonKind for Unit {
    const KIND: crate::json::Kind = crate::json::Kind::STRING;
}

impl ToJson for Unit {
    fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        self.name().write_json(w)
    }
}

/// Per-operation statistics of one benchmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub unit: Unit,
    pub n: usize,
    pub ops_per_sample: u64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    /// 95 % confidence interval of the mean (criterion's bootstrap).
    pub ci: Option<(f64, f64)>,
    /// Ticks subtracted from every sample (per sample, not per op; RDTSC harness).
    pub overhead: Option<u64>,
}

impl Summary {
    /// The figure ratios and targets compare: criterion's mean estimate where there is one
    /// (it comes with a confidence interval), else the median, which interrupts and other
    /// one-off stalls do not move.
    pub fn estimate(&self) -> f64 {
        if self.ci.is_some() {
            self.mean
        } else {
            self.p50
        }
    }
}

pub struct Harness {
    pub rdtscp: bool,
    pub overhead: u64,
    pub budget: Budget,
    clock: Clock,
    /// The order of each round is drawn from it (the run's seed: `Harness::seed`).
    order: crate::rng::Rng,
    /// Ticks per sample, one row per contender (row 0 for a contender timed alone).
    samples: [[u64; MAX_SAMPLES]; MAX_CONTENDERS],
}

impl Harness {
    /// Measure the empty interval's cost (minimum of 1000) on this CPU.
    pub fn new(rdtscp: bool, budget: Budget) -> Self {
        Harness::with_clock(Clock::Tsc { rdtscp }, budget)
    }

    /// A harness reading `clock`.
    pub fn with_clock(clock: Clock, budget: Budget) -> Self {
        let mut overhead = u64::MAX;
        for _ in 0..1000 {
            let t0 = clock.start();
            let t1 = clock.stop();
            overhead = overhead.min(t1.wrapping_sub(t0));
        }
        Harness {
            rdtscp: matches!(clock, Clock::Tsc { rdtscp: true }),
            overhead,
            budget,
            clock,
            order: crate::rng::Rng::new(1),
            samples: [[0; MAX_SAMPLES]; MAX_CONTENDERS],
        }
    }

    /// Draw the rounds' orders from `seed` (the run's). In place: a harness is large (its
    /// sample buffers), and a kernel's stack is not.
    pub fn seed(&mut self, seed: u64) {
        self.order = crate::rng::Rng::new(seed);
    }

    /// One timed batch after its untimed setup: ticks, overhead subtracted, and ticks spent.
    #[inline(always)]
    fn sample(&self, work: &mut dyn Work) -> (u64, u64) {
        work.setup();
        let t0 = self.clock.start();
        work.batch();
        let t1 = self.clock.stop();
        let ticks = t1.wrapping_sub(t0);
        (ticks.saturating_sub(self.overhead), ticks)
    }

    /// Time `work` after an untimed setup each sample, until the budget is spent.
    pub fn run(&mut self, ops_per_sample: u64, work: &mut dyn Work) -> Summary {
        for _ in 0..self.budget.warmup {
            work.setup();
            work.batch();
        }
        let max = self.budget.max_samples.clamp(1, MAX_SAMPLES);
        let (mut n, mut spent) = (0, 0u64);
        while n < max && (n < self.budget.min_samples || spent < self.budget.ticks) {
            let (t, ticks) = self.sample(work);
            spent = spent.saturating_add(ticks);
            self.samples[0][n] = t;
            n += 1;
        }
        summarize(&mut self.samples[0][..n], ops_per_sample, self.overhead)
    }

    /// Time `entries` in interleaved rounds (each round one sample of each, in an order drawn
    /// anew each round from the run's seed), after a warm-up of each, until the benchmark's budget is spent; then
    /// the paired ratio of each of `pairs` and each contender's summary. Contenders beyond
    /// [`MAX_CONTENDERS`] are not timed (their summary stays `None`).
    pub fn rounds(
        &mut self,
        entries: &mut [Entry<'_, '_>],
        pairs: &[(usize, usize)],
        summaries: &mut [Option<Summary>],
        ratios: &mut [Option<Paired>],
    ) {
        let k = entries.len().min(MAX_CONTENDERS);
        let entries = &mut entries[..k];
        for e in entries.iter_mut() {
            for _ in 0..self.budget.warmup {
                e.work.setup();
                e.work.batch();
            }
        }
        let budget = self.budget.ticks.saturating_mul(k as u64);
        let max = self.budget.max_samples.clamp(1, MAX_SAMPLES);
        let (mut n, mut spent) = (0, 0u64);
        let mut order: [usize; MAX_CONTENDERS] = core::array::from_fn(|i| i);
        while k > 0 && n < max && (n < self.budget.min_samples || spent < budget) {
            // A new order each round (Fisher-Yates): no contender always follows the same one,
            // whose traces in the caches it would otherwise always inherit.
            for j in (1..k).rev() {
                order.swap(j, self.order.range(0, j as u32 + 1) as usize);
            }
            for &i in &order[..k] {
                let (t, ticks) = self.sample(entries[i].work);
                spent = spent.saturating_add(ticks);
                self.samples[i][n] = t;
            }
            n += 1;
        }
        for (&(a, b), r) in pairs.iter().zip(ratios.iter_mut()) {
            *r = (a < k && b < k)
                .then(|| {
                    Paired::of(
                        &self.samples[a][..n],
                        entries[a].ops,
                        &self.samples[b][..n],
                        entries[b].ops,
                    )
                })
                .flatten();
        }
        for (i, (e, s)) in entries.iter().zip(summaries.iter_mut()).enumerate() {
            *s = Some(summarize(&mut self.samples[i][..n], e.ops, self.overhead));
        }
    }

    /// The `timer` object of the run record.
    pub fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let b = self.budget;
        Obj::open(w)
            .field("kind", "rdtsc")
            .field("overhead_ticks", &self.overhead)
            .field("budget_ticks", &b.ticks)
            .field("min_samples", &b.min_samples)
            .field("max_samples", &b.max_samples)
            .field("warmup", &b.warmup)
            .field("compared", "interleaved rounds")
            .close()
    }
}

impl Timer for Harness {
    fn time(&mut self, _: Id<'_>, ops_per_sample: u64, work: &mut dyn Work) -> Option<Summary> {
        Some(self.run(ops_per_sample, work))
    }
    fn time_rounds(
        &mut self,
        entries: &mut [Entry<'_, '_>],
        pairs: &[(usize, usize)],
        summaries: &mut [Option<Summary>],
        ratios: &mut [Option<Paired>],
    ) {
        self.rounds(entries, pairs, summaries, ratios)
    }
}

/// Sort `samples` (ticks per batch) and summarise them per operation.
pub fn summarize(samples: &mut [u64], ops_per_sample: u64, overhead: u64) -> Summary {
    samples.sort_unstable();
    let n = samples.len();
    let ops = ops_per_sample.max(1) as f64;
    let pct = |p: usize| -> f64 {
        if n == 0 {
            return 0.0;
        }
        samples[nearest_rank(p, n)] as f64 / ops
    };
    let sum: u128 = samples.iter().map(|&s| s as u128).sum();
    Summary {
        unit: Unit::Ticks,
        n,
        ops_per_sample,
        min: samples.first().map_or(0.0, |&s| s as f64 / ops),
        p50: pct(50),
        p90: pct(90),
        p99: pct(99),
        max: samples.last().map_or(0.0, |&s| s as f64 / ops),
        mean: if n == 0 {
            0.0
        } else {
            sum as f64 / n as f64 / ops
        },
        ci: None,
        overhead: Some(overhead),
    }
}

/// A fixed amount of dependent integer work, timed: the ticks per iteration tell native
/// execution (about one core cycle per iteration) from an emulator translating every
/// instruction. The decision itself ([`Execution::classify`]) also uses the hypervisor name.
pub fn calibration_loop(rdtscp: bool) -> f64 {
    const ITERS: u64 = 100_000;
    let mut best = u64::MAX;
    for _ in 0..5 {
        let t0 = tsc::start();
        let mut x: u64 = 1;
        for i in 0..ITERS {
            // A dependent chain the optimiser cannot fold.
            x = core::hint::black_box(x.wrapping_mul(3).wrapping_add(i));
        }
        core::hint::black_box(x);
        best = best.min(tsc::stop(rdtscp).wrapping_sub(t0));
    }
    best as f64 / ITERS as f64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    Native,
    Emulated,
}

impl Execution {
    /// Ticks per calibration iteration above which execution counts as emulated. Measured
    /// here: 1.2 natively (AMD EPYC, KVM guest), 5.5 under QEMU 7.2 TCG on the same host. A
    /// native CPU whose core runs much slower than its TSC could approach 3; TCG is caught
    /// first by its hypervisor signature anyway.
    pub const EMULATED_ABOVE: f64 = 3.0;

    pub fn classify(hypervisor: Option<&str>, ticks_per_iter: f64) -> Execution {
        if hypervisor.is_some_and(|h| h.starts_with("TCG")) || ticks_per_iter > Self::EMULATED_ABOVE
        {
            Execution::Emulated
        } else {
            Execution::Native
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Execution::Native => "native",
            Execution::Emulated => "emulated",
        }
    }
}

impl crate::json::JsonKind for Execution {
    const KIND: crate::json::Kind = crate::json::Kind::STRING;
}

impl ToJson for Execution {
    fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        self.name().write_json(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_per_op_with_nearest_rank_percentiles() {
        let mut s: [u64; 10] = [100, 10, 90, 20, 80, 30, 70, 40, 60, 50];
        let sum = summarize(&mut s, 10, 7);
        assert_eq!(
            (sum.n, sum.min, sum.max, sum.mean, sum.overhead),
            (10, 1.0, 10.0, 5.5, Some(7))
        );
        assert_eq!(sum.estimate(), sum.p50);
        assert_eq!((sum.p50, sum.p90, sum.p99), (5.0, 9.0, 10.0));
        let one = summarize(&mut [42], 1, 0);
        assert_eq!((one.p50, one.p99, one.min), (42.0, 42.0, 42.0));
        let none = summarize(&mut [], 1, 0);
        assert_eq!((none.n, none.mean), (0, 0.0));
    }

    #[test]
    fn harness_respects_sample_bounds_and_runs_setup_before_each_sample() {
        let mut h = Harness::new(
            false,
            Budget {
                ticks: u64::MAX,
                min_samples: 1,
                max_samples: 7,
                warmup: 2,
            },
        );
        let mut count = (0, 0);
        let mut work = Closures {
            state: &mut count,
            setup: |c: &mut (i32, i32)| c.0 += 1,
            batch: |c: &mut (i32, i32)| c.1 += 1,
        };
        let s = h.run(3, &mut work);
        assert_eq!((s.n, count.0, count.1, s.ops_per_sample), (7, 9, 9, 3));
        let mut h = Harness::new(
            false,
            Budget {
                ticks: 0,
                min_samples: 4,
                max_samples: 100,
                warmup: 0,
            },
        );
        let mut work = Closures {
            state: &mut (),
            setup: |_: &mut ()| {},
            batch: |_: &mut ()| {},
        };
        assert_eq!(
            h.run(1, &mut work).n,
            4,
            "budget spent: stops at the minimum"
        );
    }

    fn test_id() -> Id<'static> {
        Id {
            suite: "s",
            bench: "b",
            imp: "i",
            pool_pages: 1,
            per: "op",
            params: crate::json::Fields::EMPTY,
        }
    }

    std::thread_local! {
        static NOW: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
    }

    fn fake_now() -> u64 {
        NOW.with(|c| c.get())
    }

    /// Work of `units` on a machine that slows down as time goes: each unit costs one tick,
    /// and one more per 100,000 ticks gone (a tenant arriving, a frequency falling).
    struct Drifting(u64);

    impl Work for Drifting {
        fn setup(&mut self) {}
        fn batch(&mut self) {
            NOW.with(|c| c.set(c.get() + self.0 + self.0 * c.get() / 100_000));
        }
    }

    #[test]
    fn rounds_cancel_a_drift_that_blocks_take_into_the_ratio() {
        let budget = Budget {
            ticks: 50_000,
            min_samples: 10,
            max_samples: MAX_SAMPLES,
            warmup: 1,
        };
        NOW.with(|c| c.set(0));
        let mut h = Harness::with_clock(Clock::Other(fake_now), budget);
        assert_eq!(h.overhead, 0);
        // Two contenders of equal work, in blocks: the second runs on the slower machine.
        let (mut a, mut b) = (Drifting(100), Drifting(100));
        let blocks = h.run(1, &mut a).p50 / h.run(1, &mut b).p50;
        assert!(
            blocks < 0.8,
            "in blocks the drift is in the ratio: {blocks}"
        );

        NOW.with(|c| c.set(0));
        let id = test_id();
        let mut e = [
            Entry {
                id,
                ops: 1,
                work: &mut a,
            },
            Entry {
                id,
                ops: 1,
                work: &mut b,
            },
        ];
        let (mut sums, mut ratios) = ([None; 2], [None; 1]);
        h.rounds(&mut e, &[(0, 1)], &mut sums, &mut ratios);
        let p = ratios[0].unwrap();
        assert!(
            (p.median - 1.0).abs() < 0.005,
            "in rounds it cancels: {p:?}"
        );
        assert!(
            p.low <= p.median && p.median <= p.high && p.high - p.low < 0.01,
            "{p:?}"
        );
        // Each contender's own figures still drift: only their ratio is steady.
        let (sa, sb) = (sums[0].unwrap(), sums[1].unwrap());
        assert_eq!(sa.n, p.rounds);
        assert!(sa.max > 1.5 * sa.min && sb.n == sa.n, "{sa:?}");
        // The budget is the benchmark's: both contenders' budgets, spread over the rounds.
        assert!(
            p.rounds < MAX_SAMPLES && fake_now() >= 2 * budget.ticks,
            "{p:?}"
        );
    }

    #[test]
    fn each_round_samples_every_contender_once_in_an_order_from_the_seed() {
        std::thread_local! {
            static ORDER: core::cell::RefCell<std::vec::Vec<u8>> = const { core::cell::RefCell::new(std::vec::Vec::new()) };
        }
        struct Tag(u8);
        impl Work for Tag {
            fn setup(&mut self) {}
            fn batch(&mut self) {
                ORDER.with(|o| o.borrow_mut().push(self.0));
            }
        }
        let mut h = Harness::with_clock(
            Clock::Other(fake_now),
            Budget {
                ticks: u64::MAX,
                min_samples: 1,
                max_samples: 64,
                warmup: 0,
            },
        );
        let id = test_id();
        let (mut x, mut y, mut z) = (Tag(0), Tag(1), Tag(2));
        let mut e = [
            Entry {
                id,
                ops: 1,
                work: &mut x,
            },
            Entry {
                id,
                ops: 1,
                work: &mut y,
            },
            Entry {
                id,
                ops: 1,
                work: &mut z,
            },
        ];
        let mut sums = [None; 3];
        h.rounds(&mut e, &[], &mut sums, &mut []);
        let order = ORDER.with(|o| o.borrow().clone());
        assert_eq!(order.len(), 3 * 64);
        for r in order.chunks(3) {
            let mut sorted = r.to_vec();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2], "each once a round: {r:?}");
        }
        // Every contender follows every other at some point: no fixed neighbour.
        for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)] {
            assert!(
                order.windows(2).any(|w| w == [a, b]),
                "{a} then {b} never: {order:?}"
            );
        }
        assert!(sums.iter().all(|s| s.is_some_and(|s| s.n == 64)));
        // The same seed, the same orders.
        let again = |seed| {
            ORDER.with(|o| o.borrow_mut().clear());
            let mut h = Harness::with_clock(Clock::Other(fake_now), h.budget);
            h.seed(seed);
            let (mut x, mut y, mut z) = (Tag(0), Tag(1), Tag(2));
            let mut e = [
                Entry {
                    id,
                    ops: 1,
                    work: &mut x,
                },
                Entry {
                    id,
                    ops: 1,
                    work: &mut y,
                },
                Entry {
                    id,
                    ops: 1,
                    work: &mut z,
                },
            ];
            h.rounds(&mut e, &[], &mut [None; 3], &mut []);
            ORDER.with(|o| o.borrow().clone())
        };
        assert_eq!(again(7), again(7));
        assert_ne!(again(7), again(8));
    }

    #[test]
    fn classification_uses_the_hypervisor_name_first() {
        assert_eq!(
            Execution::classify(Some("TCGTCGTCGTCG"), 1.0),
            Execution::Emulated
        );
        assert_eq!(
            Execution::classify(Some("KVMKVMKVM"), 2.0),
            Execution::Native
        );
        assert_eq!(Execution::classify(None, 5.5), Execution::Emulated);
        assert_eq!(Execution::classify(None, 1.5), Execution::Native);
    }
}
