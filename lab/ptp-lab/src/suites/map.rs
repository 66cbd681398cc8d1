//! `map`: mapping and unmapping large regions on real (kernel) or simulated (host) page tables,
//! per page, in ticks. Mapping, in the same run: our batched `map_range` from a fresh pool
//! (cold) and into tables that already exist (warm), our per-page `map_page` loop, the x86_64
//! crate's `OffsetPageTable::map_to` loop over the same pool, and a memset of as many bytes as
//! the mapping writes (the store-bandwidth limit). Unmapping the same regions: our
//! `unmap_range` with the bitmap (emptied tables freed to it, after the flush: its release) and
//! with bump (tables stay), the
//! x86_64 crate's per-page `unmap` loop and its `CleanUp::clean_up` (freeing to the bitmap),
//! and memsets of the bytes each of ours writes.

use super::base::{Bench, Ctx, Ref};
use crate::config::Suite;
use crate::platform::{reason, Reason};
use crate::timing::{Closures, Work};
use core::hint::black_box;
use vystem_ptp::{
    predict_tables, BitmapAllocator, BumpAllocator, MapError, PageAllocator, PageSize, Pool,
    PoolFrames, PoolMapper, Region,
};
use x86_64::structures::paging::mapper::CleanUp;
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageSize as X86PageSize, PageTableFlags as F, PhysFrame,
    Size1GiB, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

const VIRT: u64 = 0xffff_8000_0000_0000;
const PHYS: u64 = 0x1_0000_0000;
const FLAGS: F = F::PRESENT.union(F::WRITABLE).union(F::NO_EXECUTE);

/// The contenders' names, written once: the target table and the roles take them from here.
/// ours, batched, from a fresh pool.
pub const MAP_RANGE: &str = "lab-map_range";
/// ours, into tables that exist.
pub const MAP_RANGE_WARM: &str = "lab-map_range-warm";
/// ours, one map_page per page.
pub const MAP_PAGE_LOOP: &str = "lab-map_page-loop";
/// the x86_64 crate's map_to loop.
pub const PEER_MAP_TO: &str = "x86_64-map_to";
/// every entry read, then the memset.
pub const READ_STORE_LIMIT: &str = "read+memset-limit";
/// a memset of the bytes written.
pub const STORE_LIMIT: &str = "memset-limit";
/// the same, with the freed tables and bitmap words.
pub const STORE_LIMIT_BITMAP: &str = "memset-limit-bitmap";
/// ours, emptied tables freed to the bitmap.
pub const UNMAP_BITMAP: &str = "lab-unmap_range-bitmap";
/// ours, emptied tables freed to the bitmap at once, as they are cleared (what an unmap did
/// before its tables waited for the flush: `unmap_unloaded`).
pub const UNMAP_BITMAP_NOW: &str = "lab-unmap_range-bitmap-now";
/// ours, tables kept (bump).
pub const UNMAP_BUMP: &str = "lab-unmap_range-bump";
/// the x86_64 crate's unmap loop and clean_up.
pub const PEER_UNMAP: &str = "x86_64-unmap+clean_up";
/// every entry read and cleared.
pub const READ_CLEAR_LIMIT: &str = "read+clear-limit";

/// What each benchmark maps: page size and number of pages, from [`VIRT`] to [`PHYS`].
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    pub bench: &'static str,
    /// The benchmark that unmaps it.
    pub unmap: &'static str,
    pub size: PageSize,
    pub pages: u64,
}

pub const MAPPINGS: [Mapping; 3] = [
    Mapping {
        bench: "map_1GiB_4KiB",
        unmap: "unmap_1GiB_4KiB",
        size: PageSize::Size4KiB,
        pages: 1 << 18,
    },
    Mapping {
        bench: "map_64GiB_2MiB",
        unmap: "unmap_64GiB_2MiB",
        size: PageSize::Size2MiB,
        pages: 64 << 9,
    },
    Mapping {
        bench: "map_64GiB_1GiB",
        unmap: "unmap_64GiB_1GiB",
        size: PageSize::Size1GiB,
        pages: 64,
    },
];

