//! Batched range mapping: a read-only plan, then a level-by-level fill.

use super::*;
use crate::chunk::{Chunk, Chunks};

impl<A: PageAllocator> PoolMapper<A> {
    /// Map `count` pages of `size` from `virt` to `phys` (batched; all or nothing).
    ///
    /// `flags` are the leaf flags (PRESENT is implied, HUGE_PAGE is set as `size` needs). Tables
    /// on the way get PRESENT | WRITABLE, plus USER_ACCESSIBLE when the leaf has it, so the
    /// leaf alone decides the permissions.
    pub fn map_range(
        &mut self,
        virt: VirtAddr,
        phys: PhysAddr,
        count: u64,
        size: PageSize,
        flags: F,
    ) -> Result<FlushRange, MapError> {
        let (start, p) = (virt.as_u64(), phys.as_u64());
        if start % size.bytes() != 0 || p % size.bytes() != 0 {
            return Err(MapError::Misaligned {
                virt: start,
                phys: p,
                size,
            });
        }
        if count == 0 {
            return Ok(FlushRange::new(start, start, size, 0));
        }
        let last =
            range_last(start, count, size).map_err(|addr| MapError::NonCanonical { addr })?;
        let phys_end = (count as u128) * size.bytes() as u128 + p as u128;
        if phys_end > MAX_PHYS as u128 {
            return Err(MapError::FrameOutOfRange {
                phys: phys_end.min(u64::MAX as u128) as u64,
            });
        }
        self.check_frames(p, count.saturating_mul(size.bytes()))?;
        let chunks = Chunks::single(start, p, count, size);
        let one = Chunk {
            virt: start,
            phys: p,
            count,
            size,
        };
        let needed = self.plan(Some(ROOT_PAGE), 4, start, last, &chunks, Some(one))?;
        if needed > self.alloc.left() as u64 {
            return Err(MapError::PoolExhausted {
                needed,
                left: self.alloc.left(),
            });
        }
        let bits = Bits::new(size, flags);
        self.fill_tables(ROOT_PAGE, 4, false, start, last, p, &bits)?;
        Ok(FlushRange::new(start, last, size, count))
    }

    /// Map `bytes` from `virt` to `phys` with the largest page sizes that alignment and `sizes`
    /// allow (4 KiB head and tail, 2 MiB / 1 GiB middle). All or nothing: the whole region is
    /// checked first (canonical, in the physical space, no conflict in any chunk, and the exact
    /// number of tables its chunks need together, shared ones counted once), then written
    /// chunk by chunk.
    pub fn map_region(
        &mut self,
        virt: VirtAddr,
        phys: PhysAddr,
        bytes: u64,
        sizes: PageSizes,
        flags: F,
    ) -> Result<RegionStats, MapError> {
        let (v0, p0) = (virt.as_u64(), phys.as_u64());
        if v0 % PAGE_BYTES != 0 || p0 % PAGE_BYTES != 0 || !bytes.is_multiple_of(PAGE_BYTES) {
            return Err(MapError::Misaligned {
                virt: v0,
                phys: p0,
                size: PageSize::Size4KiB,
            });
        }
        let mut stats = RegionStats::default();
        if bytes == 0 {
            return Ok(stats);
        }
        // The whole region, checked up front: no chunk may wrap past 2^64 or reach the hole.
        let last = range_last(v0, bytes / PAGE_BYTES, PageSize::Size4KiB)
            .map_err(|addr| MapError::NonCanonical { addr })?;
        if p0 as u128 + bytes as u128 > MAX_PHYS as u128 {
            return Err(MapError::FrameOutOfRange {
                phys: (p0 as u128 + bytes as u128).min(u64::MAX as u128) as u64,
            });
        }
        self.check_frames(p0, bytes)?;
        let chunks = Chunks::new(v0, p0, bytes, sizes);
        let needed = self.plan(Some(ROOT_PAGE), 4, v0, last, &chunks, None)?;
        if needed > self.alloc.left() as u64 {
            return Err(MapError::PoolExhausted {
                needed,
                left: self.alloc.left(),
            });
        }
        for c in chunks {
            // Checked above: only an allocator that hands out pages past the pool can fail here.
            let virt = VirtAddr::new_truncate(c.virt);
            self.map_range(virt, PhysAddr::new_truncate(c.phys), c.count, c.size, flags)?
                .ignore(); // the caller flushes the region, which covers every chunk
            match c.size {
                PageSize::Size4KiB => stats.pages_4kib += c.count,
                PageSize::Size2MiB => stats.pages_2mib += c.count,
                PageSize::Size1GiB => stats.pages_1gib += c.count,
            }
        }
        Ok(stats)
    }

