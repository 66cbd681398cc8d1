//! Free after flush: the tables an unmap empties stay allocated, and out of every new
//! mapping's reach, until the unmap is flushed and released; batched unmaps free together; an
//! unmap dropped unflushed leaks its tables instead of freeing them early.

use proptest::prelude::*;
use vystem_ptp::allocator::{BitmapAllocator, BumpAllocator, PageAllocator};
use vystem_ptp::mapper::{MapError, PoolMapper, ReleaseError, Unmap};
use vystem_ptp::page_size::PageSize;
use vystem_ptp::shootdown::CpuSet;
use vystem_ptp::sim::SimMemory;
use vystem_ptp::FlushPolicy;
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

const KIB4: PageSize = PageSize::Size4KiB;
const RW: F = F::PRESENT.union(F::WRITABLE);

fn va(a: u64) -> VirtAddr {
    VirtAddr::new(a)
}

/// The release a kernel does after its flush; here the tables were never in any CR3.
fn release<A: PageAllocator>(m: &mut PoolMapper<A>, u: Unmap) -> Result<u32, ReleaseError> {
    // SAFETY: simulated memory, never loaded in any CR3.
    m.release(unsafe { u.assume_flushed() })
}

/// 2 MiB of 4 KiB pages at `at`: one PT (and a PD and PDPT where none is yet).
fn map_2mib<A: PageAllocator>(m: &mut PoolMapper<A>, at: u64) -> Result<(), MapError> {
    m.map_range(va(at), PhysAddr::new(0), 512, KIB4, RW)
        .map(|f| f.ignore())
}

#[test]
fn the_emptied_tables_stay_allocated_and_untaken_until_the_release() {
    let mem = SimMemory::new(64);
    let mut m = PoolMapper::create(mem.pool(0, 64).unwrap(), BitmapAllocator::new(64));
    // Root, PDPT, PD, and 60 PTs: 63 of 64 pages.
    for i in 0..60u64 {
        map_2mib(&mut m, 0x4000_0000 + (i << 21)).unwrap();
    }
    assert_eq!(m.allocator().used(), 63);
    let unmap = m.unmap_range(va(0x4000_0000), 4 << 21).unwrap();
    assert_eq!(
        (unmap.range().pages(), unmap.tables_waiting()),
        (2048, 4),
        "4 PTs held"
    );
    assert_eq!(m.allocator().used(), 63, "held: still allocated");
    let mut pages = [0u32; 8];
    assert_eq!(m.held_tables(&unmap, &mut pages), 4);
    pages[..4].sort();
    assert_eq!(
        pages[..4],
        [3, 4, 5, 6],
        "the first four PTs (root, PDPT, PD are 0, 1, 2)"
    );
    assert!(pages[..4].iter().all(|&p| m.allocator().is_allocated(p)));
    // A mapping in another GiB needs a PD and a PT; one page is free: the held ones are out
    // of its reach.
    assert_eq!(
        map_2mib(&mut m, 0x8000_0000),
        Err(MapError::PoolExhausted { needed: 2, left: 1 })
    );
    assert_eq!(release(&mut m, unmap), Ok(4));
    assert_eq!(m.allocator().used(), 59);
    map_2mib(&mut m, 0x8000_0000).unwrap();
}

#[test]
fn an_unmap_dropped_unflushed_leaks_its_tables_rather_than_freeing_them_early() {
    let mem = SimMemory::new(64);
    let mut m = PoolMapper::create(mem.pool(0, 64).unwrap(), BitmapAllocator::new(64));
    map_2mib(&mut m, 0x4000_0000).unwrap();
    let used = m.allocator().used();
    #[allow(unused_must_use)]
    {
        m.unmap_range(va(0x4000_0000), 1 << 21).unwrap(); // dropped, never flushed
    }
    assert_eq!(
        m.allocator().used(),
        used,
        "the three tables stay allocated: leaked"
    );
    assert!(
        m.translate(va(0x4000_0000)).is_err(),
        "the mapping itself is gone"
    );
    map_2mib(&mut m, 0x4000_0000).unwrap();
    assert_eq!(
        m.allocator().used(),
        used + 3,
        "a new mapping takes new tables"
    );
}

