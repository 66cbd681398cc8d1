//! The two kinds of PTP.
//!
//! - *Modifiable* (the Shelter kernel's): the pool's whole page range is mapped into the layout
//!   it describes, RW + NX, so code running in that layout can edit its own tables through the
//!   self-map (then [`crate::PoolMapper::rebase`] switches the window to it).
//! - *Unmodifiable* (userland's): no self-map.

use crate::allocator::PageAllocator;
use crate::fill::Fill;
use crate::mapper::{MapError, Mapping, PoolMapper, TranslateError};
use crate::page_size::PageSize;
use crate::pool::Pool;
use x86_64::structures::paging::{PageTableFlags as F, PhysFrame};
use x86_64::VirtAddr;

/// Which kind a [`Ptp`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtpKind {
    /// The pool is mapped into its own layout (RW, NX) from `self_map`.
    Modifiable {
        /// Virtual address of pool page 0 in the layout.
        self_map: VirtAddr,
    },
    /// The layout never maps the pool's pages.
    Unmodifiable,
}

/// What [`Ptp::audit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditError {
    /// `mapping` reaches the pool's own pages where this kind of PTP must not.
    PoolMapped {
        /// The offending leaf mapping.
        mapping: Mapping,
    },
    /// The walk met a table outside the pool.
    Walk(TranslateError),
}

/// The self-map's leaf flags.
pub const SELF_MAP_FLAGS: F = F::PRESENT.union(F::WRITABLE).union(F::NO_EXECUTE);

/// A page-table pool with its kind: the mapper over the pool, plus the self-map of a
/// modifiable PTP or the pool-frame guard of an unmodifiable one.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "std")] {
/// use vystem_ptp::{
///     BitmapAllocator, MapError, PageSize, PageTableFlags as F, PhysAddr, Ptp,
///     PtpKind, VirtAddr,
/// };
///
/// let mem = vystem_ptp::sim::SimMemory::new(1024);
///
/// // Modifiable: the pool's 64 pages are mapped at `self_map`, page for page.
/// let pool = mem.pool(0, 64).unwrap();
/// let self_map = VirtAddr::new(0xffff_ff00_0000_0000);
/// let ptp = Ptp::modifiable(pool, BitmapAllocator::new(64), self_map).unwrap();
/// assert_eq!(ptp.kind(), PtpKind::Modifiable { self_map });
/// assert_eq!(ptp.self_map_tables(), 3); // a PDPT, a PD and a PT
/// assert_eq!(ptp.mapper.translate(self_map + 4096u64).unwrap().phys, pool.page_phys(1));
/// assert_eq!(ptp.audit(), Ok(()));
/// assert_eq!(ptp.cr3_frame(), pool.root_frame());
///
/// // Unmodifiable: its mapper refuses the pool's own frames.
/// let pool = mem.pool(512, 64).unwrap();
/// let mut user = Ptp::unmodifiable(pool, BitmapAllocator::new(64));
/// let virt = VirtAddr::new(0x40_0000);
/// let err = user.mapper.map_range(virt, pool.phys_base(), 1, PageSize::Size4KiB, F::WRITABLE);
/// assert_eq!(err, Err(MapError::PoolFrame { phys: pool.phys_base().as_u64() }));
/// user.mapper.map_range(virt, PhysAddr::new(0), 1, PageSize::Size4KiB, F::WRITABLE).unwrap().ignore();
/// assert_eq!(user.audit(), Ok(()));
/// # }
/// ```
pub struct Ptp<A: PageAllocator> {
    /// The mapper over the pool: map, unmap and translate through it.
    pub mapper: PoolMapper<A>,
    kind: PtpKind,
    self_map_tables: u32,
}

impl<A: PageAllocator> Ptp<A> {
    /// A PTP whose pool is mapped into itself at `self_map` (4 KiB aligned, canonical).
    ///
    /// # Errors
    /// [`MapError`] if the self-map cannot be mapped (misaligned or non-canonical `self_map`,
    /// or a pool too small for its own tables).
    pub fn modifiable(pool: Pool, alloc: A, self_map: VirtAddr) -> Result<Self, MapError> {
        Self::modifiable_with(pool, alloc, self_map, Fill::SSE2)
    }

    /// [`Ptp::modifiable`], with the leaf-fill path this CPU allows (see [`Fill`]).
    pub fn modifiable_with(
        pool: Pool,
        alloc: A,
        self_map: VirtAddr,
        fill: Fill,
    ) -> Result<Self, MapError> {
        let mut mapper = PoolMapper::create(pool, alloc).with_fill(fill);
        let before = mapper.allocator().used();
        mapper
            .map_range(
                self_map,
                pool.phys_base(),
                pool.pages() as u64,
                PageSize::Size4KiB,
                SELF_MAP_FLAGS,
            )?
            .ignore(); // not loaded yet: nothing to flush
        let self_map_tables = mapper.allocator().used() - before;
        Ok(Ptp {
            mapper,
            kind: PtpKind::Modifiable { self_map },
            self_map_tables,
        })
    }

    /// A PTP without a self-map, whose mapper refuses the pool's own frames.
    pub fn unmodifiable(pool: Pool, alloc: A) -> Self {
        Self::unmodifiable_with(pool, alloc, Fill::SSE2)
    }

    /// [`Ptp::unmodifiable`], with the leaf-fill path this CPU allows (see [`Fill`]). Its
    /// mapper refuses every frame inside the pool ([`MapError::PoolFrame`]).
    pub fn unmodifiable_with(pool: Pool, alloc: A, fill: Fill) -> Self {
        Ptp {
            mapper: PoolMapper::create(pool, alloc)
                .with_fill(fill)
                .refuse_pool_frames(),
            kind: PtpKind::Unmodifiable,
            self_map_tables: 0,
        }
    }

    /// Modifiable (with its self-map address) or unmodifiable.
    pub fn kind(&self) -> PtpKind {
        self.kind
    }

    /// Pool pages the self-map's own tables took (0 for an unmodifiable PTP).
    pub fn self_map_tables(&self) -> u32 {
        self.self_map_tables
    }

    /// Prove, with one walk, that the pool's own pages are mapped only as this kind allows:
    /// never in an unmodifiable PTP; in a modifiable one only by its self-map, page for page.
    pub fn audit(&self) -> Result<(), AuditError> {
        let pool = *self.mapper.pool();
        let allowed = |m: &Mapping| match self.kind {
            PtpKind::Unmodifiable => false,
            PtpKind::Modifiable { self_map } => {
                let off = m.virt.as_u64().wrapping_sub(self_map.as_u64());
                m.size == PageSize::Size4KiB
                    && off < pool.bytes()
                    && m.phys.as_u64() == pool.phys_base().as_u64() + off
            }
        };
        let mut bad = None;
        self.mapper
            .for_each_pool_alias(&mut |m| {
                if bad.is_none() && !allowed(&m) {
                    bad = Some(m);
                }
            })
            .map_err(AuditError::Walk)?;
        bad.map_or(Ok(()), |mapping| Err(AuditError::PoolMapped { mapping }))
    }

    /// The value for CR3: the pool's first page.
    pub fn cr3_frame(&self) -> PhysFrame {
        self.mapper.pool().root_frame()
    }
}
