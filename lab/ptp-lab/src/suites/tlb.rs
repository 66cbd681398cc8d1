//! `tlb`: when the kernel changes N pages, what invalidating them costs per strategy, on the
//! real MMU (ring 0 only). Each strategy is an entry (a CPU without the feature gets a skip
//! record): the flush alone, flush + refill of an N-page working set, the collateral damage to
//! a second set the change did not touch, and a check through the MMU that after the flush the
//! new frame is seen. `tlb_crossover` sweeps N for invlpg against a full flush, writes where the
//! full flush starts to win (N*), what Linux's fixed ceiling (33) and its neighbours cost here,
//! and what `vystem_ptp::flush::calibrate` finds and costs.
//!
//! The working set lives in a modifiable PTP built from the pool with a bump allocator (its
//! tables stay linked when pages are remapped), loaded in CR3; its mapper works through the
//! self-map, as Shelter's does.

use super::{Bench, Ctx};
use crate::config::Suite;
use crate::platform::{map_kernel, reason, Reason};
use crate::record;
use crate::target::{CALIBRATED_POLICY, CALIBRATION_TIME};
use crate::timing::{self, Summary};
use core::hint::black_box;
use vystem_ptp::flush::{calibrate, ceiling_for, crossover, regret, FlushProbe, RoundCost};
use vystem_ptp::{BumpAllocator, PageSize, Ptp};
use x86_64::instructions::tlb::{self, InvPcidCommand, Pcid};
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::{PageTableFlags as F, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

/// Where the working sets live (lower half, away from everything else).
pub(super) const WS: u64 = 0x0000_5000_0000_0000;
/// The collateral set: pages the change does not touch.
const OTHER: u64 = 0x0000_5080_0000_0000;
/// Largest working set, in 4 KiB pages.
const MAX_PAGES: u64 = 4096;
const OTHER_PAGES: u64 = 64;
/// The refill sweep, 4 KiB pages: every power of two.
const SIZES: [u64; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
/// The 2 MiB working set: every page aliases one of two 2 MiB frames (a TLB entry is per
/// virtual page), so 64 pages need 4 MiB of RAM, not 128.
const WS_2M: u64 = 0x0000_5100_0000_0000;
const HUGE: u64 = 2 << 20;
const SIZES_2M: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];
const MAX_2M: u64 = 64;
const SELF_MAP: u64 = super::SELF_MAP;
const FLAGS: F = F::PRESENT.union(F::WRITABLE).union(F::NO_EXECUTE);
/// Linux's ceiling and two neighbours other kernels use.
const FIXED_CEILINGS: [u64; 3] = [32, 33, 64];

/// The 4 KiB ceiling `tlb_crossover` calibrated on this CPU in this run ([`NOT_CALIBRATED`]:
/// not yet; 0 is a ceiling: a full flush always wins): the shootdown's targets flush by it.
pub(super) static CALIBRATED_CEILING: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(NOT_CALIBRATED);
pub(super) const NOT_CALIBRATED: u64 = u64::MAX;

pub const INVLPG: Bench = Bench {
    name: "tlb_invlpg",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: |ctx| strategy(ctx, Strategy::Invlpg),
};
pub const CR3_RELOAD: Bench = Bench {
    name: "tlb_cr3_reload",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: |ctx| strategy(ctx, Strategy::Cr3Reload),
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
    run: |ctx| strategy(ctx, Strategy::PgeToggle),
};
pub const PCID: Bench = Bench {
    name: "tlb_pcid_switch",
    suite: Suite::Tlb,
    precondition: |ctx| {
        needs_tlb(ctx)?;
        feature(ctx.platform.cpu().pcid, "CPU lacks PCID (CPUID 1 ECX.PCID)")
    },
    run: pcid_switch,
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
    run: invpcid,
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
    run: invlpgb,
};
pub const CROSSOVER: Bench = Bench {
    name: "tlb_crossover",
    suite: Suite::Tlb,
    precondition: needs_tlb,
    run: crossover_and_policy,
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
    super::needs_ring0(ctx)?;
    let first = ctx.cfg.pools()[0];
    if ctx.pages() != first {
        return Err(reason(format_args!(
            "TLB costs do not depend on the pool size: measured once, with the pool of {first} pages"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Invlpg,
    Cr3Reload,
    PgeToggle,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Invlpg => "invlpg",
            Strategy::Cr3Reload => "cr3-reload",
            Strategy::PgeToggle => "pge-toggle",
        }
    }

    /// Invalidate `pages` 4 KiB pages from `WS`.
    #[inline(always)]
    fn flush(self, pages: u64) {
        self.flush_at(Size::K4, pages)
    }

    /// Invalidate `pages` pages of `size` from its working set.
    #[inline(always)]
    fn flush_at(self, size: Size, pages: u64) {
        match self {
            Strategy::Invlpg => {
                for i in 0..pages {
                    tlb::flush(VirtAddr::new(size.base() + i * size.step()));
                }
            }
            Strategy::Cr3Reload => tlb::flush_all(),
            Strategy::PgeToggle => toggle_pge(),
        }
    }
}

/// The two working sets: 4 KiB pages at `WS`, 2 MiB pages at `WS_2M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    K4,
    M2,
}

impl Size {
    fn base(self) -> u64 {
        match self {
            Size::K4 => WS,
            Size::M2 => WS_2M,
        }
    }
    fn step(self) -> u64 {
        match self {
            Size::K4 => 4096,
            Size::M2 => HUGE,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Size::K4 => "4KiB",
            Size::M2 => "2MiB",
        }
    }
}

/// Clear and set CR4.PGE: every translation goes, global ones too.
fn toggle_pge() {
    let flags = Cr4::read();
    // SAFETY: ring 0 (precondition); PGE is restored at once.
    unsafe {
        Cr4::write(flags - Cr4Flags::PAGE_GLOBAL);
        Cr4::write(flags);
    }
}

/// The loaded test address space.
pub(super) struct Space {
    pub(super) ptp: Ptp<BumpAllocator>,
    pub(super) old: (PhysFrame, Cr3Flags),
    /// How the kernel reaches the pool outside this space.
    window: VirtAddr,
    /// Frame sets A and B (each MAX_PAGES pages) and which one WS maps now.
    a: PhysAddr,
    b: PhysAddr,
    on_b: bool,
    /// The two 2 MiB frames every page of the 2 MiB set maps, and which one now.
    a2: PhysAddr,
    b2: PhysAddr,
    on_b2: bool,
}

impl Space {
    /// [`Space::enter`], or a failed `tlb_setup` check saying why (the benchmark then stops).
    pub(super) fn open(ctx: &mut Ctx<'_>, global_ws: bool) -> Option<Space> {
        Space::enter(ctx, global_ws)
            .map_err(|why| ctx.check("tlb_setup", false, format_args!("{why}")))
            .ok()
    }

    /// Build the PTP (kernel identity, WS on A, OTHER), load it, work through its self-map.
    pub(super) fn enter(ctx: &mut Ctx<'_>, global_ws: bool) -> Result<Space, Reason> {
        let pool = ctx.pool;
        let n = pool.pages();
        let fill = ctx.platform.cpu().fill();
        let Some(mmu) = ctx.platform.mmu() else {
            return Err(reason(format_args!("needs ring 0")));
        };
        // Both 4 KiB sets, then room for two 2 MiB-aligned 2 MiB frames.
        let frames = mmu.frames(2 * MAX_PAGES + 3 * 512)?;
        let a2 = PhysAddr::new((frames.as_u64() + 2 * MAX_PAGES * 4096).next_multiple_of(HUGE));
        let b2 = a2 + HUGE;
        let err = |what: &str, e: &dyn core::fmt::Debug| reason(format_args!("{what}: {e:?}"));
        let mut ptp =
            Ptp::modifiable_with(pool, BumpAllocator::new(n), VirtAddr::new(SELF_MAP), fill)
                .map_err(|e| err("building the PTP", &e))?;
        map_kernel(mmu, &mut ptp.mapper).map_err(|e| err("mapping the kernel", &e))?;
        let ws_flags = if global_ws { FLAGS | F::GLOBAL } else { FLAGS };
        let (a, b) = (frames, frames + MAX_PAGES * 4096);
        ptp.mapper
            .map_range(
                VirtAddr::new(WS),
                a,
                MAX_PAGES,
                PageSize::Size4KiB,
                ws_flags,
            )
            .map_err(|e| err("mapping the working set", &e))?
            .ignore();
        ptp.mapper
            .map_range(
                VirtAddr::new(OTHER),
                b,
                OTHER_PAGES,
                PageSize::Size4KiB,
                FLAGS,
            )
            .map_err(|e| err("mapping the collateral set", &e))?
            .ignore();
        for i in 0..MAX_2M {
            let v = VirtAddr::new(WS_2M + i * HUGE);
            ptp.mapper
                .map_page(v, a2, PageSize::Size2MiB, FLAGS)
                .map_err(|e| err("mapping the 2 MiB working set", &e))?
                .ignore();
        }
        let old = Cr3::read();
        // SAFETY: the PTP maps the kernel's identity (code, stacks, statics) and the self-map.
        unsafe { Cr3::write(ptp.cr3_frame(), old.1) };
        // SAFETY: the self-map aliases the whole pool, and this PTP is in CR3.
        let rebased = unsafe { ptp.mapper.rebase(VirtAddr::new(SELF_MAP)) };
        let space = Space {
            ptp,
            old,
            window: pool.window(),
            a,
            b,
            on_b: false,
            a2,
            b2,
            on_b2: false,
        };
        rebased.map_err(|e| err("rebasing to the self-map", &e))?;
        Ok(space)
    }

    /// Map the first `pages` of WS to the other frame set (no flush: the caller's strategy).
    pub(super) fn remap(&mut self, pages: u64, global: bool) -> bool {
        let to = if self.on_b { self.a } else { self.b };
        let flags = if global { FLAGS | F::GLOBAL } else { FLAGS };
        let m = &mut self.ptp.mapper;
        let ok = m
            .unmap_range(VirtAddr::new(WS), pages * 4096)
            .map(|f| f.ignore())
            .is_ok()
            && m.map_range(VirtAddr::new(WS), to, pages, PageSize::Size4KiB, flags)
                .map(|f| f.ignore())
                .is_ok();
        self.on_b = !self.on_b;
        ok
    }

    /// Map the first `pages` pages of `size`'s working set elsewhere (no flush).
    fn remap_at(&mut self, size: Size, pages: u64, global: bool) -> bool {
        if size == Size::K4 {
            return self.remap(pages, global);
        }
        let to = if self.on_b2 { self.a2 } else { self.b2 };
        let m = &mut self.ptp.mapper;
        let mut ok = m
            .unmap_range(VirtAddr::new(WS_2M), pages * HUGE)
            .map(|f| f.ignore())
            .is_ok();
        for i in 0..pages {
            let v = VirtAddr::new(WS_2M + i * HUGE);
            ok &= m
                .map_page(v, to, PageSize::Size2MiB, FLAGS)
                .map(|f| f.ignore())
                .is_ok();
        }
        self.on_b2 = !self.on_b2;
        ok
    }

    /// The frame set WS does not map now (where [`Space::remap`] moves it).
    pub(super) fn other(&self) -> PhysAddr {
        if self.on_b {
            self.a
        } else {
            self.b
        }
    }

    /// The frame set WS maps now, and its identity address (to read behind the TLB's back).
    pub(super) fn current(&self) -> PhysAddr {
        if self.on_b {
            self.b
        } else {
            self.a
        }
    }

    pub(super) fn leave(mut self) {
        // SAFETY: back to the pool's own window before the PTP leaves CR3.
        let _ = unsafe { self.ptp.mapper.rebase(self.window) };
        // SAFETY: the tables we were running on before.
        unsafe { Cr3::write(self.old.0, self.old.1) };
    }
}

/// Touch one byte in each of `pages` 4 KiB pages from `base`: one TLB fill each when cold.
#[inline(always)]
pub(super) fn touch(base: u64, pages: u64) -> u64 {
    touch_step(base, pages, 4096)
}

#[inline(always)]
fn touch_step(base: u64, pages: u64, step: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..pages {
        // SAFETY: the working sets are mapped readable in the loaded PTP.
        sum = sum.wrapping_add(unsafe { ((base + i * step) as *const u8).read_volatile() } as u64);
    }
    black_box(sum)
}

/// Write `value` into the first byte of each page of a frame set, through the identity map.
pub(super) fn stamp(frames: PhysAddr, pages: u64, value: u8) {
    for i in 0..pages {
        // SAFETY: frames handed out for the working sets, identity-mapped in both spaces.
        unsafe { ((frames.as_u64() + i * 4096) as *mut u8).write_volatile(value) };
    }
}

fn strategy(ctx: &mut Ctx<'_>, s: Strategy) {
    let global = s == Strategy::PgeToggle;
    if global {
        // Global pages need CR4.PGE, which the bench kernel's boot leaves clear (and toggling a
        // clear PGE changes nothing: no flush at all).
        let flags = Cr4::read();
        // SAFETY: ring 0 (precondition); restored below, which flushes the global entries.
        unsafe { Cr4::write(flags | Cr4Flags::PAGE_GLOBAL) };
        strategy_in(ctx, s, global);
        unsafe { Cr4::write(flags) };
    } else {
        strategy_in(ctx, s, global);
    }
}

fn strategy_in(ctx: &mut Ctx<'_>, s: Strategy, global: bool) {
    let Some(mut space) = Space::open(ctx, global) else {
        return;
    };
    // 1. The flush alone (the working set warm in the TLB before each).
    ctx.measure(
        s.name(),
        "op",
        1,
        format_args!("{{\"measures\":\"flush alone\"}}"),
        &mut (),
        |_| {
            touch(WS, 64);
        },
        |_| s.flush(1),
    );
    // 2. Flush + refill of N pages after their mappings changed (4 KiB; 2 MiB, not global).
    for n in SIZES {
        refill(ctx, &mut space, s, Size::K4, n, global);
    }
    if !global {
        for n in SIZES_2M {
            refill(ctx, &mut space, s, Size::M2, n, false);
        }
    }
    // 3. Collateral: the set the change did not touch, timed after the flush.
    ctx.measure(
        collateral_name(s),
        "page",
        OTHER_PAGES,
        format_args!(
            "{{\"measures\":\"collateral\",\"changed_pages\":1,\"other_pages\":{OTHER_PAGES}}}"
        ),
        &mut space,
        |sp| {
            touch(OTHER, OTHER_PAGES);
            touch(WS, 1);
            sp.remap(1, global);
            s.flush(1);
        },
        |_| {
            touch(OTHER, OTHER_PAGES);
        },
    );
    // 4. Through the MMU: after remap + flush the new frame is seen.
    let (a, b) = (space.current(), if space.on_b { space.a } else { space.b });
    stamp(a, 1, 0xa1);
    stamp(b, 1, 0xb2);
    let before = touch(WS, 1) as u8;
    let remapped = space.remap(1, global);
    s.flush(1);
    let after = touch(WS, 1) as u8;
    space.leave();
    ctx.check(
        "new_frame_seen_after_flush",
        remapped && before == 0xa1 && after == 0xb2,
        format_args!(
            "{}{}: read {before:#x} before the remap, {after:#x} after it and the flush (want 0xb2)",
            s.name(),
            if global { " (global pages)" } else { "" }
        ),
    );
}

fn collateral_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Invlpg => "invlpg-collateral",
        Strategy::Cr3Reload => "cr3-reload-collateral",
        Strategy::PgeToggle => "pge-toggle-collateral",
    }
}

