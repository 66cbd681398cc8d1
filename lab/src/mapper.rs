//! Mapping over a pool: every page-table page comes from the pool's allocator and is reached
//! through the pool's window.
//!
//! Range mapping is batched: it first walks the range read-only (conflicts, and exactly how many
//! tables are missing), then fills tables level by level, each leaf table in one tight loop. It
//! never walks from the root per page, and a table it creates is written once (entries outside
//! the range are zeroed, inside are filled) instead of being cleared and then filled.
//! The plan makes a range mapping all-or-nothing: an error leaves the tables as they were.

use crate::allocator::{PageAllocator, ROOT_PAGE};
use crate::capacity::{table_span_shift, tables_below, TableCount, Usage};
use crate::flush::FlushRange;
use crate::page_size::{PageSize, PageSizes};
use crate::pool::{Pool, MAX_PHYS, PAGE_BYTES};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

const ENTRIES: usize = 512;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The pool has fewer free pages than the mapping needs tables (`needed` of them).
    PoolExhausted { needed: u64, left: u32 },
    /// `virt` is already mapped, by a page of any size.
    AlreadyMapped { virt: VirtAddr },
    /// A huge page is wanted at `virt` but a table exists there (it maps smaller pages, or an
    /// allocator that cannot free kept it after an unmap).
    TableInTheWay { virt: VirtAddr },
    /// `virt` or `phys` is not aligned to the page size.
    Misaligned {
        virt: u64,
        phys: u64,
        size: PageSize,
    },
    /// The range reaches `addr`, outside the canonical half it starts in (or past 2^64).
    NonCanonical { addr: u64 },
    /// The physical range reaches `phys`, past the 52-bit physical address space.
    FrameOutOfRange { phys: u64 },
    /// A table entry points at `phys`, outside the pool: these tables were not built by it.
    ForeignTable { phys: u64 },
    /// The allocator handed out page `index`, past the pool's `pages`: it describes a larger
    /// pool than the mapper's (a set-up error: the page is given back, never written; a
    /// range mapping may have been partly done).
    AllocatorOutsidePool { index: u32, pages: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmapError {
    /// Nothing maps `virt`.
    NotMapped {
        virt: VirtAddr,
    },
    /// The range cuts through the huge page that maps `virt`.
    PartialHugePage {
        virt: VirtAddr,
        size: PageSize,
    },
    /// Start or length not a multiple of 4 KiB (or, for a single page, of its page size).
    Misaligned {
        virt: u64,
    },
    NonCanonical {
        addr: u64,
    },
    ForeignTable {
        phys: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranslateError {
    NotMapped { virt: VirtAddr },
    ForeignTable { phys: u64 },
}

macro_rules! display_via_debug {
    ($($t:ty),*) => {$(
        impl core::fmt::Display for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self, f)
            }
        }
    )*};
}
display_via_debug!(MapError, UnmapError, TranslateError);

/// Where an address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub phys: PhysAddr,
    pub size: PageSize,
    pub flags: F,
}

/// One leaf entry, as the walk reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub virt: VirtAddr,
    pub phys: PhysAddr,
    pub size: PageSize,
    pub flags: F,
}

/// Pages a region mapping used, per size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionStats {
    pub pages_4kib: u64,
    pub pages_2mib: u64,
    pub pages_1gib: u64,
}

/// A mapper over one pool, with the pool's allocator.
pub struct PoolMapper<A: PageAllocator> {
    pool: Pool,
    alloc: A,
    tables: TableCount,
}

/// Bytes one entry of a table at `level` covers.
const fn entry_span(level: u8) -> u64 {
    1 << (12 + 9 * (level as u32 - 1))
}

fn index(va: u64, level: u8) -> usize {
    ((va >> (12 + 9 * (level as u32 - 1))) & 511) as usize
}

