//! The page-table pool (PTP) lab: the algorithms of Vystem's page-table pools, written once and
//! run in three places: the bench kernel (real page tables), a host process and criterion
//! (simulated physical memory, feature `std`).
//!
//! One module per concept:
//! - [`pool`]: the pool itself (a physically and virtually contiguous page range, page 0 = PML4);
//! - [`allocator`]: the bump/counter and bitmap page allocators behind one small trait;
//! - [`mapper`]: map/unmap/translate/walk over a pool, single pages and batched ranges;
//! - [`flush`]: what a page-table change asks of the TLB, and the strategies that satisfy it;
//! - [`ptp`]: modifiable (self-mapped) and unmodifiable PTPs;
//! - [`capacity`]: pool usage per level and the pure prediction of the pages a layout needs;
//! - [`sim`] (feature `std`): simulated physical memory for the host;
//! - [`timing`], [`report`], [`suites`]: the RDTSC harness, JSON Lines records, and the
//!   benchmark table run by the kernel and the host runner alike;
//! - [`cpu`], [`json`], [`fixedstr`]: CPU facts and allocation-free output helpers.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

pub mod allocator;
pub mod capacity;
pub mod cpu;
pub mod fill;
pub mod fixedstr;
pub mod flush;
pub mod json;
pub mod mapper;
pub mod page_size;
pub mod pool;
pub mod ptp;
pub mod report;
#[cfg(feature = "std")]
pub mod sim;
pub mod suites;
pub mod timing;

pub use allocator::{
    AllocError, BitmapAllocator, BumpAllocator, FreeError, PageAllocator, PoolFrames,
};
pub use capacity::{predict_tables, Region, TableCount, Usage};
pub use flush::FlushRange;
pub use mapper::{MapError, Mapping, PoolMapper, TranslateError, Translation, UnmapError};
pub use page_size::{PageSize, PageSizes};
pub use pool::{Pool, PoolError};
pub use ptp::{Ptp, PtpKind};
pub use x86_64::structures::paging::PageTableFlags;
pub use x86_64::{PhysAddr, VirtAddr};