/// One flush + refill measurement: ticks per page of (flush, touch all) after the N pages
/// were touched (warm) and remapped (untimed).
fn refill(
    ctx: &mut Ctx<'_>,
    space: &mut Space,
    s: Strategy,
    size: Size,
    n: u64,
    global: bool,
) -> Option<Summary> {
    round(
        ctx,
        space,
        refill_name(s, size),
        flush_fn(s),
        size,
        n,
        global,
    )
}

/// How a strategy invalidates the first `n` pages of a working set, as a plain function.
fn flush_fn(s: Strategy) -> fn(Size, u64) {
    match s {
        Strategy::Invlpg => |size, n| Strategy::Invlpg.flush_at(size, n),
        Strategy::Cr3Reload => |size, n| Strategy::Cr3Reload.flush_at(size, n),
        Strategy::PgeToggle => |size, n| Strategy::PgeToggle.flush_at(size, n),
    }
}

#[allow(clippy::too_many_arguments)]
fn round(
    ctx: &mut Ctx<'_>,
    space: &mut Space,
    name: &'static str,
    flush: fn(Size, u64),
    size: Size,
    n: u64,
    global: bool,
) -> Option<Summary> {
    let (base, step) = (size.base(), size.step());
    ctx.measure(
        name,
        "page",
        n,
        format_args!(
            "{{\"measures\":\"flush + refill\",\"pages\":{n},\"page_size\":\"{}\",\"global\":{global}}}",
            size.name()
        ),
        space,
        |sp| {
            touch_step(base, n, step);
            sp.remap_at(size, n, global);
        },
        |_| {
            flush(size, n);
            touch_step(base, n, step);
        },
    )
}

