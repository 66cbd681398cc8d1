//! Where flushing everything starts to beat flushing page by page: the flush + refill sweep of
//! a [`Pair`], its crossover record (N*, the ceiling it calls for, what fixed ceilings cost),
//! and what `vystem_ptp::flush::calibrate` finds with the same pair on this CPU.

use super::measure::round;
use super::needs::needs_tlb;
use super::space::{touch, Size, Space, SIZES, SIZES_2M, WS};
use super::strategies;
use super::strategy::Pair;
use crate::config::Suite;
use crate::platform::Place;
use crate::record;
use crate::suites::base::Bench;
use crate::suites::Ctx;
use crate::target::{Measured, Target, Want};
use crate::tsc;
use vystem_ptp::flush::{
    calibrate, ceiling_for, crossover, regret, worst_ratio, FlushProbe, RoundCost,
};

/// Linux's ceiling and two neighbours other kernels use.
const FIXED_CEILINGS: [u64; 3] = [32, 33, 64];

/// The 4 KiB ceiling `tlb_crossover` calibrated on this CPU in this run ([`NOT_CALIBRATED`]:
/// not yet; 0 is a ceiling: a full flush always wins): the shootdown's targets flush by it.
pub(crate) static CALIBRATED_CEILING: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(NOT_CALIBRATED);
pub(crate) const NOT_CALIBRATED: u64 = u64::MAX;

/// The flush + refill rounds for [`calibrate`], timed with the TSC inside the loaded space.
struct Probe<'a> {
    space: &'a mut Space,
    rdtscp: bool,
    pair: Pair,
}

impl FlushProbe for Probe<'_> {
    fn round(&mut self, pages: u64, full: bool) -> u64 {
        touch(WS, pages);
        self.space.remap(pages, false);
        let how = if full {
            self.pair.full.1
        } else {
            self.pair.per.1
        };
        let t0 = tsc::start();
        how.flush(Size::K4, pages);
        touch(WS, pages);
        tsc::stop(self.rdtscp).wrapping_sub(t0)
    }
}

/// The cost of one round per page count, both strategies, for one page size.
pub(super) fn sweep<const N: usize>(
    ctx: &mut Ctx<'_>,
    space: &mut Space,
    size: Size,
    sizes: &[u64; N],
    pair: Pair,
) -> Option<[RoundCost; N]> {
    let mut costs = [RoundCost {
        pages: 0,
        per_page: 0.0,
        full: 0.0,
    }; N];
    for (i, &n) in sizes.iter().enumerate() {
        let per = round(ctx, space, pair.per.0, pair.per.1, size, n, false)?;
        let full = round(ctx, space, pair.full.0, pair.full.1, size, n, false)?;
        // Per round, not per page: what a kernel pays for one change of n pages.
        costs[i] = RoundCost {
            pages: n,
            per_page: per.estimate() * n as f64,
            full: full.estimate() * n as f64,
        };
    }
    Some(costs)
}

/// Write the crossover record of `costs` (measured with `pair`), with what `calibrate` found
/// with the same pair; returns the calibrated policy's worst excess and its calibration ticks.
pub(super) fn state_crossover(
    ctx: &mut Ctx<'_>,
    space: &mut Space,
    size: Size,
    costs: &[RoundCost],
    pair: Pair,
) -> (f64, u64) {
    let rdtscp = ctx.platform.cpu().rdtscp;
    let t0 = tsc::start();
    let (policy, _) = calibrate(
        &mut Probe {
            space,
            rdtscp,
            pair,
        },
        2,
    );
    let calibration_ticks = tsc::stop(rdtscp).wrapping_sub(t0);
    if size == Size::K4 {
        CALIBRATED_CEILING.store(policy.ceiling, core::sync::atomic::Ordering::Relaxed);
    }
    let worst = worst_ratio(policy.ceiling, costs);
    write_crossover(
        ctx,
        size.name(),
        (pair.per.0, pair.full.0),
        costs,
        (policy.ceiling, calibration_ticks, worst),
    );
    (worst, calibration_ticks)
}

