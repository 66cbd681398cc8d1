//! Cross-CPU TLB shootdown (suite `tlb`): the other CPUs join the test address space (the
//! `tlb` suite's PTP, loaded on every CPU); CPU 0 changes a mapping and makes them forget it.
//!
//! - `tlb_shootdown`: checks through each CPU's MMU (after a shootdown every target reads the
//!   remapped page's new frame; a shootdown to a set of CPUs leaves the others untouched); the
//!   IPI round trip per number of targets and pages (each target flushing by the policy the
//!   `tlb_crossover` benchmark calibrated on this CPU, Linux's 33 if it did not run); what the
//!   interrupt costs a target's running work; where a target's full flush starts to beat its
//!   page-by-page flush (a crossover record).
//! - `tlb_shootdown_invlpgb`: INVLPGB + TLBSYNC broadcast, ranged and full (AMD Zen 3+, behind
//!   its CPUID bit), and the check that the other CPUs see the new frame after it.

use super::base::{Bench, Ctx};
use super::tlb::{self, Space, WS};
use crate::config::{Mode, Suite};
use crate::platform::{reason, Reason, Smp, Work};
use crate::{timing, tsc};
use core::sync::atomic::Ordering;
use vystem_ptp::flush::{ceiling_for, crossover, RoundCost};
use vystem_ptp::shootdown::CpuSet;
use vystem_ptp::{Decision, FlushPolicy, FlushRange, PageSize};
use x86_64::VirtAddr;

/// Page counts per shootdown; `FULL` (0) stands for "everything": the target reloads CR3.
const PAGES: [u64; 5] = [1, 8, 32, 64, FULL];
const FULL: u64 = 0;
/// Sizes of the target-side crossover sweep.
const SWEEP: [u64; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// The shootdown's round trip by IPI, a contender of its own.
pub const IPI: &str = "ipi";

pub const SHOOTDOWN: Bench = Bench {
    name: "tlb_shootdown",
    suite: Suite::Tlb,
    precondition: needs_another_cpu,
    run: shootdown,
};

pub const INVLPGB: Bench = Bench {
    name: "tlb_shootdown_invlpgb",
    suite: Suite::Tlb,
    precondition: |ctx| {
        needs_another_cpu(ctx)?;
        tlb::feature(
            x86_64::instructions::tlb::Invlpgb::new().is_some(),
            "CPU lacks INVLPGB/TLBSYNC (CPUID 0x80000008 EBX bit 3, AMD Zen 3 and later)",
        )
    },
    run: broadcast,
};

fn needs_another_cpu(ctx: &mut Ctx<'_>) -> Result<(), Reason> {
    tlb::needs_tlb(ctx)?;
    match ctx.platform.smp() {
        Some(smp) if smp.up().len() >= 2 => Ok(()),
        Some(_) => Err(reason(format_args!(
            "one CPU came up: a shootdown needs a second (scripts/bench.sh --cpus 2)"
        ))),
        None => Err(reason(format_args!(
            "no other CPUs to reach (the bench kernel starts them)"
        ))),
    }
}

/// The flush each target runs for `pages` under `policy` (`FULL`: everything).
fn decision(policy: &FlushPolicy, pages: u64) -> Decision {
    match FlushRange::of_pages(VirtAddr::new(WS), pages, PageSize::Size4KiB) {
        Some(range) if pages != FULL => policy.decide(&range),
        _ => Decision::Full,
    }
}

fn flush(d: Decision) -> Work {
    Work {
        flush: d,
        start: WS,
        ..Work::NOTHING
    }
}

fn touch(pages: u64) -> Work {
    Work {
        touch: pages,
        start: WS,
        ..Work::NOTHING
    }
}

/// Before a shootdown of `pages` (`FULL`: the 64 pages the others cover), the targets cache
/// their translations.
fn refill(pages: u64) -> Work {
    touch(if pages == FULL { 64 } else { pages })
}

fn name(d: Decision) -> &'static str {
    match d {
        Decision::PerPage(_) => "invlpg",
        Decision::Full => "cr3-reload",
        Decision::Nothing => "nothing",
    }
}

