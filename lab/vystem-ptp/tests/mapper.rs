//! The mapper's behaviour on simulated memory: every error, the MMU-visible layout (checked
//! against the x86_64 crate's `OffsetPageTable::translate` as an independent oracle), and the
//! pool's accounting.

use vystem_ptp::allocator::{BitmapAllocator, BumpAllocator, PageAllocator};
use vystem_ptp::capacity::{predict_tables, Region, TableCount};
use vystem_ptp::mapper::{MapError, PoolMapper, TranslateError, UnmapError};
use vystem_ptp::page_size::{PageSize, PageSizes};
use vystem_ptp::pool::{Pool, PoolError};
use vystem_ptp::ptp::{Ptp, PtpKind, SELF_MAP_FLAGS};
use vystem_ptp::sim::SimMemory;
use x86_64::structures::paging::mapper::{Translate, TranslateResult};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

mod common;
use common::UnmapNow;

const KIB4: PageSize = PageSize::Size4KiB;
const MIB2: PageSize = PageSize::Size2MiB;
const GIB1: PageSize = PageSize::Size1GiB;
const RW: F = F::PRESENT.union(F::WRITABLE);

fn va(a: u64) -> VirtAddr {
    VirtAddr::new(a)
}
fn pa(a: u64) -> PhysAddr {
    PhysAddr::new(a)
}

/// A bitmap-backed mapper over a pool that does not start at physical 0 (catches offset bugs).
fn bitmap_mapper(mem: &SimMemory, pages: u32) -> PoolMapper<BitmapAllocator> {
    let pool = mem.pool(3, pages).unwrap();
    PoolMapper::create(pool, BitmapAllocator::new(pages))
}

fn oracle(mem: &SimMemory, m: &PoolMapper<impl PageAllocator>, addr: u64) -> Option<(u64, F)> {
    // SAFETY: the pool comes from `mem`; nothing else touches it during the call.
    let opt = unsafe { mem.offset_page_table(m.pool()) };
    match opt.translate(va(addr)) {
        TranslateResult::Mapped {
            frame,
            offset,
            flags,
        } => Some((frame.start_address().as_u64() + offset, flags)),
        _ => None,
    }
}

#[test]
fn map_one_page_is_visible_to_the_oracle() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    m.map_page(
        va(0xffff_8000_1234_5000),
        pa(0xabc_d000),
        KIB4,
        RW | F::NO_EXECUTE,
    )
    .unwrap()
    .ignore();
    let t = m.translate(va(0xffff_8000_1234_5678)).unwrap();
    assert_eq!((t.phys, t.size), (pa(0xabc_d678), KIB4));
    assert!(t.flags.contains(RW | F::NO_EXECUTE));
    let (phys, flags) = oracle(&mem, &m, 0xffff_8000_1234_5678).unwrap();
    assert_eq!(phys, 0xabc_d678);
    assert!(flags.contains(F::NO_EXECUTE | F::WRITABLE));
    assert_eq!(
        m.usage().tables,
        TableCount {
            pml4: 1,
            pdpt: 1,
            pd: 1,
            pt: 1
        }
    );
    assert_eq!(m.usage().used, 4);
}

#[test]
fn tables_on_the_way_never_restrict_the_leaf() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    let user = F::PRESENT | F::USER_ACCESSIBLE;
    m.map_page(va(0x40_0000), pa(0x1000), KIB4, user)
        .unwrap()
        .ignore();
    // The oracle reports leaf flags; user access needs USER on every level, so check raw entries
    // via a walk that only passes if every level allowed it: x86_64 gives the leaf only, so read
    // the PML4 entry directly.
    let root = m.pool().page_ptr(0) as *const u64;
    let pml4e = unsafe { root.read() };
    assert_eq!(
        pml4e & (F::USER_ACCESSIBLE | F::WRITABLE | F::NO_EXECUTE).bits(),
        (F::USER_ACCESSIBLE | F::WRITABLE).bits()
    );
    let (_, flags) = oracle(&mem, &m, 0x40_0000).unwrap();
    assert!(!flags.contains(F::WRITABLE), "leaf keeps read-only");
}

