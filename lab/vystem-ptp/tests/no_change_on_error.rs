//! The mapper's promise: an error changes nothing. Random sequences of `map_page`, `map_range`,
//! `map_region` and `unmap_range` over small pools, with both allocators, 4 KiB / 2 MiB / 1 GiB
//! mixes, flags with and without USER, at the canonical hole and the top of the address space,
//! biased towards conflicts and exhaustion. After every error, every byte of every pool page,
//! the allocator's state and the mapper's usage are what they were before the call.
//! 3,000 cases; the examples that found the bugs are regression tests below.

use proptest::prelude::*;
use vystem_ptp::allocator::{BitmapAllocator, BumpAllocator, PageAllocator};
use vystem_ptp::mapper::{MapError, PoolMapper};
use vystem_ptp::page_size::{PageSize, PageSizes};
use vystem_ptp::pool::MAX_PHYS;
use vystem_ptp::sim::SimMemory;
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

mod common;
use common::UnmapNow;

/// Virtual bases where conflicts, table sharing and the edges of the address space meet.
const BASES: [u64; 5] = [
    0,
    0x0000_0040_0000_0000,
    0x0000_7fff_8000_0000, // 2 GiB below the canonical hole
    0xffff_8000_0000_0000, // start of the upper half
    0xffff_ffff_8000_0000, // 2 GiB below the top
];

#[derive(Debug, Clone)]
enum Op {
    Page {
        virt: u64,
        phys: u64,
        size: PageSize,
        user: bool,
    },
    Range {
        virt: u64,
        phys: u64,
        count: u64,
        size: PageSize,
        user: bool,
    },
    Region {
        virt: u64,
        phys: u64,
        bytes: u64,
        sizes: PageSizes,
        user: bool,
    },
    Unmap {
        virt: u64,
        bytes: u64,
    },
}

fn size() -> impl Strategy<Value = PageSize> {
    prop_oneof![
        4 => Just(PageSize::Size4KiB),
        2 => Just(PageSize::Size2MiB),
        1 => Just(PageSize::Size1GiB),
    ]
}

/// A virtual address near one of the bases: whole 4 KiB pages within +-4 GiB, mostly aligned
/// to the larger sizes so that huge pages and shared tables happen.
fn virt() -> impl Strategy<Value = u64> {
    (
        0..BASES.len(),
        -4i64..4,
        0u64..512,
        0u64..4,
        prop::bool::ANY,
    )
        .prop_map(|(b, gib, mib2, kib4, aligned)| {
            let off = gib * (1 << 30)
                + (mib2 << 21) as i64
                + if aligned { 0 } else { (kib4 << 12) as i64 };
            BASES[b].wrapping_add(off as u64)
        })
}

/// A frame: mostly congruent with `virt` modulo 1 GiB (so huge pages fit), sometimes near the
/// end of the 52-bit physical space.
fn phys_for(virt: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (1u64..64).prop_map(move |g| (g << 30) | (virt & ((1 << 30) - 1))),
        1 => (0u64..8).prop_map(move |k| MAX_PHYS - (k << 30) + (virt & ((1 << 30) - 1))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (virt(), size(), prop::bool::ANY).prop_flat_map(|(v, s, user)| {
            let v = v & !(s.bytes() - 1);
            phys_for(v).prop_map(move |p| Op::Page { virt: v, phys: p & !(s.bytes() - 1), size: s, user })
        }),
        3 => (virt(), size(), 1u64..1100, prop::bool::ANY).prop_flat_map(|(v, s, count, user)| {
            let v = v & !(s.bytes() - 1);
            let count = if s == PageSize::Size4KiB { count } else { count % 70 + 1 };
            phys_for(v).prop_map(move |p| Op::Range {
                virt: v,
                phys: p & !(s.bytes() - 1),
                count,
                size: s,
                user,
            })
        }),
        3 => (virt(), 1u64..(3 << 18), 0u8..3, prop::bool::ANY).prop_flat_map(|(v, pages, s, user)| {
            let sizes = [PageSizes::ONLY_4KIB, PageSizes::UP_TO_2MIB, PageSizes::ALL][s as usize];
            phys_for(v).prop_map(move |p| Op::Region { virt: v, phys: p, bytes: pages << 12, sizes, user })
        }),
        1 => (virt(), 1u64..(1 << 19)).prop_map(|(v, pages)| Op::Unmap { virt: v, bytes: pages << 12 }),
    ]
}