/// Canonical form: bits 48..64 copy bit 47.
fn sign_extend(va: u64) -> u64 {
    ((va << 16) as i64 >> 16) as u64
}

/// The inclusive last byte of `count` pages from `start`, checked to stay in `start`'s
/// canonical half.
fn range_last(start: u64, count: u64, size: PageSize) -> Result<u64, u64> {
    let len = count.checked_mul(size.bytes()).ok_or(u64::MAX)?;
    let last = start.checked_add(len - 1).ok_or(u64::MAX)?;
    if sign_extend(last) != last || (last ^ start) >> 47 != 0 {
        return Err(last);
    }
    Ok(last)
}

fn is_huge(entry: u64, level: u8) -> bool {
    level > 1 && entry & F::HUGE_PAGE.bits() != 0
}

impl<A: PageAllocator> PoolMapper<A> {
    /// A new, empty address space: the pool's root page is zeroed. `alloc` must describe the same
    /// pool, with only the root in use.
    pub fn create(pool: Pool, alloc: A) -> Self {
        // SAFETY: the pool's window reaches page 0, reserved for the root.
        unsafe { core::ptr::write_bytes(pool.page_ptr(ROOT_PAGE), 0, 1) };
        PoolMapper {
            pool,
            alloc,
            tables: TableCount {
                pml4: 1,
                ..TableCount::default()
            },
        }
    }

    /// Take over tables that already exist in the pool (e.g. the bootloader's), with the
    /// allocator that describes them. Counts the tables with one walk.
    pub fn adopt(pool: Pool, alloc: A) -> Result<Self, TranslateError> {
        let mut m = PoolMapper {
            pool,
            alloc,
            tables: TableCount {
                pml4: 1,
                ..TableCount::default()
            },
        };
        let mut tables = m.tables;
        m.walk_tables(ROOT_PAGE, 4, &mut |level| *tables.level_mut(level) += 1)?;
        m.tables = tables;
        Ok(m)
    }