#[test]
fn unmaps_gather_into_one_flush_and_one_release() {
    let mem = SimMemory::new(64);
    let mut m = PoolMapper::create(mem.pool(0, 64).unwrap(), BitmapAllocator::new(64));
    for i in 0..4u64 {
        map_2mib(&mut m, 0x4000_0000 + (i << 30)).unwrap(); // each in a PD of its own
    }
    assert_eq!(m.allocator().used(), 1 + 1 + 4 * 2);
    let mut batch = m.unmap_batch();
    assert!(batch.range().is_empty());
    m.unmap_into(&mut batch, va(0x4000_0000), 1 << 21).unwrap();
    m.unmap_into(&mut batch, va(0x1_0000_0000), 1 << 21)
        .unwrap();
    // A refused unmap leaves the batch as it was.
    let before = (batch.range(), batch.tables_waiting());
    assert!(m.unmap_into(&mut batch, va(0x123), 0x1000).is_err());
    assert_eq!((batch.range(), batch.tables_waiting()), before);
    let r = batch.range();
    assert_eq!(
        (r.pages(), r.tables_freed(), batch.tables_waiting()),
        (1024, 4, 4)
    );
    assert_eq!((r.start(), r.step()), (va(0x4000_0000), KIB4));
    assert_eq!(FlushPolicy::LINUX.decide(&r), vystem_ptp::Decision::Full);
    assert_eq!(m.allocator().used(), 10);
    assert_eq!(release(&mut m, batch), Ok(4));
    assert_eq!(m.allocator().used(), 6);
}

#[test]
fn a_shootdown_not_every_target_acknowledged_gives_the_unmap_back() {
    let mem = SimMemory::new(64);
    let mut m = PoolMapper::create(mem.pool(0, 64).unwrap(), BitmapAllocator::new(64));
    map_2mib(&mut m, 0x4000_0000).unwrap();
    let unmap = m.unmap_range(va(0x4000_0000), 1 << 21).unwrap();
    let targets = CpuSet::EMPTY.with(1).with(2);
    // CPU 2 has not acknowledged: nothing is flushed here, nothing can be released.
    let unmap = match unmap.flush_shot_down(&FlushPolicy::LINUX, targets, CpuSet::EMPTY.with(1)) {
        Err(back) => back,
        Ok(_) => panic!("released with a CPU that may still cache the tables"),
    };
    assert_eq!(unmap.tables_waiting(), 3);
    assert_eq!(release(&mut m, unmap), Ok(3));
}

#[test]
fn tables_go_back_only_to_their_own_pool_and_bump_holds_none() {
    let mem = SimMemory::new(192);
    let mut a = PoolMapper::create(mem.pool(0, 64).unwrap(), BitmapAllocator::new(64));
    let mut b = PoolMapper::create(mem.pool(64, 64).unwrap(), BitmapAllocator::new(64));
    map_2mib(&mut a, 0x4000_0000).unwrap();
    let pool_a = a.pool().phys_base().as_u64();
    // One batch gathers one pool's unmaps: another mapper refuses it, and it stays as it was.
    let mut batch = a.unmap_batch();
    map_2mib(&mut b, 0x4000_0000).unwrap();
    assert_eq!(
        b.unmap_into(&mut batch, va(0x4000_0000), 1 << 21),
        Err(vystem_ptp::UnmapError::OtherPool { pool: pool_a })
    );
    assert!(b.translate(va(0x4000_0000)).is_ok() && batch.range().is_empty());
    assert_eq!(release(&mut a, batch), Ok(0));
    let unmap = a.unmap_range(va(0x4000_0000), 1 << 21).unwrap();
    assert_eq!(
        release(&mut b, unmap),
        Err(ReleaseError::OtherPool { pool: pool_a })
    );
    assert_eq!(a.allocator().used(), 4, "refused: nothing freed anywhere");

    let mut bump = PoolMapper::create(mem.pool(128, 64).unwrap(), BumpAllocator::new(64));
    map_2mib(&mut bump, 0x4000_0000).unwrap();
    let unmap = bump.unmap_range(va(0x4000_0000), 1 << 21).unwrap();
    assert_eq!(
        (unmap.tables_waiting(), unmap.range().tables_freed()),
        (0, 0),
        "bump keeps its tables"
    );
    assert_eq!(release(&mut bump, unmap), Ok(0));
}

