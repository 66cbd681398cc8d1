//! The churn engine: a sequence of map and unmap operations played through a [`PoolMapper`],
//! whatever its allocator, to the end or to the operation at which the pool runs out. The
//! `churn` benchmark plays a [`Script`] (regions of real sizes at scattered addresses, some
//! addresses used again); a lifetime replay plays a program's own sequence through [`play`].

use crate::rng::Rng;
use vystem_ptp::{MapError, PageAllocator, PageSizes, PageTableFlags as F, PoolMapper, UnmapError};
use x86_64::{PhysAddr, VirtAddr};

/// One operation on the mapping set. Both are page aligned; a region maps to the physical
/// address equal to its virtual one (frames are never touched), so 2 MiB pages go where the
/// region's alignment allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Map `bytes` at `virt` (4 KiB head and tail, 2 MiB pages between where aligned).
    Map { virt: u64, bytes: u64 },
    /// Unmap whatever is mapped in `virt..virt + bytes`.
    Unmap { virt: u64, bytes: u64 },
}

/// Why a sequence stopped before its end, other than the pool running out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A map the mapper refused for another reason than the pool (a conflict, say).
    Map(MapError),
    /// An unmap the mapper refused.
    Unmap(UnmapError),
}

/// What playing a sequence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Played {
    /// Operations done (those before the stop).
    pub done: u64,
    /// The operation (0-based) whose map found the pool exhausted, if one did.
    pub exhausted_at: Option<u64>,
    /// The operation that failed otherwise, and why: a wrong sequence, never the pool.
    pub failed: Option<(u64, Stop)>,
    /// Pool pages in use at most, and at the end (root included).
    pub peak_used: u32,
    pub used: u32,
    /// Maps that fell back to 4 KiB pages: an emptied table the allocator kept (bump frees
    /// none) stood where a 2 MiB page would go.
    pub fallbacks_4kib: u64,
    /// Tables the unmaps unlinked from the tree (each given back to the allocator after its
    /// release); an allocator that cannot free keeps them linked: none.
    pub tables_unlinked: u64,
}

impl Played {
    /// What "bump never frees" means, checkable: no table was unlinked (an unlinked table an
    /// allocator cannot take back would be lost), and the pages in use never fell.
    pub fn kept_every_table(&self) -> bool {
        self.tables_unlinked == 0 && self.used == self.peak_used
    }
}

const FLAGS: F = F::PRESENT.union(F::WRITABLE).union(F::USER_ACCESSIBLE);

/// What one operation did, for a caller that follows a sequence step by step (a lifetime
/// replay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Pool pages in use after it (root included).
    pub used: u32,
    /// Pages an unmap asks the TLB to forget (0 for a map).
    pub forget: u64,
    /// Table pages an unmap gave back to the allocator.
    pub tables_freed: u64,
    /// Ticks the mapper took, by the caller's clock.
    pub ticks: u64,
}

/// Play `ops` on `m` until they end, the pool runs out, or an operation fails. Mapping uses
/// `sizes` (4 KiB, and 2 MiB where allowed). Nothing is flushed: the tables are not in CR3.
pub fn play<A: PageAllocator>(
    m: &mut PoolMapper<A>,
    sizes: PageSizes,
    ops: impl Iterator<Item = Op>,
) -> Played {
    // No clock: the churn benchmark times `play` whole, and a clock read per operation would
    // be part of what it measures.
    play_steps(m, sizes, ops, || 0, |_, _, _| {})
}