    /// Empty the address space again, with a fresh allocator (benchmarks: a fresh pool per run).
    pub fn reset(&mut self, alloc: A) {
        // SAFETY: as in `create`.
        unsafe { core::ptr::write_bytes(self.pool.page_ptr(ROOT_PAGE), 0, 1) };
        self.alloc = alloc;
        self.tables = TableCount {
            pml4: 1,
            ..TableCount::default()
        };
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// Reach the pool through another window (e.g. its self-map once this space is in CR3).
    ///
    /// # Safety
    /// As for [`Pool::new`].
    pub unsafe fn rebase(&mut self, window: VirtAddr) -> Result<(), crate::pool::PoolError> {
        // SAFETY: forwarded to the caller.
        self.pool = unsafe { self.pool.rebased(window)? };
        Ok(())
    }

    pub fn into_parts(self) -> (Pool, A) {
        (self.pool, self.alloc)
    }

    pub fn usage(&self) -> Usage {
        Usage {
            tables: self.tables,
            used: self.alloc.used(),
            left: self.alloc.left(),
            capacity: self.alloc.capacity(),
        }
    }

    fn entries(&self, table: u32) -> *mut u64 {
        self.pool.page_ptr(table) as *mut u64
    }

    fn read(&self, table: u32, i: usize) -> u64 {
        // SAFETY: `table` is a pool page index handed out by the allocator; i < 512.
        unsafe { self.entries(table).add(i).read() }
    }

    fn write(&mut self, table: u32, i: usize, value: u64) {
        // SAFETY: as in `read`.
        unsafe { self.entries(table).add(i).write(value) }
    }

    /// A page for a new table, checked to be inside the pool.
    fn table_page(&mut self) -> Result<u32, MapError> {
        let c = self
            .alloc
            .allocate()
            .map_err(|_| MapError::PoolExhausted { needed: 1, left: 0 })?;
        if c >= self.pool.pages() {
            let _ = self.alloc.free(c);
            return Err(MapError::AllocatorOutsidePool {
                index: c,
                pages: self.pool.pages(),
            });
        }
        Ok(c)
    }

    fn child(&self, entry: u64) -> Result<u32, u64> {
        let phys = entry & ADDR_MASK;
        self.pool.index_of(PhysAddr::new_truncate(phys)).ok_or(phys)
    }

    // ---- mapping ---------------------------------------------------------------------------

    /// Map one page: one walk from the root, creating missing tables on the way. On error
    /// nothing changes (tables created by this call are unlinked and freed again). If these
    /// tables are live in CR3, `invlpg` the address after an error all the same: the CPU may
    /// have cached the way to a table that was unlinked again.
    pub fn map_page(
        &mut self,
        virt: VirtAddr,
        phys: PhysAddr,
        size: PageSize,
        flags: F,
    ) -> Result<FlushRange, MapError> {
        let (va, p) = (virt.as_u64(), phys.as_u64());
        if va % size.bytes() != 0 || p % size.bytes() != 0 {
            return Err(MapError::Misaligned {
                virt: va,
                phys: p,
                size,
            });
        }
        if p + size.bytes() > MAX_PHYS {
            return Err(MapError::FrameOutOfRange {
                phys: p + size.bytes(),
            });
        }
        let bits = Bits::new(size, flags);
        // (parent table, entry index, child) for each table created, to undo on error.
        let mut created = [(0u32, 0usize, 0u32, 0u8); 3];
        let mut n = 0;
        // Existing entries that need more permission bits: widened only once the leaf is written.
        let mut widen = [(0u32, 0usize, 0u64); 3];
        let mut nw = 0;
        let mut table = ROOT_PAGE;
        let mut result = Ok(());
        for level in (bits.leaf + 1..=4).rev() {
            let i = index(va, level);
            let e = self.read(table, i);
            if e == 0 {
                let c = match self.table_page() {
                    Ok(c) => c,
                    Err(MapError::PoolExhausted { .. }) => {
                        result = Err(MapError::PoolExhausted {
                            needed: (level - bits.leaf) as u64,
                            left: 0,
                        });
                        break;
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                };
                // SAFETY: a pool page just handed out; it becomes a table, so clear it.
                unsafe { core::ptr::write_bytes(self.pool.page_ptr(c), 0, 1) };
                self.write(table, i, self.pool.page_phys(c).as_u64() | bits.table_bits);
                *self.tables.level_mut(level - 1) += 1;
                created[n] = (table, i, c, level - 1);
                n += 1;
                table = c;
            } else if is_huge(e, level) {
                result = Err(MapError::AlreadyMapped { virt });
                break;
            } else {
                match self.child(e) {
                    Ok(c) => {
                        if e & bits.table_bits != bits.table_bits {
                            widen[nw] = (table, i, e);
                            nw += 1;
                        }
                        table = c;
                    }
                    Err(phys) => {
                        result = Err(MapError::ForeignTable { phys });
                        break;
                    }
                }
            }
        }
        let err = match result {
            Ok(()) => {
                let i = index(va, bits.leaf);
                let e = self.read(table, i);
                if e == 0 {
                    self.write(table, i, p | bits.leaf_bits);
                    for &(t, j, old) in &widen[..nw] {
                        self.write(t, j, old | bits.table_bits);
                    }
                    return Ok(FlushRange::new(va, va + (size.bytes() - 1), size, 1));
                }
                if bits.leaf > 1 && !is_huge(e, bits.leaf) {
                    MapError::TableInTheWay { virt }
                } else {
                    MapError::AlreadyMapped { virt }
                }
            }
            Err(e) => e,
        };
        // Only tables created here can be empty now (a conflict sits in an existing table, so
        // in practice this undoes a partial walk that ran out of pages).
        let mut freed = 0;
        for &(parent, i, c, level) in created[..n].iter().rev() {
            if self.alloc.free(c).is_ok() {
                self.write(parent, i, 0);
                *self.tables.level_mut(level) -= 1;
                freed += 1;
            }
        }
        Err(match err {
            MapError::PoolExhausted { needed, .. } => MapError::PoolExhausted {
                needed: needed + freed,
                left: self.alloc.left(),
            },
            other => other,
        })
    }

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
        let leaf = size.level();
        let needed = self.plan(ROOT_PAGE, 4, start, last, leaf)?;
        if needed > self.alloc.left() as u64 {
            return Err(MapError::PoolExhausted {
                needed,
                left: self.alloc.left(),
            });
        }
        let bits = Bits::new(size, flags);
        self.fill(ROOT_PAGE, 4, false, start, last, p, &bits)?;
        Ok(FlushRange::new(start, last, size, count))
    }

    /// Map `bytes` from `virt` to `phys` with the largest page sizes that alignment and `sizes`
    /// allow (4 KiB head and tail, 2 MiB / 1 GiB middle). The whole range is checked first
    /// (canonical, in the physical space); then chunk by chunk, and on an error the chunks
    /// already mapped are unmapped again. If the tables are live in CR3, flush the range after
    /// an error: that undo returns no flush promise.
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
        range_last(v0, bytes / PAGE_BYTES, PageSize::Size4KiB)
            .map_err(|addr| MapError::NonCanonical { addr })?;
        if p0 as u128 + bytes as u128 > MAX_PHYS as u128 {
            return Err(MapError::FrameOutOfRange {
                phys: (p0 as u128 + bytes as u128).min(u64::MAX as u128) as u64,
            });
        }
        let (mut v, mut p, mut rem) = (v0, p0, bytes);
        while rem > 0 {
            let size = [PageSize::Size1GiB, PageSize::Size2MiB]
                .into_iter()
                .find(|s| {
                    sizes.allows(*s) && v % s.bytes() == 0 && p % s.bytes() == 0 && rem >= s.bytes()
                })
                .unwrap_or(PageSize::Size4KiB);
            // Stop this chunk where a larger page could begin.
            let mut count = rem / size.bytes();
            for big in [PageSize::Size2MiB, PageSize::Size1GiB] {
                if big > size && sizes.allows(big) && (v.wrapping_sub(p)) % big.bytes() == 0 {
                    let to_boundary = (big.bytes() - v % big.bytes()) % big.bytes() / size.bytes();
                    let after = rem.checked_sub(to_boundary * size.bytes());
                    if to_boundary > 0 && after.is_some_and(|a| a >= big.bytes()) {
                        count = count.min(to_boundary);
                    }
                }
            }
            let virt_now = VirtAddr::try_new(v).map_err(|_| MapError::NonCanonical { addr: v })?;
            if let Err(e) = self.map_range(virt_now, PhysAddr::new_truncate(p), count, size, flags)
            {
                if v > v0 {
                    // Only chunks this call mapped: the range was verified free before each.
                    let _ = self.unmap_range(virt, v - v0).map(FlushRange::ignore);
                }
                return Err(e);
            }
            match size {
                PageSize::Size4KiB => stats.pages_4kib += count,
                PageSize::Size2MiB => stats.pages_2mib += count,
                PageSize::Size1GiB => stats.pages_1gib += count,
            }
            let len = count * size.bytes();
            v = v.wrapping_add(len);
            p += len;
            rem -= len;
        }
        Ok(stats)
    }

