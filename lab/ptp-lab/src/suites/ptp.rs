//! `ptp`: building modifiable and unmodifiable PTPs (cost per pool size), and — in ring 0 —
//! loading them into CR3 and checking through the MMU that they behave: the self-map aliases
//! the pool, a mapping made through the self-map is visible at its physical alias, and after
//! unmap + flush the address faults.

use super::base::{always, needs_ring0, Bench, Ctx};
use crate::config::Suite;
use crate::platform::{map_kernel, Fault, Mmu};
use core::hint::black_box;
use vystem_ptp::{BitmapAllocator, PageSize, Pool, Ptp};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

/// Where modifiable PTPs map their pool (top 1 TiB of the kernel half).
pub const SELF_MAP: u64 = 0xffff_ff00_0000_0000;
/// A lower-half address the checks map and unmap.
const TEST_VA: u64 = 0x0000_6000_0000_0000;

/// The contenders of [`BUILD`]: the two kinds of PTP.
pub const MODIFIABLE: &str = "modifiable";
pub const UNMODIFIABLE: &str = "unmodifiable";

pub const BUILD: Bench = Bench {
    name: "ptp_build",
    suite: Suite::Ptp,
    precondition: always,
    run: build,
};
pub const MODIFIABLE_IN_CR3: Bench = Bench {
    name: "ptp_modifiable_in_cr3",
    suite: Suite::Ptp,
    precondition: needs_ring0,
    run: modifiable_in_cr3,
};
pub const UNMODIFIABLE_IN_CR3: Bench = Bench {
    name: "ptp_unmodifiable_in_cr3",
    suite: Suite::Ptp,
    precondition: needs_ring0,
    run: unmodifiable_in_cr3,
};

fn build(ctx: &mut Ctx<'_>) {
    let pool = ctx.pool;
    let n = pool.pages();
    let self_map = VirtAddr::new(SELF_MAP);
    let fill = ctx.platform.cpu().fill();
    // (allocator, self-map tables, ok). The PTP borrows the allocator: no 8 KiB move is timed.
    let mut st = (BitmapAllocator::new(n), 0u32, true);
    let params = crate::params! { "self_map": crate::json::Hex(SELF_MAP) };
    let reset = |st: &mut (BitmapAllocator, u32, bool)| st.0.reset_from_counter(n, 1);
    ctx.measure(
        MODIFIABLE,
        "op",
        1,
        params,
        &mut st,
        reset,
        |st| match Ptp::modifiable_with(black_box(pool), &mut st.0, black_box(self_map), fill) {
            Ok(p) => st.1 = p.self_map_tables(),
            Err(_) => st.2 = false,
        },
    );
    let want = n.div_ceil(512) + 2;
    ctx.check(
        "self_map_tables",
        st.2 && st.1 == want,
        format_args!(
            "the self-map of {n} pages took {} table pages, expected {want}",
            st.1
        ),
    );
    ctx.measure(
        UNMODIFIABLE,
        "op",
        1,
        crate::json::Fields::EMPTY,
        &mut st,
        reset,
        |st| {
            black_box(Ptp::unmodifiable_with(black_box(pool), &mut st.0, fill).cr3_frame());
        },
    );
}

/// Load `frame` into CR3, run `f`, restore the previous CR3.
pub(super) fn with_cr3(
    mmu: &mut dyn Mmu,
    frame: x86_64::structures::paging::PhysFrame,
    f: impl FnOnce(&mut dyn Mmu),
) {
    let old = mmu.cr3();
    // SAFETY: the caller built `frame`'s tables with `map_kernel`, so the running code, its
    // stacks and the identity-mapped RAM it touches stay mapped.
    unsafe { mmu.load_cr3(frame) };
    f(mmu);
    // SAFETY: the tables we were running on before.
    unsafe { mmu.load_cr3(old) };
}

fn scratch_ptr(p: PhysAddr, pool: &Pool) -> *mut u8 {
    // The kernel reaches RAM the way it reaches the pool: window - phys offset.
    (pool
        .window()
        .as_u64()
        .wrapping_sub(pool.phys_base().as_u64())
        + p.as_u64()) as *mut u8
}

