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
use crate::fill::Fill;
use crate::flush::FlushRange;
use crate::page_size::{PageSize, PageSizes};
use crate::pool::{Pool, MAX_PHYS, PAGE_BYTES};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::{PhysAddr, VirtAddr};

mod page;
mod pending;
mod range;

mod unmap;
mod walk;

pub use pending::{Flushed, ReleaseError, Unmap};

const ENTRIES: usize = 512;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why a mapping was refused. Every variant is checked before anything is written, except
/// [`MapError::AllocatorOutsidePool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The pool has fewer free pages than the mapping needs tables (`needed` of them).
    PoolExhausted {
        /// Tables the mapping needs.
        needed: u64,
        /// Pool pages free.
        left: u32,
    },
    /// `virt` is already mapped, by a page of any size.
    AlreadyMapped {
        /// The first address found mapped.
        virt: VirtAddr,
    },
    /// A huge page is wanted at `virt` but a table exists there (it maps smaller pages, or an
    /// allocator that cannot free kept it after an unmap).
    TableInTheWay {
        /// Where the huge page would go.
        virt: VirtAddr,
    },
    /// `virt` or `phys` is not aligned to the page size.
    Misaligned {
        /// The virtual address given.
        virt: u64,
        /// The physical address given.
        phys: u64,
        /// The page size both must be aligned to.
        size: PageSize,
    },
    /// The range reaches `addr`, outside the canonical half it starts in (or past 2^64).
    NonCanonical {
        /// The first address out of the half (saturated at `u64::MAX`).
        addr: u64,
    },
    /// The physical range reaches `phys`, past the 52-bit physical address space.
    FrameOutOfRange {
        /// The physical end of the range (saturated at `u64::MAX`).
        phys: u64,
    },
    /// A table entry points at `phys`, outside the pool: these tables were not built by it.
    ForeignTable {
        /// The address the entry holds.
        phys: u64,
    },
    /// The allocator handed out page `index`, past the pool's `pages`: it describes a larger
    /// pool than the mapper's (a set-up error: the page is given back, never written; a
    /// range mapping may have been partly done).
    AllocatorOutsidePool {
        /// The page index handed out.
        index: u32,
        /// The pool's size, in pages.
        pages: u32,
    },
    /// The frame at `phys` is a page of this pool: an unmodifiable PTP never maps its own
    /// tables (that would be a writable alias of its PML4 in a userland layout).
    PoolFrame {
        /// The first pool address the physical range reaches.
        phys: u64,
    },
}

/// Why an unmapping was refused (checked before anything changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmapError {
    /// Nothing maps `virt`.
    NotMapped {
        /// The address given.
        virt: VirtAddr,
    },
    /// The range cuts through the huge page that maps `virt`.
    PartialHugePage {
        /// The huge page's address.
        virt: VirtAddr,
        /// Its size.
        size: PageSize,
    },
    /// Start or length not a multiple of 4 KiB (or, for a single page, of its page size).
    Misaligned {
        /// The address given.
        virt: u64,
    },
    /// The range reaches `addr`, outside the canonical half it starts in (or past 2^64).
    NonCanonical {
        /// The first address out of the half (saturated at `u64::MAX`).
        addr: u64,
    },
    /// A table entry points at `phys`, outside the pool.
    ForeignTable {
        /// The address the entry holds.
        phys: u64,
    },
    /// The batch given to [`PoolMapper::unmap_into`] gathers the unmaps of the pool at
    /// physical `pool`, not this mapper's: its tables would be released into the wrong pool.
    OtherPool {
        /// The physical base of the batch's pool.
        pool: u64,
    },
}

/// Why existing tables cannot be taken over ([`PoolMapper::adopt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdoptError {
    /// An entry points at `phys`, outside the pool: these tables were not built by it.
    ForeignTable {
        /// The address the entry holds.
        phys: u64,
    },
    /// Pool page `index` is reached twice: two entries point at it, or an entry points back
    /// up at a table above it (the root included). Not a tree this mapper can own.
    SharedTable {
        /// The pool page reached twice.
        index: u32,
    },
}

/// Why an address does not translate (or a walk stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranslateError {
    /// No present entry maps `virt`.
    NotMapped {
        /// The address given.
        virt: VirtAddr,
    },
    /// A table entry points at `phys`, outside the pool.
    ForeignTable {
        /// The address the entry holds.
        phys: u64,
    },
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
display_via_debug!(MapError, UnmapError, AdoptError, TranslateError);

/// Where an address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The physical address `virt` leads to (the frame plus the offset in the page).
    pub phys: PhysAddr,
    /// The size of the page that maps it.
    pub size: PageSize,
    /// The leaf entry's flags.
    pub flags: F,
}

/// One leaf entry, as the walk reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// Virtual address of the page.
    pub virt: VirtAddr,
    /// Its frame.
    pub phys: PhysAddr,
    /// Its size.
    pub size: PageSize,
    /// The leaf entry's flags.
    pub flags: F,
}

/// Pages a region mapping used, per size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionStats {
    /// 4 KiB pages mapped.
    pub pages_4kib: u64,
    /// 2 MiB pages mapped.
    pub pages_2mib: u64,
    /// 1 GiB pages mapped.
    pub pages_1gib: u64,
}

