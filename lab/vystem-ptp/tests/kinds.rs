//! What each kind of PTP promises about its own pool, and what `adopt` accepts: an unmodifiable
//! PTP never maps a pool page (and its audit proves it), a modifiable one only through its
//! self-map; adopted tables must form a tree inside the pool.

use vystem_ptp::allocator::{BitmapAllocator, BumpAllocator};
use vystem_ptp::mapper::{AdoptError, MapError, PoolMapper};
use vystem_ptp::page_size::{PageSize, PageSizes};
use vystem_ptp::ptp::{AuditError, Ptp};
use vystem_ptp::sim::SimMemory;
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

const RW: F = F::PRESENT.union(F::WRITABLE);
const SELF_MAP: u64 = 0xffff_ff00_0000_0000;

/// A pool of 64 pages at physical 64 pages, in 256 pages of memory.
fn pool(mem: &SimMemory) -> vystem_ptp::pool::Pool {
    mem.pool(64, 64).unwrap()
}

#[test]
fn an_unmodifiable_ptp_refuses_every_frame_of_its_pool() {
    let mem = SimMemory::new(256);
    let pool = pool(&mem);
    let base = pool.phys_base().as_u64();
    let mut ptp = Ptp::unmodifiable(pool, BitmapAllocator::new(64));
    let v = VirtAddr::new(0x4000_0000);
    let refused = Err(MapError::PoolFrame { phys: base });
    assert_eq!(
        ptp.mapper
            .map_page(v, pool.phys_base(), PageSize::Size4KiB, RW),
        refused
    );
    let last = PhysAddr::new(base + 63 * 4096);
    assert_eq!(
        ptp.mapper.map_page(v, last, PageSize::Size4KiB, RW),
        Err(MapError::PoolFrame {
            phys: last.as_u64()
        })
    );
    // A range or region that only reaches into the pool at its end.
    let before = PhysAddr::new(base - 2 * 4096);
    assert_eq!(
        ptp.mapper.map_range(v, before, 3, PageSize::Size4KiB, RW),
        refused
    );
    assert_eq!(
        ptp.mapper
            .map_region(v, PhysAddr::new(0), 2 << 20, PageSizes::UP_TO_2MIB, RW)
            .err(),
        refused.err(),
        "a 2 MiB page at physical 0 covers the pool at 256 KiB"
    );
    // Right next to the pool is fine, and nothing was changed by the refusals.
    assert_eq!(ptp.mapper.usage().tables.total(), 1);
    ptp.mapper
        .map_range(v, before, 2, PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    ptp.mapper
        .map_page(
            VirtAddr::new(0x5000_0000),
            PhysAddr::new(base + 64 * 4096),
            PageSize::Size4KiB,
            RW,
        )
        .unwrap()
        .ignore();
    assert_eq!(ptp.audit(), Ok(()));
}

#[test]
fn the_audit_finds_a_pool_page_mapped_where_the_kind_forbids_it() {
    let mem = SimMemory::new(256);
    let pool = pool(&mem);
    // A plain mapper has no guard: map the PML4 itself, then audit as each kind would.
    let mut m = PoolMapper::create(pool, BitmapAllocator::new(64));
    let alias = VirtAddr::new(0x7000_0000);
    m.map_page(alias, pool.phys_base(), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    let mut found = Vec::new();
    m.for_each_pool_alias(&mut |a| found.push(a)).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].virt, found[0].phys), (alias, pool.phys_base()));

    // A modifiable PTP: its self-map passes, a second alias does not.
    let mut ptp = Ptp::modifiable(pool, BitmapAllocator::new(64), VirtAddr::new(SELF_MAP)).unwrap();
    assert_eq!(ptp.audit(), Ok(()));
    ptp.mapper
        .map_page(alias, pool.phys_base(), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    match ptp.audit() {
        Err(AuditError::PoolMapped { mapping }) => assert_eq!(mapping.virt, alias),
        other => panic!("{other:?}"),
    }
}

#[test]
fn adopt_counts_a_tree_and_refuses_shared_or_back_pointing_tables() {
    let mem = SimMemory::new(256);
    let pool = pool(&mem);
    let mut m = PoolMapper::create(pool, BumpAllocator::new(64));
    m.map_page(
        VirtAddr::new(0x1000),
        PhysAddr::new(0x1000),
        PageSize::Size4KiB,
        RW,
    )
    .unwrap()
    .ignore();
    let tables = m.usage().tables;
    let (pool, bump) = m.into_parts();
    let adopted = PoolMapper::adopt(pool, bump.clone()).unwrap();
    assert_eq!(adopted.usage().tables, tables);

    // SAFETY (both writes): simulated memory; root entries 0..512 of the pool's page 0.
    let root = pool.page_ptr(0) as *mut u64;
    let pdpt = unsafe { root.read() };
    // A second root slot pointing at the same PDPT: the PDPT is shared.
    unsafe { root.add(5).write(pdpt) };
    assert_eq!(
        PoolMapper::adopt(pool, bump.clone()).err(),
        Some(AdoptError::SharedTable { index: 1 })
    );
    // Every root slot pointing back at the root: refused at once, not walked for seconds.
    for i in 0..512 {
        unsafe { root.add(i).write(pool.phys_base().as_u64() | 3) };
    }
    assert_eq!(
        PoolMapper::adopt(pool, bump).err(),
        Some(AdoptError::SharedTable { index: 0 })
    );
}