/// The first `k` CPUs of `set`.
fn first(set: CpuSet, k: u32) -> CpuSet {
    set.iter()
        .take(k as usize)
        .fold(CpuSet::EMPTY, CpuSet::with)
}

/// The test space, loaded on this CPU and joined by the other CPUs (`shootdown_join` says
/// whether they came); `None` if either failed.
fn shared_space(ctx: &mut Ctx<'_>, smp: &dyn Smp, aps: CpuSet) -> Option<Space> {
    let space = Space::open(ctx, false)?;
    let work = Work {
        cr3: Some(space.ptp.cr3_frame()),
        ..Work::NOTHING
    };
    let res = smp.ipi(aps, &work);
    let joined = ctx.check(
        "shootdown_join",
        res.is_ok(),
        format_args!(
            "CPUs {:?} load the test space: {:?}",
            aps.iter().fold(Set::new(), Set::push),
            res.map(|_| ())
        ),
    );
    if joined {
        Some(space)
    } else {
        leave(smp, space, aps);
        None
    }
}

fn leave(smp: &dyn Smp, space: Space, aps: CpuSet) {
    let back = Work {
        cr3: Some(space.old.0),
        ..Work::NOTHING
    };
    let _ = smp.ipi(CpuSet(smp.up().without(0).0 & aps.0), &back);
    space.leave();
}

fn shootdown(ctx: &mut Ctx<'_>) {
    let Some(smp) = ctx.platform.smp() else {
        return;
    };
    let aps = smp.up().without(0);
    let Some(mut space) = shared_space(ctx, smp, aps) else {
        return;
    };
    new_frame_seen(ctx, smp, &mut space, aps);
    others_untouched(ctx, smp, aps);
    freed_after_every_ack(ctx, smp, &mut space, aps);
    let (policy, source) = target_policy(tlb::CALIBRATED_CEILING.load(Ordering::Relaxed));
    let ceiling = policy.ceiling;
    for k in 1..=aps.len() {
        let targets = first(aps, k);
        for pages in PAGES {
            let d = decision(&policy, pages);
            let shown = Pages(pages);
            ctx.measure(
                IPI,
                "op",
                1,
                crate::params! { "measures": "IPI to each target, its flush, every acknowledgement seen", "targets": k, "pages": shown, "target_flush": name(d), "ceiling": ceiling, "ceiling_source": source },
                &mut (),
                |_| {
                    let _ = smp.ipi(targets, &refill(pages));
                },
                |_| {
                    let _ = smp.ipi(targets, &flush(d));
                },
            );
        }
    }
    target_cost(ctx, smp, aps, &policy);
    target_crossover(ctx, smp, first(aps, 1));
    leave(smp, space, aps);
}

/// The policy each target flushes by: the ceiling `tlb_crossover` calibrated in this run (`slot`:
/// [`tlb::CALIBRATED_CEILING`]'s value), else Linux's 33; and where it came from.
fn target_policy(slot: u64) -> (FlushPolicy, &'static str) {
    if slot != tlb::NOT_CALIBRATED {
        (
            FlushPolicy::with_ceiling(slot),
            "calibrated by tlb_crossover",
        )
    } else {
        (
            FlushPolicy::LINUX,
            "Linux's fixed 33: tlb_crossover did not run",
        )
    }
}

