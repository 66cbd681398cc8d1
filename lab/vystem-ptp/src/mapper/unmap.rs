//! Unmapping: leaves cleared, empty tables unlinked and held until the flush
//! ([`super::pending`]), one flush range.

use super::pending::{Pending, Unmap};
use super::*;

impl<A: PageAllocator> PoolMapper<A> {
    // ---- unmapping -------------------------------------------------------------------------

    /// Unmap the page that starts at `virt`, whatever its size.
    pub fn unmap_page(&mut self, virt: VirtAddr) -> Result<(Translation, Unmap), UnmapError> {
        let t = self.translate(virt).map_err(|e| match e {
            TranslateError::NotMapped { virt } => UnmapError::NotMapped { virt },
            TranslateError::ForeignTable { phys } => UnmapError::ForeignTable { phys },
        })?;
        if !virt.is_aligned(t.size.bytes()) {
            return Err(UnmapError::Misaligned {
                virt: virt.as_u64(),
            });
        }
        let unmap = self.unmap_range(virt, t.size.bytes())?;
        Ok((t, unmap))
    }

    /// Unmap every mapping inside `[virt, virt + bytes)`; unmapped holes are skipped. Tables
    /// that become empty are unlinked and held by the returned [`Unmap`] until it is flushed
    /// and released ([`PoolMapper::release`]): only then do they go back to the pool, when the
    /// allocator can free (the bitmap); with the bump allocator they stay, empty, in the tree.
    /// Cutting through a huge page is an error, checked before anything changes.
    pub fn unmap_range(&mut self, virt: VirtAddr, bytes: u64) -> Result<Unmap, UnmapError> {
        let mut batch = self.unmap_batch();
        self.unmap_into(&mut batch, virt, bytes)?;
        Ok(batch)
    }

    /// [`PoolMapper::unmap_range`] into `batch`: its range grows to cover this one and it holds
    /// these emptied tables too, so one flush and one release serve several unmaps. On an
    /// error, nothing changed and `batch` is as it was.
    pub fn unmap_into(
        &mut self,
        batch: &mut Unmap,
        virt: VirtAddr,
        bytes: u64,
    ) -> Result<(), UnmapError> {
        let (range, held) = batch.parts();
        let pool = self.pool.phys_base().as_u64();
        if held.pool != pool {
            return Err(UnmapError::OtherPool { pool: held.pool });
        }
        let mut tables = core::mem::take(held);
        let r = self.unmap_with(range, Some(&mut tables), virt, bytes);
        *held = tables;
        r
    }

    /// [`PoolMapper::unmap_range`] freeing the emptied tables at once, as it clears them: for
    /// tables no CPU has walked, such as those a bootloader builds and tears down before it
    /// loads them, or a simulation's. Returns the range changed.
    ///
    /// # Safety
    ///
    /// No CPU may hold a translation through these tables: they were in no CR3 since they
    /// were linked (or every CPU that loaded them has flushed). Otherwise use
    /// [`PoolMapper::unmap_range`], whose tables wait for the flush.
    pub unsafe fn unmap_unloaded(
        &mut self,
        virt: VirtAddr,
        bytes: u64,
    ) -> Result<FlushRange, UnmapError> {
        let mut range = FlushRange::new(0, 0, PageSize::Size4KiB, 0);
        self.unmap_with(&mut range, None, virt, bytes)?;
        Ok(range)
    }

    /// The unmap itself: into `range`, its emptied tables held in `held`, or (`None`) freed at
    /// once.
    fn unmap_with(
        &mut self,
        range: &mut FlushRange,
        held: Option<&mut Pending>,
        virt: VirtAddr,
        bytes: u64,
    ) -> Result<(), UnmapError> {
        let start = virt.as_u64();
        if !start.is_multiple_of(PAGE_BYTES) || !bytes.is_multiple_of(PAGE_BYTES) {
            return Err(UnmapError::Misaligned { virt: start });
        }
        if bytes == 0 {
            return Ok(());
        }
        let last = range_last(start, bytes / PAGE_BYTES, PageSize::Size4KiB)
            .map_err(|addr| UnmapError::NonCanonical { addr })?;
        let mut tables_at_2 = false;
        self.check_unmap(ROOT_PAGE, 4, start, last, &mut tables_at_2)?;
        let free_now = held.is_none();
        let mut acc = Unmapped {
            pages: 0,
            tables: 0,
            step: PageSize::Size1GiB,
            first: u64::MAX,
            last: 0,
            leaves_only_at_2: !tables_at_2,
            free_now,
            held: Pending::default(),
        };
        if let Some(h) = held {
            acc.held = core::mem::take(h);
            self.clear(ROOT_PAGE, 4, start, last, &mut acc);
            *h = core::mem::take(&mut acc.held);
        } else {
            self.clear(ROOT_PAGE, 4, start, last, &mut acc);
        }
        if acc.pages == 0 && acc.tables == 0 {
            return Ok(());
        }
        // Step-aligned, so every `step` page between first and last gets its `invlpg`.
        let first = acc.first & !(acc.step.bytes() - 1);
        let this = FlushRange::new(first, acc.last, acc.step, acc.pages).with_tables(acc.tables);
        *range = range.union(this);
        Ok(())
    }

