//! Property tests: random alloc/free and map/unmap sequences checked against simple models
//! (a BTreeSet of allocated pages, a BTreeMap of mappings). Every mapping is also checked through
//! an independent oracle, the x86_64 crate's `OffsetPageTable::translate` over the same memory.
//! 10,000 cases in total: 4,000 allocator, 4,000 bitmap mapper, 2,000 bump mapper.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use vystem_ptp::allocator::{AllocError, BitmapAllocator, BumpAllocator, FreeError, PageAllocator};
use vystem_ptp::capacity::{predict_tables, Region};
use vystem_ptp::mapper::{MapError, PoolMapper, UnmapError};
use vystem_ptp::page_size::PageSize;
use vystem_ptp::sim::SimMemory;
use x86_64::structures::paging::mapper::{Translate, TranslateResult};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

mod common;
use common::UnmapNow;

// ---- allocator -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum AllocOp {
    Alloc,
    Free(u32),
    /// allocate_many of this many pages.
    Many(usize),
    /// free_range from this page, this many.
    FreeRange(u32, u32),
}

fn alloc_ops() -> impl Strategy<Value = (u32, Vec<AllocOp>)> {
    // Small pools, and pools whose bitmap spans several summary words (> 4096 pages).
    prop_oneof![64u32..300, 4000u32..=65536].prop_flat_map(|cap| {
        let op = prop_oneof![
            3 => Just(AllocOp::Alloc),
            2 => (0..cap + 8).prop_map(AllocOp::Free),
            1 => prop_oneof![0usize..70, 60usize..200].prop_map(AllocOp::Many),
            1 => (0..cap + 8, 0u32..140).prop_map(|(a, n)| AllocOp::FreeRange(a, n)),
        ];
        (Just(cap), prop::collection::vec(op, 1..400))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn bitmap_allocator_matches_a_set((cap, ops) in alloc_ops(), counter_seed in 1u32..65536) {
        let counter = 1 + counter_seed % cap;
        let mut a = BitmapAllocator::from_counter(cap, counter);
        // Model: the free pages; the allocator must hand out the lowest.
        let mut free: BTreeSet<u32> = (counter..cap).collect();
        for op in ops {
            match op {
                AllocOp::Alloc => match free.pop_first() {
                    Some(i) => prop_assert_eq!(a.allocate(), Ok(i)),
                    None => prop_assert_eq!(a.allocate(), Err(AllocError::Exhausted { capacity: cap })),
                },
                AllocOp::Free(i) => {
                    let want = if i >= cap {
                        Err(FreeError::OutOfPool { index: i, capacity: cap })
                    } else if i == 0 {
                        Err(FreeError::Root)
                    } else if !free.insert(i) {
                        Err(FreeError::NotAllocated { index: i })
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(a.free(i), want);
                }
                AllocOp::FreeRange(first, n) => {
                    // The first page that cannot be freed is the error, and nothing is freed.
                    let bad = (first..first.saturating_add(n)).find_map(|i| {
                        if i >= cap {
                            Some(FreeError::OutOfPool { index: i, capacity: cap })
                        } else if i == 0 {
                            Some(FreeError::Root)
                        } else if free.contains(&i) {
                            Some(FreeError::NotAllocated { index: i })
                        } else {
                            None
                        }
                    });
                    match bad {
                        Some(e) => prop_assert_eq!(a.free_range(first, n), Err(e)),
                        None => {
                            prop_assert_eq!(a.free_range(first, n), Ok(()));
                            free.extend(first..first + n);
                        }
                    }
                }
                AllocOp::Many(n) => {
                    let mut out = vec![u32::MAX; n];
                    if n > free.len() {
                        prop_assert_eq!(a.allocate_many(&mut out), Err(AllocError::Exhausted { capacity: cap }));
                        prop_assert!(out.iter().all(|&x| x == u32::MAX), "nothing handed out");
                    } else {
                        prop_assert_eq!(a.allocate_many(&mut out), Ok(()));
                        let want: Vec<u32> = (0..n).map(|_| free.pop_first().unwrap()).collect();
                        prop_assert_eq!(out, want, "the lowest free pages, in order");
                    }
                }
            }
            prop_assert_eq!(a.used(), cap - free.len() as u32);
        }
        for i in (0..cap + 64).step_by(if cap > 4096 { 7 } else { 1 }) {
            prop_assert_eq!(a.is_allocated(i), i < cap && !free.contains(&i), "page {}", i);
        }
    }
}

// ---- mapper --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum MapOp {
    Map {
        start: u64,
        count: u64,
        size: PageSize,
        frame: u64,
        user: bool,
    },
    Unmap {
        start: u64,
        pages: u64,
    },
}

/// Addresses from a small grid of table indices, so that ranges collide, share tables, cross
/// table boundaries and use both canonical halves.
fn grid_addr(size: PageSize) -> impl Strategy<Value = u64> {
    let pick = |v: &'static [u64]| prop::sample::select(v);
    (
        pick(&[0, 1, 256, 511]),
        pick(&[0, 1, 511]),
        pick(&[0, 1, 511]),
        pick(&[0, 1, 510, 511]),
    )
        .prop_map(move |(l4, l3, l2, l1)| {
            let (l2, l1) = match size {
                PageSize::Size4KiB => (l2, l1),
                PageSize::Size2MiB => (l2, 0),
                PageSize::Size1GiB => (0, 0),
            };
            let va = (l4 << 39) | (l3 << 30) | (l2 << 21) | (l1 << 12);
            ((va << 16) as i64 >> 16) as u64
        })
}

fn map_op() -> impl Strategy<Value = MapOp> {
    let size = prop_oneof![6 => Just(PageSize::Size4KiB), 3 => Just(PageSize::Size2MiB), 1 => Just(PageSize::Size1GiB)];
    let map = size.prop_flat_map(|size| {
        (grid_addr(size), 1u64..4, 0u64..1 << 20, any::<bool>()).prop_map(
            move |(start, count, frame, user)| MapOp::Map {
                start,
                count,
                size,
                frame: frame * size.bytes() % (1 << 51),
                user,
            },
        )
    });
    let unmap = (
        grid_addr(PageSize::Size4KiB),
        prop_oneof![Just(1u64), Just(3), Just(512), Just(1024), Just(262_144)],
    )
        .prop_map(|(start, pages)| MapOp::Unmap { start, pages });
    prop_oneof![3 => map, 2 => unmap]
}

/// Model: page start -> (phys, size, flags).
type Model = BTreeMap<u64, (u64, PageSize, F)>;

fn end(start: u64, bytes: u64) -> Option<u64> {
    let last = start.checked_add(bytes - 1)?;
    let canonical = ((last << 16) as i64 >> 16) as u64 == last && (last ^ start) >> 47 == 0;
    canonical.then_some(last)
}

fn overlapping(model: &Model, start: u64, last: u64) -> Vec<(u64, u64, PageSize)> {
    // Pages start at most 1 GiB before `start` and still reach into the range.
    model
        .range(start.saturating_sub(1 << 30)..=last)
        .filter(|(s, (_, size, _))| **s + (size.bytes() - 1) >= start)
        .map(|(s, (p, size, _))| (*s, *p, *size))
        .collect()
}

fn regions(model: &Model) -> Vec<Region> {
    model
        .iter()
        .map(|(s, (_, size, _))| Region {
            start: VirtAddr::new(*s),
            pages: 1,
            size: *size,
        })
        .collect()
}

fn check_against_model<A: PageAllocator>(
    mem: &SimMemory,
    m: &PoolMapper<A>,
    model: &Model,
) -> Result<(), TestCaseError> {
    // SAFETY: the pool comes from `mem`; nothing else uses it during the check.
    let oracle = unsafe { mem.offset_page_table(m.pool()) };
    for (&start, &(phys, size, flags)) in model {
        for off in [0, size.bytes() - 1] {
            let t = m
                .translate(VirtAddr::new(start + off))
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!((t.phys.as_u64(), t.size), (phys + off, size));
            match oracle.translate(VirtAddr::new(start + off)) {
                TranslateResult::Mapped {
                    frame,
                    offset,
                    flags: f,
                } => {
                    prop_assert_eq!(frame.start_address().as_u64() + offset, phys + off);
                    prop_assert_eq!(
                        f & (F::USER_ACCESSIBLE | F::WRITABLE | F::NO_EXECUTE),
                        flags
                    );
                }
                other => prop_assert!(false, "oracle: {:#x} not mapped: {:?}", start + off, other),
            }
        }
    }
    let mut seen = Vec::new();
    m.for_each_mapping(&mut |map| seen.push((map.virt.as_u64(), map.phys.as_u64(), map.size)))
        .unwrap();
    let want: Vec<_> = model
        .iter()
        .map(|(s, (p, size, _))| (*s, *p, *size))
        .collect();
    prop_assert_eq!(seen, want);
    Ok(())
}

fn run_mapper_model<A: PageAllocator>(
    alloc: A,
    ops: Vec<MapOp>,
    exact_tables: bool,
) -> Result<(), TestCaseError> {
    let pages = alloc.capacity();
    let mem = SimMemory::new(2 + pages as u64);
    let pool = mem.pool(2, pages).unwrap();
    let mut m = PoolMapper::create(pool, alloc);
    let mut model = Model::new();
    for op in ops {
        match op {
            MapOp::Map {
                start,
                count,
                size,
                frame,
                user,
            } => {
                let flags = F::WRITABLE
                    | if user {
                        F::USER_ACCESSIBLE
                    } else {
                        F::NO_EXECUTE
                    };
                // Single pages go through map_page (one walk), longer runs through map_range (batched).
                let (v, p) = (VirtAddr::new(start), PhysAddr::new(frame));
                let result = if count == 1 {
                    m.map_page(v, p, size, flags)
                } else {
                    m.map_range(v, p, count, size, flags)
                };
                let Some(last) = end(start, count * size.bytes()) else {
                    prop_assert!(
                        matches!(result, Err(MapError::NonCanonical { .. })),
                        "{:?}",
                        result
                    );
                    continue;
                };
                let hits = overlapping(&model, start, last);
                if !hits.is_empty() {
                    prop_assert!(
                        matches!(
                            result,
                            Err(MapError::AlreadyMapped { .. } | MapError::TableInTheWay { .. })
                        ),
                        "overlap {:x?} but {:?}",
                        hits,
                        result
                    );
                    continue;
                }
                if exact_tables {
                    // Tables needed = prediction with the new range - prediction without it.
                    let mut before = regions(&model);
                    let mut after = before.clone();
                    after.push(Region {
                        start: VirtAddr::new(start),
                        pages: count,
                        size,
                    });
                    let needed = predict_tables(&mut after).unwrap().total()
                        - predict_tables(&mut before).unwrap().total();
                    if needed > m.usage().left as u64 {
                        prop_assert_eq!(
                            result,
                            Err(MapError::PoolExhausted {
                                needed,
                                left: m.usage().left
                            })
                        );
                        continue;
                    }
                    prop_assert!(result.is_ok(), "{:?}", result);
                } else if result.is_err() {
                    // Bump pools keep empty tables, which may stand where a huge page is wanted.
                    prop_assert!(
                        matches!(
                            result,
                            Err(MapError::TableInTheWay { .. } | MapError::PoolExhausted { .. })
                        ),
                        "{:?}",
                        result
                    );
                    continue;
                }
                result.unwrap().ignore();
                for k in 0..count {
                    model.insert(
                        start + k * size.bytes(),
                        (frame + k * size.bytes(), size, flags),
                    );
                }
            }
            MapOp::Unmap { start, pages } => {
                let bytes = pages * 4096;
                let result = m.unmap_now(VirtAddr::new(start), bytes);
                let Some(last) = end(start, bytes) else {
                    prop_assert!(
                        matches!(result, Err(UnmapError::NonCanonical { .. })),
                        "{:?}",
                        result
                    );
                    continue;
                };
                let hits = overlapping(&model, start, last);
                let partial = hits
                    .iter()
                    .find(|(s, _, size)| *s < start || s + (size.bytes() - 1) > last);
                if let Some((s, _, size)) = partial {
                    prop_assert_eq!(
                        result,
                        Err(UnmapError::PartialHugePage {
                            virt: VirtAddr::new(*s),
                            size: *size
                        })
                    );
                    continue;
                }
                let flush = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                prop_assert_eq!(flush.pages(), hits.len() as u64);
                flush.ignore();
                for (s, _, _) in hits {
                    model.remove(&s);
                }
            }
        }
        if exact_tables {
            prop_assert_eq!(
                m.usage().tables,
                predict_tables(&mut regions(&model)).unwrap()
            );
            prop_assert_eq!(m.usage().used as u64, m.usage().tables.total());
        }
    }
    check_against_model(&mem, &m, &model)?;
    // Unmap everything, one mapping at a time.
    for &start in model.keys() {
        m.unmap_page_now(VirtAddr::new(start))
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?
            .1
            .ignore();
    }
    let mut any = false;
    m.for_each_mapping(&mut |_| any = true).unwrap();
    prop_assert!(!any);
    if m.allocator().can_free() {
        prop_assert_eq!(
            m.usage().used,
            1,
            "the bitmap pool is back to just the root"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn bitmap_mapper_matches_a_map(pages in 64u32..160, ops in prop::collection::vec(map_op(), 1..24)) {
        run_mapper_model(BitmapAllocator::new(pages), ops, true)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn bump_mapper_matches_a_map(pages in 64u32..160, ops in prop::collection::vec(map_op(), 1..24)) {
        run_mapper_model(BumpAllocator::new(pages), ops, false)?;
    }
}
