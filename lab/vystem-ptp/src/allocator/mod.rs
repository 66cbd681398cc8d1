//! Page allocators over a pool: they hand out pool page *indices*; page 0 (the PML4) is
//! allocated from the start and can never be freed.

mod bitmap;
mod bump;

pub use bitmap::BitmapAllocator;
pub use bump::BumpAllocator;

use crate::pool::Pool;
use x86_64::structures::paging::{FrameAllocator, FrameDeallocator, PhysFrame, Size4KiB};

/// The index of the pool's root page (PML4).
pub const ROOT_PAGE: u32 = 0;

/// Why [`PageAllocator::allocate`] handed out no page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocError {
    /// Every page of the pool is in use.
    Exhausted {
        /// Pages in the pool.
        capacity: u32,
    },
}

/// Why [`PageAllocator::free`] refused a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// The index is not a page of this pool.
    OutOfPool {
        /// The page index given.
        index: u32,
        /// Pages in the pool.
        capacity: u32,
    },
    /// The page is free already (double free, or never handed out).
    NotAllocated {
        /// The page index given.
        index: u32,
    },
    /// Page 0 is the PML4 of the address space and is never returned.
    Root,
    /// This allocator cannot free (the bump allocator only counts up).
    Unsupported,
}

impl core::fmt::Display for AllocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AllocError::Exhausted { capacity } => {
                write!(f, "pool exhausted: all {capacity} pages in use")
            }
        }
    }
}

impl core::fmt::Display for FreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FreeError::OutOfPool { index, capacity } => {
                write!(f, "page {index} is not in the pool (0..{capacity})")
            }
            FreeError::NotAllocated { index } => write!(f, "page {index} is not allocated"),
            FreeError::Root => f.write_str("page 0 is the pool's PML4 and cannot be freed"),
            FreeError::Unsupported => f.write_str("this allocator cannot free pages"),
        }
    }
}

/// A page allocator over the pages of one pool.
pub trait PageAllocator {
    /// Hand out one free page index.
    fn allocate(&mut self) -> Result<u32, AllocError>;
    /// Return a page handed out by [`PageAllocator::allocate`].
    fn free(&mut self, index: u32) -> Result<(), FreeError>;
    /// Pages in the pool, including the root.
    fn capacity(&self) -> u32;
    /// Pages in use, including the root.
    fn used(&self) -> u32;
    /// Whether page `index` is in use (`false` outside the pool).
    fn is_allocated(&self, index: u32) -> bool;
    /// Whether [`PageAllocator::free`] can ever succeed (the mapper then returns empty tables).
    fn can_free(&self) -> bool;

    /// Return the `count` consecutive pages from `first`, all handed out; all or none (the
    /// first page that cannot be freed is the error, nothing is freed). What an unmap that
    /// emptied a run of tables on consecutive pages calls: the bitmap clears whole words.
    fn free_range(&mut self, first: u32, count: u32) -> Result<(), FreeError> {
        let end = first.checked_add(count).ok_or(FreeError::OutOfPool {
            index: u32::MAX,
            capacity: self.capacity(),
        })?;
        for index in first..end {
            if index == ROOT_PAGE {
                return Err(FreeError::Root);
            }
            if index >= self.capacity() {
                return Err(FreeError::OutOfPool {
                    index,
                    capacity: self.capacity(),
                });
            }
            if !self.can_free() {
                return Err(FreeError::Unsupported);
            }
            if !self.is_allocated(index) {
                return Err(FreeError::NotAllocated { index });
            }
        }
        for index in first..end {
            self.free(index)?;
        }
        Ok(())
    }

    /// Hand out `out.len()` free pages at once, their indices written to `out`; all or none
    /// (fewer free: [`AllocError::Exhausted`], nothing handed out). What a caller that knows
    /// how many pages it needs (a range mapping its tables) calls instead of a loop: the
    /// bitmap then takes whole words, not a bit per call.
    fn allocate_many(&mut self, out: &mut [u32]) -> Result<(), AllocError> {
        if out.len() > self.left() as usize {
            return Err(AllocError::Exhausted {
                capacity: self.capacity(),
            });
        }
        for slot in out {
            *slot = self.allocate()?;
        }
        Ok(())
    }

    /// Pages still free.
    fn left(&self) -> u32 {
        self.capacity() - self.used()
    }
}

/// A borrowed allocator is an allocator: a mapper or PTP can work on `&mut BitmapAllocator`
/// without moving the 8 KiB bitmap (benchmarks then time page-table work, not a memcpy).
impl<A: PageAllocator + ?Sized> PageAllocator for &mut A {
    #[inline]
    fn allocate(&mut self) -> Result<u32, AllocError> {
        (**self).allocate()
    }
    #[inline]
    fn free(&mut self, index: u32) -> Result<(), FreeError> {
        (**self).free(index)
    }
    fn capacity(&self) -> u32 {
        (**self).capacity()
    }
    fn used(&self) -> u32 {
        (**self).used()
    }
    fn is_allocated(&self, index: u32) -> bool {
        (**self).is_allocated(index)
    }
    fn can_free(&self) -> bool {
        (**self).can_free()
    }
    #[inline]
    fn allocate_many(&mut self, out: &mut [u32]) -> Result<(), AllocError> {
        (**self).allocate_many(out)
    }
    #[inline]
    fn free_range(&mut self, first: u32, count: u32) -> Result<(), FreeError> {
        (**self).free_range(first, count)
    }
}

/// Lets the x86_64 crate's mappers (`OffsetPageTable::map_to`) take their table frames from a pool,
/// and its `CleanUp::clean_up` give emptied ones back: the peer we measure against uses exactly
/// the same pages.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "std")] {
/// use vystem_ptp::{BitmapAllocator, PageAllocator, PhysAddr, PoolFrames};
/// use x86_64::structures::paging::{FrameAllocator, FrameDeallocator};
///
/// let mem = vystem_ptp::sim::SimMemory::new(128);
/// let pool = mem.pool(16, 64).unwrap();
/// let mut bitmap = BitmapAllocator::new(64);
/// let mut frames = PoolFrames { pool, alloc: &mut bitmap };
/// let f = frames.allocate_frame().unwrap();
/// assert_eq!(f.start_address(), PhysAddr::new(17 * 4096)); // pool page 1
/// // SAFETY: no page table points at the frame any more.
/// unsafe { frames.deallocate_frame(f) };
/// assert_eq!(bitmap.used(), 1); // the root alone
/// # }
/// ```
pub struct PoolFrames<'a, A: PageAllocator> {
    /// The pool whose pages become frames.
    pub pool: Pool,
    /// The allocator that hands them out.
    pub alloc: &'a mut A,
}

// SAFETY: the allocator hands out each pool page once, and pool pages are reserved for tables.
unsafe impl<A: PageAllocator> FrameAllocator<Size4KiB> for PoolFrames<'_, A> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let index = self.alloc.allocate().ok()?;
        Some(PhysFrame::containing_address(self.pool.page_phys(index)))
    }
}

/// A frame outside the pool, or one the allocator refuses (the bump allocator refuses all), is
/// not freed: the trait has no way to say so, and the pool's used count shows it.
impl<A: PageAllocator> FrameDeallocator<Size4KiB> for PoolFrames<'_, A> {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
        if let Some(index) = self.pool.index_of(frame.start_address()) {
            let _ = self.alloc.free(index);
        }
    }
}