#[test]
fn already_mapped_in_every_shape() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    m.map_page(va(0x20_1000), pa(0x5000), KIB4, RW)
        .unwrap()
        .ignore();
    m.map_page(va(0x4000_0000), pa(0x4000_0000), GIB1, RW)
        .unwrap()
        .ignore();
    m.map_page(va(0x80_0000), pa(0x20_0000), MIB2, RW)
        .unwrap()
        .ignore();
    let before = m.usage();
    // Same page again.
    assert_eq!(
        m.map_page(va(0x20_1000), pa(0x9000), KIB4, RW),
        Err(MapError::AlreadyMapped {
            virt: va(0x20_1000)
        })
    );
    // A range whose third page collides.
    assert_eq!(
        m.map_range(va(0x1f_f000), pa(0), 3, KIB4, RW),
        Err(MapError::AlreadyMapped {
            virt: va(0x20_1000)
        })
    );
    // 4 KiB inside a 2 MiB page, and inside a 1 GiB page.
    assert_eq!(
        m.map_page(va(0x80_3000), pa(0), KIB4, RW),
        Err(MapError::AlreadyMapped {
            virt: va(0x80_3000)
        })
    );
    assert_eq!(
        m.map_page(va(0x4020_0000), pa(0), MIB2, RW),
        Err(MapError::AlreadyMapped {
            virt: va(0x4020_0000)
        })
    );
    // A 2 MiB page where a page table already lives.
    assert_eq!(
        m.map_page(va(0x20_0000), pa(0), MIB2, RW),
        Err(MapError::TableInTheWay {
            virt: va(0x20_0000)
        })
    );
    // Nothing changed: all or nothing.
    assert_eq!(m.usage(), before);
    assert_eq!(
        m.translate(va(0x1f_f000)),
        Err(TranslateError::NotMapped {
            virt: va(0x1f_f000)
        })
    );
}

#[test]
fn misaligned_non_canonical_and_out_of_range_frames() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    assert_eq!(
        m.map_page(va(0x20_1000), pa(0x20_0000), MIB2, RW),
        Err(MapError::Misaligned {
            virt: 0x20_1000,
            phys: 0x20_0000,
            size: MIB2
        })
    );
    assert_eq!(
        m.map_page(va(0x4000_0000), pa(0x20_0000), GIB1, RW),
        Err(MapError::Misaligned {
            virt: 0x4000_0000,
            phys: 0x20_0000,
            size: GIB1
        })
    );
    // The lower half ends at 0x7fff_ffff_ffff: two pages from its last page leave it.
    assert_eq!(
        m.map_range(va(0x7fff_ffff_f000), pa(0), 2, KIB4, RW),
        Err(MapError::NonCanonical {
            addr: 0x8000_0000_0fff
        })
    );
    assert_eq!(
        m.map_range(va(0xffff_ffff_ffff_f000), pa(0), 2, KIB4, RW),
        Err(MapError::NonCanonical { addr: u64::MAX })
    );
    assert_eq!(
        m.map_range(va(0), pa((1 << 52) - 0x1000), 2, KIB4, RW),
        Err(MapError::FrameOutOfRange {
            phys: (1 << 52) + 0x1000
        })
    );
    // The very last page of each half is fine.
    m.map_page(va(0x7fff_ffff_f000), pa((1 << 52) - 0x1000), KIB4, RW)
        .unwrap()
        .ignore();
    m.map_page(va(0xffff_ffff_ffff_f000), pa(0), KIB4, RW)
        .unwrap()
        .ignore();
    assert_eq!(m.usage().used, 7);
}

#[test]
fn exhaustion_is_an_error_and_changes_nothing() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    // 1 root + 1 PDPT + 1 PD + 61 PTs fit exactly; the 62nd 2 MiB span needs one more page.
    m.map_range(va(0), pa(0), 61 * 512, KIB4, RW)
        .unwrap()
        .ignore();
    assert_eq!(m.usage().left, 0);
    assert_eq!(
        m.map_range(va(61 << 21), pa(0), 1, KIB4, RW),
        Err(MapError::PoolExhausted { needed: 1, left: 0 })
    );
    let mut m = bitmap_mapper(&mem, 64);
    assert_eq!(
        m.map_range(va(0), pa(0), 62 * 512, KIB4, RW),
        Err(MapError::PoolExhausted {
            needed: 64,
            left: 63
        })
    );
    assert_eq!(
        m.usage().used,
        1,
        "a failed range mapping allocates nothing"
    );
    assert!(m.translate(va(0)).is_err());
}

