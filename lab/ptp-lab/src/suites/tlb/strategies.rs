//! The strategies with a benchmark of their own (the flush alone, flush + refill, collateral
//! damage; [`measure::strategy`]), one row each: the strategy (the crate's flush code it runs and
//! its measurements' names) and its benchmark entry. A new strategy is a row here (and its code
//! in `vystem_ptp::flush`); the table includes [`BENCHES`] as they are.

use super::measure;
use super::needs::{feature, needs_tlb};
use super::space::Size;
use super::strategy::{How, Pair, Strategy};
use crate::config::Suite;
use crate::suites::base::Bench;
use vystem_ptp::flush::{FullFlush, PageFlush};

pub(super) const INVLPG: Strategy = Strategy {
    name: "invlpg",
    how: How::Page(PageFlush::Invlpg),
    refill: ["invlpg-refill", "invlpg-refill-2MiB"],
    collateral: "invlpg-collateral",
    global: false,
};

pub(super) const CR3_RELOAD: Strategy = Strategy {
    name: "cr3-reload",
    how: How::Full(FullFlush::Cr3Reload),
    refill: ["cr3-reload-refill", "cr3-reload-refill-2MiB"],
    collateral: "cr3-reload-collateral",
    global: false,
};

pub(super) const PGE_TOGGLE: Strategy = Strategy {
    name: "pge-toggle",
    // SAFETY: its benchmark runs in ring 0 (precondition) with CR4.PGE set for it.
    how: How::Full(unsafe { FullFlush::pge_toggle() }),
    refill: ["pge-toggle-refill", "pge-toggle-refill-2MiB"],
    collateral: "pge-toggle-collateral",
    global: true,
};

const INVLPG_BENCH: Bench = Bench {
    name: "tlb_invlpg",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: |ctx| measure::strategy(ctx, INVLPG),
};
const CR3_RELOAD_BENCH: Bench = Bench {
    name: "tlb_cr3_reload",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: |ctx| measure::strategy(ctx, CR3_RELOAD),
};
const PGE_TOGGLE_BENCH: Bench = Bench {
    name: "tlb_pge_toggle",
    suite: Suite::Tlb,
    precondition: |ctx| {
        needs_tlb(ctx)?;
        feature(
            ctx.platform.cpu().pge,
            "CPU lacks PGE (CPUID 1 EDX.PGE): no global pages",
        )
    },
    run: |ctx| measure::strategy(ctx, PGE_TOGGLE),
};

/// The strategies' entries, in the table's order.
pub const BENCHES: [Bench; 3] = [INVLPG_BENCH, CR3_RELOAD_BENCH, PGE_TOGGLE_BENCH];

/// `invlpg` against a CR3 reload (the kernel's default policy).
pub(super) fn invlpg_vs_cr3(size: Size) -> Pair {
    Pair {
        per: (INVLPG.refill_name(size), INVLPG.how),
        full: (CR3_RELOAD.refill_name(size), CR3_RELOAD.how),
    }
}