fn refill_name(s: Strategy, size: Size) -> &'static str {
    match (s, size) {
        (Strategy::Invlpg, Size::K4) => "invlpg-refill",
        (Strategy::Cr3Reload, Size::K4) => "cr3-reload-refill",
        (Strategy::PgeToggle, Size::K4) => "pge-toggle-refill",
        (Strategy::Invlpg, Size::M2) => "invlpg-refill-2MiB",
        (Strategy::Cr3Reload, Size::M2) => "cr3-reload-refill-2MiB",
        (Strategy::PgeToggle, Size::M2) => "pge-toggle-refill-2MiB",
    }
}

/// Run `f` with CR4.PCIDE set (the current CR3 has PCID 0, as PCIDE requires), cleared after.
fn with_pcide(f: impl FnOnce()) {
    let flags = Cr4::read();
    // SAFETY: ring 0; CR3's PCID bits are 0 here (boot tables, no flags), as setting PCIDE needs.
    unsafe { Cr4::write(flags | Cr4Flags::PCID) };
    f();
    // SAFETY: clearing PCIDE needs CR3's PCID = 0: `f` loads the old CR3 (PCID 0) before it ends.
    unsafe { Cr4::write(flags) };
}

/// The two tagged contexts the PCID checks switch between.
const PCID_ONE: Pcid = match Pcid::new(1) {
    Ok(p) => p,
    Err(_) => panic!("PCID 1 is valid"),
};
const PCID_TWO: Pcid = match Pcid::new(2) {
    Ok(p) => p,
    Err(_) => panic!("PCID 2 is valid"),
};

