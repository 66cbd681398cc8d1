//! `tlb`: when the kernel changes N pages, what invalidating them costs per strategy, on the
//! real MMU (ring 0 only). Each strategy is an entry (a CPU without the feature gets a skip
//! record): the flush alone, flush + refill of an N-page working set, the collateral damage to
//! a second set the change did not touch, and a check through the MMU that after the flush the
//! new frame is seen. `tlb_crossover` sweeps N for invlpg against a full flush, writes where the
//! full flush starts to win (N*), what Linux's fixed ceiling (33) and its neighbours cost here,
//! and what `vystem_ptp::flush::calibrate` finds and costs.
//!
//! One module per concept: [`space`] the test address space (the shootdown suite runs in it
//! too), [`strategy`] what a strategy is (the crate's own flush code and its measurements'
//! names), [`strategies`] the strategies with a benchmark of their own, one row each,
//! [`measure`] how such a benchmark measures, [`pcid`] and [`invlpgb`] the tagged and broadcast
//! flushes, [`crossover`] the sweep, N* and calibration, [`needs`] the preconditions.

mod crossover;
mod invlpgb;
mod measure;
mod needs;
mod pcid;
mod space;
mod strategies;
mod strategy;

pub(super) use crossover::{write_crossover, CALIBRATED_CEILING, NOT_CALIBRATED};
pub use crossover::{CROSSOVER, VALUE_TARGETS};
pub(super) use needs::{feature, needs_tlb};
pub(super) use space::{stamp, Space, WS};
pub(super) use strategies::BENCHES as STRATEGIES;

use crate::config::Suite;
use crate::suites::base::Bench;
use x86_64::instructions::tlb;

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
