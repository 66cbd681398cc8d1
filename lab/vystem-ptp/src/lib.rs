//! Vystem's page-table pools (PTP), as a kernel takes them: `#![no_std]`, no allocator, no CPUID
//! of its own (where a CPU fact matters, such as the vector path of the leaf fill, the caller
//! passes it in), and no dependency but the x86_64 crate.
//!
//! One module per concept:
//! - [`pool`]: the pool itself (a physically and virtually contiguous page range, page 0 = PML4);
//! - [`allocator`]: the bump/counter and bitmap page allocators behind one small trait;
//! - [`mapper`]: map/unmap/translate/walk over a pool, single pages and batched ranges;
//! - [`fill`]: the vector stores that write runs of leaf entries;
//! - [`flush`]: what a page-table change asks of the TLB, and the strategies that satisfy it;
//! - [`ptp`]: modifiable (self-mapped) and unmodifiable PTPs;
//! - [`shootdown`]: the cross-CPU part: which CPUs to interrupt, IPI or INVLPGB broadcast;
//! - [`chunk`]: a region cut into runs of equal pages, as the mapper maps it and the model counts it;
//! - [`capacity`]: pool usage per level and the pure prediction of the pages a layout needs;
#![cfg_attr(
    feature = "std",
    doc = "- [`sim`] (feature `std`): simulated physical memory for host tests and benchmarks."
)]
#![cfg_attr(
    not(feature = "std"),
    doc = "- `sim` (feature `std`): simulated physical memory for host tests and benchmarks."
)]
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "std")] {
//! use vystem_ptp::{BitmapAllocator, PageSizes, PageTableFlags as F, PhysAddr, Ptp, VirtAddr};
//!
//! // On the host, simulated memory; in a kernel: `unsafe { Pool::new(phys, 4096, window) }`.
//! let mem = vystem_ptp::sim::SimMemory::new(4096);
//! let pool = mem.pool(0, 4096).unwrap();
//! // The bootloader's counter (here: only the root used) becomes the kernel's bitmap.
//! let alloc = BitmapAllocator::from_counter(4096, 1);
//! let mut ptp = Ptp::modifiable(pool, alloc, VirtAddr::new(0xffff_ff00_0000_0000)).unwrap();
//! assert_eq!(ptp.self_map_tables(), 10); // 4096 / 512 PTs, a PD and a PDPT
//!
//! let (virt, phys) = (VirtAddr::new(0xffff_8000_0000_0000), PhysAddr::new(0x4000_0000));
//! let stats = ptp.mapper.map_region(virt, phys, 1 << 30, PageSizes::UP_TO_2MIB, F::PRESENT | F::WRITABLE).unwrap();
//! assert_eq!(stats.pages_2mib, 512);
//! // Unmapping returns what the TLB must forget, holding the emptied tables until it has:
//! // the caller picks the strategy (`flush_each()`, `flush_with(&policy)` in ring 0), then
//! // releases them to the pool.
//! let unmap = ptp.mapper.unmap_range(virt, 1 << 30).unwrap();
//! assert_eq!((unmap.range().pages(), unmap.range().invlpg_count()), (512, 512));
//! // SAFETY (here only): these tables were never in any CR3.
//! let flushed = unsafe { unmap.assume_flushed() };
//! ptp.mapper.release(flushed).unwrap();
//! # }
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod allocator;
pub mod capacity;
pub mod chunk;
pub mod fill;
pub mod flush;
pub mod mapper;
pub mod page_size;
pub mod pool;
pub mod ptp;
mod scan;
pub mod shootdown;
#[cfg(feature = "std")]
pub mod sim;

pub use allocator::{
    AllocError, BitmapAllocator, BumpAllocator, FreeError, PageAllocator, PoolFrames,
};
pub use capacity::{layout_regions, predict_tables, Region, RegionError, TableCount, Usage};
pub use chunk::{Chunk, Chunks};
pub use fill::Fill;
pub use flush::{Decision, FlushPolicy, FlushRange, FlushSize, FullFlush, PageFlush};
pub use mapper::{
    AdoptError, Flushed, MapError, Mapping, PoolMapper, ReleaseError, TranslateError, Translation,
    Unmap, UnmapError,
};
pub use page_size::{PageSize, PageSizes};
pub use pool::{Pool, PoolError};
pub use ptp::{AuditError, Ptp, PtpKind};
pub use x86_64::structures::paging::PageTableFlags;
pub use x86_64::{PhysAddr, VirtAddr};