pub const MAP_1GIB_4KIB: Bench = Bench {
    name: MAPPINGS[0].bench,
    suite: Suite::Map,
    precondition: |ctx| fits(ctx, MAPPINGS[0]),
    run: |ctx| run(ctx, MAPPINGS[0]),
};
pub const MAP_64GIB_2MIB: Bench = Bench {
    name: MAPPINGS[1].bench,
    suite: Suite::Map,
    precondition: |ctx| fits(ctx, MAPPINGS[1]),
    run: |ctx| run(ctx, MAPPINGS[1]),
};
pub const MAP_64GIB_1GIB: Bench = Bench {
    name: MAPPINGS[2].bench,
    suite: Suite::Map,
    precondition: |ctx| {
        if !ctx.platform.cpu().pages_1g {
            return Err(reason(format_args!(
                "CPU lacks 1 GiB pages (CPUID 0x80000001 EDX.Page1GB)"
            )));
        }
        fits(ctx, MAPPINGS[2])
    },
    run: |ctx| run(ctx, MAPPINGS[2]),
};
pub const UNMAP_1GIB_4KIB: Bench = Bench {
    name: MAPPINGS[0].unmap,
    suite: Suite::Map,
    precondition: MAP_1GIB_4KIB.precondition,
    run: |ctx| unmap(ctx, MAPPINGS[0]),
};
pub const UNMAP_64GIB_2MIB: Bench = Bench {
    name: MAPPINGS[1].unmap,
    suite: Suite::Map,
    precondition: MAP_64GIB_2MIB.precondition,
    run: |ctx| unmap(ctx, MAPPINGS[1]),
};
pub const UNMAP_64GIB_1GIB: Bench = Bench {
    name: MAPPINGS[2].unmap,
    suite: Suite::Map,
    precondition: MAP_64GIB_1GIB.precondition,
    run: |ctx| unmap(ctx, MAPPINGS[2]),
};

impl Mapping {
    /// Pool pages the mapping takes in a fresh pool, root included (the capacity model).
    pub fn tables(&self) -> u64 {
        predict_tables(&mut [Region {
            start: VirtAddr::new(VIRT),
            pages: self.pages,
            size: self.size,
        }])
        .map_or(u64::MAX, |t| t.total()) // never: the mappings fit the address space
    }
}

fn fits(ctx: &Ctx<'_>, m: Mapping) -> Result<(), Reason> {
    let need = m.tables();
    if need > ctx.pages() as u64 {
        return Err(reason(format_args!(
            "pool of {} pages is too small: the mapping needs {need}",
            ctx.pages()
        )));
    }
    Ok(())
}

struct State {
    m: PoolMapper<BumpAllocator>,
    err: Option<MapError>,
}

fn map_range(st: &mut State, size: PageSize, count: u64) {
    let r = st.m.map_range(
        black_box(VirtAddr::new(VIRT)),
        black_box(PhysAddr::new(PHYS)),
        black_box(count),
        size,
        FLAGS,
    );
    match r {
        Ok(flush) => flush.ignore(), // not in CR3: nothing to flush
        Err(e) => st.err = Some(e),
    }
}

