//! What a page-table change asks of the TLB. Like the x86_64 crate's `MapperFlush`, a change
//! returns a `#[must_use]` promise; unlike it, a batched change returns the whole range it
//! touched, and the caller picks the strategy that invalidates it (one `invlpg` per page, or a
//! full CR3 reload), which is exactly the choice the TLB benchmarks measure.

use crate::page_size::PageSize;
use x86_64::VirtAddr;

#[must_use = "a page-table change must be flushed from the TLB, or explicitly ignored"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushRange {
    start: u64,
    /// Inclusive, so a range that ends at the top of the address space needs no overflow.
    last: u64,
    /// The smallest page size changed: one `invlpg` per `step` covers the range.
    step: PageSize,
    /// Mappings changed.
    pages: u64,
    /// Page tables unlinked (and returned to the pool): their paging-structure cache entries
    /// must go too, even when no mapping changed.
    tables: u64,
}

impl FlushRange {
    pub(crate) fn new(start: u64, last: u64, step: PageSize, pages: u64) -> Self {
        FlushRange {
            start,
            last,
            step,
            pages,
            tables: 0,
        }
    }

    pub(crate) fn with_tables(mut self, tables: u64) -> Self {
        self.tables = tables;
        self
    }

    pub fn start(&self) -> VirtAddr {
        VirtAddr::new_truncate(self.start)
    }

    /// Mappings the change removed or added.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    pub fn step(&self) -> PageSize {
        self.step
    }

    /// Page tables the change unlinked.
    pub fn tables_freed(&self) -> u64 {
        self.tables
    }

    /// Nothing to invalidate: no mapping changed and no table was unlinked.
    pub fn is_empty(&self) -> bool {
        self.pages == 0 && self.tables == 0
    }

    /// The `invlpg` addresses that cover the range: one per `step`.
    pub fn addresses(&self) -> impl Iterator<Item = VirtAddr> {
        let (start, step, n) = (self.start, self.step.bytes(), self.invlpg_count());
        (0..n).map(move |i| VirtAddr::new_truncate(start + i * step))
    }

    /// One `invlpg` per `step`; it also drops the paging-structure cache entries used for that
    /// address, which covers unlinked tables.
    pub fn invlpg_count(&self) -> u64 {
        if self.is_empty() {
            0
        } else {
            (self.last - self.start) / self.step.bytes() + 1
        }
    }

    /// The caller takes responsibility (e.g. the address space is not loaded, or a later full
    /// flush covers it).
    pub fn ignore(self) {}

    /// One `invlpg` per page. Ring 0 only.
    pub fn flush_each(self) {
        for addr in self.addresses() {
            x86_64::instructions::tlb::flush(addr);
        }
    }

    /// Reload CR3: drops every non-global translation. Ring 0 only.
    pub fn flush_all(self) {
        x86_64::instructions::tlb::flush_all();
    }
}