#[test]
fn foreign_tables_are_reported_not_followed() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    // A PML4 entry pointing outside the pool, as a hand-made table would.
    unsafe { (m.pool().page_ptr(0) as *mut u64).write(0x9000_0000 | RW.bits()) };
    assert_eq!(
        m.map_page(va(0x1000), pa(0), KIB4, RW),
        Err(MapError::ForeignTable { phys: 0x9000_0000 })
    );
    assert_eq!(
        m.translate(va(0x1000)),
        Err(TranslateError::ForeignTable { phys: 0x9000_0000 })
    );
    assert_eq!(
        m.unmap_now(va(0), 0x2000),
        Err(UnmapError::ForeignTable { phys: 0x9000_0000 })
    );
}

#[test]
fn one_gib_of_4kib_pages_matches_prediction_and_oracle() {
    let mem = SimMemory::new(3 + 1024);
    let mut m = bitmap_mapper(&mem, 1024);
    let base = 0xffff_8000_4000_0000;
    let flush = m
        .map_range(va(base), pa(0x1_0000_0000), 262_144, KIB4, RW)
        .unwrap();
    assert_eq!(flush.pages(), 262_144);
    flush.ignore();
    let mut region = [Region {
        start: va(base),
        pages: 262_144,
        size: KIB4,
    }];
    assert_eq!(m.usage().tables, predict_tables(&mut region).unwrap());
    assert_eq!(
        m.usage().tables,
        TableCount {
            pml4: 1,
            pdpt: 1,
            pd: 1,
            pt: 512
        }
    );
    for k in [0u64, 1, 511, 512, 100_000, 262_143] {
        let a = base + k * 4096 + 7;
        assert_eq!(
            oracle(&mem, &m, a).map(|x| x.0),
            Some(0x1_0000_0000 + k * 4096 + 7),
            "page {k}"
        );
    }
    let mut n = 0;
    let mut last = 0;
    m.for_each_mapping(&mut |map| {
        assert_eq!(map.phys.as_u64() - 0x1_0000_0000, map.virt.as_u64() - base);
        assert!(map.virt.as_u64() > last || n == 0);
        last = map.virt.as_u64();
        n += 1;
    })
    .unwrap();
    assert_eq!(n, 262_144);
}

#[test]
fn sixty_four_gib_of_2mib_pages_and_1gib_pages() {
    let mem = SimMemory::new(3 + 128);
    let mut m = bitmap_mapper(&mem, 128);
    m.map_range(va(0x80_0000_0000), pa(0), 64 * 512, MIB2, RW)
        .unwrap()
        .ignore();
    assert_eq!(
        m.usage().tables,
        TableCount {
            pml4: 1,
            pdpt: 1,
            pd: 64,
            pt: 0
        }
    );
    let (phys, flags) = oracle(&mem, &m, 0x80_0000_0000 + (63 << 30) + 0x12_3456).unwrap();
    assert_eq!(phys, (63 << 30) + 0x12_3456);
    assert!(flags.contains(F::HUGE_PAGE));
    m.map_range(va(0x100_0000_0000), pa(1 << 30), 512, GIB1, RW)
        .unwrap()
        .ignore();
    assert_eq!(m.usage().tables.pdpt, 2);
    let t = m.translate(va(0x100_0000_0000 + (5 << 30) + 77)).unwrap();
    assert_eq!((t.phys.as_u64(), t.size), ((6 << 30) + 77, GIB1));
}