/// The crossover record of `costs` (per page against full, named by `names`): N*, the ceiling it
/// calls for, what the fixed ceilings cost, and what calibrating found (`calibrated`: its
/// ceiling, the ticks it took, its worst excess). Returns N*.
pub(crate) fn write_crossover(
    ctx: &mut Ctx<'_>,
    page_size: &str,
    names: (&str, &str),
    costs: &[RoundCost],
    calibrated: (u64, u64, f64),
) -> Option<u64> {
    let n_star = crossover(costs);
    let _ = record::CrossoverRecord {
        suite: ctx.suite.name(),
        bench: ctx.bench,
        pool_pages: ctx.pool.pages(),
        page_size,
        per_page: names.0,
        full: names.1,
        unit: "ticks",
        sizes: record::Column::sizes(costs),
        per_page_costs: record::Column::per_page(costs),
        full_costs: record::Column::full(costs),
        n_star,
        ceiling: ceiling_for(n_star, costs),
        fixed_ceilings: record::Regrets(&FIXED_CEILINGS.map(|c| (c, regret(c, costs)))),
        calibrated_ceiling: calibrated.0,
        calibration_ticks: calibrated.1,
        calibrated_worst_excess: calibrated.2,
    }
    .write(ctx.out);
    n_star
}

/// N* for invlpg against a full flush, with 4 KiB and with 2 MiB pages (not global), what
/// fixed ceilings cost against it, and the policy `calibrate` finds: its ceiling, what
/// calibrating took, how far its choices are from the best at each N.
pub(super) fn crossover_and_policy(ctx: &mut Ctx<'_>) {
    let Some(mut space) = Space::open(ctx, false) else {
        return;
    };
    let small = sweep(
        ctx,
        &mut space,
        Size::K4,
        &SIZES,
        strategies::invlpg_vs_cr3(Size::K4),
    );
    let huge = sweep(
        ctx,
        &mut space,
        Size::M2,
        &SIZES_2M,
        strategies::invlpg_vs_cr3(Size::M2),
    );
    let (Some(small), Some(huge)) = (small, huge) else {
        space.leave();
        return; // a timer that measured nothing (criterion filters): no crossover to state
    };
    let (worst, ticks) = state_crossover(
        ctx,
        &mut space,
        Size::K4,
        &small,
        strategies::invlpg_vs_cr3(Size::K4),
    );
    let _ = state_crossover(
        ctx,
        &mut space,
        Size::M2,
        &huge,
        strategies::invlpg_vs_cr3(Size::M2),
    );
    space.leave();
    let tsc_hz = ctx.platform.tsc().hz.unwrap_or(0);
    let (pages, execution) = (ctx.pool.pages(), ctx.execution);
    if tsc_hz > 0 {
        let ms = ticks as f64 / (tsc_hz as f64 / 1000.0);
        CALIBRATION_TIME.judge(
            ctx.out,
            Measured::Estimates(ms),
            pages,
            execution,
            ctx.counts,
        );
    }
    CALIBRATED_POLICY.judge(
        ctx.out,
        Measured::Estimates(worst),
        pages,
        execution,
        ctx.counts,
    );
    ctx.check(
        "crossover_stated",
        small
            .iter()
            .chain(&huge)
            .all(|c| c.per_page > 0.0 && c.full > 0.0),
        format_args!(
            "4 KiB: N* {:?}; 2 MiB: N* {:?}",
            crossover(&small),
            crossover(&huge)
        ),
    );
}

pub const CROSSOVER: Bench = Bench {
    name: "tlb_crossover",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: crossover_and_policy,
};

/// The calibrated TLB flush policy (issue: a policy calibrated on the CPU it runs on).
/// Targets on a value a benchmark computes (not a ratio of two contenders' estimates), judged
/// where it is computed ([`Target::judge`]).
pub static CALIBRATION_TIME: Target = Target {
    name: "calibrating the flush policy takes <= 1 ms of CPU time",
    bench: CROSSOVER.name,
    ours: "calibration",
    other: "1 ms",
    want: Want::WithinOf(1.0),
    on: Place::Kernel,
};
pub static CALIBRATED_POLICY: Target = Target {
    name: "the calibrated flush policy is within 5 % of the best choice at every N measured",
    bench: CROSSOVER.name,
    ours: "calibrated-policy",
    other: "best-choice",
    want: Want::WithinOf(1.05),
    on: Place::Kernel,
};
pub static VALUE_TARGETS: &[&Target] = &[&CALIBRATION_TIME, &CALIBRATED_POLICY];