/// Every target first caches WS's translation (it reads the old frame), CPU 0 remaps WS to a
/// new frame and flushes its own TLB, then shoots down: each target must read the new frame.
fn new_frame_seen(ctx: &mut Ctx<'_>, smp: &dyn Smp, space: &mut Space, aps: CpuSet) {
    const OLD: u8 = 0xa1;
    const NEW: u8 = 0xb2;
    tlb::stamp(space.current(), 1, OLD);
    tlb::stamp(space.other(), 1, NEW);
    let cache = Work {
        probe: Some(WS),
        ..touch(1)
    };
    let cached = smp.ipi(aps, &cache).is_ok();
    let before = aps
        .iter()
        .fold(Set::new(), |s, c| s.push(smp.report(c).seen));
    let remapped = space.remap(1, false);
    x86_64::instructions::tlb::flush(VirtAddr::new(WS));
    let down = Work {
        probe: Some(WS),
        ..flush(Decision::PerPage(1))
    };
    let shot = smp.ipi(aps, &down);
    let after = aps
        .iter()
        .fold(Set::new(), |s, c| s.push(smp.report(c).seen));
    let all_new = aps.iter().all(|c| smp.report(c).seen == Some(NEW));
    ctx.check(
        "shootdown_new_frame_seen",
        cached && remapped && shot.is_ok() && all_new,
        format_args!(
            "targets read {before:?} (old frame {OLD:#x}) before, {after:?} after the remap and the shootdown (new frame {NEW:#x}); shootdown {:?}",
            shot.map(|_| ())
        ),
    );
}