    /// Checks the range below `table`; `tables_at_2` is set when a level-2 table of it holds a
    /// table (the clear then looks for them; otherwise it clears those entries as leaves).
    fn check_unmap(
        &self,
        table: u32,
        level: u8,
        start: u64,
        last: u64,
        tables_at_2: &mut bool,
    ) -> Result<(), UnmapError> {
        let (fi, li) = (index(start, level), index(last, level));
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        // Only the first and last entries can be cut through; between them, with no table
        // among the entries (one vectorised pass), nothing else can go wrong.
        let ends_only = level == 1 || (level < 4 && !self.any_table(table, level, fi, li));
        *tables_at_2 |= level == 2 && !ends_only;
        if ends_only {
            self.check_entry(table, level, start, last, base, fi, tables_at_2)?;
            return if li != fi {
                self.check_entry(table, level, start, last, base, li, tables_at_2)
            } else {
                Ok(())
            };
        }
        let mut i = fi;
        while i <= li {
            // Whole level-2 tables on consecutive pool pages: one scan for tables among all
            // their entries (none: nothing in them can fail).
            let run = if level == 3 {
                let (run, first) = self.child_run(table, level, i, li, base, start, last);
                if run > 1 && !self.any_table(first, 2, 0, run * ENTRIES - 1) {
                    i += run;
                    continue;
                }
                run.max(1)
            } else {
                1
            };
            for k in i..i + run {
                self.check_entry(table, level, start, last, base, k, tables_at_2)?;
            }
            i += run;
        }
        Ok(())
    }

    /// From entry `i` (up to `li`): how many entries point at tables that lie wholly inside
    /// `start..=last` and are consecutive pool pages, and the first of those pages (0 when
    /// entry `i` is no such table). A bump allocator hands out the tables of a range so.
    #[allow(clippy::too_many_arguments)] // the recursion's state
    pub(super) fn child_run(
        &self,
        table: u32,
        level: u8,
        i: usize,
        li: usize,
        base: u64,
        start: u64,
        last: u64,
    ) -> (usize, u32) {
        if i >= li {
            return (0, 0); // a run needs two entries: the small ranges pay nothing for it
        }
        let span = entry_span(level);
        let whole = |k: usize| {
            let lo = base + k as u64 * span;
            lo >= start && lo + (span - 1) <= last
        };
        let table_at = |k: usize| {
            let e = self.read(table, k);
            if e == 0 || is_huge(e, level) {
                None
            } else {
                self.child(e).ok()
            }
        };
        let Some(first) = table_at(i).filter(|_| whole(i)) else {
            return (0, 0);
        };
        let mut run = 1;
        // A run ends at the pool's last page: entries past it are no table's.
        while i + run <= li
            && whole(i + run)
            && (first as u64 + run as u64) < self.pool.pages() as u64
            && table_at(i + run) == Some(first + run as u32)
        {
            run += 1;
        }
        (run, first)
    }

    /// Entry `i` of the range's table at `level`: a huge page the range cuts through, or a
    /// table outside the pool, is an error; a table above level 1 is checked below.
    #[allow(clippy::too_many_arguments)] // the recursion's state
    fn check_entry(
        &self,
        table: u32,
        level: u8,
        start: u64,
        last: u64,
        base: u64,
        i: usize,
        tables_at_2: &mut bool,
    ) -> Result<(), UnmapError> {
        let e = self.read(table, i);
        if e == 0 || level == 1 {
            return Ok(());
        }
        let lo = base + i as u64 * entry_span(level);
        let hi = lo + (entry_span(level) - 1);
        if is_huge(e, level) {
            if start > lo || last < hi {
                let size = PageSize::from_level(level).unwrap_or(PageSize::Size1GiB);
                return Err(UnmapError::PartialHugePage {
                    virt: VirtAddr::new_truncate(lo),
                    size,
                });
            }
            return Ok(());
        }
        let child = self
            .child(e)
            .map_err(|phys| UnmapError::ForeignTable { phys })?;
        // A page table (level 1) holds no huge page to cut through: not walked.
        if level > 2 {
            self.check_unmap(child, level - 1, start.max(lo), last.min(hi), tables_at_2)?;
        }
        Ok(())
    }

