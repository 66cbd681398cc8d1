//! Edge cases found in review, and model checks of map_region, predict_tables and a dirty
//! bitmap's reset: a region past the top of the address space or into the canonical hole
//! changes nothing; a failed map_page leaves table entries as they were; tables freed by an
//! unmap are always in the flush range.

use proptest::prelude::*;
use std::collections::BTreeSet;
use vystem_ptp::allocator::{AllocError, BitmapAllocator, BumpAllocator, PageAllocator};
use vystem_ptp::capacity::{predict_tables, Region, TableCount};
use vystem_ptp::mapper::{MapError, PoolMapper};
use vystem_ptp::page_size::{PageSize, PageSizes};
use vystem_ptp::sim::SimMemory;
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

mod common;
use common::UnmapNow;

const RW: F = F::PRESENT.union(F::WRITABLE);

fn mappings<A: PageAllocator>(m: &PoolMapper<A>) -> Vec<(u64, u64, PageSize)> {
    let mut v = Vec::new();
    m.for_each_mapping(&mut |x| v.push((x.virt.as_u64(), x.phys.as_u64(), x.size)))
        .unwrap();
    v
}

/// A region running past the top of the address space is refused whole (it used to wrap to
/// virtual 0).
#[test]
fn map_region_past_the_top_of_the_address_space_is_refused() {
    let mem = SimMemory::new(2 + 64);
    let pool = mem.pool(2, 64).unwrap();
    let mut m = PoolMapper::create(pool, BitmapAllocator::new(64));
    let top = 0xffff_ffff_ffff_f000u64;
    let r = m.map_region(
        VirtAddr::new(top),
        PhysAddr::new(0x1f_f000), // congruent with top mod 2 MiB
        0x1000 + 0x20_0000,
        PageSizes::UP_TO_2MIB,
        RW,
    );
    let maps = mappings(&m);
    assert_eq!(
        r,
        Err(MapError::NonCanonical { addr: u64::MAX }),
        "a range past 2^64 is refused"
    );
    assert!(maps.is_empty(), "nothing may stay mapped: {maps:x?}");
    assert_eq!(m.usage().used, 1);
}

/// A region reaching the canonical hole after a chunk boundary maps nothing (it used to leave
/// the first chunk mapped).
#[test]
fn map_region_into_the_canonical_hole_maps_nothing() {
    let mem = SimMemory::new(2 + 64);
    let pool = mem.pool(2, 64).unwrap();
    let mut m = PoolMapper::create(pool, BitmapAllocator::new(64));
    let v = (1u64 << 47) - 0x1000;
    let r = m.map_region(
        VirtAddr::new(v),
        PhysAddr::new(0x1f_f000),
        0x1000 + 0x20_0000,
        PageSizes::UP_TO_2MIB,
        RW,
    );
    let maps = mappings(&m);
    assert_eq!(
        r,
        Err(MapError::NonCanonical {
            addr: 0x8000_001f_ffff
        })
    );
    assert!(maps.is_empty(), "error but chunk left mapped: {maps:x?}");
    assert_eq!(m.usage().used, 1);
}

/// A failed map_page leaves existing table entries as they were (it used to widen them).
#[test]
fn a_failed_map_page_leaves_table_entries_as_they_were() {
    let mem = SimMemory::new(2 + 64);
    let pool = mem.pool(2, 64).unwrap();
    let mut m = PoolMapper::create(pool, BitmapAllocator::new(64));
    // supervisor page
    m.map_page(
        VirtAddr::new(0x40_0000),
        PhysAddr::new(0x1000),
        PageSize::Size4KiB,
        RW,
    )
    .unwrap()
    .ignore();
    let root = pool.page_ptr(0) as *const u64;
    let before = unsafe { root.read() };
    // same address, user: AlreadyMapped
    let r = m.map_page(
        VirtAddr::new(0x40_0000),
        PhysAddr::new(0x2000),
        PageSize::Size4KiB,
        RW | F::USER_ACCESSIBLE,
    );
    let after = unsafe { root.read() };
    assert_eq!(
        r,
        Err(MapError::AlreadyMapped {
            virt: VirtAddr::new(0x40_0000)
        })
    );
    assert_eq!(before, after, "a failed map_page changed PML4[0]");
    // A successful one widens the way to the leaf.
    m.map_page(
        VirtAddr::new(0x60_0000),
        PhysAddr::new(0x2000),
        PageSize::Size4KiB,
        RW | F::USER_ACCESSIBLE,
    )
    .unwrap()
    .ignore();
    assert_eq!(
        unsafe { root.read() } & F::USER_ACCESSIBLE.bits(),
        F::USER_ACCESSIBLE.bits()
    );
}

