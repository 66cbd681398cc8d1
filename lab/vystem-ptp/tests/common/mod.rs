//! What the tests share: unmapping with the tables released at once, for the tests about the
//! mapping itself (the deferred free has tests of its own: tests/deferred.rs). The tables here
//! were never in any CR3, which is what makes releasing them at once sound.
#![allow(dead_code)]

use vystem_ptp::{FlushRange, PageAllocator, PoolMapper, Translation, UnmapError, VirtAddr};

pub trait UnmapNow {
    /// `unmap_range`, then its tables released at once: the range it flushed.
    fn unmap_now(&mut self, virt: VirtAddr, bytes: u64) -> Result<FlushRange, UnmapError>;
    /// `unmap_page`, the same way.
    fn unmap_page_now(&mut self, virt: VirtAddr) -> Result<(Translation, FlushRange), UnmapError>;
}

impl<A: PageAllocator> UnmapNow for PoolMapper<A> {
    fn unmap_now(&mut self, virt: VirtAddr, bytes: u64) -> Result<FlushRange, UnmapError> {
        let unmap = self.unmap_range(virt, bytes)?;
        let range = unmap.range();
        // SAFETY: simulated memory, never in any CR3.
        let flushed = unsafe { unmap.assume_flushed() };
        let held = flushed.tables();
        assert_eq!(self.release(flushed), Ok(held), "every held table released");
        Ok(range)
    }

    fn unmap_page_now(&mut self, virt: VirtAddr) -> Result<(Translation, FlushRange), UnmapError> {
        let (t, unmap) = self.unmap_page(virt)?;
        let range = unmap.range();
        // SAFETY: as above.
        let flushed = unsafe { unmap.assume_flushed() };
        let held = flushed.tables();
        assert_eq!(self.release(flushed), Ok(held), "every held table released");
        Ok((t, range))
    }
}