fn pcid(n: u16) -> Pcid {
    if n == 2 {
        PCID_TWO
    } else {
        PCID_ONE
    }
}

/// CR3 writes that switch between two tagged address spaces, with the no-flush bit and
/// without; and the check that a switch without flush keeps the other's translations usable.
fn pcid_switch(ctx: &mut Ctx<'_>) {
    let Some(mut space) = Space::open(ctx, false) else {
        return;
    };
    let frame = space.ptp.cr3_frame();
    let old = space.old;
    // Leave the test space on PCID 0 first: PCIDE may only be set with PCID 0 in CR3.
    // SAFETY: the tables we were running on.
    unsafe { Cr3::write(old.0, old.1) };
    let mut r = (0u8, 0u8, false, false, 0u8);
    with_pcide(|| {
        // SAFETY (each CR3 write): the test PTP maps everything the running code touches.
        unsafe { Cr3::write_pcid(frame, pcid(1)) };
        stamp(space.current(), 1, 0xc3);
        r.0 = touch(WS, 1) as u8;
        let mut st = ();
        ctx.measure(
            "pcid-switch-no-flush",
            "op",
            2,
            format_args!("{{\"measures\":\"two CR3 writes, PCID 1 -> 2 -> 1, no-flush bit\"}}"),
            &mut st,
            |_| {},
            |_| unsafe {
                Cr3::write_pcid_no_flush(frame, pcid(2));
                Cr3::write_pcid_no_flush(frame, pcid(1));
            },
        );
        ctx.measure(
            "pcid-switch-flush",
            "op",
            2,
            format_args!("{{\"measures\":\"two CR3 writes, PCID 1 -> 2 -> 1, flushing\"}}"),
            &mut st,
            |_| {},
            |_| unsafe {
                Cr3::write_pcid(frame, pcid(2));
                Cr3::write_pcid(frame, pcid(1));
            },
        );
        // Context 1 warm, a switch to 2 and back without flush: 1's translation still works.
        touch(WS, 1);
        unsafe {
            Cr3::write_pcid_no_flush(frame, pcid(2));
            Cr3::write_pcid_no_flush(frame, pcid(1));
        }
        r.1 = touch(WS, 1) as u8;
        r.2 = true;
        // With flush: remap in context 1, a flushing CR3 write of PCID 1: the new frame is read.
        stamp(if space.on_b { space.a } else { space.b }, 1, 0xc4);
        touch(WS, 1);
        r.3 = space.remap(1, false);
        // SAFETY: as above; the flushing write drops PCID 1's translations.
        unsafe { Cr3::write_pcid(frame, pcid(1)) };
        r.4 = touch(WS, 1) as u8;
        // SAFETY: back to the old tables with PCID 0 before PCIDE is cleared.
        unsafe { Cr3::write(old.0, old.1) };
    });
    // SAFETY: reload the test space (PCID 0) to leave it the usual way.
    unsafe { Cr3::write(frame, old.1) };
    space.leave();
    ctx.check(
        "pcid_switch_with_flush_new_frame_seen",
        r.3 && r.4 == 0xc4,
        format_args!(
            "after a remap and a flushing CR3 write of PCID 1: read {:#x}, want 0xc4",
            r.4
        ),
    );
    ctx.check(
        "pcid_switch_keeps_other_context_usable",
        r.2 && r.0 == 0xc3 && r.1 == 0xc3,
        format_args!(
            "read {:#x} in PCID 1, {:#x} after 1 -> 2 -> 1 without flush (want 0xc3)",
            r.0, r.1
        ),
    );
}