    /// Whether entries `fi..=li` of a table at `level` hold a table (present, not huge); one
    /// pass without branches, which the compiler vectorises.
    fn any_table(&self, table: u32, level: u8, fi: usize, li: usize) -> bool {
        if level == 1 {
            return false;
        }
        // SAFETY: entries fi..=li of a pool table.
        let run = unsafe { core::slice::from_raw_parts(self.entries(table).add(fi), li - fi + 1) };
        crate::scan::tables_among(self.fill, run)
    }

    /// Clears leaves in the range; returns whether the table is now empty.
    fn clear(&mut self, table: u32, level: u8, start: u64, last: u64, acc: &mut Unmapped) -> bool {
        let (fi, li) = (index(start, level), index(last, level));
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        if !self.clear_leaves(table, level, fi, li, base, acc) {
            return self.emptied(table, level, fi, li);
        }
        // Tables remain among the entries: each is cleared below, and freed once empty.
        let mut kept_any = false;
        let mut i = fi;
        while i <= li {
            // Whole tables of leaves on consecutive pool pages: their entries cleared in one
            // pass, as one memset, then each freed.
            let leaves_below = level == 2 || (level == 3 && acc.leaves_only_at_2);
            if leaves_below {
                let (run, first) = self.child_run(table, level, i, li, base, start, last);
                if run > 1 {
                    kept_any |= !self.clear_run(table, level, i, run, first, base, acc);
                    i += run;
                    continue;
                }
            }
            let e = self.read(table, i);
            i += 1;
            if e == 0 {
                continue;
            }
            let i = i - 1;
            let lo = base + i as u64 * entry_span(level);
            let hi = lo + (entry_span(level) - 1);
            let Ok(child) = self.child(e) else {
                kept_any = true; // checked before; never reached
                continue;
            };
            let empty = self.clear(child, level - 1, start.max(lo), last.min(hi), acc);
            if empty && self.alloc.can_free() && self.take_tables(acc, child, 1) {
                self.write(table, i, 0);
                *self.tables.level_mut(level - 1) -= 1;
                acc.add_table(
                    start.max(lo),
                    PageSize::from_level(level).unwrap_or(PageSize::Size1GiB),
                );
            } else {
                kept_any = true;
            }
        }
        !kept_any && self.emptied(table, level, fi, li)
    }

    /// Whether `table` is empty once entries `fi..=li` were cleared: what decides whether it
    /// goes too. Only asked where the answer can matter: the root never goes, and an allocator
    /// that cannot free keeps every table; otherwise one vectorised pass over the entries
    /// outside the range (a 64-entry unmap of 1 GiB pages read all 512 of its PDPT and of the
    /// root one by one: most of its cost with the bitmap).
    fn emptied(&self, table: u32, level: u8, fi: usize, li: usize) -> bool {
        if level == 4 || !self.alloc.can_free() {
            return false;
        }
        if fi == 0 && li == ENTRIES - 1 {
            return true;
        }
        // SAFETY: the entries of a pool table, which nothing else holds meanwhile.
        let all = unsafe { core::slice::from_raw_parts(self.entries(table), ENTRIES) };
        !crate::scan::any_used(self.fill, &all[..fi])
            && !crate::scan::any_used(self.fill, &all[li + 1..])
    }
}