/// Everything an error must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    pages: Vec<u8>,
    used: u32,
    allocated: Vec<bool>,
    usage: vystem_ptp::capacity::Usage,
}

fn snapshot<A: PageAllocator>(m: &PoolMapper<A>) -> Snapshot {
    let pool = m.pool();
    // SAFETY: the pool's window reaches all of its pages (simulated memory, alive).
    let pages =
        unsafe { std::slice::from_raw_parts(pool.page_ptr(0) as *const u8, pool.bytes() as usize) };
    let a = m.allocator();
    Snapshot {
        pages: pages.to_vec(),
        used: a.used(),
        allocated: (0..a.capacity()).map(|i| a.is_allocated(i)).collect(),
        usage: m.usage(),
    }
}

fn flags(user: bool) -> F {
    let f = F::PRESENT | F::WRITABLE;
    if user {
        f | F::USER_ACCESSIBLE
    } else {
        f
    }
}

/// Apply `op`; `Some(error)` if it failed (unmap errors included).
fn apply<A: PageAllocator>(m: &mut PoolMapper<A>, op: &Op) -> Option<String> {
    let va = |v: u64| VirtAddr::try_new(v);
    match *op {
        Op::Page {
            virt,
            phys,
            size,
            user,
        } => match va(virt) {
            Ok(v) => m
                .map_page(v, PhysAddr::new_truncate(phys), size, flags(user))
                .map(|f| f.ignore())
                .err()
                .map(|e| format!("{e:?}")),
            Err(_) => None,
        },
        Op::Range {
            virt,
            phys,
            count,
            size,
            user,
        } => match va(virt) {
            Ok(v) => m
                .map_range(v, PhysAddr::new_truncate(phys), count, size, flags(user))
                .map(|f| f.ignore())
                .err()
                .map(|e| format!("{e:?}")),
            Err(_) => None,
        },
        Op::Region {
            virt,
            phys,
            bytes,
            sizes,
            user,
        } => match va(virt) {
            Ok(v) => m
                .map_region(v, PhysAddr::new_truncate(phys), bytes, sizes, flags(user))
                .err()
                .map(|e| format!("{e:?}")),
            Err(_) => None,
        },
        Op::Unmap { virt, bytes } => match va(virt) {
            Ok(v) => m
                .unmap_now(v, bytes)
                .map(|f| f.ignore())
                .err()
                .map(|e| format!("{e:?}")),
            Err(_) => None,
        },
    }
}

fn check_sequence<A: PageAllocator>(
    mut m: PoolMapper<A>,
    ops: &[Op],
) -> Result<usize, TestCaseError> {
    let mut errors = 0;
    for (i, op) in ops.iter().enumerate() {
        let before = snapshot(&m);
        if let Some(e) = apply(&mut m, op) {
            errors += 1;
            let after = snapshot(&m);
            prop_assert!(
                before == after,
                "op {} {:?} failed with {} and changed the pool: used {} -> {}, usage {:?} -> {:?}",
                i,
                op,
                e,
                before.used,
                after.used,
                before.usage,
                after.usage
            );
        }
    }
    Ok(errors)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn an_error_changes_nothing_with_the_bump_allocator(
        pages in 64u32..600, prefill in 0u32..60, ops in prop::collection::vec(op(), 1..12)
    ) {
        let mem = SimMemory::new(pages as u64);
        let pool = mem.pool(0, pages).unwrap();
        let mut bump = BumpAllocator::new(pages);
        for _ in 0..prefill.min(pages - 1) {
            bump.allocate().unwrap(); // pages handed out for something else
        }
        check_sequence(PoolMapper::create(pool, bump), &ops)?;
    }

    #[test]
    fn an_error_changes_nothing_with_the_bitmap_allocator(
        pages in 64u32..600, ops in prop::collection::vec(op(), 1..12)
    ) {
        let mem = SimMemory::new(pages as u64);
        let pool = mem.pool(0, pages).unwrap();
        check_sequence(PoolMapper::create(pool, BitmapAllocator::new(pages)), &ops)?;
    }
}