    /// Read-only pass: conflicts, and how many tables the range is missing.
    fn plan(
        &self,
        table: u32,
        level: u8,
        start: u64,
        last: u64,
        leaf: u8,
    ) -> Result<u64, MapError> {
        let (fi, li) = (index(start, level), index(last, level));
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        if level == leaf {
            // SAFETY: entries fi..=li of a pool table. OR-ing them all first is one vectorised
            // pass; only a conflict pays for finding the first used entry.
            let run =
                unsafe { core::slice::from_raw_parts(self.entries(table).add(fi), li - fi + 1) };
            if run.iter().fold(0, |acc, &e| acc | e) == 0 {
                return Ok(0);
            }
            for i in fi..=li {
                let e = self.read(table, i);
                if e != 0 {
                    let virt = VirtAddr::new_truncate(base + i as u64 * entry_span(level));
                    return Err(if level > 1 && !is_huge(e, level) {
                        MapError::TableInTheWay { virt }
                    } else {
                        MapError::AlreadyMapped { virt }
                    });
                }
            }
            return Ok(0);
        }
        let mut needed = 0;
        for i in fi..=li {
            let lo = base + i as u64 * entry_span(level);
            let (s, l) = (start.max(lo), last.min(lo + (entry_span(level) - 1)));
            let e = self.read(table, i);
            if e == 0 {
                needed += tables_below(level - 1, leaf, s, l);
            } else if is_huge(e, level) {
                return Err(MapError::AlreadyMapped {
                    virt: VirtAddr::new_truncate(s),
                });
            } else {
                let child = self
                    .child(e)
                    .map_err(|phys| MapError::ForeignTable { phys })?;
                needed += self.plan(child, level - 1, s, l, leaf)?;
            }
        }
        Ok(needed)
    }