/// Free after flush across CPUs: the other CPUs walk a mapping, CPU 0 unmaps it; the tables
/// it emptied stay allocated, out of a new mapping's reach, until every other CPU has
/// acknowledged its flush; then they go back, a new mapping takes them again, and every CPU
/// reads the new mapping through them. The space's bump tables are taken over by a bitmap
/// for it (the bootloader-to-kernel hand-over), its own tables outside the working set.
fn freed_after_every_ack(ctx: &mut Ctx<'_>, smp: &dyn Smp, space: &mut Space, aps: CpuSet) {
    use vystem_ptp::{BitmapAllocator, PageAllocator, PageTableFlags as F, PoolMapper};
    // A PML4 slot of its own: the unmap empties a PDPT, a PD and a PT.
    const AT: u64 = 0x0000_5200_0000_0000;
    const HELD: usize = 3;
    const OLD: u8 = 0xc3;
    const NEW: u8 = 0xd4;
    let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE;
    let (old, new) = (space.current(), space.other());
    let pool = *space.ptp.mapper.pool();
    let counter = space.ptp.mapper.allocator().counter();
    let mut m = match PoolMapper::adopt(pool, BitmapAllocator::from_counter(pool.pages(), counter))
    {
        Ok(m) => m,
        Err(e) => {
            ctx.check(
                "shootdown_tables_freed_after_every_ack",
                false,
                format_args!("taking the space's tables over with a bitmap: {e:?}"),
            );
            return;
        }
    };
    let at = VirtAddr::new(AT);
    let probe = |smp: &dyn Smp| {
        let res = smp.ipi(
            aps,
            &Work {
                probe: Some(AT),
                ..Work::NOTHING
            },
        );
        (
            res.is_ok(),
            aps.iter()
                .fold(Set::new(), |s, c| s.push(smp.report(c).seen)),
        )
    };
    // The targets flush AT and acknowledge: the CPUs that did.
    let shoot_down = || {
        let work = Work {
            flush: Decision::PerPage(1),
            start: AT,
            ..Work::NOTHING
        };
        if smp.ipi(aps, &work).is_ok() {
            aps
        } else {
            CpuSet::EMPTY
        }
    };
    let all = |seen: &Set<Option<u8>>, v: u8| (0..seen.n).all(|i| seen.get(i) == Some(v));
    tlb::stamp(old, 1, OLD);
    tlb::stamp(new, 1, NEW);
    let mapped = m
        .map_page(at, old, PageSize::Size4KiB, flags)
        .map(|f| f.flush_each())
        .is_ok();
    let (walked, before) = probe(smp);
    let used = m.allocator().used();
    let Ok(unmap) = m.unmap_range(at, 4096) else {
        ctx.check(
            "shootdown_tables_freed_after_every_ack",
            false,
            format_args!("unmap_range failed"),
        );
        return;
    };
    let mut held = [0u32; HELD + 1];
    let n = m.held_tables(&unmap, &mut held);
    let policy = FlushPolicy::LINUX;
    // No acknowledgement yet: the unmap comes back, its tables still allocated.
    let (waited, unmap) = match unmap.flush_shot_down(&policy, aps, CpuSet::EMPTY) {
        Err(back) => (true, Some(back)),
        Ok(flushed) => (m.release(flushed).is_err(), None), // wrongly let go: a failure
    };
    let waited = waited
        && unmap.is_some()
        && n == HELD
        && m.allocator().used() == used
        && held[..n].iter().all(|&p| m.allocator().is_allocated(p));
    // The targets flush and acknowledge: only now may the tables go.
    let acked = shoot_down();
    let released = match unmap.map(|u| u.flush_shot_down(&policy, aps, acked)) {
        Some(Ok(flushed)) => m.release(flushed),
        _ => Ok(0), // not every target acknowledged: the tables stay held (leaked)
    };
    let freed = released == Ok(HELD as u32) && m.allocator().used() == used - HELD as u32;
    // A new mapping takes the same pages again, and every CPU reads it through them.
    let remapped = m
        .map_page(at, new, PageSize::Size4KiB, flags)
        .map(|f| f.flush_each())
        .is_ok();
    let reused = held[..n].iter().all(|&p| m.allocator().is_allocated(p));
    // SAFETY: AT is mapped, in the space this CPU runs.
    let here = unsafe { (AT as *const u8).read_volatile() };
    let (walked_again, after) = probe(smp);
    // Leave the space as it was: unmapped, flushed everywhere, the tables back.
    let cleaned = match m.unmap_range(at, 4096) {
        Ok(u) => match u.flush_shot_down(&policy, aps, shoot_down()) {
            Ok(f) => m.release(f).is_ok(),
            Err(_) => false,
        },
        Err(_) => false,
    };
    ctx.check(
        "shootdown_tables_freed_after_every_ack",
        mapped && walked && all(&before, OLD) && waited && freed && remapped && reused
            && here == NEW && walked_again && all(&after, NEW) && cleaned,
        format_args!(
            "targets read {before:?} (old {OLD:#x}); unmapped: {n} tables held {:?}, still allocated with no acknowledgement: {waited}; after every acknowledgement released {released:?}; the new mapping reuses them: {reused}, reads {here:#x} here and {after:?} on the targets (new {NEW:#x}); cleaned up: {cleaned}",
            &held[..n.min(HELD)]
        ),
    );
}

/// A shootdown to a subset changes nothing on the CPUs outside it (their request counters).
fn others_untouched(ctx: &mut Ctx<'_>, smp: &dyn Smp, aps: CpuSet) {
    // With one other CPU the subset is empty: that CPU must see nothing at all.
    let targets = first(aps, aps.len() - 1);
    let others = CpuSet(aps.0 & !targets.0);
    let before = aps
        .iter()
        .fold(Set::new(), |s, c| s.push(smp.report(c).handled));
    let res = smp.ipi(targets, &flush(Decision::PerPage(1)));
    let after = aps
        .iter()
        .fold(Set::new(), |s, c| s.push(smp.report(c).handled));
    let ok = res.is_ok()
        && aps.iter().enumerate().all(|(i, c)| {
            let grew = after.get(i) == before.get(i) + 1;
            if targets.contains(c) {
                grew
            } else {
                after.get(i) == before.get(i)
            }
        });
    ctx.check(
        "shootdown_others_untouched",
        ok,
        format_args!(
            "targets {:?}, others {:?}: requests handled per CPU {before:?} -> {after:?}",
            targets.iter().fold(Set::new(), Set::push),
            others.iter().fold(Set::new(), Set::push)
        ),
    );
}