#[test]
fn map_region_picks_the_largest_pages_alignment_allows() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    // 4 KiB head up to 2 MiB, 2 MiB pages up to 1 GiB, one 1 GiB page, 2 MiB, then a 4 KiB tail.
    let start = (1u64 << 30) - (2 << 20) - 0x3000;
    let bytes = 0x3000 + (2 << 20) + (1 << 30) + (4 << 20) + 0x5000;
    let stats = m
        .map_region(va(start), pa(start + (8 << 30)), bytes, PageSizes::ALL, RW)
        .unwrap();
    assert_eq!(
        (stats.pages_4kib, stats.pages_2mib, stats.pages_1gib),
        (3 + 5, 1 + 2, 1)
    );
    let only4k = m
        .map_region(
            va(0x100_0000_0000),
            pa(0),
            4 << 20,
            PageSizes::ONLY_4KIB,
            RW,
        )
        .unwrap();
    assert_eq!(only4k.pages_4kib, 1024);
    // Virtual and physical offsets disagree mod 2 MiB: 4 KiB pages only.
    let skew = m
        .map_region(va(0x200_0000_0000), pa(0x1000), 4 << 20, PageSizes::ALL, RW)
        .unwrap();
    assert_eq!(skew.pages_4kib, 1024);
    assert_eq!(
        m.translate(va(0x200_0000_0000 + 0x20_0000)).unwrap().phys,
        pa(0x20_1000)
    );
    // Every byte translates to the right place.
    for off in [
        0,
        0x2fff,
        0x3000,
        0x20_2fff,
        0x20_3000 + (1 << 30),
        bytes - 1,
    ] {
        assert_eq!(
            oracle(&mem, &m, start + off).map(|x| x.0),
            Some(start + (8 << 30) + off),
            "offset {off:#x}"
        );
    }
}

#[test]
fn unmap_returns_empty_tables_to_the_bitmap_pool() {
    let mem = SimMemory::new(3 + 1024);
    let mut m = bitmap_mapper(&mem, 1024);
    m.map_range(va(0x1000), pa(0), 1000, KIB4, RW)
        .unwrap()
        .ignore();
    m.map_range(va(0x4000_0000), pa(0), 3, MIB2, RW)
        .unwrap()
        .ignore();
    let flush = m.unmap_now(va(0), 0x4000_0000).unwrap();
    // 1000 pages unmapped; their two PTs and the PD above them were freed, so the flush
    // also reaches the freed tables' first addresses in the range (0 and 2 MiB).
    assert_eq!(
        (
            flush.pages(),
            flush.tables_freed(),
            flush.step(),
            flush.start()
        ),
        (1000, 3, KIB4, va(0))
    );
    assert_eq!(flush.invlpg_count(), 1001);
    flush.ignore();
    assert_eq!(
        m.usage().tables,
        TableCount {
            pml4: 1,
            pdpt: 1,
            pd: 1,
            pt: 0
        }
    );
    let (t, flush) = m.unmap_page_now(va(0x4020_0000)).unwrap();
    assert_eq!((t.size, flush.pages(), flush.step()), (MIB2, 1, MIB2));
    flush.ignore();
    m.unmap_now(va(0x4000_0000), 0x4000_0000).unwrap().ignore();
    assert_eq!(m.usage().used, 1, "only the root is left");
    assert!(m.translate(va(0x4000_0000)).is_err());
}

#[test]
fn bump_pool_keeps_its_tables_after_unmap() {
    let mem = SimMemory::new(3 + 64);
    let pool = mem.pool(3, 64).unwrap();
    let mut m = PoolMapper::create(pool, BumpAllocator::new(64));
    m.map_range(va(0x20_0000), pa(0), 10, KIB4, RW)
        .unwrap()
        .ignore();
    m.unmap_now(va(0x20_0000), 10 * 4096).unwrap().ignore();
    assert_eq!(m.usage().used, 4);
    assert!(m.translate(va(0x20_0000)).is_err());
    // The empty PT is reused, and is in the way of a 2 MiB page.
    m.map_page(va(0x20_0000), pa(0), KIB4, RW).unwrap().ignore();
    assert_eq!(m.usage().used, 4);
    m.unmap_page_now(va(0x20_0000)).unwrap().1.ignore();
    assert_eq!(
        m.map_page(va(0x20_0000), pa(0), MIB2, RW),
        Err(MapError::TableInTheWay {
            virt: va(0x20_0000)
        })
    );
}