fn modifiable_in_cr3(ctx: &mut Ctx<'_>) {
    let pool = ctx.pool;
    let n = pool.pages();
    let scratch = ctx.platform.scratch();
    let mut ptp = match Ptp::modifiable(pool, BitmapAllocator::new(n), VirtAddr::new(SELF_MAP)) {
        Ok(p) => p,
        Err(e) => {
            ctx.check("modifiable_build", false, format_args!("{e:?}"));
            return;
        }
    };
    let Some(mmu) = ctx.platform.mmu() else {
        return;
    };
    // The pool is reached through the self-map only, as in Shelter: no identity alias.
    if let Err(e) = map_kernel(mmu, &mut ptp.mapper) {
        ctx.check("modifiable_maps_kernel", false, format_args!("{e:?}"));
        return;
    }
    let frame = ptp.cr3_frame();
    let before = ptp.mapper.usage();
    // Results are gathered inside (no output while on the new tables would be fine too, but
    // keeping the switch short keeps a fault report simple), then reported.
    let mut r = Results::default();
    let last = n - 1;
    let mut no_window = None;
    with_cr3(mmu, frame, |mmu| {
        // 1. The self-map aliases the pool: write through it (read back below, outside).
        let via_self = SELF_MAP + last as u64 * 4096 + 123;
        r.self_write = mmu.probe_write(via_self, 0xa5).is_ok();
        no_window = Some(mmu.probe_read(pool.window().as_u64()));
        // 2. Work through the self-map: the mapper reaches its tables at SELF_MAP now.
        // SAFETY: the self-map aliases the whole pool, and this PTP is in CR3.
        r.rebased = unsafe { ptp.mapper.rebase(VirtAddr::new(SELF_MAP)) }.is_ok();
        alias_and_fault(mmu, &mut ptp, scratch, &pool, &mut r);
        // SAFETY: back to the original window before the PTP leaves CR3.
        let _ = unsafe { ptp.mapper.rebase(pool.window()) };
    });
    // SAFETY: pool page `last` is free (only the root and tables are in use), so its bytes
    // are ours to scribble on; read through the kernel's own mapping of the pool.
    r.self_read = unsafe { (pool.page_ptr(last) as *const u8).add(123).read_volatile() };
    report(ctx, MODIFIABLE, &r, before == ptp.mapper.usage());
    let nw = no_window.unwrap_or(Ok(0));
    ctx.check(
        "pool_only_through_self_map",
        matches!(nw, Err(f) if f.vector == 14 && f.cr2 == pool.window().as_u64()),
        format_args!("reading the PML4 at its physical address from inside: {nw:?}"),
    );
    ctx.check(
        "self_map_aliases_pool",
        r.self_write && r.self_read == 0xa5,
        format_args!(
            "write via {:#x} ok {}; read back through the kernel's tables {:#x}",
            SELF_MAP, r.self_write, r.self_read
        ),
    );
    ctx.check(
        "mapper_rebased_to_self_map",
        r.rebased,
        format_args!("window {:#x}", SELF_MAP),
    );
    ctx.check(
        "audit_pool_only_in_self_map",
        ptp.audit().is_ok(),
        format_args!("{:?}", ptp.audit()),
    );
}