/// What an IPI costs the target's running work: targets spin in a timed loop; per shootdown,
/// the ticks their loop lost (one and all targets, each page count).
fn target_cost(ctx: &mut Ctx<'_>, smp: &dyn Smp, aps: CpuSet, policy: &FlushPolicy) {
    let rounds = if ctx.cfg.mode == Mode::Selftest || ctx.cfg.quick {
        8
    } else {
        64
    };
    smp.set_busy(true);
    let counts = [1, aps.len()];
    let n = if aps.len() > 1 { 2 } else { 1 };
    for &k in &counts[..n] {
        let targets = first(aps, k);
        for pages in PAGES {
            let d = decision(policy, pages);
            let mut samples = [0u64; 64];
            let mut got = 0;
            // One round first: a loop that has just started has no quiet step to compare with.
            let _ = smp.ipi(targets, &flush(d));
            for _ in 0..rounds {
                let _ = smp.ipi(targets, &refill(pages));
                if smp.ipi(targets, &flush(d)).is_err() {
                    break;
                }
                for c in targets.iter() {
                    if let (Some(lost), true) = (smp.report(c).lost_ticks, got < samples.len()) {
                        samples[got] = lost;
                        got += 1;
                    }
                }
            }
            if got == 0 {
                continue;
            }
            let s = timing::summarize(&mut samples[..got], 1, 0);
            ctx.record(
                "ipi-target-lost",
                "op",
                crate::params! { "measures": "ticks a target's running loop loses to one shootdown IPI", "targets": k, "pages": Pages(pages), "target_flush": name(d) },
                &s,
            );
        }
    }
    smp.set_busy(false);
}

/// On one target: flush + refill rounds by IPI, page by page against a full flush, over
/// [`SWEEP`]; where the full flush starts to win across CPUs (the crossover record, the
/// cross-CPU part of the policy).
fn target_crossover(ctx: &mut Ctx<'_>, smp: &dyn Smp, target: CpuSet) {
    let rdtscp = ctx.platform.cpu().rdtscp;
    let mut costs = SWEEP.map(|pages| RoundCost {
        pages,
        per_page: f64::MAX,
        full: f64::MAX,
    });
    let tries = if ctx.cfg.mode == Mode::Selftest || ctx.cfg.quick {
        2
    } else {
        8
    };
    for _ in 0..tries {
        for c in costs.iter_mut() {
            for (full, slot) in [(false, &mut c.per_page), (true, &mut c.full)] {
                let d = if full {
                    Decision::Full
                } else {
                    Decision::PerPage(c.pages)
                };
                let _ = smp.ipi(target, &touch(c.pages));
                let t0 = tsc::start();
                let ok = smp
                    .ipi(
                        target,
                        &Work {
                            touch: c.pages,
                            ..flush(d)
                        },
                    )
                    .is_ok();
                let t = tsc::stop(rdtscp).wrapping_sub(t0);
                if ok {
                    *slot = slot.min(t as f64);
                }
            }
        }
    }
    if costs
        .iter()
        .any(|c| c.per_page == f64::MAX || c.full == f64::MAX)
    {
        ctx.check(
            "shootdown_crossover",
            false,
            format_args!("a target stopped answering during the sweep"),
        );
        return;
    }
    // Measured, not calibrated: the stated ceiling is the measured one, at no extra cost.
    let ceiling = ceiling_for(crossover(&costs), &costs);
    let n_star = tlb::write_crossover(
        ctx,
        "4KiB",
        ("ipi-invlpg-refill", "ipi-cr3-reload-refill"),
        &costs,
        (ceiling, 0, 1.0),
    );
    ctx.check(
        "shootdown_crossover",
        true,
        format_args!("one target, IPI + flush + refill: N* {n_star:?}, ceiling {ceiling}"),
    );
}