#[test]
fn unmap_errors() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    m.map_page(va(0x40_0000), pa(0), MIB2, RW).unwrap().ignore();
    assert_eq!(
        m.unmap_page_now(va(0x1000)),
        Err(UnmapError::NotMapped { virt: va(0x1000) })
    );
    assert_eq!(
        m.unmap_now(va(0x40_0000), 0x1000),
        Err(UnmapError::PartialHugePage {
            virt: va(0x40_0000),
            size: MIB2
        })
    );
    assert_eq!(
        m.unmap_page_now(va(0x40_1000)),
        Err(UnmapError::Misaligned { virt: 0x40_1000 })
    );
    assert_eq!(
        m.unmap_now(va(0x40_0000), 0x800),
        Err(UnmapError::Misaligned { virt: 0x40_0000 })
    );
    assert_eq!(
        m.unmap_now(va(0x7fff_ffff_f000), 0x2000),
        Err(UnmapError::NonCanonical {
            addr: 0x8000_0000_0fff
        })
    );
    // Unmapping a hole is not an error: nothing to flush.
    assert!(m.unmap_now(va(0x8000_0000), 0x1000).unwrap().is_empty());
    assert!(
        m.translate(va(0x40_0000)).is_ok(),
        "failed unmaps change nothing"
    );
}

#[test]
fn modifiable_ptp_maps_its_pool_into_itself() {
    for pages in [64u32, 1024, 4096] {
        let mem = SimMemory::new(3 + pages as u64);
        let pool = mem.pool(3, pages).unwrap();
        let self_map = va(0xffff_ff00_0000_0000);
        let ptp = Ptp::modifiable(pool, BitmapAllocator::new(pages), self_map).unwrap();
        assert_eq!(ptp.kind(), PtpKind::Modifiable { self_map });
        // One PT per 512 pages, one PD and one PDPT (the range sits inside one 1 GiB span).
        assert_eq!(ptp.self_map_tables(), pages.div_ceil(512) + 2);
        assert_eq!(ptp.cr3_frame().start_address(), pa(3 * 4096));
        for i in [0, 1, pages - 1] {
            let t = ptp.mapper.translate(self_map + i as u64 * 4096).unwrap();
            assert_eq!(t.phys, pool.page_phys(i));
            assert!(t.flags.contains(SELF_MAP_FLAGS));
            let (phys, _) = oracle(&mem, &ptp.mapper, self_map.as_u64() + i as u64 * 4096).unwrap();
            assert_eq!(phys, pool.page_phys(i).as_u64());
        }
        let unmod = Ptp::unmodifiable(mem.pool(3, pages).unwrap(), BitmapAllocator::new(pages));
        assert_eq!((unmod.self_map_tables(), unmod.mapper.usage().used), (0, 1));
    }
}

#[test]
fn adopt_counts_existing_tables_and_the_bitmap_takes_over_from_a_counter() {
    let mem = SimMemory::new(3 + 256);
    let pool = mem.pool(3, 256).unwrap();
    // The bootloader maps with a bump allocator ...
    let mut boot = PoolMapper::create(pool, BumpAllocator::new(256));
    boot.map_range(va(0xffff_8000_0000_0000), pa(0), 5000, KIB4, RW)
        .unwrap()
        .ignore();
    let counter = boot.allocator().counter();
    let expect = boot.usage().tables;
    // ... and the kernel takes the tables over with a bitmap initialised from the counter.
    let mut kernel = PoolMapper::adopt(pool, BitmapAllocator::from_counter(256, counter)).unwrap();
    assert_eq!(kernel.usage().tables, expect);
    assert_eq!(kernel.usage().used, counter);
    kernel
        .unmap_now(va(0xffff_8000_0000_0000), 5000 * 4096)
        .unwrap()
        .ignore();
    assert_eq!(kernel.usage().used, 1);
}