    /// Read-only pass over the chunks of a range: conflicts, and how many tables it is
    /// missing. `table` is `None` below an entry that does not exist yet. `one` is the chunk
    /// that maps all of `start..=last`, where the caller knows it: map_range's only chunk, or a
    /// region's chunk below an entry that lies inside it. Then no chunk is looked up, a missing
    /// entry needs tables in closed form and a leaf table is checked in one vectorised pass
    /// (the warm-map path).
    #[allow(clippy::too_many_arguments)] // the recursion's state, kept in registers
    fn plan(
        &self,
        table: Option<u32>,
        level: u8,
        start: u64,
        last: u64,
        chunks: &Chunks,
        one: Option<Chunk>,
    ) -> Result<u64, MapError> {
        let (fi, li) = (index(start, level), index(last, level));
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        let conflict = |e: u64, virt: u64| {
            let virt = VirtAddr::new_truncate(virt);
            if level > 1 && !is_huge(e, level) {
                MapError::TableInTheWay { virt }
            } else {
                MapError::AlreadyMapped { virt }
            }
        };
        if let (Some(c), Some(t)) = (one, table) {
            if level == c.size.level() + 1 {
                return self.plan_leaf_tables(t, level, start, last, chunks, c);
            }
        }
        if let Some(c) = one {
            let leaf = c.size.level();
            if level == leaf {
                let Some(t) = table else {
                    return Ok(0); // a table still to create: all its entries are free
                };
                // SAFETY: entries fi..=li of a pool table. OR-ing them all first is one
                // vectorised pass; only a conflict pays for finding the first used entry.
                let run =
                    unsafe { core::slice::from_raw_parts(self.entries(t).add(fi), li - fi + 1) };
                if crate::scan::any_used(self.fill, run) {
                    for i in fi..=li {
                        let e = self.read(t, i);
                        if e != 0 {
                            return Err(conflict(e, base + i as u64 * entry_span(level)));
                        }
                    }
                }
                return Ok(0);
            }
        }
        let mut needed = 0;
        for i in fi..=li {
            let lo = base + i as u64 * entry_span(level);
            let (s, l) = (start.max(lo), last.min(lo + (entry_span(level) - 1)));
            let e = table.map_or(0, |t| self.read(t, i));
            // The chunk that maps all of s..=l, if one does.
            let (first, whole) = match one {
                Some(c) => (c, true),
                None => {
                    let Some(first) = chunks.at(s) else {
                        continue; // outside the region: not reached, the range is the region's
                    };
                    (first, chunks.at(l) == Some(first))
                }
            };
            if first.size.level() == level {
                // A leaf of this chunk: its slot must be free.
                if e != 0 {
                    return Err(conflict(e, s));
                }
            } else if e == 0 {
                // A table to create; below it, one chunk needs tables in closed form.
                needed += if whole {
                    tables_below(level - 1, first.size.level(), s, l)
                } else {
                    1 + self.plan(None, level - 1, s, l, chunks, None)?
                };
            } else if is_huge(e, level) {
                return Err(MapError::AlreadyMapped {
                    virt: VirtAddr::new_truncate(s),
                });
            } else {
                let child = self
                    .child(e)
                    .map_err(|phys| MapError::ForeignTable { phys })?;
                let one = whole.then_some(first);
                needed += self.plan(Some(child), level - 1, s, l, chunks, one)?;
            }
        }
        Ok(needed)
    }