/// An unmodifiable PTP does not map its own pool, so the code running in it cannot edit it:
/// the kernel edits it from its own address space and loads it only to look through it.
fn unmodifiable_in_cr3(ctx: &mut Ctx<'_>) {
    let pool = ctx.pool;
    let n = pool.pages();
    let scratch = ctx.platform.scratch();
    let mut ptp = Ptp::unmodifiable(pool, BitmapAllocator::new(n));
    let Some(mmu) = ctx.platform.mmu() else {
        return;
    };
    if let Err(e) = map_kernel(mmu, &mut ptp.mapper) {
        ctx.check("unmodifiable_maps_kernel", false, format_args!("{e:?}"));
        return;
    }
    let before = ptp.mapper.usage();
    let mut r = Results::default();
    let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE;
    r.mapped = ptp
        .mapper
        .map_page(VirtAddr::new(TEST_VA), scratch, PageSize::Size4KiB, flags)
        .map(|f| f.ignore()) // not loaded: the CR3 load below starts it afresh
        .is_ok();
    let (mut no_self_map, mut no_pool) = (None, None);
    with_cr3(mmu, ptp.cr3_frame(), |mmu| {
        no_self_map = Some(mmu.probe_read(SELF_MAP));
        no_pool = Some(mmu.probe_read(pool.window().as_u64()));
        r.alias_write = mmu.probe_write(TEST_VA + 0x42, 0x5a).is_ok();
    });
    // SAFETY: the scratch page is reserved for these checks.
    r.alias_read = unsafe { scratch_ptr(scratch, &pool).add(0x42).read_volatile() };
    let unmap = ptp.mapper.unmap_range(VirtAddr::new(TEST_VA), 4096);
    r.unmapped = unmap.as_ref().is_ok_and(|u| u.range().pages() == 1);
    let mut flushed = None;
    with_cr3(mmu, ptp.cr3_frame(), |mmu| {
        r.after_unmap = Some(mmu.probe_read(TEST_VA + 0x42));
        flushed = unmap.ok().map(|u| u.flush_each());
    });
    // Released once back in the kernel's own tables: this PTP does not map its pool.
    if let Some(f) = flushed {
        let _ = ptp.mapper.release(f);
    }
    report(ctx, UNMODIFIABLE, &r, before == ptp.mapper.usage());
    let nsm = no_self_map.unwrap_or(Ok(0));
    ctx.check(
        "no_self_map",
        matches!(nsm, Err(f) if f.vector == 14 && f.cr2 == SELF_MAP),
        format_args!("reading {SELF_MAP:#x}: {nsm:?}"),
    );
    let np = no_pool.unwrap_or(Ok(0));
    let root = pool.window().as_u64();
    ctx.check(
        "pool_not_reachable",
        matches!(np, Err(f) if f.vector == 14 && f.cr2 == root),
        format_args!("reading the PML4 at {root:#x} from inside: {np:?}"),
    );
    ctx.check(
        "audit_no_pool_alias",
        ptp.audit().is_ok(),
        format_args!("{:?}", ptp.audit()),
    );
}

#[derive(Default)]
struct Results {
    self_write: bool,
    self_read: u8,
    rebased: bool,
    mapped: bool,
    alias_write: bool,
    alias_read: u8,
    unmapped: bool,
    after_unmap: Option<Result<u8, Fault>>,
}

/// Map TEST_VA to the scratch page, write through it, read the physical alias; unmap, flush,
/// and probe: the access must fault with CR2 = TEST_VA.
fn alias_and_fault(
    mmu: &mut dyn Mmu,
    ptp: &mut Ptp<BitmapAllocator>,
    scratch: PhysAddr,
    pool: &Pool,
    r: &mut Results,
) {
    let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE;
    match ptp
        .mapper
        .map_page(VirtAddr::new(TEST_VA), scratch, PageSize::Size4KiB, flags)
    {
        Ok(f) => {
            f.flush_each();
            r.mapped = true;
        }
        Err(_) => return,
    }
    r.alias_write = mmu.probe_write(TEST_VA + 0x42, 0x5a).is_ok();
    // SAFETY: the scratch page is reserved for these checks.
    r.alias_read = unsafe { scratch_ptr(scratch, pool).add(0x42).read_volatile() };
    match ptp.mapper.unmap_range(VirtAddr::new(TEST_VA), 4096) {
        Ok(u) => {
            r.unmapped = u.range().pages() == 1;
            let _ = ptp.mapper.release(u.flush_each());
        }
        Err(_) => r.unmapped = false,
    }
    r.after_unmap = Some(mmu.probe_read(TEST_VA + 0x42));
}

fn report(ctx: &mut Ctx<'_>, kind: &str, r: &Results, tables_back: bool) {
    let mut name = crate::fixedstr::FixedStr::<48>::new();
    let mut named = |suffix: &str| {
        name = crate::fixedstr::FixedStr::new();
        let _ = core::fmt::Write::write_fmt(&mut name, format_args!("{kind}_{suffix}"));
        name
    };
    ctx.check(
        named("alias_write_read").as_str(),
        r.mapped && r.alias_write && r.alias_read == 0x5a,
        format_args!(
            "mapped {}; wrote 0x5a via {TEST_VA:#x}: {}; read {:#x} via the physical alias",
            r.mapped, r.alias_write, r.alias_read
        ),
    );
    let fault = r.after_unmap.unwrap_or(Ok(0));
    ctx.check(
        named("unmap_flush_then_fault").as_str(),
        r.unmapped && matches!(fault, Err(f) if f.vector == 14 && f.cr2 == TEST_VA + 0x42),
        format_args!("unmapped {}; access after the flush: {fault:?}", r.unmapped),
    );
    ctx.check(
        named("tables_returned").as_str(),
        tables_back,
        format_args!("the tables the test mapping took are back in the bitmap pool: {tables_back}"),
    );
}