// ---- the examples that showed each bug ---------------------------------------------------------

fn bump_pool(pages: u32, handed_out: u32) -> (SimMemory, PoolMapper<BumpAllocator>) {
    let mem = SimMemory::new(pages as u64);
    let pool = mem.pool(0, pages).unwrap();
    let mut bump = BumpAllocator::new(pages);
    for _ in 0..handed_out {
        bump.allocate().unwrap();
    }
    let m = PoolMapper::create(pool, bump);
    (mem, m)
}

#[test]
fn map_page_out_of_pages_with_bump_links_nothing_and_counts_exactly() {
    let (_mem, mut m) = bump_pool(64, 62);
    let before = snapshot(&m);
    let r = m.map_page(
        VirtAddr::new(0x1000),
        PhysAddr::new(0x1_0000_0000),
        PageSize::Size4KiB,
        F::PRESENT | F::WRITABLE,
    );
    assert_eq!(r, Err(MapError::PoolExhausted { needed: 3, left: 1 }));
    assert_eq!(
        snapshot(&m),
        before,
        "used stays 63, the root links nothing"
    );
}

#[test]
fn map_region_conflict_in_a_later_chunk_with_bump_leaves_no_tables() {
    let (_mem, mut m) = bump_pool(64, 0);
    // Occupy the 2 MiB page the region's middle chunk would need.
    m.map_page(
        VirtAddr::new(0x4000_0000 + (4 << 21)),
        PhysAddr::new(0x9000_0000),
        PageSize::Size4KiB,
        F::PRESENT,
    )
    .unwrap()
    .ignore();
    let before = snapshot(&m);
    // 4 KiB head at 0x3fff_f000, then 2 MiB pages from 0x4000_0000: the fifth conflicts.
    let r = m.map_region(
        VirtAddr::new(0x3fff_f000),
        PhysAddr::new(0x7fff_f000),
        0x1000 + (8 << 21),
        PageSizes::UP_TO_2MIB,
        F::PRESENT | F::WRITABLE,
    );
    assert!(matches!(r, Err(MapError::TableInTheWay { .. })), "{r:?}");
    assert_eq!(snapshot(&m), before);
}

#[test]
fn a_failed_user_region_does_not_widen_existing_entries() {
    let mem = SimMemory::new(64);
    let pool = mem.pool(0, 64).unwrap();
    let mut m = PoolMapper::create(pool, BitmapAllocator::new(64));
    m.map_page(
        VirtAddr::new(0x20_0000),
        PhysAddr::new(0x5000_0000),
        PageSize::Size4KiB,
        F::PRESENT | F::WRITABLE,
    )
    .unwrap()
    .ignore();
    let before = snapshot(&m);
    let r = m.map_region(
        VirtAddr::new(0),
        PhysAddr::new(0x4000_0000),
        0x20_1000,
        PageSizes::UP_TO_2MIB,
        F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE,
    );
    assert_eq!(
        r,
        Err(MapError::AlreadyMapped {
            virt: VirtAddr::new(0x20_0000)
        })
    );
    assert_eq!(snapshot(&m), before, "PML4[0] and PDPT[0] keep their bits");
}