/// A mapper over one pool, with the pool's allocator.
///
/// Maps return a [`FlushRange`] to flush (ring 0) or [`FlushRange::ignore`] (an address
/// space not loaded yet); unmaps an [`Unmap`], which holds the emptied tables until it is
/// flushed and [`PoolMapper::release`]d. Range mappings are all or nothing.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "std")] {
/// use vystem_ptp::{
///     BitmapAllocator, PageAllocator, PageSize, PageSizes, PageTableFlags as F, PhysAddr,
///     PoolMapper, TranslateError, VirtAddr,
/// };
///
/// let mem = vystem_ptp::sim::SimMemory::new(256);
/// let pool = mem.pool(0, 256).unwrap();
/// let mut m = PoolMapper::create(pool, BitmapAllocator::new(256));
///
/// // 16 pages of 4 KiB: one PDPT, one PD, one PT.
/// let virt = VirtAddr::new(0x4000_0000);
/// let flush = m.map_range(virt, PhysAddr::new(0x10_0000), 16, PageSize::Size4KiB, F::WRITABLE).unwrap();
/// assert_eq!(flush.pages(), 16);
/// flush.ignore(); // not in CR3: nothing cached
/// assert_eq!(m.usage().tables.total(), 4);
///
/// // A region: the largest pages alignment allows (here 2 MiB, with a 4 KiB head).
/// let region = VirtAddr::new(0x8000_0000 - 0x1000);
/// let stats = m.map_region(region, PhysAddr::new(0x1ff000), 0x401000, PageSizes::UP_TO_2MIB, F::WRITABLE).unwrap();
/// assert_eq!((stats.pages_4kib, stats.pages_2mib), (1, 2));
///
/// let t = m.translate(virt + 0x2345u64).unwrap();
/// assert_eq!((t.phys, t.size), (PhysAddr::new(0x10_2345), PageSize::Size4KiB));
/// assert!(t.flags.contains(F::PRESENT | F::WRITABLE));
///
/// // Unmapping returns the range the TLB must forget and holds the emptied PT until it has:
/// // only the release after the flush gives it back to the pool.
/// let used = m.allocator().used();
/// let unmap = m.unmap_range(virt, 16 * 4096).unwrap();
/// assert_eq!((unmap.range().pages(), unmap.tables_waiting()), (16, 1));
/// assert_eq!(m.allocator().used(), used, "held, not yet free");
/// // In a kernel: `unmap.flush_each()` or `unmap.flush_with(&policy)`; here the tables were
/// // never in any CR3.
/// let flushed = unsafe { unmap.assume_flushed() };
/// assert_eq!(m.release(flushed), Ok(1));
/// assert_eq!(m.allocator().used(), used - 1);
/// assert_eq!(m.translate(virt), Err(TranslateError::NotMapped { virt }));
/// # }
/// ```
pub struct PoolMapper<A: PageAllocator> {
    pool: Pool,
    alloc: A,
    tables: TableCount,
    fill: Fill,
    /// Refuse frames inside the pool (an unmodifiable PTP's mapper).
    refuse_pool_frames: bool,
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
    ///
    /// The pool is trusted as [`Pool::new`] was promised (this writes its page 0).
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
            fill: Fill::SSE2,
            refuse_pool_frames: false,
        }
    }

    /// Take over tables that already exist in the pool (e.g. the bootloader's), with the
    /// allocator that describes them. Counts the tables with one walk, which also proves they
    /// form a tree: each pool page reached once.
    pub fn adopt(pool: Pool, alloc: A) -> Result<Self, AdoptError> {
        let mut m = PoolMapper {
            pool,
            alloc,
            tables: TableCount {
                pml4: 1,
                ..TableCount::default()
            },
            fill: Fill::SSE2,
            refuse_pool_frames: false,
        };
        let mut seen = [0u64; crate::pool::MAX_POOL_PAGES as usize / 64];
        seen[0] = 1; // the root
        let mut tables = m.tables;
        m.count_tables(ROOT_PAGE, 4, &mut seen, &mut tables)?;
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

    /// Which vector stores fill leaf tables (SSE2 unless set: see [`Fill::avx2`]).
    pub fn set_fill(&mut self, fill: Fill) {
        self.fill = fill;
    }

    /// Refuse, from now on, to map any frame inside the pool ([`MapError::PoolFrame`]): what
    /// an unmodifiable PTP promises.
    pub fn refuse_pool_frames(mut self) -> Self {
        self.refuse_pool_frames = true;
        self
    }

    /// With the guard on, refuse a physical range that reaches into the pool's own pages.
    #[inline(always)]
    fn check_frames(&self, phys: u64, bytes: u64) -> Result<(), MapError> {
        if self.refuse_pool_frames {
            self.frames_outside_pool(phys, bytes)
        } else {
            Ok(())
        }
    }

    /// Kept out of line: the hot single-page path only tests the flag.
    #[cold]
    #[inline(never)]
    fn frames_outside_pool(&self, phys: u64, bytes: u64) -> Result<(), MapError> {
        let lo = self.pool.phys_base().as_u64();
        let hi = lo + self.pool.bytes();
        if phys < hi && phys.saturating_add(bytes) > lo {
            return Err(MapError::PoolFrame { phys: phys.max(lo) });
        }
        Ok(())
    }

    /// Builder form of [`PoolMapper::set_fill`].
    pub fn with_fill(mut self, fill: Fill) -> Self {
        self.fill = fill;
        self
    }

    /// The leaf-fill path in use.
    pub fn fill(&self) -> Fill {
        self.fill
    }

    /// The pool, as the mapper reaches it (its current window).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The allocator (read-only: pages are taken and returned by the mapper).
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

    /// Give back the pool and the allocator (e.g. to hand a bootloader's tables to a kernel,
    /// which [`PoolMapper::adopt`]s them).
    pub fn into_parts(self) -> (Pool, A) {
        (self.pool, self.alloc)
    }

    /// Tables per level and the pool's used, free and total pages.
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