#[test]
fn pool_rejects_bad_sizes_and_alignment() {
    let w = va(0x10_0000);
    unsafe {
        assert_eq!(
            Pool::new(pa(0), 63, w),
            Err(PoolError::BadSize { pages: 63 })
        );
        assert_eq!(
            Pool::new(pa(0), 65537, w),
            Err(PoolError::BadSize { pages: 65537 })
        );
        assert_eq!(
            Pool::new(pa(0x800), 64, w),
            Err(PoolError::Misaligned { addr: 0x800 })
        );
        assert_eq!(
            Pool::new(pa(0), 64, va(0x10_0010)),
            Err(PoolError::Misaligned { addr: 0x10_0010 })
        );
        assert_eq!(
            Pool::new(pa((1 << 52) - 0x1000), 64, w),
            Err(PoolError::FrameOutOfRange {
                phys_end: (1 << 52) + 63 * 0x1000
            })
        );
        let p = Pool::new(pa(0x20_0000), 64, w).unwrap();
        assert_eq!(p.index_of(pa(0x20_0fff)), Some(0));
        assert_eq!(p.index_of(pa(0x20_0000 + 64 * 4096)), None);
        assert_eq!(p.index_of(pa(0x1f_f000)), None);
    }
    let mem = SimMemory::new(10);
    assert_eq!(
        mem.pool(0, 64),
        Err(PoolError::FrameOutOfRange {
            phys_end: 64 * 4096
        })
    );
}

#[test]
fn pool_pages_need_not_be_zeroed_and_reset_starts_over() {
    let mem = SimMemory::new(3 + 64);
    let pool = mem.pool(3, 64).unwrap();
    // Garbage everywhere, as in RAM the kernel carves a pool from.
    unsafe { std::ptr::write_bytes(pool.page_ptr(0) as *mut u8, 0xa5, 64 * 4096) };
    let mut m = PoolMapper::create(pool, BumpAllocator::new(64));
    for round in 0..3 {
        for i in [0u64, 1, 2, 511, 512, 513] {
            m.map_page(va(0xffff_8000_0000_0000 + i * 4096), pa(i * 4096), KIB4, RW)
                .unwrap()
                .ignore();
        }
        m.map_range(va(0x4000_0000), pa(0), 2, MIB2, RW)
            .unwrap()
            .ignore();
        let mut n = 0;
        m.for_each_mapping(&mut |_| n += 1).unwrap();
        assert_eq!(n, 8, "round {round}: only what was mapped is visible");
        assert_eq!(
            oracle(&mem, &m, 0xffff_8000_0020_1000).map(|x| x.0),
            Some(0x20_1000)
        );
        // Reset reuses the same (now dirty) pages.
        m.reset(BumpAllocator::new(64));
    }
}

#[test]
fn map_page_out_of_pages_undoes_its_partial_walk() {
    let mem = SimMemory::new(3 + 64);
    let mut m = bitmap_mapper(&mem, 64);
    // Use up all but two pages: the next page in a new 512 GiB span needs three tables.
    m.map_range(va(0), pa(0), 60 * 512, KIB4, RW)
        .unwrap()
        .ignore();
    assert_eq!(m.usage().left, 1);
    let hole = m.usage();
    m.map_range(va(0x4000_0000), pa(0), 1, MIB2, RW)
        .unwrap()
        .ignore(); // takes the last page (a PD)
    m.unmap_now(va(0x4000_0000), 1 << 21).unwrap().ignore();
    assert_eq!(m.usage(), hole);
    assert_eq!(
        m.map_page(va(0x80_0000_0000), pa(0), KIB4, RW),
        Err(MapError::PoolExhausted { needed: 3, left: 1 })
    );
    assert_eq!(m.usage(), hole, "the PDPT taken on the way was given back");
    assert!(m.translate(va(0x80_0000_0000)).is_err());
}