/// INVPCID types 0 (one address), 1 (one context), 2 (all, global included), 3 (all but
/// global): each alone, and each checked through the MMU after a remap.
fn invpcid(ctx: &mut Ctx<'_>) {
    let Some(mut space) = Space::open(ctx, false) else {
        return;
    };
    let frame = space.ptp.cr3_frame();
    let old = space.old;
    // SAFETY: the tables we were running on (PCID 0, as setting PCIDE needs).
    unsafe { Cr3::write(old.0, old.1) };
    let mut seen = [(0u8, false); 4];
    with_pcide(|| {
        // SAFETY: the test PTP maps everything the running code touches.
        unsafe { Cr3::write_pcid(frame, pcid(1)) };
        let commands = |t: usize| match t {
            0 => InvPcidCommand::Address(VirtAddr::new(WS), pcid(1)),
            1 => InvPcidCommand::Single(pcid(1)),
            2 => InvPcidCommand::All,
            _ => InvPcidCommand::AllExceptGlobal,
        };
        for (t, name) in [
            "invpcid-0-address",
            "invpcid-1-context",
            "invpcid-2-all",
            "invpcid-3-all-but-global",
        ]
        .into_iter()
        .enumerate()
        {
            ctx.measure(
                name,
                "op",
                1,
                format_args!("{{\"measures\":\"flush alone\",\"type\":{t}}}"),
                &mut (),
                |_| {
                    touch(WS, 64);
                },
                // SAFETY: CPUID reported INVPCID (precondition), PCIDE is set.
                |_| unsafe { tlb::flush_pcid(commands(t)) },
            );
            // Through the MMU: remap, this type of INVPCID, read the new frame.
            let b = if space.on_b { space.a } else { space.b };
            stamp(b, 1, 0xd0 + t as u8);
            touch(WS, 1);
            let ok = space.remap(1, false);
            // SAFETY: as above.
            unsafe { tlb::flush_pcid(commands(t)) };
            seen[t] = (touch(WS, 1) as u8, ok);
        }
        // INVPCID type 0 per page against type 1 (the whole context), flush + refill.
        let pair = Pair {
            per: ("invpcid-0-refill", |size, n| {
                for i in 0..n {
                    let v = VirtAddr::new(size.base() + i * size.step());
                    // SAFETY: CPUID reported INVPCID (precondition), PCIDE is set.
                    unsafe { tlb::flush_pcid(InvPcidCommand::Address(v, PCID_ONE)) };
                }
            }),
            // SAFETY: as above.
            full: ("invpcid-1-refill", |_, _| unsafe {
                tlb::flush_pcid(InvPcidCommand::Single(PCID_ONE))
            }),
        };
        if let Some(costs) = sweep(ctx, &mut space, Size::K4, &SIZES, pair) {
            state_crossover(ctx, &mut space, Size::K4, &costs, pair);
        }
        // SAFETY: back to the old tables with PCID 0 before PCIDE is cleared.
        unsafe { Cr3::write(old.0, old.1) };
    });
    // SAFETY: reload the test space (PCID 0) to leave it the usual way.
    unsafe { Cr3::write(frame, old.1) };
    space.leave();
    for (t, (got, ok)) in seen.into_iter().enumerate() {
        let mut name = crate::fixedstr::FixedStr::<48>::new();
        let _ =
            core::fmt::Write::write_fmt(&mut name, format_args!("invpcid_type_{t}_new_frame_seen"));
        ctx.check(
            name.as_str(),
            ok && got == 0xd0 + t as u8,
            format_args!(
                "after a remap and INVPCID type {t}: read {got:#x}, want {:#x}",
                0xd0 + t as u8
            ),
        );
    }
}