fn brute_tables(regions: &[Region]) -> TableCount {
    let mut c = TableCount {
        pml4: 1,
        ..Default::default()
    };
    for level in 1..=3u8 {
        let shift = 12 + 9 * level as u32;
        let mut set = BTreeSet::new();
        for r in regions.iter().filter(|r| r.size.level() <= level) {
            let mut a = r.start.as_u64();
            let last = r.last().unwrap();
            loop {
                set.insert(a >> shift);
                let next = ((a >> shift) + 1) << shift;
                if next == 0 || next > last {
                    break;
                }
                a = next;
            }
        }
        match level {
            1 => c.pt = set.len() as u64,
            2 => c.pd = set.len() as u64,
            _ => c.pdpt = set.len() as u64,
        }
    }
    c
}

fn region_strat() -> impl Strategy<Value = Region> {
    let size = prop_oneof![
        Just(PageSize::Size4KiB),
        Just(PageSize::Size2MiB),
        Just(PageSize::Size1GiB)
    ];
    (
        size,
        prop::sample::select(vec![0u64, 1, 255, 256, 511]),
        0u64..4,
        0u64..4,
        0u64..1024,
        1u64..2000,
    )
        .prop_map(|(size, l4, l3, l2, l1, pages)| {
            let va = (l4 << 39) | (l3 << 30) | ((l2 * 200) << 21) | ((l1 * 7 % 512) << 12);
            let va = va & !(size.bytes() - 1);
            let va = ((va << 16) as i64 >> 16) as u64;
            // keep within the half
            let max_pages = {
                let half_end: u64 = if va >> 63 == 1 {
                    u64::MAX
                } else {
                    (1 << 47) - 1
                };
                (half_end - va) / size.bytes() + 1
            };
            Region {
                start: VirtAddr::new(va),
                pages: pages.min(max_pages).max(1),
                size,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn predict_matches_bruteforce(mut rs in prop::collection::vec(region_strat(), 1..6)) {
        let want = brute_tables(&rs);
        prop_assert_eq!(predict_tables(&mut rs).unwrap(), want);
    }

    #[test]
    fn bitmap_reset_on_dirty(cap1 in prop_oneof![64u32..300, 4000u32..=65536], cap2 in prop_oneof![1u32..300, 4000u32..=65536],
                             c2 in 0u32..70000, n1 in 0usize..5000, ops in prop::collection::vec(prop_oneof![Just(None), (0u32..70000).prop_map(Some)], 0..300)) {
        let mut a = BitmapAllocator::new(cap1);
        for _ in 0..n1 { let _ = a.allocate(); }
        for i in (1..cap1).step_by(3) { let _ = a.free(i); }
        a.reset_from_counter(cap2, c2);
        let cap = cap2.clamp(1, 65536);
        let counter = c2.clamp(1, cap);
        let mut free: BTreeSet<u32> = (counter..cap).collect();
        prop_assert_eq!(a.used(), counter);
        for op in ops {
            match op {
                None => match free.pop_first() {
                    Some(i) => prop_assert_eq!(a.allocate(), Ok(i)),
                    None => prop_assert_eq!(a.allocate(), Err(AllocError::Exhausted { capacity: cap })),
                },
                Some(i) => {
                    let i = i % (cap + 8);
                    let ok = a.free(i).is_ok();
                    let want = i != 0 && i < cap && free.insert(i);
                    prop_assert_eq!(ok, want);
                }
            }
        }
        while let Some(i) = free.pop_first() { prop_assert_eq!(a.allocate(), Ok(i)); }
        prop_assert!(a.allocate().is_err());
    }
}

/// map_region against a simple model: exact coverage, and pages as large as allowed.
fn region_case() -> impl Strategy<Value = (u64, u64, u64, u8)> {
    (
        0u64..3,
        0u64..1024,
        0u64..3,
        0u64..1024,
        0u64..(3 * 512 * 512 + 5),
        0u8..4,
    )
        .prop_map(|(vg, vo, pg, po, pages, s)| {
            let v = (1u64 << 39) + vg * (1 << 30) + (vo * 511 % (1 << 18)) * 4096;
            let p = pg * (1 << 30) + (po * 511 % (1 << 18)) * 4096;
            (v, p, pages * 4096, s)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn map_region_model((v, p, bytes, s) in region_case()) {
        let sizes = match s { 0 => PageSizes::ONLY_4KIB, 1 => PageSizes::UP_TO_2MIB, 2 => PageSizes::ALL, _ => PageSizes { huge_2mib: false, huge_1gib: true } };
        let pages = 4096u32;
        let mem = SimMemory::new(2 + pages as u64);
        let pool = mem.pool(2, pages).unwrap();
        let mut m = PoolMapper::create(pool, BitmapAllocator::new(pages));
        let st = m
            .map_region(VirtAddr::new(v), PhysAddr::new(p), bytes, sizes, RW)
            .map_err(|e| TestCaseError::fail(format!("map_region({v:#x},{p:#x},{bytes:#x},{sizes:?}) = {e:?}")))?;
        let maps = mappings(&m);
        let mut at = v;
        for &(mv, mp, size) in &maps {
            prop_assert_eq!(mv, at);
            prop_assert_eq!(mp, p + (mv - v));
            at += size.bytes();
            // maximality: if a bigger allowed page could hold this spot, it should have been used
            for big in [PageSize::Size2MiB, PageSize::Size1GiB] {
                if big > size && sizes.allows(big) {
                    let bs = mv & !(big.bytes() - 1);
                    if bs >= v && bs + big.bytes() <= v + bytes && (p + (bs - v)) % big.bytes() == 0 {
                        prop_assert!(false, "{:#x} mapped with {:?} though a {:?} fits at {:#x}", mv, size, big, bs);
                    }
                }
            }
        }
        prop_assert_eq!(at, v + bytes);
        let n = st.pages_4kib + st.pages_2mib + st.pages_1gib;
        prop_assert_eq!(n, maps.len() as u64);
        // tables agree with prediction from the actual mappings
        let mut rs: Vec<Region> = maps.iter().map(|&(mv, _, size)| Region { start: VirtAddr::new(mv), pages: 1, size }).collect();
        prop_assert_eq!(m.usage().tables, predict_tables(&mut rs).unwrap());
        // unmap all: back to root
        if bytes > 0 { m.unmap_now(VirtAddr::new(v), bytes).unwrap().ignore(); }
        prop_assert_eq!(m.usage().used, 1);
    }
}

#[test]
fn tables_freed_by_an_unmap_are_in_its_flush_range() {
    // Empty tables left behind by a bump pool, adopted by a bitmap (the bootloader -> kernel
    // hand-over): unmapping the hole frees them, and the flush must still cover them, or a
    // paging-structure cache could keep pointing at a page that becomes another table.
    let mem = SimMemory::new(2 + 64);
    let pool = mem.pool(2, 64).unwrap();
    let mut m = PoolMapper::create(pool, BumpAllocator::new(64));
    m.map_page(
        VirtAddr::new(0x40_0000),
        PhysAddr::new(0x1000),
        PageSize::Size4KiB,
        RW,
    )
    .unwrap()
    .ignore();
    m.unmap_now(VirtAddr::new(0x40_0000), 4096)
        .unwrap()
        .ignore();
    let counter = m.allocator().counter();
    let (pool, _) = m.into_parts();
    let mut m = PoolMapper::adopt(pool, BitmapAllocator::from_counter(64, counter)).unwrap();
    assert_eq!(
        m.usage().tables,
        TableCount {
            pml4: 1,
            pdpt: 1,
            pd: 1,
            pt: 1
        }
    );
    let f = m.unmap_now(VirtAddr::new(0), 1 << 30).unwrap();
    assert_eq!(
        m.usage().used,
        1,
        "the three empty tables are back in the pool"
    );
    assert_eq!((f.pages(), f.tables_freed()), (0, 3));
    assert!(!f.is_empty());
    let addrs: Vec<u64> = f.addresses().map(|a| a.as_u64()).collect();
    assert!(
        addrs.contains(&0x40_0000) || addrs.contains(&0),
        "the freed PT's span is flushed: {addrs:x?}"
    );
}

/// The wrap variant with virtual 0 taken: the region is refused and only the page that was
/// there stays (the wrapped chunk used to fail and leave the top page mapped).
#[test]
fn map_region_past_the_top_leaves_other_mappings_alone() {
    let mem = SimMemory::new(2 + 64);
    let pool = mem.pool(2, 64).unwrap();
    let mut m = PoolMapper::create(pool, BitmapAllocator::new(64));
    m.map_page(
        VirtAddr::new(0x1000),
        PhysAddr::new(0x5000),
        PageSize::Size4KiB,
        RW,
    )
    .unwrap()
    .ignore();
    let r = m.map_region(
        VirtAddr::new(0xffff_ffff_ffff_f000),
        PhysAddr::new(0x1f_f000),
        0x1000 + 0x20_0000,
        PageSizes::UP_TO_2MIB,
        RW,
    );
    let maps = mappings(&m);
    assert!(r.is_err());
    assert_eq!(
        maps.len(),
        1,
        "error, yet the top page stays mapped: {maps:x?}"
    );
}
