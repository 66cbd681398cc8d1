//! Simulated physical memory for the host: one zeroed, page-aligned heap buffer; a physical
//! address is an offset into it. The x86_64 crate's `OffsetPageTable` reads the same memory with
//! `physical_memory_offset` = the buffer's address, which makes it an independent oracle.

use crate::pool::{Pool, PoolError, PAGE_BYTES};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use x86_64::structures::paging::OffsetPageTable;
use x86_64::{PhysAddr, VirtAddr};

/// Zeroed, page-aligned host memory standing in for physical RAM; freed on drop. Pools from
/// [`SimMemory::pool`] point into it, so it must outlive them.
pub struct SimMemory {
    ptr: *mut u8,
    layout: Layout,
}

impl SimMemory {
    /// `pages` pages of zeroed memory, physical addresses `0 .. pages * 4 KiB`.
    pub fn new(pages: u64) -> Self {
        let bytes = (pages.max(1) * PAGE_BYTES) as usize;
        let layout =
            Layout::from_size_align(bytes, PAGE_BYTES as usize).expect("simulated memory size");
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(
            !ptr.is_null(),
            "out of host memory for {bytes} bytes of simulated RAM"
        );
        SimMemory { ptr, layout }
    }

    /// Size in 4 KiB pages.
    pub fn pages(&self) -> u64 {
        self.layout.size() as u64 / PAGE_BYTES
    }

    /// The virtual address at which the host reaches physical address 0.
    pub fn phys_offset(&self) -> VirtAddr {
        VirtAddr::new(self.ptr as u64)
    }

    /// A pool of `pages` pages starting at physical page `first_page`.
    ///
    /// # Errors
    /// [`PoolError::FrameOutOfRange`] if it does not fit in this memory; otherwise as
    /// [`Pool::new`].
    pub fn pool(&self, first_page: u64, pages: u32) -> Result<Pool, PoolError> {
        let end = first_page.saturating_add(pages as u64);
        if end > self.pages() {
            return Err(PoolError::FrameOutOfRange {
                phys_end: end.saturating_mul(PAGE_BYTES),
            });
        }
        let phys = PhysAddr::new(first_page * PAGE_BYTES);
        // SAFETY: the window lies inside this buffer, which outlives the borrow-free `Pool` only
        // as long as the caller keeps `self` alive (documented on the type).
        unsafe { Pool::new(phys, pages, self.phys_offset() + phys.as_u64()) }
    }

    /// The x86_64 crate's view of the address space rooted at `pool` (the oracle, and the peer).
    ///
    /// # Safety
    /// `pool` must come from this memory, and nothing else may use its tables meanwhile.
    pub unsafe fn offset_page_table(&self, pool: &Pool) -> OffsetPageTable<'static> {
        // SAFETY: per the caller; the root is a 4 KiB aligned page of this buffer.
        unsafe { OffsetPageTable::new(&mut *pool.page_ptr(0), self.phys_offset()) }
    }
}

impl Drop for SimMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_past_the_memory_is_an_error_not_an_overflow() {
        let mem = SimMemory::new(64);
        assert!(mem.pool(0, 64).is_ok());
        assert_eq!(
            mem.pool(u64::MAX, 64),
            Err(PoolError::FrameOutOfRange { phys_end: u64::MAX })
        );
        assert!(matches!(
            mem.pool(1, 64),
            Err(PoolError::FrameOutOfRange { .. })
        ));
    }
}
