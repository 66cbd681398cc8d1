//! `map`: mapping large regions on real (kernel) or simulated (host) page tables, per page, in
//! ticks. Contenders in the same run: our batched `map_range` from a fresh pool (cold) and into
//! tables that already exist (warm), our per-page `map_page` loop, the x86_64 crate's
//! `OffsetPageTable::map_to` loop over the same pool, and a memset of as many bytes as the
//! mapping writes (the store-bandwidth limit).

use super::{Bench, Ctx};
use crate::config::Suite;
use crate::platform::{reason, Reason};
use core::hint::black_box;
use vystem_ptp::{
    predict_tables, BumpAllocator, MapError, PageSize, Pool, PoolFrames, PoolMapper, Region,
};
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageSize as X86PageSize, PageTableFlags as F, PhysFrame,
    Size1GiB, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

const VIRT: u64 = 0xffff_8000_0000_0000;
const PHYS: u64 = 0x1_0000_0000;
const FLAGS: F = F::PRESENT.union(F::WRITABLE).union(F::NO_EXECUTE);

/// What each benchmark maps: page size and number of pages, from [`VIRT`] to [`PHYS`].
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    pub bench: &'static str,
    pub size: PageSize,
    pub pages: u64,
}

pub const MAPPINGS: [Mapping; 3] = [
    Mapping {
        bench: "map_1GiB_4KiB",
        size: PageSize::Size4KiB,
        pages: 1 << 18,
    },
    Mapping {
        bench: "map_64GiB_2MiB",
        size: PageSize::Size2MiB,
        pages: 64 << 9,
    },
    Mapping {
        bench: "map_64GiB_1GiB",
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
    let mut st = State {
        m: PoolMapper::create(pool, BumpAllocator::new(n)).with_fill(fill),
        err: None,
    };
    let cold = crate::params! { "page_size": size.name(), "pages": count, "tables": "fresh pool" };
    ctx.measure(
        "lab-map_range",
        "page",
        count,
        cold,
        &mut st,
        |st| st.m.reset(BumpAllocator::new(n)),
        |st| map_range(st, size, count),
    );
    verify(ctx, "map_range", &st.m, size, count, st.err);

    let warm = crate::params! { "page_size": size.name(), "pages": count, "tables": "present" };
    let unmap = |st: &mut State| match st.m.unmap_range(VirtAddr::new(VIRT), count * size.bytes()) {
        Ok(f) => f.ignore(),
        Err(_) => {
            st.err = Some(MapError::AlreadyMapped {
                virt: VirtAddr::new(VIRT),
            })
        }
    };
    ctx.measure(
        "lab-map_range-warm",
        "page",
        count,
        warm,
        &mut st,
        unmap,
        |st| map_range(st, size, count),
    );
    verify(ctx, "map_range_warm", &st.m, size, count, st.err);

    let loop_params = crate::params! { "page_size": size.name(), "pages": count };
    ctx.measure(
        "lab-map_page-loop",
        "page",
        count,
        loop_params,
        &mut st,
        |st| st.m.reset(BumpAllocator::new(n)),
        |st| {
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
    );
    verify(ctx, "map_page_loop", &st.m, size, count, st.err);

    // The peer walks the same pool's pages, through the same window.
    let peer_params = crate::params! { "page_size": size.name(), "pages": count };
    let mut ok = true;
    let mut peer = (st, &mut ok);
    ctx.measure(
        "x86_64-map_to",
        "page",
        count,
        peer_params,
        &mut peer,
        |(st, _)| st.m.reset(BumpAllocator::new(n)),
        |(_, ok)| {
            **ok &= match size {
                PageSize::Size4KiB => map_to_loop::<Size4KiB>(pool, count),
                PageSize::Size2MiB => map_to_loop::<Size2MiB>(pool, count),
                PageSize::Size1GiB => map_to_loop::<Size1GiB>(pool, count),
            };
        },
    );
    match PoolMapper::adopt(pool, BumpAllocator::new(n)) {
        Ok(adopted) => verify(
            ctx,
            "x86_64_map_to",
            &adopted,
            size,
            count,
            (!ok).then_some(MapError::PoolExhausted { needed: 0, left: 0 }),
        ),
        Err(e) => {
            ctx.check("x86_64_map_to_layout", false, format_args!("{e:?}"));
        }
    }

    let bytes = m.tables() * 4096;
    let limit = crate::params! { "bytes": bytes };
    ctx.measure(
        "memset-limit",
        "page",
        count,
        limit,
        &mut (),
        |_| {},
        |_| {
            // SAFETY: the pool's own memory; `bytes` <= pool size (precondition).
            unsafe {
                core::ptr::write_bytes(pool.page_ptr(0) as *mut u8, 0, black_box(bytes as usize))
            }
        },
    );
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