/// [`play`], telling `step` what each completed operation (its index, itself) did, with the
/// mapper's time in ticks of `clock`.
pub fn play_steps<A: PageAllocator>(
    m: &mut PoolMapper<A>,
    sizes: PageSizes,
    ops: impl Iterator<Item = Op>,
    clock: impl Fn() -> u64,
    mut step: impl FnMut(u64, Op, Step),
) -> Played {
    let mut p = Played {
        used: m.allocator().used(),
        peak_used: m.allocator().used(),
        ..Played::default()
    };
    for (i, op) in ops.enumerate() {
        let i = i as u64;
        let t0 = clock();
        let r = match op {
            Op::Map { virt, bytes } => {
                let (v, ph) = (VirtAddr::new_truncate(virt), PhysAddr::new_truncate(virt));
                let mut r = m.map_region(v, ph, bytes, sizes, FLAGS);
                if let Err(MapError::TableInTheWay { .. }) = r {
                    // What a kernel does there: the region's pages stay small.
                    p.fallbacks_4kib += 1;
                    r = m.map_region(v, ph, bytes, PageSizes::ONLY_4KIB, FLAGS);
                }
                r.map(|_| (0, 0)).map_err(|e| match e {
                    MapError::PoolExhausted { .. } => None,
                    e => Some(Stop::Map(e)),
                })
            }
            Op::Unmap { virt, bytes } => m
                .unmap_range(VirtAddr::new_truncate(virt), bytes)
                .map(|u| {
                    let done = (u.range().pages(), u.range().tables_freed());
                    // SAFETY: a churn's tables are never loaded in any CR3.
                    let _ = m.release(unsafe { u.assume_flushed() });
                    done
                })
                .map_err(|e| Some(Stop::Unmap(e))),
        };
        let ticks = clock().wrapping_sub(t0);
        let (forget, tables_freed) = match r {
            Ok(done) => done,
            Err(None) => {
                p.exhausted_at = Some(i);
                break;
            }
            Err(Some(stop)) => {
                p.failed = Some((i, stop));
                break;
            }
        };
        p.done += 1;
        p.tables_unlinked += tables_freed;
        let used = m.allocator().used();
        p.peak_used = p.peak_used.max(used);
        step(
            i,
            op,
            Step {
                used,
                forget,
                tables_freed,
                ticks,
            },
        );
    }
    p.used = m.allocator().used();
    p
}

/// Regions live at once at most.
pub const MAX_LIVE: usize = 2048;
/// Sizes a script draws from at most (a sample of the layouts' mappings).
pub const MAX_SIZES: usize = 2048;
/// The user half holds 2^16 slots of 2 GiB; a region lives in one, at most 1 GiB long.
const SLOT_SHIFT: u32 = 31;
const SLOTS: u64 = 1 << 16;
const MAX_REGION: u64 = 1 << 30;
/// Slots freed recently, which new regions take again (as munmap + mmap often do).
const REUSE: usize = 64;

/// Region sizes (bytes, 4 KiB multiples) from layout text (`# NAME` lines, then `START END`
/// hex per mapping), at most [`MAX_SIZES`] of them, sampled evenly over the mappings; each
/// capped at 1 GiB. Returns how many were written to `out`; lines that are not two hex
/// numbers, start < end, are skipped.
pub fn sizes_from_layouts(text: &[u8], out: &mut [u64; MAX_SIZES]) -> usize {
    let ranges = || {
        text.split(|&b| b == b'\n').filter_map(|line| {
            let (a, b) = crate::layout_text::range(core::str::from_utf8(line).ok()?)?;
            Some(((b - a).div_ceil(4096) * 4096).min(MAX_REGION))
        })
    };
    let total = ranges().count();
    if total == 0 {
        return 0;
    }
    let step = total.div_ceil(MAX_SIZES);
    let mut n = 0;
    for s in ranges().step_by(step) {
        out[n] = s;
        n += 1;
    }
    n
}

/// A mapping set that changes, as a deterministic sequence (the seed): it grows to half of
/// `live` regions, then each operation maps a new region or unmaps a random live one, evenly,
/// never more than `live` at once. At most 2^16 operations (the slots a script never repeats). A new
/// region takes a recently freed slot half the time, else a slot never used; its size is drawn
/// from `sizes`, its start 4 KiB aligned in the slot's first 2 MiB.
pub struct Script<'a> {
    sizes: &'a [u64],
    rng: Rng,
    left: u64,
    live: [(u64, u64); MAX_LIVE],
    n: usize,
    target: usize,
    next_slot: u64,
    freed: [u64; REUSE],
    n_freed: usize,
}

