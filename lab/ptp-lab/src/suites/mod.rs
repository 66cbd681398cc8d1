//! The benchmarks, as one flat table (kvm-unit-tests style): each entry has a name, a suite, a
//! precondition and a run. A precondition that fails prints a `skip` record with the reason
//! instead of running. The same table runs in the bench kernel (real page tables), in the host
//! runner and under criterion (simulated memory); what differs is the [`Platform`] and the
//! [`Timer`].
//!
//! Entries that share a name answer one question: their contenders are compared side by side
//! (one criterion group). Peers that need a heap are separate entries of the same name, whose
//! precondition skips them in the kernel.
//!
//! This file is the table and its thin runner; what each entry is built on ([`Bench`], [`Ctx`])
//! is [`base`]'s.

// Preconditions return a bounded string (no allocator here), which clippy finds large.
#![allow(clippy::result_large_err)]

mod alloc;
mod base;
mod churn;
mod contender;
mod layouts;
mod limit;
mod linux;
mod map;
mod peers;
mod ptp;
mod replay;
pub mod roles;
mod shootdown;
pub mod targets;
mod tlb;

use crate::case::Case;
use crate::config::{Config, Suite};
use crate::platform::Platform;
use crate::record::{Counts, SkipRecord};
use crate::target::Judge;
use crate::timing::{Timer, TimerScope};
use core::fmt::Write;

pub use base::{Bench, Ctx};
pub use map::{Mapping, MAPPINGS};
pub use ptp::SELF_MAP;

/// The table, in the order it runs: groups of entries (a group is one module's list, where
/// that module keeps its entries with what they measure: the TLB strategies).
pub static TABLE: &[&[Bench]] = &[
    &[
        alloc::BUMP_ALLOC,
        alloc::BITMAP_ALLOC_SEQ,
        alloc::BITMAP_CHURN_50,
        alloc::BITMAP_CHURN_95,
        alloc::BITMAP_FREE,
        peers::BITMAP_FREE,
        alloc::BITMAP_INIT,
        peers::BITMAP_INIT,
        map::MAP_1GIB_4KIB,
        map::MAP_64GIB_2MIB,
        map::MAP_64GIB_1GIB,
        map::UNMAP_1GIB_4KIB,
        map::UNMAP_64GIB_2MIB,
        map::UNMAP_64GIB_1GIB,
        churn::CHURN,
        ptp::BUILD,
        ptp::MODIFIABLE_IN_CR3,
        ptp::UNMODIFIABLE_IN_CR3,
    ],
    &tlb::STRATEGIES,
    &[
        tlb::PCID,
        tlb::INVPCID,
        tlb::INVLPGB,
        tlb::CROSSOVER,
        shootdown::SHOOTDOWN,
        shootdown::INVLPGB,
        linux::ROUND_TRIPS,
        linux::REFILL,
        layouts::AGREE,
        replay::REPLAY,
    ],
];

/// Every entry of the table, in order.
pub fn benches() -> impl Iterator<Item = &'static Bench> + Clone {
    TABLE.iter().flat_map(|group| group.iter())
}

/// Contenders only the host measures, and why.
pub const HOST_ONLY: &[(&str, &str)] = &[
    (peers::BITMAP_ALLOCATOR, peers::WHY),
    (peers::BITMAP_CONTIGUOUS, peers::WHY),
    (peers::BUDDY, peers::WHY),
    ("linux-mprotect", linux::WHY),
    ("linux-madvise-dontneed", linux::WHY),
    ("linux-munmap-mmap", linux::WHY),
    ("linux-refill-4KiB", linux::WHY),
    ("linux-refill-2MiB-thp", linux::WHY),
];

/// The distinct benchmark names of `suite`, in table order.
pub fn names(suite: Suite) -> impl Iterator<Item = &'static str> {
    benches().enumerate().filter_map(move |(i, b)| {
        (b.suite == suite && !benches().take(i).any(|e| e.name == b.name)).then_some(b.name)
    })
}

/// What a run of the table accumulates, and how it runs.
pub struct Tally<'a> {
    pub counts: &'a mut Counts,
    pub judge: &'a mut Judge,
    pub execution: crate::timing::Execution,
}

/// Run every selected benchmark at every pool size: suite by suite, each benchmark (all its
/// entries, every pool size) under one timer from `scope`. Progress goes to `out` as `# `
/// lines.
pub fn run_all(
    platform: &mut dyn Platform,
    out: &mut dyn Write,
    scope: &mut dyn TimerScope,
    cfg: &Config,
    tally: Tally<'_>,
) {
    let Tally {
        counts,
        judge,
        execution,
    } = tally;
    for suite in Suite::ALL.into_iter().filter(|s| cfg.suites.has(*s)) {
        let _ = write!(out, "# suite {} pool_pages ", suite.name());
        for (i, p) in cfg.pools().iter().enumerate() {
            let _ = write!(out, "{}{p}", if i == 0 { "" } else { "," });
        }
        let _ = writeln!(out);
        for name in names(suite) {
            scope.with_timer(suite.name(), name, &mut |timer| {
                for &pages in cfg.pools() {
                    for b in benches().filter(|b| b.name == name) {
                        run_entry(
                            platform, out, timer, cfg, counts, judge, execution, b, pages,
                        );
                    }
                }
            });
        }
    }
    platform.set_current_bench("end");
}

#[allow(clippy::too_many_arguments)]
fn run_entry(
    platform: &mut dyn Platform,
    out: &mut dyn Write,
    timer: &mut dyn Timer,
    cfg: &Config,
    counts: &mut Counts,
    judge: &mut Judge,
    execution: crate::timing::Execution,
    b: &Bench,
    pages: u32,
) {
    platform.set_current_bench(b.name);
    let pool = match platform.pool(pages) {
        Ok(pool) => pool,
        Err(why) => {
            let _ = SkipRecord {
                suite: b.suite.name(),
                bench: b.name,
                pool_pages: pages,
                reason: why.as_str(),
            }
            .report(out);
            counts.skips += 1;
            return;
        }
    };
    let mut ctx = Ctx {
        platform,
        out,
        timer,
        judge,
        pool,
        cfg,
        counts,
        bench: b.name,
        suite: b.suite,
        execution,
    };
    match (b.precondition)(&mut ctx) {
        Ok(()) => (b.run)(&mut ctx),
        Err(why) => ctx.skip(why.as_str()),
    }
}