/// INVLPGB + TLBSYNC, ranged and full (AMD Zen 3+; written from AMD's manual, behind its CPUID
/// bit: it runs on no CPU this lab has been run on so far).
fn invlpgb(ctx: &mut Ctx<'_>) {
    let Some(b) = tlb::Invlpgb::new() else {
        return;
    };
    let Some(mut space) = Space::open(ctx, false) else {
        return;
    };
    use x86_64::structures::paging::{Page, Size4KiB};
    let first = Page::<Size4KiB>::containing_address(VirtAddr::new(WS));
    for (name, pages) in [("invlpgb-ranged", 8u64), ("invlpgb-full", 0)] {
        ctx.measure(
            name,
            "op",
            1,
            format_args!("{{\"measures\":\"broadcast flush + tlbsync\",\"pages\":{pages}}}"),
            &mut (),
            |_| {
                touch(WS, 64);
            },
            |_| {
                if pages > 0 {
                    b.build().pages(Page::range(first, first + pages)).flush();
                } else {
                    b.build().include_global().flush();
                }
                b.tlbsync();
            },
        );
    }
    // Ranged against full broadcast, flush + refill (the crossover AMD's manual leaves open).
    let pair = Pair {
        per: ("invlpgb-ranged-refill", |size, n| {
            if let Some(b) = tlb::Invlpgb::new() {
                let first = Page::<Size4KiB>::containing_address(VirtAddr::new(size.base()));
                b.build().pages(Page::range(first, first + n)).flush();
                b.tlbsync();
            }
        }),
        full: ("invlpgb-full-refill", |_, _| {
            if let Some(b) = tlb::Invlpgb::new() {
                b.build().flush();
                b.tlbsync();
            }
        }),
    };
    if let Some(costs) = sweep(ctx, &mut space, Size::K4, &SIZES, pair) {
        state_crossover(ctx, &mut space, Size::K4, &costs, pair);
    }
    let bframe = if space.on_b { space.a } else { space.b };
    stamp(bframe, 1, 0xe7);
    touch(WS, 1);
    let ok = space.remap(1, false);
    b.build().pages(Page::range(first, first + 1)).flush();
    b.tlbsync();
    let got = touch(WS, 1) as u8;
    space.leave();
    ctx.check(
        "invlpgb_new_frame_seen",
        ok && got == 0xe7,
        format_args!("after a remap, INVLPGB and TLBSYNC: read {got:#x}, want 0xe7"),
    );
}

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
        let flush = if full {
            self.pair.full.1
        } else {
            self.pair.per.1
        };
        let t0 = timing::start();
        flush(Size::K4, pages);
        touch(WS, pages);
        timing::stop(self.rdtscp).wrapping_sub(t0)
    }
}