fn run(ctx: &mut Ctx<'_>, m: Mapping) {
    let (size, count) = (m.size, m.pages);
    let pool = ctx.pool;
    let n = pool.pages();
    let fill = ctx.platform.cpu().fill();
    let fresh = || State {
        m: PoolMapper::create(pool, BumpAllocator::new(n)).with_fill(fill),
        err: None,
    };
    let reset = |st: &mut State| st.m.reset(BumpAllocator::new(n));
    let (mut cold, mut warm, mut each, mut peer) = (fresh(), fresh(), fresh(), (fresh(), true));
    let mut cold = Closures {
        state: &mut cold,
        setup: reset,
        batch: |st: &mut State| map_range(st, size, count),
    };
    // Into tables that exist: mapped and unmapped first (bump keeps the tables).
    let mut warm = Closures {
        state: &mut warm,
        setup: |st: &mut State| {
            reset(st);
            map_range(st, size, count);
            match st.m.unmap_range(VirtAddr::new(VIRT), count * size.bytes()) {
                // SAFETY: not in CR3 (simulated, or never loaded): nothing cached.
                Ok(u) => drop(st.m.release(unsafe { u.assume_flushed() })),
                Err(_) => {
                    st.err = Some(MapError::AlreadyMapped {
                        virt: VirtAddr::new(VIRT),
                    })
                }
            }
        },
        batch: |st: &mut State| map_range(st, size, count),
    };
    let mut each = Closures {
        state: &mut each,
        setup: reset,
        batch: |st: &mut State| {
            let (v, p) = (black_box(VIRT), black_box(PHYS));
            for i in 0..count {
                let (vi, pi) = (
                    VirtAddr::new(v + i * size.bytes()),
                    PhysAddr::new(p + i * size.bytes()),
                );
                match st.m.map_page(vi, pi, size, FLAGS) {
                    Ok(f) => f.ignore(),
                    Err(e) => {
                        st.err = Some(e);
                        break;
                    }
                }
            }
        },
    };
    // The peer walks the same pool's pages, through the same window.
    let mut peer = Closures {
        state: &mut peer,
        setup: |(st, _): &mut (State, bool)| reset(st),
        batch: |(_, ok): &mut (State, bool)| {
            *ok &= match size {
                PageSize::Size4KiB => map_to_loop::<Size4KiB>(pool, count),
                PageSize::Size2MiB => map_to_loop::<Size2MiB>(pool, count),
                PageSize::Size1GiB => map_to_loop::<Size1GiB>(pool, count),
            };
        },
    };
    // Mapping into tables that exist reads every entry before it writes any (all or nothing):
    // the limit for the warm map is that read and the memset of the entries. It starts where
    // the warm map does, its entries just written (the warm map's setup maps, then unmaps):
    // in rounds, whatever ran before leaves them elsewhere in the caches.
    let entries_of = move || {
        // SAFETY: the pool's own memory; `count` entries fit in the mapping's tables.
        unsafe { core::slice::from_raw_parts_mut(pool.page_ptr(0) as *mut u64, count as usize) }
    };
    let mut read_store = Closures {
        state: &mut (),
        setup: |_: &mut ()| super::limit::store(entries_of()),
        batch: |_: &mut ()| {
            black_box(super::limit::read_then_store(fill, black_box(entries_of())));
        },
    };
    let bytes = m.tables() * 4096; // <= the pool's size: the precondition
    let limit = crate::params! { "bytes": bytes };
    let mut store_bytes = bytes;
    let mut store = store_limit(pool, &mut store_bytes);
    let mapping = crate::params! { "page_size": size.name(), "pages": count };
    let cold_params =
        crate::params! { "page_size": size.name(), "pages": count, "tables": "fresh pool" };
    let warm_params =
        crate::params! { "page_size": size.name(), "pages": count, "tables": "present" };
    let entries = crate::params! { "bytes": count * 8 };
    ctx.measure_rounds(
        &mut [
            ctx.contender(MAP_RANGE, "page", count, cold_params, &mut cold),
            ctx.contender(MAP_RANGE_WARM, "page", count, warm_params, &mut warm),
            ctx.contender(MAP_PAGE_LOOP, "page", count, mapping, &mut each),
            ctx.contender(PEER_MAP_TO, "page", count, mapping, &mut peer),
            ctx.contender(READ_STORE_LIMIT, "page", count, entries, &mut read_store),
            ctx.contender(STORE_LIMIT, "page", count, limit, &mut store),
        ],
        &[
            Ref::Peer(PEER_MAP_TO),
            Ref::Limit(STORE_LIMIT, &[MAP_RANGE, MAP_PAGE_LOOP, PEER_MAP_TO]),
            Ref::Limit(READ_STORE_LIMIT, &[MAP_RANGE_WARM]),
        ],
    );

    // The contenders share the pool, and the last round's wrote over it: each one checked
    // runs once more, alone, before its check.
    again_then_verify(ctx, "map_range", &mut cold, size, count);
    again_then_verify(ctx, "map_range_warm", &mut warm, size, count);
    again_then_verify(ctx, "map_page_loop", &mut each, size, count);
    peer.setup();
    peer.batch();
    match PoolMapper::adopt(pool, BumpAllocator::new(n)) {
        Ok(adopted) => verify(
            ctx,
            "x86_64_map_to",
            &adopted,
            size,
            count,
            (!peer.state.1).then_some(MapError::PoolExhausted { needed: 0, left: 0 }),
        ),
        Err(e) => {
            ctx.check("x86_64_map_to_layout", false, format_args!("{e:?}"));
        }
    }
}

/// Run a mapping contender once more, alone, then [`verify`] what it left.
fn again_then_verify<S: FnMut(&mut State), B: FnMut(&mut State)>(
    ctx: &mut Ctx<'_>,
    what: &str,
    work: &mut Closures<'_, State, S, B>,
    size: PageSize,
    count: u64,
) {
    work.setup();
    work.batch();
    verify(ctx, what, &work.state.m, size, count, work.state.err);
}