impl<'a> Script<'a> {
    /// `ops` operations over `sizes` (none: an empty script), at most `live` regions at once
    /// (clamped to 1..=[`MAX_LIVE`]).
    pub fn new(sizes: &'a [u64], ops: u64, live: usize, seed: u64) -> Script<'a> {
        Script {
            sizes,
            rng: Rng::new(seed),
            left: if sizes.is_empty() { 0 } else { ops.min(SLOTS) },
            live: [(0, 0); MAX_LIVE],
            n: 0,
            target: live.clamp(1, MAX_LIVE),
            next_slot: 0,
            freed: [0; REUSE],
            n_freed: 0,
        }
    }

    fn slot(&mut self) -> u64 {
        if self.n_freed > 0 && self.rng.next_u64() & 1 == 0 {
            let i = self.rng.below(self.n_freed as u64) as usize;
            let s = self.freed[i];
            self.n_freed -= 1;
            self.freed[i] = self.freed[self.n_freed];
            return s;
        }
        // An odd multiplier permutes the slots: every slot once, scattered over the half.
        let s = (self.next_slot.wrapping_mul(0x9e37_79b9_7f4a_7c15 | 1)) % SLOTS;
        self.next_slot += 1;
        s
    }
}

impl Iterator for Script<'_> {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Grow to half the live target, then map or unmap evenly, never past the target.
        let map = if self.n == 0 || self.n < self.target / 2 {
            true
        } else if self.n >= self.target {
            false
        } else {
            self.rng.next_u64() & 1 == 0
        };
        if map {
            let size = self.sizes[self.rng.below(self.sizes.len() as u64) as usize];
            let slot = self.slot();
            let virt = (slot << SLOT_SHIFT) + self.rng.below(512) * 4096;
            // Slot 0 holds address 0: keep the null page unmapped.
            let virt = virt.max(4096);
            self.live[self.n] = (virt, size);
            self.n += 1;
            return Some(Op::Map { virt, bytes: size });
        }
        let i = self.rng.below(self.n as u64) as usize;
        let (virt, bytes) = self.live[i];
        self.n -= 1;
        self.live[i] = self.live[self.n];
        if self.n_freed < REUSE {
            self.freed[self.n_freed] = virt >> SLOT_SHIFT;
            self.n_freed += 1;
        }
        Some(Op::Unmap { virt, bytes })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec::Vec;
    use vystem_ptp::sim::SimMemory;
    use vystem_ptp::{BitmapAllocator, BumpAllocator};

    const SIZES: [u64; 4] = [4096, 3 * 4096, 2 << 20, 9 << 20];

    #[test]
    fn sizes_come_from_the_layout_lines_and_bad_lines_are_skipped() {
        let text = b"# prog\n1000 3000\n0x10000 0x10001\nzz 1\n5000 4000\n0 80000000\n";
        let mut out = [0u64; MAX_SIZES];
        let n = sizes_from_layouts(text, &mut out);
        // 8 KiB; one byte rounds up to a page; 2 GiB is capped at 1 GiB.
        assert_eq!(&out[..n], &[0x2000, 0x1000, 1 << 30]);
        assert_eq!(sizes_from_layouts(b"\xff\xfe", &mut out), 0);
    }

    #[test]
    fn a_script_is_deterministic_and_never_maps_over_a_live_region() {
        let ops: Vec<Op> = Script::new(&SIZES, 3000, 40, 7).collect();
        assert_eq!(ops.len(), 3000);
        assert_eq!(ops, Script::new(&SIZES, 3000, 40, 7).collect::<Vec<_>>());
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut most = 0;
        for op in &ops {
            match *op {
                Op::Map { virt, bytes } => {
                    assert!(virt >= 4096 && virt % 4096 == 0 && virt + bytes <= 1 << 47);
                    assert!(
                        live.iter()
                            .all(|&(v, b)| virt + bytes <= v || v + b <= virt),
                        "{op:?}"
                    );
                    live.push((virt, bytes));
                }
                Op::Unmap { virt, bytes } => {
                    let i = live
                        .iter()
                        .position(|&r| r == (virt, bytes))
                        .expect("unmaps a live region");
                    live.swap_remove(i);
                }
            }
            most = most.max(live.len());
        }
        assert!((20..=40).contains(&most), "{most}");
        assert!(Script::new(&[], 10, 4, 1).next().is_none());
    }

    #[test]
    fn bump_runs_out_where_the_bitmap_goes_on() {
        let mem = SimMemory::new(128);
        let pool = mem.pool(0, 128).unwrap();
        let script = || Script::new(&SIZES, 2000, 8, 3);
        let mut bitmap = PoolMapper::create(pool, BitmapAllocator::new(128));
        let b = play(&mut bitmap, PageSizes::UP_TO_2MIB, script());
        assert_eq!(
            (b.done, b.exhausted_at, b.failed),
            (2000, None, None),
            "{b:?}"
        );
        assert!(b.peak_used <= 128 && b.used <= b.peak_used);
        let mut bump = PoolMapper::create(pool, BumpAllocator::new(128));
        let p = play(&mut bump, PageSizes::UP_TO_2MIB, script());
        assert_eq!(p.failed, None);
        let at = p
            .exhausted_at
            .expect("bump never frees: 2000 operations outgrow 128 pages");
        assert_eq!(p.done, at, "the operations before the one that ran out");
        assert_eq!(p.used, p.peak_used, "bump frees nothing");
        assert!(p.kept_every_table(), "{p:?}");
        // The fault the check exists to catch: a table unlinked that bump cannot take back.
        let lost = Played {
            tables_unlinked: 1,
            ..p
        };
        assert!(!lost.kept_every_table());
        assert!(p.used > 120 && at < 2000, "{p:?}");
    }
}
