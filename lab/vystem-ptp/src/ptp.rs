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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtpKind {
    Modifiable { self_map: VirtAddr },
    Unmodifiable,
}

/// What [`Ptp::audit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditError {
    /// `mapping` reaches the pool's own pages where this kind of PTP must not.
    PoolMapped { mapping: Mapping },
    /// The walk met a table outside the pool.
    Walk(TranslateError),
}

/// The self-map's leaf flags.
pub const SELF_MAP_FLAGS: F = F::PRESENT.union(F::WRITABLE).union(F::NO_EXECUTE);

pub struct Ptp<A: PageAllocator> {
    pub mapper: PoolMapper<A>,
    kind: PtpKind,
    self_map_tables: u32,
}

impl<A: PageAllocator> Ptp<A> {
    /// A PTP whose pool is mapped into itself at `self_map` (4 KiB aligned, canonical).
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