/// The x86_64 crate's per-page `map_to`, over the pool through its window.
fn map_to_loop<S: X86PageSize + core::fmt::Debug>(pool: Pool, count: u64) -> bool
where
    for<'a> OffsetPageTable<'a>: Mapper<S>,
{
    let mut bump = BumpAllocator::new(pool.pages());
    let offset = VirtAddr::new(
        pool.window()
            .as_u64()
            .wrapping_sub(pool.phys_base().as_u64()),
    );
    // SAFETY: the root is pool page 0; every table frame comes from the pool, which the window
    // reaches at `offset` + physical address. Our own mapper is idle meanwhile.
    let mut opt = unsafe { OffsetPageTable::new(&mut *pool.page_ptr(0), offset) };
    let mut frames = PoolFrames {
        pool,
        alloc: &mut bump,
    };
    let (v, p) = (black_box(VIRT), black_box(PHYS));
    for i in 0..count {
        let page = Page::<S>::containing_address(VirtAddr::new(v + i * S::SIZE));
        let frame = PhysFrame::<S>::containing_address(PhysAddr::new(p + i * S::SIZE));
        // SAFETY: the frames are never accessed; the tables are not in CR3.
        match unsafe { opt.map_to(page, frame, FLAGS, &mut frames) } {
            Ok(f) => f.ignore(),
            Err(_) => return false,
        }
    }
    true
}

/// The mapping is what was asked: first and last page translate right, the walk counts every
/// page, and the tables are exactly the predicted ones.
fn verify(
    ctx: &mut Ctx<'_>,
    what: &str,
    m: &PoolMapper<BumpAllocator>,
    size: PageSize,
    count: u64,
    err: Option<MapError>,
) {
    let last = VIRT + (count - 1) * size.bytes();
    let first_ok = m.translate(VirtAddr::new(VIRT)).map(|t| t.phys.as_u64()) == Ok(PHYS);
    let last_ok = m
        .translate(VirtAddr::new(last + 5))
        .map(|t| (t.phys.as_u64(), t.size))
        == Ok((PHYS + (count - 1) * size.bytes() + 5, size));
    let mut pages = 0u64;
    let walk_ok = m.for_each_mapping(&mut |_| pages += 1).is_ok();
    let tables = m.usage().tables.total();
    let want_tables = Mapping {
        bench: "",
        unmap: "",
        size,
        pages: count,
    }
    .tables();
    let ok =
        err.is_none() && first_ok && last_ok && walk_ok && pages == count && tables == want_tables;
    let mut name = crate::fixedstr::FixedStr::<48>::new();
    let _ = core::fmt::Write::write_fmt(&mut name, format_args!("{what}_layout"));
    ctx.check(
        name.as_str(),
        ok,
        format_args!("error {err:?}; first {first_ok}, last {last_ok}; {pages} of {count} pages; {tables} tables, predicted {want_tables}"),
    );
}

/// The mapper and what the last unmap said, for one allocator.
struct Unmapping<A: PageAllocator> {
    m: PoolMapper<A>,
    /// Pool pages in use once the region was mapped.
    mapped: u32,
    err: Option<&'static str>,
}

impl<A: PageAllocator> Unmapping<A> {
    fn new(pool: Pool, alloc: A, fill: vystem_ptp::Fill) -> Self {
        Unmapping {
            m: PoolMapper::create(pool, alloc).with_fill(fill),
            mapped: 0,
            err: None,
        }
    }

    /// Untimed: a fresh pool with the region mapped by our `map_range`.
    fn setup(&mut self, alloc: A, m: Mapping) {
        self.m.reset(alloc);
        match self.m.map_range(
            VirtAddr::new(VIRT),
            PhysAddr::new(PHYS),
            m.pages,
            m.size,
            FLAGS,
        ) {
            Ok(f) => f.ignore(),
            Err(_) => self.err = Some("map_range before the unmap failed"),
        }
        self.mapped = self.m.allocator().used();
    }

