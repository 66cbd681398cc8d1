//! The flush strategies the TLB benchmarks time, and the names of their measurements. Each
//! runs `vystem_ptp::flush`'s own code ([`PageFlush`], [`FullFlush`]), so a kernel runs exactly
//! what was measured; only INVLPGB, which the crate does not offer, is the lab's own.

use super::space::Size;
use vystem_ptp::flush::{FlushRange, FullFlush, PageFlush};
use x86_64::VirtAddr;

/// How a strategy invalidates the first `n` pages of a working set.
#[derive(Debug, Clone, Copy)]
pub(super) enum How {
    /// One invalidation per page: the crate's `FlushRange::flush_pages`.
    Page(PageFlush),
    /// Everything at once: the crate's `FullFlush::flush`.
    Full(FullFlush),
    /// Not in the crate (INVLPGB + TLBSYNC, AMD).
    Lab(fn(Size, u64)),
}

impl How {
    #[inline(always)]
    pub(super) fn flush(self, size: Size, pages: u64) {
        match self {
            How::Page(p) => {
                let start = VirtAddr::new_truncate(size.base());
                if let Some(range) = FlushRange::of_pages(start, pages, size.page_size()) {
                    range.flush_pages(p);
                }
            }
            How::Full(f) => f.flush(),
            How::Lab(f) => f(size, pages),
        }
    }
}

/// A strategy with its own benchmark entry: the flush alone, flush + refill, collateral damage.
#[derive(Debug, Clone, Copy)]
pub(super) struct Strategy {
    /// The flush-alone measurement's name.
    pub name: &'static str,
    pub how: How,
    /// Flush + refill, with 4 KiB and with 2 MiB pages.
    pub refill: [&'static str; 2],
    pub collateral: &'static str,
    /// Measured on global pages (CR4.PGE set for the benchmark): only a PGE toggle drops them.
    pub global: bool,
}

impl Strategy {
    pub(super) fn refill_name(&self, size: Size) -> &'static str {
        match size {
            Size::K4 => self.refill[0],
            Size::M2 => self.refill[1],
        }
    }
}

/// Two ways to invalidate the first n pages of a working set, page by page and all at once,
/// each with the name of its flush + refill measurement: what a crossover compares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pair {
    pub per: (&'static str, How),
    pub full: (&'static str, How),
}
