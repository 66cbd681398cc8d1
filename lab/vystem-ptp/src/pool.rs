//! The pool: N pages, contiguous physically and virtually; page 0 is the PML4, so the pool's
//! physical base is the CR3 value of the address space it describes.
//!
//! How the running code reaches a pool page is the pool's *window*: the virtual address of page 0.
//! Because the range is virtually contiguous, that one address serves every page. It has three
//! uses: simulated memory on the host (window = heap buffer), the kernel's own mapping of RAM
//! (e.g. identity: window = physical base), and the pool's self-map inside a modifiable PTP
//! (window = the self-map address, see [`Pool::rebased`]).

use x86_64::structures::paging::{PageTable, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

/// Bytes in one pool page (and one 4 KiB page-table page).
pub const PAGE_BYTES: u64 = 4096;
/// The Vystem standard pool size.
pub const STANDARD_POOL_PAGES: u32 = 4096;
/// The smallest pool [`Pool::new`] accepts, in pages.
pub const MIN_POOL_PAGES: u32 = 64;
/// The largest pool [`Pool::new`] accepts, in pages (256 MiB; the bitmap allocator's size).
pub const MAX_POOL_PAGES: u32 = 65536;
/// Physical addresses are at most 52 bits wide on x86-64.
pub const MAX_PHYS: u64 = 1 << 52;

/// Why [`Pool::new`] refused a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// Fewer pages than [`MIN_POOL_PAGES`] or more than [`MAX_POOL_PAGES`].
    BadSize {
        /// The requested size, in pages.
        pages: u32,
    },
    /// The physical base or the window is not 4 KiB aligned.
    Misaligned {
        /// The misaligned address (physical base or window).
        addr: u64,
    },
    /// The pool's physical range leaves the 52-bit physical address space.
    FrameOutOfRange {
        /// The first physical byte past the pool.
        phys_end: u64,
    },
}

impl core::fmt::Display for PoolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PoolError::BadSize { pages } => write!(
                f,
                "pool size {pages} pages is outside {MIN_POOL_PAGES}..={MAX_POOL_PAGES}"
            ),
            PoolError::Misaligned { addr } => {
                write!(f, "pool address {addr:#x} is not 4 KiB aligned")
            }
            PoolError::FrameOutOfRange { phys_end } => {
                write!(
                    f,
                    "pool ends at {phys_end:#x}, beyond the 52-bit physical space"
                )
            }
        }
    }
}

/// A page-table pool: where it is physically, how many pages, and how the code reaches it.
///
/// A `Pool` is a plain description (`Copy`, no ownership): the memory behind it is the
/// caller's, as [`Pool::new`]'s safety contract says.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "std")] {
/// use vystem_ptp::{PhysAddr, Pool, PoolError};
///
/// // Host: a pool of 64 pages at physical page 16 of simulated memory.
/// let mem = vystem_ptp::sim::SimMemory::new(128);
/// let pool = mem.pool(16, 64).unwrap();
/// assert_eq!((pool.pages(), pool.bytes()), (64, 64 * 4096));
/// assert_eq!(pool.phys_base(), PhysAddr::new(16 * 4096));
/// assert_eq!(pool.page_phys(2), PhysAddr::new(18 * 4096));
/// assert_eq!(pool.index_of(PhysAddr::new(18 * 4096 + 8)), Some(2));
/// assert_eq!(pool.index_of(PhysAddr::new(0)), None);
/// // Too small a pool is an error, not a panic (the check runs before any memory is used).
/// let small = unsafe { Pool::new(PhysAddr::new(0), 8, pool.window()) };
/// assert_eq!(small, Err(PoolError::BadSize { pages: 8 }));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    phys: PhysAddr,
    pages: u32,
    window: VirtAddr,
}

impl Pool {
    /// A pool of `pages` pages at physical `phys`, reached by the running code at `window`
    /// (both 4 KiB aligned).
    ///
    /// # Errors
    /// [`PoolError`] for a size outside [`MIN_POOL_PAGES`]`..=`[`MAX_POOL_PAGES`], a
    /// misaligned address, or a range past the 52-bit physical space.
    ///
    /// # Safety
    /// `window .. window + pages * 4 KiB` must be readable and writable memory that aliases the
    /// physical range `phys .. phys + pages * 4 KiB`, reserved for this pool for as long as the
    /// pool and anything built on it is used.
    pub unsafe fn new(phys: PhysAddr, pages: u32, window: VirtAddr) -> Result<Pool, PoolError> {
        if !(MIN_POOL_PAGES..=MAX_POOL_PAGES).contains(&pages) {
            return Err(PoolError::BadSize { pages });
        }
        if !phys.is_aligned(PAGE_BYTES) {
            return Err(PoolError::Misaligned {
                addr: phys.as_u64(),
            });
        }
        if !window.is_aligned(PAGE_BYTES) {
            return Err(PoolError::Misaligned {
                addr: window.as_u64(),
            });
        }
        let phys_end = phys.as_u64() + pages as u64 * PAGE_BYTES;
        if phys_end > MAX_PHYS {
            return Err(PoolError::FrameOutOfRange { phys_end });
        }
        Ok(Pool {
            phys,
            pages,
            window,
        })
    }

    /// The same pool reached through another window, e.g. its own self-map once the PTP that
    /// carries it is in CR3.
    ///
    /// # Safety
    /// As for [`Pool::new`]: the new window must alias the pool's physical range.
    pub unsafe fn rebased(self, window: VirtAddr) -> Result<Pool, PoolError> {
        // SAFETY: forwarded to the caller.
        unsafe { Pool::new(self.phys, self.pages, window) }
    }

    /// Physical address of page 0 (the PML4): the CR3 value.
    pub fn phys_base(&self) -> PhysAddr {
        self.phys
    }

    /// The virtual address at which the running code reaches page 0.
    pub fn window(&self) -> VirtAddr {
        self.window
    }

    /// Size in pages.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Size in bytes (`pages * 4096`).
    pub fn bytes(&self) -> u64 {
        self.pages as u64 * PAGE_BYTES
    }

    /// The CR3 frame of the address space this pool describes (its page 0).
    pub fn root_frame(&self) -> PhysFrame {
        PhysFrame::containing_address(self.phys)
    }

    /// Physical address of pool page `index` (not range-checked: callers hold indices the
    /// allocator handed out).
    pub fn page_phys(&self, index: u32) -> PhysAddr {
        self.phys + index as u64 * PAGE_BYTES
    }

    /// The pool page that holds physical address `phys`, if it is inside the pool.
    pub fn index_of(&self, phys: PhysAddr) -> Option<u32> {
        let off = phys.as_u64().checked_sub(self.phys.as_u64())?;
        let index = off / PAGE_BYTES;
        (index < self.pages as u64).then_some(index as u32)
    }

    /// Where the running code reaches pool page `index`.
    pub fn page_ptr(&self, index: u32) -> *mut PageTable {
        debug_assert!(index < self.pages);
        (self.window.as_u64() + index as u64 * PAGE_BYTES) as *mut PageTable
    }
}