    /// The unmap freeing its emptied tables at once ([`PoolMapper::unmap_unloaded`]).
    fn unmap_now(&mut self, m: Mapping) {
        // SAFETY: not in CR3 (simulated, or never loaded): nothing cached.
        let r = unsafe {
            self.m.unmap_unloaded(
                black_box(VirtAddr::new(VIRT)),
                black_box(m.pages * m.size.bytes()),
            )
        };
        if r.is_err() {
            self.err = Some("unmap_unloaded failed");
        }
    }

    fn unmap(&mut self, m: Mapping) {
        match self.m.unmap_range(
            black_box(VirtAddr::new(VIRT)),
            black_box(m.pages * m.size.bytes()),
        ) {
            // Not in CR3: nothing to flush; the emptied tables go back with the release, which
            // is timed with the unmap (the deferred free's whole cost).
            Ok(u) => {
                // SAFETY: not in CR3 (simulated, or never loaded): nothing cached.
                if self.m.release(unsafe { u.assume_flushed() }).is_err() {
                    self.err = Some("release after unmap_range failed");
                }
            }
            Err(_) => self.err = Some("unmap_range failed"),
        }
    }
}

/// Bump cannot take a table back, so its unmap must leave every table linked in the tree
/// (`in_tree`, the mapper's count: the `tables` below the root and the root) and the pool's
/// pages as they were once mapped. A table unlinked under bump would be lost: `in_tree` falls.
fn bump_kept(in_tree: u64, tables: u64, used: u32, mapped: u32) -> bool {
    in_tree == tables + 1 && used == mapped
}

/// Leaf entries an unmap of `m` clears, and the tables it empties (all but the root).
fn cleared(m: Mapping) -> (u64, u64) {
    (m.pages, m.tables() - 1)
}