    /// The plan above the leaf tables of one chunk `c` that maps all of `start..=last`: a
    /// run of whole tables on consecutive pool pages is checked free in one pass over all
    /// their entries (a conflict in it is then found table by table, for its address).
    fn plan_leaf_tables(
        &self,
        table: u32,
        level: u8,
        start: u64,
        last: u64,
        chunks: &Chunks,
        c: Chunk,
    ) -> Result<u64, MapError> {
        let (fi, li) = (index(start, level), index(last, level));
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        let span = entry_span(level);
        let mut needed = 0;
        let mut i = fi;
        while i <= li {
            let (run, first) = self.child_run(table, level, i, li, base, start, last);
            if run > 1 {
                // SAFETY: `run` consecutive pool pages from `first` (child_run checked them).
                let all =
                    unsafe { core::slice::from_raw_parts(self.entries(first), run * ENTRIES) };
                if !crate::scan::any_used(self.fill, all) {
                    i += run;
                    continue;
                }
            }
            for k in i..i + run.max(1) {
                let lo = base + k as u64 * span;
                let (s, l) = (start.max(lo), last.min(lo + (span - 1)));
                let e = self.read(table, k);
                if e == 0 {
                    needed += tables_below(level - 1, c.size.level(), s, l);
                } else if is_huge(e, level) {
                    return Err(MapError::AlreadyMapped {
                        virt: VirtAddr::new_truncate(s),
                    });
                } else {
                    let child = self
                        .child(e)
                        .map_err(|phys| MapError::ForeignTable { phys })?;
                    needed += self.plan(Some(child), level - 1, s, l, chunks, Some(c))?;
                }
            }
            i += run.max(1);
        }
        Ok(needed)
    }

    #[allow(clippy::too_many_arguments)] // the recursion's state, kept in registers
    fn fill_tables(
        &mut self,
        table: u32,
        level: u8,
        fresh: bool,
        start: u64,
        last: u64,
        phys: u64,
        bits: &Bits,
    ) -> Result<(), MapError> {
        let (fi, li) = (index(start, level), index(last, level));
        let t = self.entries(table);
        if fresh {
            // SAFETY: `t` is a pool page of 512 entries; the ranges are within it.
            // (A whole table, the common case, calls no memset of nothing.)
            unsafe {
                if fi > 0 {
                    core::ptr::write_bytes(t, 0, fi);
                }
                if li + 1 < ENTRIES {
                    core::ptr::write_bytes(t.add(li + 1), 0, ENTRIES - li - 1);
                }
            }
        }
        if level == bits.leaf {
            let step = entry_span(level);
            // SAFETY: entries fi..=li of this table.
            unsafe {
                crate::fill::fill_entries(
                    self.fill,
                    t.add(fi),
                    li - fi + 1,
                    phys | bits.leaf_bits,
                    step,
                )
            };
            return Ok(());
        }
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        if level == bits.leaf + 1 {
            return self.fill_leaf_tables(table, level, fresh, start, last, phys, bits);
        }
        for i in fi..=li {
            self.fill_entry(table, level, fresh, i, base, start, last, phys, bits)?;
        }
        Ok(())
    }

    /// Entry `i` of `table` (its range's part of `start..=last`): the table below it, made
    /// when there is none, and filled.
    #[allow(clippy::too_many_arguments)] // the recursion's state, kept in registers
    #[inline(always)]
    fn fill_entry(
        &mut self,
        table: u32,
        level: u8,
        fresh: bool,
        i: usize,
        base: u64,
        start: u64,
        last: u64,
        phys: u64,
        bits: &Bits,
    ) -> Result<(), MapError> {
        let lo = base + i as u64 * entry_span(level);
        let (s, l) = (start.max(lo), last.min(lo + (entry_span(level) - 1)));
        // A fresh table's entries are garbage until written: never read them.
        let e = if fresh { 0 } else { self.read(table, i) };
        let (child, child_fresh) = if e == 0 {
            let c = self.table_page()?;
            self.link(table, i, level, c, bits);
            (c, true)
        } else {
            (self.existing(table, i, e, bits)?, false)
        };
        self.fill_tables(
            child,
            level - 1,
            child_fresh,
            s,
            l,
            phys + (s - start),
            bits,
        )
    }

    /// Entry `i` of `table` at `level` now points at the new table `c`.
    #[inline(always)]
    fn link(&mut self, table: u32, i: usize, level: u8, c: u32, bits: &Bits) {
        self.write(table, i, self.pool.page_phys(c).as_u64() | bits.table_bits);
        *self.tables.level_mut(level - 1) += 1;
    }

    /// The table entry `e` (entry `i` of `table`) points at, its bits widened to what the
    /// leaf needs.
    #[inline(always)]
    fn existing(&mut self, table: u32, i: usize, e: u64, bits: &Bits) -> Result<u32, MapError> {
        if e & bits.table_bits != bits.table_bits {
            self.write(table, i, e | bits.table_bits);
        }
        self.child(e)
            .map_err(|phys| MapError::ForeignTable { phys })
    }