#[test]
fn a_borrowed_allocator_keeps_the_pool_state_after_the_ptp() {
    let mem = SimMemory::new(3 + 4096);
    let pool = mem.pool(3, 4096).unwrap();
    let mut alloc = BitmapAllocator::new(4096);
    let tables = Ptp::modifiable(pool, &mut alloc, va(0xffff_ff00_0000_0000))
        .unwrap()
        .self_map_tables();
    assert_eq!(tables, 10);
    // The PTP is gone; the bitmap it borrowed says what it took: root + self-map tables.
    assert_eq!(alloc.used(), 11);
    let mut again = PoolMapper::adopt(pool, &mut alloc).unwrap();
    assert_eq!(
        again.usage().tables,
        TableCount {
            pml4: 1,
            pdpt: 1,
            pd: 1,
            pt: 8
        }
    );
    again
        .unmap_now(va(0xffff_ff00_0000_0000), 4096 * 4096)
        .unwrap()
        .ignore();
    assert_eq!(alloc.used(), 1);
}

#[test]
fn an_allocator_larger_than_the_pool_is_refused_not_followed() {
    let mem = SimMemory::new(3 + 64 + 64);
    let pool = mem.pool(3, 64).unwrap();
    // A bitmap that believes in 128 pages, with the first 64 taken: its next page is outside.
    let mut m = PoolMapper::create(pool, BitmapAllocator::from_counter(128, 64));
    assert_eq!(
        m.map_page(va(0x1000), pa(0), KIB4, RW),
        Err(MapError::AllocatorOutsidePool {
            index: 64,
            pages: 64
        })
    );
    assert_eq!(m.allocator().used(), 64, "the page was given back");
    assert_eq!(
        m.map_range(va(0x1000), pa(0), 2, KIB4, RW),
        Err(MapError::AllocatorOutsidePool {
            index: 64,
            pages: 64
        })
    );
}

#[test]
fn a_flush_policy_decides_on_what_an_unmap_returns() {
    use vystem_ptp::flush::{Decision, FlushPolicy};
    let mem = SimMemory::new(64);
    let pool = mem.pool(0, 64).unwrap();
    let mut m = PoolMapper::create(pool, BitmapAllocator::new(64));
    let v = VirtAddr::new(0x4000_0000);
    m.map_range(
        v,
        PhysAddr::new(0x1000_0000),
        100,
        PageSize::Size4KiB,
        F::PRESENT,
    )
    .unwrap()
    .ignore();
    // 10 pages: below Linux's 33, page by page; the other 90 and their tables: a full flush.
    let few = m.unmap_now(v, 10 * 4096).unwrap();
    assert_eq!(FlushPolicy::LINUX.decide(&few), Decision::PerPage(10));
    let rest = m.unmap_now(v + 10 * 4096u64, 90 * 4096).unwrap();
    assert_eq!(
        (rest.pages(), rest.tables_freed()),
        (90, 3),
        "its PT, PD and PDPT went empty"
    );
    assert_eq!(FlushPolicy::LINUX.decide(&rest), Decision::Full);
    assert_eq!(
        FlushPolicy::with_ceiling(512).decide(&rest),
        Decision::PerPage(90)
    );
    few.ignore();
    rest.ignore();
}