fn unmap(ctx: &mut Ctx<'_>, m: Mapping) {
    let n = ctx.pages();
    let pool = ctx.pool;
    let fill = ctx.platform.cpu().fill();
    let (entries, tables) = cleared(m);

    // Emptied tables go back to the bitmap: the root alone stays. Bump keeps them all.
    let mut bitmap = Unmapping::new(pool, BitmapAllocator::new(n), fill);
    let mut bitmap = Closures {
        state: &mut bitmap,
        setup: |st: &mut Unmapping<BitmapAllocator>| st.setup(BitmapAllocator::new(n), m),
        batch: |st: &mut Unmapping<BitmapAllocator>| st.unmap(m),
    };
    let mut now = Unmapping::new(pool, BitmapAllocator::new(n), fill);
    let mut now = Closures {
        state: &mut now,
        setup: |st: &mut Unmapping<BitmapAllocator>| st.setup(BitmapAllocator::new(n), m),
        batch: |st: &mut Unmapping<BitmapAllocator>| st.unmap_now(m),
    };
    let mut bump = Unmapping::new(pool, BumpAllocator::new(n), fill);
    let mut bump = Closures {
        state: &mut bump,
        setup: |st: &mut Unmapping<BumpAllocator>| st.setup(BumpAllocator::new(n), m),
        batch: |st: &mut Unmapping<BumpAllocator>| st.unmap(m),
    };
    // The peer unmaps the tables our map_range built, page by page, then frees the emptied
    // ones to the same bitmap through `PoolFrames`.
    let mut peer = Closures {
        state: &mut (BitmapAllocator::new(n), 0u32, true),
        setup: |(alloc, mapped, ok): &mut (BitmapAllocator, u32, bool)| {
            let mut mapper = PoolMapper::create(pool, BitmapAllocator::new(n)).with_fill(fill);
            *ok &= mapper
                .map_range(
                    VirtAddr::new(VIRT),
                    PhysAddr::new(PHYS),
                    m.pages,
                    m.size,
                    FLAGS,
                )
                .map(|f| f.ignore())
                .is_ok();
            *mapped = mapper.allocator().used();
            *alloc = mapper.into_parts().1;
        },
        batch: |(alloc, _, ok): &mut (BitmapAllocator, u32, bool)| {
            *ok &= match m.size {
                PageSize::Size4KiB => unmap_loop::<Size4KiB>(pool, alloc, m.pages),
                PageSize::Size2MiB => unmap_loop::<Size2MiB>(pool, alloc, m.pages),
                PageSize::Size1GiB => unmap_loop::<Size1GiB>(pool, alloc, m.pages),
            };
        },
    };

    // The store limits: the bytes each of ours writes. With bump, the cleared leaf entries; with
    // the bitmap also the entries that pointed at the freed tables and the bitmap's words for
    // them (one bit a table, its summary word included).
    let bump_bytes = entries * 8;
    let bitmap_bytes = bump_bytes + tables * 8 + tables.div_ceil(64) * 8 + 8;
    // What any unmap must do: read each entry as it clears it (to count the pages, to tell
    // leaves from tables), after reading all first where huge pages could be cut through.
    let check = m.size != PageSize::Size4KiB;
    let what = if check {
        "each entry read, then read and cleared"
    } else {
        "each entry read and cleared"
    };
    let mut read_clear = Closures {
        state: &mut (),
        setup: |_: &mut ()| {
            // SAFETY: as below; the entries to clear hold something, as a mapping's do.
            unsafe {
                core::ptr::write_bytes(pool.page_ptr(0) as *mut u8, 0xa5, (entries * 8) as usize)
            }
        },
        batch: |_: &mut ()| {
            // SAFETY: the pool's own memory; the entries fit in the mapping's tables.
            let e = unsafe {
                core::slice::from_raw_parts_mut(pool.page_ptr(0) as *mut u64, entries as usize)
            };
            black_box(super::limit::read_clear(fill, black_box(e), check));
        },
    };
    let (mut b1, mut b2) = (bump_bytes, bitmap_bytes);
    let (mut store_bump, mut store_bitmap) =
        (store_limit(pool, &mut b1), store_limit(pool, &mut b2));
    let params = crate::params! { "page_size": m.size.name(), "pages": m.pages };
    let read_clear_params = crate::params! { "bytes": entries * 8, "counts": what };
    let bump_limit = crate::params! { "bytes": bump_bytes, "counts": "cleared entries" };
    let bitmap_limit = crate::params! { "bytes": bitmap_bytes, "counts": "cleared entries, the entries of the freed tables, their bitmap words" };
    let p = m.pages;
    ctx.measure_rounds(
        &mut [
            ctx.contender(UNMAP_BITMAP, "page", p, params, &mut bitmap),
            ctx.contender(UNMAP_BITMAP_NOW, "page", p, params, &mut now),
            ctx.contender(UNMAP_BUMP, "page", p, params, &mut bump),
            ctx.contender(PEER_UNMAP, "page", p, params, &mut peer),
            ctx.contender(
                READ_CLEAR_LIMIT,
                "page",
                p,
                read_clear_params,
                &mut read_clear,
            ),
            ctx.contender(STORE_LIMIT, "page", p, bump_limit, &mut store_bump),
            ctx.contender(
                STORE_LIMIT_BITMAP,
                "page",
                p,
                bitmap_limit,
                &mut store_bitmap,
            ),
        ],
        &[
            Ref::Peer(PEER_UNMAP),
            Ref::Peer(UNMAP_BITMAP_NOW),
            Ref::Limit(
                READ_CLEAR_LIMIT,
                &[UNMAP_BITMAP, UNMAP_BITMAP_NOW, UNMAP_BUMP, PEER_UNMAP],
            ),
            Ref::Limit(
                STORE_LIMIT,
                &[UNMAP_BITMAP, UNMAP_BITMAP_NOW, UNMAP_BUMP, PEER_UNMAP],
            ),
            Ref::Limit(STORE_LIMIT_BITMAP, &[UNMAP_BITMAP, UNMAP_BITMAP_NOW]),
        ],
    );

    // The contenders share the pool: each one checked runs once more, alone, before its check.
    bitmap.setup();
    bitmap.batch();
    let st = &bitmap.state;
    let (used, mapped) = (st.m.allocator().used(), st.mapped);
    let freed = mapped.saturating_sub(used);
    let judged = (used == 1 && freed as u64 == tables, (used, freed));
    verify_unmapped(ctx, "unmap_range_bitmap", &st.m, m, st.err, judged);
    now.setup();
    now.batch();
    let st = &now.state;
    let (used, mapped) = (st.m.allocator().used(), st.mapped);
    let freed = mapped.saturating_sub(used);
    let judged = (used == 1 && freed as u64 == tables, (used, freed));
    verify_unmapped(ctx, "unmap_unloaded_bitmap", &st.m, m, st.err, judged);
    bump.setup();
    bump.batch();
    let st = &bump.state;
    let used = st.m.allocator().used();
    let in_tree = st.m.usage().tables.total();
    let judged = (bump_kept(in_tree, tables, used, st.mapped), (used, 0));
    verify_unmapped(ctx, "unmap_range_bump", &st.m, m, st.err, judged);
    peer.setup();
    peer.batch();
    let (alloc, mapped, ok) = core::mem::replace(peer.state, (BitmapAllocator::new(n), 0, true));
    let used = alloc.used();
    let freed = mapped.saturating_sub(used);
    match PoolMapper::adopt(pool, alloc) {
        Ok(adopted) => verify_unmapped(
            ctx,
            "x86_64_unmap_clean_up",
            &adopted,
            m,
            (!ok).then_some("the x86_64 crate's unmap failed"),
            (used == 1 && freed as u64 == tables, (used, freed)),
        ),
        Err(e) => {
            ctx.check("x86_64_unmap_clean_up_layout", false, format_args!("{e:?}"));
        }
    }
}

