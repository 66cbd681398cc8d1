//! `tlb`: when the kernel changes N pages, what invalidating them costs per strategy, on the
//! real MMU (ring 0 only). Each strategy is an entry (a CPU without the feature gets a skip
//! record): the flush alone, flush + refill of an N-page working set, the collateral damage to
//! a second set the change did not touch, and a check through the MMU that after the flush the
//! new frame is seen. `tlb_crossover` sweeps N for invlpg against a full flush, writes where the
//! full flush starts to win (N*), what Linux's fixed ceiling (33) and its neighbours cost here,
//! and what `vystem_ptp::flush::calibrate` finds and costs.
//!
//! One module per concept: [`space`] the test address space (the shootdown suite runs in it
//! too), [`strategy`] the strategies (the crate's own flush code) and their measurement names,
//! [`measure`] each strategy's benchmark, [`pcid`] and [`invlpgb`] the tagged and broadcast
//! flushes, [`crossover`] the sweep, N* and calibration.

mod crossover;
mod invlpgb;
mod measure;
mod pcid;
mod space;
mod strategy;

pub(super) use crossover::{write_crossover, CALIBRATED_CEILING, NOT_CALIBRATED};
pub(super) use space::{stamp, Space, WS};

use super::base::{Bench, Ctx};
use crate::config::Suite;
use crate::platform::{reason, Reason};
use x86_64::instructions::tlb;

pub const INVLPG: Bench = Bench {
    name: "tlb_invlpg",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: |ctx| measure::strategy(ctx, strategy::INVLPG),
};
pub const CR3_RELOAD: Bench = Bench {
    name: "tlb_cr3_reload",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: |ctx| measure::strategy(ctx, strategy::CR3_RELOAD),
};
pub const PGE_TOGGLE: Bench = Bench {
    name: "tlb_pge_toggle",
    suite: Suite::Tlb,
    precondition: |ctx| {
        needs_tlb(ctx)?;
        feature(
            ctx.platform.cpu().pge,
            "CPU lacks PGE (CPUID 1 EDX.PGE): no global pages",
        )
    },
    run: |ctx| measure::strategy(ctx, strategy::PGE_TOGGLE),
};
pub const PCID: Bench = Bench {
    name: "tlb_pcid_switch",
    suite: Suite::Tlb,
    precondition: |ctx| {
        needs_tlb(ctx)?;
        feature(ctx.platform.cpu().pcid, "CPU lacks PCID (CPUID 1 ECX.PCID)")
    },
    run: pcid::pcid_switch,
};
pub const INVPCID: Bench = Bench {
    name: "tlb_invpcid",
    suite: Suite::Tlb,
    precondition: |ctx| {
        needs_tlb(ctx)?;
        feature(
            ctx.platform.cpu().pcid && ctx.platform.cpu().invpcid,
            "CPU lacks INVPCID (CPUID 7 EBX.INVPCID) or PCID",
        )
    },
    run: pcid::invpcid,
};
pub const INVLPGB: Bench = Bench {
    name: "tlb_invlpgb",
    suite: Suite::Tlb,
    precondition: |ctx| {
        needs_tlb(ctx)?;
        feature(
            tlb::Invlpgb::new().is_some(),
            "CPU lacks INVLPGB/TLBSYNC (CPUID 0x80000008 EBX bit 3, AMD Zen 3 and later)",
        )
    },
    run: invlpgb::invlpgb,
};
pub const CROSSOVER: Bench = Bench {
    name: "tlb_crossover",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: crossover::crossover_and_policy,
};

pub(super) fn feature(has: bool, why: &str) -> Result<(), Reason> {
    if has {
        Ok(())
    } else {
        Err(reason(format_args!("{why}")))
    }
}

/// Ring 0, NX (the self-map), and one pool size: TLB costs do not depend on the pool's size.
pub(super) fn needs_tlb(ctx: &mut Ctx<'_>) -> Result<(), Reason> {
    super::base::needs_ring0(ctx)?;
    let first = ctx.cfg.pools()[0];
    if ctx.pages() != first {
        return Err(reason(format_args!(
            "TLB costs do not depend on the pool size: measured once, with the pool of {first} pages"
        )));
    }
    Ok(())
}