#[derive(Debug, Clone)]
enum Op {
    /// Map `pages` 4 KiB pages at slot `at` (2 MiB apart).
    Map { at: u8, pages: u16 },
    /// Unmap slot `at` into the current batch.
    Unmap { at: u8 },
    /// Flush and release the batch.
    Release,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..24, 1u16..600).prop_map(|(at, pages)| Op::Map { at, pages }),
        (0u8..24).prop_map(|at| Op::Unmap { at }),
        Just(Op::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Whatever the order of maps, gathered unmaps and releases: no page a batch holds is
    /// handed out (it stays allocated and its link survives every map made meanwhile, so the
    /// release gives back exactly what the batch held), and every release returns the pool
    /// to what the live mappings need.
    #[test]
    fn no_held_table_is_handed_out_before_its_release(ops in proptest::collection::vec(op(), 1..60), bump in any::<bool>()) {
        let mem = SimMemory::new(128);
        let pool = mem.pool(0, 128).unwrap();
        if bump {
            gather_and_release(PoolMapper::create(pool, BumpAllocator::new(128)), &ops)?;
        } else {
            gather_and_release(PoolMapper::create(pool, BitmapAllocator::new(128)), &ops)?;
        }
    }
}

/// The property, with either allocator: bump holds no table (it frees none) and keeps every
/// table it made; the bitmap holds what it empties until the release.
fn gather_and_release<A: PageAllocator>(
    mut m: PoolMapper<A>,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let frees = m.allocator().can_free();
    let mut batch = m.unmap_batch();
    let mut live = [0u16; 24];
    for op in ops.iter().cloned() {
        match op {
            Op::Map { at, pages } => {
                let v = 0x4000_0000 + at as u64 * (1 << 21);
                if live[at as usize] == 0 {
                    let pages = pages.min(512);
                    if m.map_range(va(v), PhysAddr::new(0), pages as u64, KIB4, RW)
                        .map(|f| f.ignore())
                        .is_ok()
                    {
                        live[at as usize] = pages;
                    }
                }
            }
            Op::Unmap { at } => {
                let v = 0x4000_0000 + at as u64 * (1 << 21);
                let held = batch.tables_waiting();
                m.unmap_into(&mut batch, va(v), 1 << 21).unwrap();
                // Emptied tables are held, never freed here.
                prop_assert!(batch.tables_waiting() >= held);
                prop_assert!(frees || batch.tables_waiting() == 0, "bump holds nothing");
                live[at as usize] = 0;
            }
            Op::Release => {
                let held = batch.tables_waiting();
                let used = m.allocator().used();
                let done = core::mem::replace(&mut batch, m.unmap_batch());
                prop_assert_eq!(release(&mut m, done), Ok(held));
                prop_assert_eq!(m.allocator().used(), used - held);
            }
        }
    }
    let held = batch.tables_waiting();
    prop_assert_eq!(release(&mut m, batch), Ok(held));
    // What is left in use is what the live mappings need: root, PDPT, PD, a PT per slot.
    let slots = live.iter().filter(|&&p| p > 0).count() as u32;
    if frees {
        prop_assert_eq!(m.allocator().used(), if slots == 0 { 1 } else { 3 + slots });
    } else {
        prop_assert_eq!(held, 0, "bump holds nothing");
    }
    for (i, &p) in live.iter().enumerate() {
        let v = 0x4000_0000 + i as u64 * (1 << 21);
        prop_assert_eq!(m.translate(va(v)).is_ok(), p > 0);
    }
    Ok(())
}

#[test]
fn freeing_at_once_where_no_cpu_walked_the_tables_leaves_what_the_release_leaves() {
    let mem = SimMemory::new(256);
    let mut held = PoolMapper::create(mem.pool(0, 128).unwrap(), BitmapAllocator::new(128));
    let mut now = PoolMapper::create(mem.pool(128, 128).unwrap(), BitmapAllocator::new(128));
    for m in [&mut held, &mut now] {
        for i in 0..8u64 {
            map_2mib(m, 0x4000_0000 + (i << 21)).unwrap();
        }
        map_2mib(m, 0x8000_0000).unwrap();
    }
    let unmap = held.unmap_range(va(0x4000_0000), 1 << 30).unwrap();
    let range = unmap.range();
    assert_eq!(release(&mut held, unmap), Ok(9), "8 PTs and their PD");
    // SAFETY: simulated memory, never loaded in any CR3.
    let at_once = unsafe { now.unmap_unloaded(va(0x4000_0000), 1 << 30) }.unwrap();
    assert_eq!(at_once, range);
    assert_eq!(now.allocator().used(), held.allocator().used());
    assert_eq!(now.usage(), held.usage());
    assert!(now.translate(va(0x8000_0000)).is_ok() && held.translate(va(0x8000_0000)).is_ok());
}