/// Two ways to invalidate the first n pages of a working set: page by page, or all at once.
#[derive(Clone, Copy)]
struct Pair {
    per: (&'static str, fn(Size, u64)),
    full: (&'static str, fn(Size, u64)),
}

impl Pair {
    fn invlpg_vs_cr3(size: Size) -> Pair {
        Pair {
            per: (
                refill_name(Strategy::Invlpg, size),
                flush_fn(Strategy::Invlpg),
            ),
            full: (
                refill_name(Strategy::Cr3Reload, size),
                flush_fn(Strategy::Cr3Reload),
            ),
        }
    }
}

/// The cost of one round per page count, both strategies, for one page size.
fn sweep<const N: usize>(
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
fn state_crossover(
    ctx: &mut Ctx<'_>,
    space: &mut Space,
    size: Size,
    costs: &[RoundCost],
    pair: Pair,
) -> (f64, u64) {
    let rdtscp = ctx.platform.cpu().rdtscp;
    let t0 = timing::start();
    let (policy, _) = calibrate(
        &mut Probe {
            space,
            rdtscp,
            pair,
        },
        2,
    );
    let calibration_ticks = timing::stop(rdtscp).wrapping_sub(t0);
    if size == Size::K4 {
        CALIBRATED_CEILING.store(policy.ceiling, core::sync::atomic::Ordering::Relaxed);
    }
    let worst = worst_excess(policy.ceiling, costs);
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
pub(super) fn write_crossover(
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

/// A policy's worst cost over the best choice at each size measured (1.0: always the best).
fn worst_excess(ceiling: u64, costs: &[RoundCost]) -> f64 {
    costs
        .iter()
        .map(|c| {
            let chosen = if c.pages <= ceiling {
                c.per_page
            } else {
                c.full
            };
            chosen / c.per_page.min(c.full)
        })
        .fold(1.0f64, f64::max)
}

/// N* for invlpg against a full flush, with 4 KiB and with 2 MiB pages (not global), what
/// fixed ceilings cost against it, and the policy `calibrate` finds: its ceiling, what
/// calibrating took, how far its choices are from the best at each N.
fn crossover_and_policy(ctx: &mut Ctx<'_>) {
    let Some(mut space) = Space::open(ctx, false) else {
        return;
    };
    let small = sweep(
        ctx,
        &mut space,
        Size::K4,
        &SIZES,
        Pair::invlpg_vs_cr3(Size::K4),
    );
    let huge = sweep(
        ctx,
        &mut space,
        Size::M2,
        &SIZES_2M,
        Pair::invlpg_vs_cr3(Size::M2),
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
        Pair::invlpg_vs_cr3(Size::K4),
    );
    let _ = state_crossover(
        ctx,
        &mut space,
        Size::M2,
        &huge,
        Pair::invlpg_vs_cr3(Size::M2),
    );
    space.leave();
    let tsc_hz = ctx.platform.tsc().hz.unwrap_or(0);
    let (pages, execution) = (ctx.pool.pages(), ctx.execution);
    if tsc_hz > 0 {
        let ms = ticks as f64 / (tsc_hz as f64 / 1000.0);
        CALIBRATION_TIME.judge(ctx.out, ms, pages, execution, ctx.counts);
    }
    CALIBRATED_POLICY.judge(ctx.out, worst, pages, execution, ctx.counts);
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