/// A memset of `bytes` over the pool's first pages: a store limit. `bytes` must fit in the pool.
fn store_limit(
    pool: Pool,
    bytes: &mut u64,
) -> Closures<'_, u64, impl FnMut(&mut u64), impl FnMut(&mut u64)> {
    Closures {
        state: bytes,
        setup: |_: &mut u64| {},
        batch: move |bytes: &mut u64| {
            // SAFETY: the pool's own memory; `bytes` fit in it (the caller's word).
            unsafe {
                core::ptr::write_bytes(pool.page_ptr(0) as *mut u8, 0, black_box(*bytes as usize))
            }
        },
    }
}

/// The x86_64 crate's per-page `unmap` over the pool, then its `clean_up` freeing the emptied
/// tables to `alloc`.
fn unmap_loop<S: X86PageSize + core::fmt::Debug>(
    pool: Pool,
    alloc: &mut BitmapAllocator,
    count: u64,
) -> bool
where
    for<'a> OffsetPageTable<'a>: Mapper<S>,
{
    let offset = VirtAddr::new(
        pool.window()
            .as_u64()
            .wrapping_sub(pool.phys_base().as_u64()),
    );
    // SAFETY: as in `map_to_loop`: the tables are pool pages our mapper built; it is idle.
    let mut opt = unsafe { OffsetPageTable::new(&mut *pool.page_ptr(0), offset) };
    let v = black_box(VIRT);
    for i in 0..count {
        let page = Page::<S>::containing_address(VirtAddr::new(v + i * S::SIZE));
        match opt.unmap(page) {
            Ok((_, f)) => f.ignore(),
            Err(_) => return false,
        }
    }
    let mut frames = PoolFrames { pool, alloc };
    // SAFETY: every table below the root is used once, in this tree only.
    unsafe { opt.clean_up(&mut frames) };
    true
}

/// After an unmap: nothing of the region translates, the walk finds no mapping, and the pool's
/// pages are as `pool` says (`ok`, with used and freed pages for the detail).
fn verify_unmapped<A: PageAllocator>(
    ctx: &mut Ctx<'_>,
    what: &str,
    m: &PoolMapper<A>,
    map: Mapping,
    err: Option<&'static str>,
    (pool_ok, (used, freed)): (bool, (u32, u32)),
) {
    let last = VIRT + (map.pages - 1) * map.size.bytes();
    let gone =
        m.translate(VirtAddr::new(VIRT)).is_err() && m.translate(VirtAddr::new(last)).is_err();
    let mut left = 0u64;
    let walk_ok = m.for_each_mapping(&mut |_| left += 1).is_ok();
    let ok = err.is_none() && gone && walk_ok && left == 0 && pool_ok;
    let mut name = crate::fixedstr::FixedStr::<48>::new();
    let _ = core::fmt::Write::write_fmt(&mut name, format_args!("{what}_leaves_nothing"));
    ctx.check(
        name.as_str(),
        ok,
        format_args!(
            "error {err:?}; first and last page unmapped {gone}; {left} mappings left; {used} pool pages used, {freed} freed, model: {} tables below the root",
            map.tables() - 1
        ),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bump_check_fails_on_a_table_unlinked() {
        // 1 GiB of 4 KiB pages: 512 PTs, a PD and a PDPT below the root.
        assert!(super::bump_kept(515, 514, 515, 515));
        // The fault it exists to catch: a PT unlinked (the tree holds one fewer), though the
        // pages in use cannot fall under bump.
        assert!(!super::bump_kept(514, 514, 515, 515));
    }
}
