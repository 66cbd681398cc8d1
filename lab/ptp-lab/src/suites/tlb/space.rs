//! The test address space the TLB and shootdown benchmarks run in: a modifiable PTP built from
//! the pool with a bump allocator (its tables stay linked when pages are remapped), loaded in
//! CR3, its mapper working through the self-map as Shelter's does; a 4 KiB working set on two
//! frame sets (A and B) to remap between, a collateral set, and a 2 MiB working set.

use crate::platform::{map_kernel, reason, Reason};
use crate::suites::Ctx;
use core::hint::black_box;
use vystem_ptp::{BumpAllocator, PageSize, Ptp};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTableFlags as F, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

/// Where the working sets live (lower half, away from everything else).
pub(crate) const WS: u64 = 0x0000_5000_0000_0000;
/// The collateral set: pages the change does not touch.
pub(super) const OTHER: u64 = 0x0000_5080_0000_0000;
/// Largest working set, in 4 KiB pages.
const MAX_PAGES: u64 = 4096;
pub(super) const OTHER_PAGES: u64 = 64;
/// The refill sweep, 4 KiB pages: every power of two.
pub(super) const SIZES: [u64; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
/// The refill sweep, 2 MiB pages.
pub(super) const SIZES_2M: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];
/// The 2 MiB working set: every page aliases one of two 2 MiB frames (a TLB entry is per
/// virtual page), so 64 pages need 4 MiB of RAM, not 128.
const WS_2M: u64 = 0x0000_5100_0000_0000;
const HUGE: u64 = 2 << 20;
const MAX_2M: u64 = 64;
const SELF_MAP: u64 = crate::suites::SELF_MAP;
const FLAGS: F = F::PRESENT.union(F::WRITABLE).union(F::NO_EXECUTE);

/// The two working sets: 4 KiB pages at `WS`, 2 MiB pages at `WS_2M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Size {
    K4,
    M2,
}

impl Size {
    pub(super) fn base(self) -> u64 {
        match self {
            Size::K4 => WS,
            Size::M2 => WS_2M,
        }
    }
    pub(super) fn step(self) -> u64 {
        match self {
            Size::K4 => 4096,
            Size::M2 => HUGE,
        }
    }
    pub(super) fn page_size(self) -> PageSize {
        match self {
            Size::K4 => PageSize::Size4KiB,
            Size::M2 => PageSize::Size2MiB,
        }
    }
    pub(super) fn name(self) -> &'static str {
        self.page_size().name()
    }
}

/// The loaded test address space.
pub(crate) struct Space {
    pub(crate) ptp: Ptp<BumpAllocator>,
    pub(crate) old: (PhysFrame, Cr3Flags),
    /// How the kernel reaches the pool outside this space.
    window: VirtAddr,
    /// Frame sets A and B (each MAX_PAGES pages) and which one WS maps now.
    pub(super) a: PhysAddr,
    pub(super) b: PhysAddr,
    pub(super) on_b: bool,
    /// The two 2 MiB frames every page of the 2 MiB set maps, and which one now.
    a2: PhysAddr,
    b2: PhysAddr,
    on_b2: bool,
}

impl Space {
    /// [`Space::enter`], or a failed `tlb_setup` check saying why (the benchmark then stops).
    pub(crate) fn open(ctx: &mut Ctx<'_>, global_ws: bool) -> Option<Space> {
        Space::enter(ctx, global_ws)
            .map_err(|why| ctx.check("tlb_setup", false, format_args!("{why}")))
            .ok()
    }

    /// Build the PTP (kernel identity, WS on A, OTHER), load it, work through its self-map.
    pub(crate) fn enter(ctx: &mut Ctx<'_>, global_ws: bool) -> Result<Space, Reason> {
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
    pub(crate) fn remap(&mut self, pages: u64, global: bool) -> bool {
        let to = if self.on_b { self.a } else { self.b };
        let flags = if global { FLAGS | F::GLOBAL } else { FLAGS };
        let m = &mut self.ptp.mapper;
        let ok = m
            .unmap_range(VirtAddr::new(WS), pages * 4096)
            .map(|u| release_for_the_remap(m, u))
            .is_ok()
            && m.map_range(VirtAddr::new(WS), to, pages, PageSize::Size4KiB, flags)
                .map(|f| f.ignore())
                .is_ok();
        self.on_b = !self.on_b;
        ok
    }

    /// Map the first `pages` pages of `size`'s working set elsewhere (no flush).
    pub(super) fn remap_at(&mut self, size: Size, pages: u64, global: bool) -> bool {
        if size == Size::K4 {
            return self.remap(pages, global);
        }
        let to = if self.on_b2 { self.a2 } else { self.b2 };
        let m = &mut self.ptp.mapper;
        let mut ok = m
            .unmap_range(VirtAddr::new(WS_2M), pages * HUGE)
            .map(|u| release_for_the_remap(m, u))
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
    pub(crate) fn other(&self) -> PhysAddr {
        if self.on_b {
            self.a
        } else {
            self.b
        }
    }

    /// The frame set WS maps now, and its identity address (to read behind the TLB's back).
    pub(crate) fn current(&self) -> PhysAddr {
        if self.on_b {
            self.b
        } else {
            self.a
        }
    }

    pub(crate) fn leave(mut self) {
        // SAFETY: back to the pool's own window before the PTP leaves CR3.
        let _ = unsafe { self.ptp.mapper.rebase(self.window) };
        // SAFETY: the tables we were running on before.
        unsafe { Cr3::write(self.old.0, self.old.1) };
    }
}

/// Touch one byte in each of `pages` 4 KiB pages from `base`: one TLB fill each when cold.
#[inline(always)]
pub(crate) fn touch(base: u64, pages: u64) -> u64 {
    touch_step(base, pages, 4096)
}

#[inline(always)]
pub(super) fn touch_step(base: u64, pages: u64, step: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..pages {
        // SAFETY: the working sets are mapped readable in the loaded PTP.
        sum = sum.wrapping_add(unsafe { ((base + i * step) as *const u8).read_volatile() } as u64);
    }
    black_box(sum)
}

/// Write `value` into the first byte of each page of a frame set, through the identity map.
pub(crate) fn stamp(frames: PhysAddr, pages: u64, value: u8) {
    for i in 0..pages {
        // SAFETY: frames handed out for the working sets, identity-mapped in both spaces.
        unsafe { ((frames.as_u64() + i * 4096) as *mut u8).write_volatile(value) };
    }
}

/// A remap's unmap, its emptied tables released before the new mapping is made: what these
/// benchmarks measure is the flush after the whole remap, which the caller's strategy does
/// before the working set is touched again (and the remap maps the same range, so its tables
/// take the same places). A kernel's own remap flushes first: `Unmap::flush_with`.
fn release_for_the_remap<A: vystem_ptp::PageAllocator>(
    m: &mut vystem_ptp::PoolMapper<A>,
    u: vystem_ptp::Unmap,
) {
    // SAFETY: see above: the caller's strategy flushes the range before it is used again.
    let _ = m.release(unsafe { u.assume_flushed() });
}