/// Unmapping clears whole tables on consecutive pool pages in one pass and frees them: the
/// pages around the cut stay, the count and the tables freed are exact, with each allocator,
/// and a table among 2 MiB pages (a level-2 table holding a table) is still found and freed.
#[test]
fn unmap_of_runs_of_whole_tables_is_exact_at_both_ends_and_with_either_allocator() {
    const MIB: u64 = 1 << 20;
    let base = 0x40_0000_0000u64; // 1 GiB aligned
    for bitmap in [true, false] {
        let mem = SimMemory::new(64 + 3);
        // 8 MiB of 4 KiB pages: 4 page tables on consecutive pool pages (fresh, in order).
        let (mut bm, mut bp) = (BitmapAllocator::new(64), BumpAllocator::new(64));
        let alloc: &mut dyn PageAllocator = if bitmap { &mut bm } else { &mut bp };
        let mut m = PoolMapper::create(mem.pool(3, 64).unwrap(), alloc);
        m.map_range(va(base), pa(0x1_0000_0000), 2048, KIB4, RW)
            .unwrap()
            .ignore();
        let used = m.allocator().used();
        // Cut from inside the first table to inside the last: 2 whole tables between.
        let (from, to) = (base + MIB + 4096 * 3, base + 7 * MIB + 4096 * 5);
        let f = m.unmap_now(va(from), to - from).unwrap();
        assert_eq!(f.pages(), (to - from) / 4096);
        assert_eq!(f.tables_freed(), if bitmap { 2 } else { 0 });
        assert_eq!(m.allocator().used(), used - f.tables_freed() as u32);
        for (a, mapped) in [
            (base, true),
            (from - 4096, true),
            (from, false),
            (base + 4 * MIB, false),
            (to - 4096, false),
            (to, true),
            (base + 8 * MIB - 4096, true),
        ] {
            assert_eq!(
                m.translate(va(a)).is_ok(),
                mapped,
                "{a:#x}, bitmap {bitmap}"
            );
            assert_eq!(oracle(&mem, &m, a).is_some(), mapped, "oracle at {a:#x}");
        }
        // 3 GiB of 2 MiB pages, 3 directories on consecutive pages; a 4 KiB table in the middle one.
        let big = 0x80_0000_0000u64;
        m.map_range(va(big), pa(0x2_0000_0000), 3 * 512, MIB2, RW)
            .unwrap()
            .ignore();
        let mid = big + (1 << 30) + 6 * MIB;
        m.unmap_now(va(mid), 2 * MIB).unwrap().ignore();
        m.map_range(va(mid), pa(0x7_0000_0000), 512, KIB4, RW)
            .unwrap()
            .ignore();
        let before = m.allocator().used();
        let f = m.unmap_now(va(big), 3 << 30).unwrap();
        assert_eq!(f.pages(), 3 * 512 - 1 + 512);
        // The page table, and then the three directories, and the PDPT emptied with them.
        assert_eq!(f.tables_freed(), if bitmap { 5 } else { 0 });
        assert_eq!(m.allocator().used(), before - f.tables_freed() as u32);
        for a in [big, mid, mid + 4096 * 7, big + (3 << 30) - 4096] {
            assert!(
                m.translate(va(a)).is_err() && oracle(&mem, &m, a).is_none(),
                "{a:#x}"
            );
        }
        assert!(m.translate(va(base)).is_ok(), "the other mapping stays");
    }
}

/// Mapping into present tables checks and fills runs of whole tables on consecutive pages in
/// one pass: a used entry deep in a run is still found, named by its address, and nothing
/// changes; once it is gone the whole range maps, every page where it should be.
#[test]
fn warm_map_over_runs_of_tables_finds_a_conflict_by_address_and_changes_nothing() {
    const MIB: u64 = 1 << 20;
    let base = 0x40_0000_0000u64;
    let mem = SimMemory::new(64 + 3);
    let mut m = PoolMapper::create(mem.pool(3, 64).unwrap(), BumpAllocator::new(64));
    m.map_range(va(base), pa(0x1_0000_0000), 2048, KIB4, RW)
        .unwrap()
        .ignore();
    m.unmap_now(va(base), 8 * MIB).unwrap().ignore(); // bump: the 4 page tables stay, empty
    let used = m.allocator().used();
    let lone = base + 5 * MIB + 4096 * 9;
    m.map_range(va(lone), pa(0x9_0000_0000), 1, KIB4, RW)
        .unwrap()
        .ignore();
    assert_eq!(
        m.map_range(va(base), pa(0x1_0000_0000), 2048, KIB4, RW),
        Err(MapError::AlreadyMapped { virt: va(lone) })
    );
    assert_eq!(m.translate(va(lone)).map(|t| t.phys), Ok(pa(0x9_0000_0000)));
    assert!(
        m.translate(va(base)).is_err() && m.translate(va(lone - 4096)).is_err(),
        "nothing written"
    );
    m.unmap_now(va(lone), 4096).unwrap().ignore();
    m.map_range(va(base), pa(0x1_0000_0000), 2048, KIB4, RW)
        .unwrap()
        .ignore();
    assert_eq!(m.allocator().used(), used, "no table made: they were there");
    for k in [0u64, 511, 512, 1300, 2047] {
        let a = base + k * 4096;
        assert_eq!(
            oracle(&mem, &m, a).map(|(p, _)| p),
            Some(0x1_0000_0000 + k * 4096),
            "page {k}"
        );
    }
}