    #[allow(clippy::too_many_arguments)] // the recursion's state, kept in registers
    fn fill(
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
            unsafe {
                core::ptr::write_bytes(t, 0, fi);
                core::ptr::write_bytes(t.add(li + 1), 0, ENTRIES - li - 1);
            }
        }
        if level == bits.leaf {
            let step = entry_span(level);
            // SAFETY: entries fi..=li of this table.
            unsafe {
                crate::fill::fill_entries(t.add(fi), li - fi + 1, phys | bits.leaf_bits, step)
            };
            return Ok(());
        }
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        for i in fi..=li {
            let lo = base + i as u64 * entry_span(level);
            let (s, l) = (start.max(lo), last.min(lo + (entry_span(level) - 1)));
            // A fresh table's entries are garbage until written: never read them.
            let e = if fresh { 0 } else { self.read(table, i) };
            let (child, child_fresh) = if e == 0 {
                let c = self.table_page()?;
                self.write(table, i, self.pool.page_phys(c).as_u64() | bits.table_bits);
                *self.tables.level_mut(level - 1) += 1;
                (c, true)
            } else {
                if e & bits.table_bits != bits.table_bits {
                    self.write(table, i, e | bits.table_bits);
                }
                (
                    self.child(e)
                        .map_err(|phys| MapError::ForeignTable { phys })?,
                    false,
                )
            };
            self.fill(
                child,
                level - 1,
                child_fresh,
                s,
                l,
                phys + (s - start),
                bits,
            )?;
        }
        Ok(())
    }

    // ---- unmapping -------------------------------------------------------------------------

    /// Unmap the page that starts at `virt`, whatever its size.
    pub fn unmap_page(&mut self, virt: VirtAddr) -> Result<(Translation, FlushRange), UnmapError> {
        let t = self.translate(virt).map_err(|e| match e {
            TranslateError::NotMapped { virt } => UnmapError::NotMapped { virt },
            TranslateError::ForeignTable { phys } => UnmapError::ForeignTable { phys },
        })?;
        if !virt.is_aligned(t.size.bytes()) {
            return Err(UnmapError::Misaligned {
                virt: virt.as_u64(),
            });
        }
        let flush = self.unmap_range(virt, t.size.bytes())?;
        Ok((t, flush))
    }

    /// Unmap every mapping inside `[virt, virt + bytes)`; unmapped holes are skipped. Tables
    /// that become empty go back to the pool when the allocator can free (the bitmap); with the
    /// bump allocator they stay, empty. Cutting through a huge page is an error, checked before
    /// anything changes.
    pub fn unmap_range(&mut self, virt: VirtAddr, bytes: u64) -> Result<FlushRange, UnmapError> {
        let start = virt.as_u64();
        if !start.is_multiple_of(PAGE_BYTES) || !bytes.is_multiple_of(PAGE_BYTES) {
            return Err(UnmapError::Misaligned { virt: start });
        }
        if bytes == 0 {
            return Ok(FlushRange::new(start, start, PageSize::Size4KiB, 0));
        }
        let last = range_last(start, bytes / PAGE_BYTES, PageSize::Size4KiB)
            .map_err(|addr| UnmapError::NonCanonical { addr })?;
        self.check_unmap(ROOT_PAGE, 4, start, last)?;
        let mut acc = Unmapped {
            pages: 0,
            tables: 0,
            step: PageSize::Size1GiB,
            first: u64::MAX,
            last: 0,
        };
        self.clear(ROOT_PAGE, 4, start, last, &mut acc);
        if acc.pages == 0 && acc.tables == 0 {
            return Ok(FlushRange::new(start, start, PageSize::Size4KiB, 0));
        }
        // Step-aligned, so every `step` page between first and last gets its `invlpg`.
        let first = acc.first & !(acc.step.bytes() - 1);
        Ok(FlushRange::new(first, acc.last, acc.step, acc.pages).with_tables(acc.tables))
    }

    fn check_unmap(&self, table: u32, level: u8, start: u64, last: u64) -> Result<(), UnmapError> {
        let (fi, li) = (index(start, level), index(last, level));
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        for i in fi..=li {
            let e = self.read(table, i);
            if e == 0 || level == 1 {
                continue;
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
            } else {
                let child = self
                    .child(e)
                    .map_err(|phys| UnmapError::ForeignTable { phys })?;
                self.check_unmap(child, level - 1, start.max(lo), last.min(hi))?;
            }
        }
        Ok(())
    }

    /// Clears leaves in the range; returns whether the table is now empty.
    fn clear(&mut self, table: u32, level: u8, start: u64, last: u64, acc: &mut Unmapped) -> bool {
        let (fi, li) = (index(start, level), index(last, level));
        let base = start & !((1u64 << table_span_shift(level)) - 1);
        let mut kept_any = false;
        for i in fi..=li {
            let e = self.read(table, i);
            if e == 0 {
                continue;
            }
            let lo = base + i as u64 * entry_span(level);
            let hi = lo + (entry_span(level) - 1);
            if level == 1 || is_huge(e, level) {
                self.write(table, i, 0);
                acc.add(
                    lo,
                    hi,
                    PageSize::from_level(level).unwrap_or(PageSize::Size4KiB),
                );
                continue;
            }
            let Ok(child) = self.child(e) else {
                kept_any = true; // checked before; never reached
                continue;
            };
            let empty = self.clear(child, level - 1, start.max(lo), last.min(hi), acc);
            if empty && self.alloc.can_free() && self.alloc.free(child).is_ok() {
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
        if kept_any {
            return false;
        }
        if fi == 0 && li == ENTRIES - 1 {
            return true;
        }
        (0..ENTRIES).all(|i| self.read(table, i) == 0)
    }

    // ---- reading ---------------------------------------------------------------------------

    pub fn translate(&self, virt: VirtAddr) -> Result<Translation, TranslateError> {
        let va = virt.as_u64();
        let mut table = ROOT_PAGE;
        for level in (1..=4u8).rev() {
            let e = self.read(table, index(va, level));
            if e & F::PRESENT.bits() == 0 {
                return Err(TranslateError::NotMapped { virt });
            }
            if level == 1 || is_huge(e, level) {
                let size = PageSize::from_level(level).unwrap_or(PageSize::Size4KiB);
                let frame = e & ADDR_MASK & !(size.bytes() - 1);
                let flags = F::from_bits_truncate(e & !ADDR_MASK);
                let phys = PhysAddr::new_truncate(frame + (va & (size.bytes() - 1)));
                return Ok(Translation { phys, size, flags });
            }
            table = self
                .child(e)
                .map_err(|phys| TranslateError::ForeignTable { phys })?;
        }
        Err(TranslateError::NotMapped { virt })
    }

    /// Visit every leaf mapping, in ascending virtual order (audits, counting).
    pub fn for_each_mapping(&self, f: &mut impl FnMut(Mapping)) -> Result<(), TranslateError> {
        self.visit(ROOT_PAGE, 4, 0, f)
    }

    fn visit(
        &self,
        table: u32,
        level: u8,
        base: u64,
        f: &mut impl FnMut(Mapping),
    ) -> Result<(), TranslateError> {
        for i in 0..ENTRIES {
            let e = self.read(table, i);
            if e & F::PRESENT.bits() == 0 {
                continue;
            }
            let va = sign_extend(base + i as u64 * entry_span(level));
            if level == 1 || is_huge(e, level) {
                let size = PageSize::from_level(level).unwrap_or(PageSize::Size4KiB);
                f(Mapping {
                    virt: VirtAddr::new_truncate(va),
                    phys: PhysAddr::new_truncate(e & ADDR_MASK & !(size.bytes() - 1)),
                    size,
                    flags: F::from_bits_truncate(e & !ADDR_MASK),
                });
            } else {
                let child = self
                    .child(e)
                    .map_err(|phys| TranslateError::ForeignTable { phys })?;
                self.visit(child, level - 1, va, f)?;
            }
        }
        Ok(())
    }

    /// Visit every table below `table` (not `table` itself), reporting its level.
    fn walk_tables(
        &self,
        table: u32,
        level: u8,
        f: &mut impl FnMut(u8),
    ) -> Result<(), TranslateError> {
        if level == 1 {
            return Ok(());
        }
        for i in 0..ENTRIES {
            let e = self.read(table, i);
            if e & F::PRESENT.bits() == 0 || is_huge(e, level) {
                continue;
            }
            let child = self
                .child(e)
                .map_err(|phys| TranslateError::ForeignTable { phys })?;
            f(level - 1);
            self.walk_tables(child, level - 1, f)?;
        }
        Ok(())
    }
}

/// Entry bits for one mapping call.
struct Bits {
    leaf: u8,
    leaf_bits: u64,
    table_bits: u64,
}

impl Bits {
    fn new(size: PageSize, flags: F) -> Self {
        let leaf = size.level();
        let mut leaf_bits = (flags | F::PRESENT).bits() & !F::HUGE_PAGE.bits() & !ADDR_MASK;
        if leaf > 1 {
            leaf_bits |= F::HUGE_PAGE.bits();
        }
        let mut table_bits = (F::PRESENT | F::WRITABLE).bits();
        if flags.contains(F::USER_ACCESSIBLE) {
            table_bits |= F::USER_ACCESSIBLE.bits();
        }
        Bits {
            leaf,
            leaf_bits,
            table_bits,
        }
    }
}

struct Unmapped {
    pages: u64,
    tables: u64,
    step: PageSize,
    first: u64,
    last: u64,
}

impl Unmapped {
    fn add(&mut self, lo: u64, hi: u64, size: PageSize) {
        self.pages += 1;
        self.cover(lo, hi, size);
    }

    /// A table was unlinked; `at` is an address of its span inside the range and `size` the
    /// largest page size not above its span. Flushing the `size` page around `at` reaches the
    /// paging-structure cache entries that pointed at it, so the step never grows past `size`.
    fn add_table(&mut self, at: u64, size: PageSize) {
        self.tables += 1;
        self.cover(at, at, size);
    }

    fn cover(&mut self, lo: u64, hi: u64, size: PageSize) {
        self.step = self.step.min(size);
        self.first = self.first.min(lo);
        self.last = self.last.max(hi);
    }
}