impl<A: PageAllocator> PoolMapper<A> {
    /// Entries `i..i + run` of `table` point at whole tables of leaves, the consecutive pool
    /// pages from `first`: clear all their entries in one pass, then free each table (the
    /// allocator willing). Returns whether all were freed.
    #[allow(clippy::too_many_arguments)] // the recursion's state
    fn clear_run(
        &mut self,
        table: u32,
        level: u8,
        i: usize,
        run: usize,
        first: u32,
        base: u64,
        acc: &mut Unmapped,
    ) -> bool {
        let lo = base + i as u64 * entry_span(level);
        // SAFETY: `run` consecutive pool pages from `first` (child_run checked them), tables
        // of this mapper that nothing else holds meanwhile.
        let all = unsafe { core::slice::from_raw_parts_mut(self.entries(first), run * ENTRIES) };
        if let Some(f) = all.iter().position(|&e| e != 0) {
            let l = all.iter().rposition(|&e| e != 0).unwrap_or(f);
            let (n, _) = crate::scan::clear_leaves(self.fill, all, true);
            let step = entry_span(level - 1);
            acc.pages += n;
            acc.cover(
                lo + f as u64 * step,
                lo + l as u64 * step + (step - 1),
                PageSize::from_level(level - 1).unwrap_or(PageSize::Size4KiB),
            );
        }
        if !self.alloc.can_free() || !self.take_tables(acc, first, run as u32) {
            return false;
        }
        // SAFETY: entries i..i + run of this pool table.
        unsafe { core::ptr::write_bytes(self.entries(table).add(i), 0, run) };
        *self.tables.level_mut(level - 1) -= run as u64;
        let size = PageSize::from_level(level).unwrap_or(PageSize::Size1GiB);
        acc.add_tables(
            run as u64,
            lo,
            lo + (run as u64 - 1) * entry_span(level),
            size,
        );
        true
    }

    /// The `count` emptied tables from pool page `first`, taken out of the tree: held until
    /// the flush, or (`acc.free_now`) freed at once. Whether they were (a page the allocator
    /// does not hold as allocated is no table of ours: it stays).
    fn take_tables(&mut self, acc: &mut Unmapped, first: u32, count: u32) -> bool {
        if acc.free_now {
            return self.alloc.free_range(first, count).is_ok();
        }
        if !(first..first.saturating_add(count)).all(|p| self.alloc.is_allocated(p)) {
            return false;
        }
        self.hold(&mut acc.held, first, count);
        true
    }

    /// The leaves among entries `fi..=li` (every entry of a page table; huge pages above)
    /// counted and cleared in one vectorised pass ([`crate::scan`]), the tables kept: whether
    /// tables remain, for the caller to walk.
    fn clear_leaves(
        &mut self,
        table: u32,
        level: u8,
        fi: usize,
        li: usize,
        base: u64,
        acc: &mut Unmapped,
    ) -> bool {
        if level == 4 {
            return true; // a PML4 holds tables only
        }
        // SAFETY: entries fi..=li of a pool table, which nothing else holds meanwhile.
        let run =
            unsafe { core::slice::from_raw_parts_mut(self.entries(table).add(fi), li - fi + 1) };
        let Some(first) = run.iter().position(|&e| e != 0) else {
            return false; // nothing mapped here
        };
        let last = run.iter().rposition(|&e| e != 0).unwrap_or(first);
        let leaves_only = level == 1 || (level == 2 && acc.leaves_only_at_2);
        let (n, tables) = crate::scan::clear_leaves(self.fill, run, leaves_only);
        if n > 0 {
            // The leaves lie between the first and last entries used (tables among them
            // cover their own pages below).
            acc.pages += n;
            acc.cover(
                base + (fi + first) as u64 * entry_span(level),
                base + (fi + last) as u64 * entry_span(level) + (entry_span(level) - 1),
                PageSize::from_level(level).unwrap_or(PageSize::Size4KiB),
            );
        }
        tables
    }
}

struct Unmapped {
    /// The emptied tables, held until the flush (the batch's, taken for the walk).
    held: Pending,
    /// Free the emptied tables at once instead ([`PoolMapper::unmap_unloaded`]).
    free_now: bool,
    /// The check found no table among the level-2 entries of the range: clear them as leaves.
    leaves_only_at_2: bool,
    pages: u64,
    tables: u64,
    step: PageSize,
    first: u64,
    last: u64,
}

impl Unmapped {
    /// A table was unlinked; `at` is an address of its span inside the range and `size` the
    /// largest page size not above its span. Flushing the `size` page around `at` reaches the
    /// paging-structure cache entries that pointed at it, so the step never grows past `size`.
    fn add_table(&mut self, at: u64, size: PageSize) {
        self.add_tables(1, at, at, size);
    }

    /// `n` tables unlinked, the first at `first`, the last at `last` (as [`Self::add_table`]).
    fn add_tables(&mut self, n: u64, first: u64, last: u64, size: PageSize) {
        self.tables += n;
        self.cover(first, last, size);
    }

    fn cover(&mut self, lo: u64, hi: u64, size: PageSize) {
        self.step = self.step.min(size);
        self.first = self.first.min(lo);
        self.last = self.last.max(hi);
    }
}