/// INVLPGB + TLBSYNC from CPU 0 (the broadcast reaches every CPU): ranged and full, and the
/// other CPUs read the new frame after it with no IPI flush of their own.
fn broadcast(ctx: &mut Ctx<'_>) {
    use x86_64::structures::paging::{Page, Size4KiB};
    let (Some(b), Some(smp)) = (
        x86_64::instructions::tlb::Invlpgb::new(),
        ctx.platform.smp(),
    ) else {
        return;
    };
    let aps = smp.up().without(0);
    let Some(mut space) = shared_space(ctx, smp, aps) else {
        return;
    };
    let first_page = Page::<Size4KiB>::containing_address(VirtAddr::new(WS));
    for pages in PAGES {
        ctx.measure(
            "invlpgb-broadcast",
            "op",
            1,
            crate::params! { "measures": "INVLPGB + TLBSYNC from CPU 0, every CPU", "targets": aps.len(), "pages": Pages(pages) },
            &mut (),
            |_| {
                let _ = smp.ipi(aps, &refill(pages));
            },
            |_| {
                if pages == FULL {
                    b.build().flush();
                } else {
                    b.build().pages(Page::range(first_page, first_page + pages)).flush();
                }
                b.tlbsync();
            },
        );
    }
    const NEW: u8 = 0xc3;
    tlb::stamp(space.other(), 1, NEW);
    let _ = smp.ipi(aps, &touch(1));
    let remapped = space.remap(1, false);
    b.build()
        .pages(Page::range(first_page, first_page + 1))
        .flush();
    b.tlbsync();
    let probe = Work {
        probe: Some(WS),
        ..Work::NOTHING
    };
    let shot = smp.ipi(aps, &probe);
    let after = aps
        .iter()
        .fold(Set::new(), |s, c| s.push(smp.report(c).seen));
    ctx.check(
        "invlpgb_other_cpus_see_new_frame",
        remapped && shot.is_ok() && aps.iter().all(|c| smp.report(c).seen == Some(NEW)),
        format_args!("after the remap and one INVLPGB + TLBSYNC the other CPUs read {after:?}, want {NEW:#x}"),
    );
    leave(smp, space, aps);
}

/// A page count in a params object: a number, or "full".
struct Pages(u64);

impl crate::json::ToJson for Pages {
    fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        if self.0 == FULL {
            "full".write_json(w)
        } else {
            self.0.write_json(w)
        }
    }
}

/// A short list of per-CPU values for check details (no allocator).
#[derive(Clone, Copy)]
struct Set<T: Copy + Default> {
    v: [T; crate::acpi::MAX_CPUS],
    n: usize,
}

impl<T: Copy + Default> Set<T> {
    fn new() -> Self {
        Set {
            v: [T::default(); crate::acpi::MAX_CPUS],
            n: 0,
        }
    }
    fn push(mut self, x: T) -> Self {
        if self.n < self.v.len() {
            self.v[self.n] = x;
            self.n += 1;
        }
        self
    }
}

impl<T: Copy + Default> Set<T> {
    fn get(&self, i: usize) -> T {
        self.v.get(i).copied().unwrap_or_default()
    }
}

impl<T: Copy + Default + core::fmt::Debug> core::fmt::Debug for Set<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(&self.v[..self.n]).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_flush_by_the_calibrated_ceiling_even_when_it_is_zero() {
        // Under Bochs a full flush always wins: the calibrated ceiling is 0, not "none".
        assert_eq!(
            target_policy(0),
            (FlushPolicy::with_ceiling(0), "calibrated by tlb_crossover")
        );
        assert_eq!(target_policy(32).0.ceiling, 32);
        let (policy, source) = target_policy(tlb::NOT_CALIBRATED);
        assert_eq!(
            (policy, source),
            (
                FlushPolicy::LINUX,
                "Linux's fixed 33: tlb_crossover did not run"
            )
        );
    }
}