    /// Above the leaf tables: the leaf tables of `start..=last` below `table`. New ones are
    /// taken from the allocator [`BATCH`] at a time ([`PageAllocator::allocate_many`]: the
    /// plan counted them), and the leaves of a run of whole new tables that are consecutive
    /// pool pages are written in one fill, as one memset writes: no call per table.
    #[allow(clippy::too_many_arguments)] // the recursion's state, kept in registers
    fn fill_leaf_tables(
        &mut self,
        table: u32,
        level: u8,
        fresh: bool,
        start: u64,
        last: u64,
        phys: u64,
        bits: &Bits,
    ) -> Result<(), MapError> {
        let (fi, li) = (index(start, level), index(last, level));
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        let span = entry_span(level);
        let mut i = fi;
        while i <= li {
            let lo = base + i as u64 * span;
            let e = if fresh { 0 } else { self.read(table, i) };
            if e != 0 {
                // Tables that exist (their entries checked free by the plan): a run of whole
                // ones on consecutive pool pages is filled in one pass.
                let (run, first) = self.child_run(table, level, i, li, base, start, last);
                if run > 1 {
                    for k in i..i + run {
                        let ek = self.read(table, k);
                        self.existing(table, k, ek, bits)?;
                    }
                    // SAFETY: `run` consecutive pool pages from `first`, tables of this mapper.
                    unsafe {
                        crate::fill::fill_entries(
                            self.fill,
                            self.entries(first),
                            run * ENTRIES,
                            (phys + (lo - start)) | bits.leaf_bits,
                            entry_span(level - 1),
                        )
                    };
                    i += run;
                    continue;
                }
                self.fill_entry(table, level, false, i, base, start, last, phys, bits)?;
                i += 1;
                continue;
            }
            // New tables for the entries from `i` that have none, a batch at a time.
            let mut m = 1;
            while i + m <= li && m < BATCH && (fresh || self.read(table, i + m) == 0) {
                m += 1;
            }
            if m == 1 {
                // One new table (a small range): no batch to take or runs to find.
                self.fill_entry(table, level, fresh, i, base, start, last, phys, bits)?;
                i += 1;
                continue;
            }
            let mut pages = [0u32; BATCH];
            self.alloc
                .allocate_many(&mut pages[..m])
                .map_err(|_| MapError::PoolExhausted {
                    needed: m as u64,
                    left: self.alloc.left(),
                })?;
            if let Some(&bad) = pages[..m].iter().find(|&&c| c >= self.pool.pages()) {
                for &c in &pages[..m] {
                    let _ = self.alloc.free(c);
                }
                return Err(MapError::AllocatorOutsidePool {
                    index: bad,
                    pages: self.pool.pages(),
                });
            }
            for (j, &c) in pages[..m].iter().enumerate() {
                self.link(table, i + j, level, c, bits);
            }
            // Whole tables (inside the range) that are consecutive pages: one fill for a run.
            let mut j = 0;
            while j < m {
                let lo_j = base + (i + j) as u64 * span;
                let whole = |k: usize| {
                    let lo_k = base + (i + k) as u64 * span;
                    lo_k >= start && lo_k + (span - 1) <= last
                };
                let mut run = 0;
                while j + run < m && whole(j + run) && pages[j + run] == pages[j] + run as u32 {
                    run += 1;
                }
                if run == 0 {
                    let (s, l) = (start.max(lo_j), last.min(lo_j + (span - 1)));
                    self.fill_tables(pages[j], level - 1, true, s, l, phys + (s - start), bits)?;
                    j += 1;
                    continue;
                }
                let step = entry_span(level - 1);
                // SAFETY: `run` consecutive pool pages of 512 entries each, all new tables.
                unsafe {
                    crate::fill::fill_entries(
                        self.fill,
                        self.entries(pages[j]),
                        run * ENTRIES,
                        (phys + (lo_j - start)) | bits.leaf_bits,
                        step,
                    )
                };
                j += run;
            }
            i += m;
        }
        Ok(())
    }
}

/// New leaf tables taken from the allocator at once, at most.
const BATCH: usize = 64;
