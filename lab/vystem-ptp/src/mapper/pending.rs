//! Free after flush: what an unmap holds until the TLB forgot it ([`Unmap`]).

use super::*;
use crate::allocator::FreeError;
use crate::flush::{FlushPolicy, FullFlush, PageFlush};
use crate::shootdown::CpuSet;

/// The emptied tables an unmap holds back: the first run here, the others linked through it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Pending {
    /// The pool they belong to (its physical base): released into no other.
    pub(super) pool: u64,
    /// The first run: its first page and length (0: none).
    first: u32,
    count: u32,
    /// Pages in all runs.
    pages: u32,
}

/// What an unmap leaves to do: the range every TLB must forget, and the page tables it
/// emptied, which go back to the pool only once they have.
///
/// Free after flush. An unmap unlinks the tables it empties, but until every TLB that may have
/// walked through them has forgotten them (this CPU's paging-structure caches, and every CPU
/// that ran the address space), a CPU may still read them as tables: handed out again for a
/// new table, their new entries would be taken for the old range's. The Intel SDM (Vol. 3A,
/// 4.10.4) and AMD's APM (Vol. 2, 5.5.3) ask for the invalidation before a paging-structure page
/// is reused; Linux frees page tables only after the flush (`mmu_gather`, `tlb_remove_table`).
///
/// So an unmap hands back an `Unmap` (this type): the range to invalidate and the emptied tables, still
/// allocated. Flushing it ([`Unmap::flush_with`] and its siblings, or
/// [`Unmap::flush_shot_down`] once every other CPU acknowledged) gives a [`Flushed`], which
/// [`PoolMapper::release`] turns back into free pool pages. Neither is `Copy` nor `Clone`, and
/// both are `#[must_use]`: one cannot be flushed twice or released twice, and one dropped
/// unflushed leaks its tables (they stay allocated) rather than freeing them early. Several
/// unmaps gather into one [`Unmap`] ([`PoolMapper::unmap_into`]) and one flush, as Linux's
/// `mmu_gather` batches them.
///
/// The tables wait as runs of consecutive pool pages, linked through the first page of each
/// run (entry 0: the next run's first page, entry 1: its length, each stored with the present
/// bit clear): no memory beyond the tables themselves, and a stale walk through one finds
/// nothing present.
///
/// ```compile_fail
/// # use vystem_ptp::{BitmapAllocator, Pool, PoolMapper, VirtAddr};
/// # fn f(m: &mut PoolMapper<BitmapAllocator>) {
/// let unmap = m.unmap_range(VirtAddr::new(0x1000), 0x1000).unwrap();
/// let again = unmap; // moved: an unmap cannot be copied, so it cannot be flushed twice
/// let flushed = unmap.flush_each();
/// # }
/// ```
///
/// ```compile_fail
/// # use vystem_ptp::{BitmapAllocator, Pool, PoolMapper, VirtAddr};
/// # fn f(m: &mut PoolMapper<BitmapAllocator>) {
/// let unmap = m.unmap_range(VirtAddr::new(0x1000), 0x1000).unwrap();
/// let flushed = unmap.flush_each();
/// let _ = m.release(flushed);
/// let _ = m.release(flushed); // released once: the token is gone
/// # }
/// ```
#[must_use = "an unmap's emptied tables return to the pool only once the TLB forgot them: flush it, then `PoolMapper::release`"]
#[derive(Debug, PartialEq, Eq)]
pub struct Unmap {
    range: FlushRange,
    pending: Pending,
}

/// A flushed [`Unmap`]: its tables may go back to the pool, through [`PoolMapper::release`].
#[must_use = "flushed tables return to the pool through `PoolMapper::release`"]
#[derive(Debug, PartialEq, Eq)]
pub struct Flushed {
    pending: Pending,
}

/// Why [`PoolMapper::release`] returned fewer tables than it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseError {
    /// The tables belong to the pool at physical `pool`, not this mapper's.
    OtherPool {
        /// The physical base of the pool the unmap was made in.
        pool: u64,
    },
    /// The allocator refused a page (the first refusal; the other runs were still freed).
    Free(FreeError),
}

impl core::fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReleaseError::OtherPool { pool } => {
                write!(
                    f,
                    "these tables belong to the pool at {pool:#x}, not this mapper's"
                )
            }
            ReleaseError::Free(e) => write!(f, "the allocator refused a table: {e}"),
        }
    }
}

impl Unmap {
    /// The range to invalidate: what to send with a shootdown, or to decide a flush on.
    pub fn range(&self) -> FlushRange {
        self.range
    }

    /// Page tables waiting for the flush.
    pub fn tables_waiting(&self) -> u32 {
        self.pending.pages
    }

    /// One `invlpg` per page of the range. Ring 0 only; this CPU only.
    pub fn flush_each(self) -> Flushed {
        self.range.flush_each();
        self.flushed()
    }

    /// One invalidation of `how` per page of the range. Ring 0 only; this CPU only.
    pub fn flush_pages(self, how: PageFlush) -> Flushed {
        self.range.flush_pages(how);
        self.flushed()
    }

    /// One full flush of `how`. Ring 0 only; this CPU only.
    pub fn flush_full(self, how: FullFlush) -> Flushed {
        how.flush();
        self.flushed()
    }

    /// As `policy` decides for the range (per page up to its ceiling, else a CR3 reload).
    /// Ring 0 only; this CPU only.
    pub fn flush_with(self, policy: &FlushPolicy) -> Flushed {
        self.range.flush_with(policy);
        self.flushed()
    }

    /// On SMP: flush this CPU as `local` decides, and give the tables back only if every CPU
    /// of `targets` (those the shootdown interrupted: `ShootdownPolicy::plan`) is in `acked`
    /// (those that acknowledged their flush). Otherwise the unmap comes back, still holding
    /// them, for a later try. Ring 0 only.
    pub fn flush_shot_down(
        self,
        local: &FlushPolicy,
        targets: CpuSet,
        acked: CpuSet,
    ) -> Result<Flushed, Unmap> {
        if targets.0 & !acked.0 != 0 {
            return Err(self);
        }
        Ok(self.flush_with(local))
    }

    /// The tables may go back to the pool without a flush here.
    ///
    /// # Safety
    ///
    /// No CPU may hold a translation through these tables: the address space was never loaded
    /// in any CR3 since they were linked, or the caller flushed every CPU that loaded it.
    pub unsafe fn assume_flushed(self) -> Flushed {
        self.flushed()
    }

    fn flushed(self) -> Flushed {
        Flushed {
            pending: self.pending,
        }
    }
}

impl Flushed {
    /// Page tables it returns to the pool.
    pub fn tables(&self) -> u32 {
        self.pending.pages
    }
}

impl<A: PageAllocator> PoolMapper<A> {
    /// An empty batch for [`PoolMapper::unmap_into`]: nothing to flush, no table held.
    pub fn unmap_batch(&self) -> Unmap {
        Unmap {
            range: FlushRange::new(0, 0, PageSize::Size4KiB, 0),
            pending: Pending {
                pool: self.pool.phys_base().as_u64(),
                first: 0,
                count: 0,
                pages: 0,
            },
        }
    }

    /// The pool pages `unmap` holds, written to `out` (as many as fit): how many it holds.
    /// What a test or a debugger checks them by; an unmap of another pool holds none here.
    pub fn held_tables(&self, unmap: &Unmap, out: &mut [u32]) -> usize {
        let p = &unmap.pending;
        if p.pool != self.pool.phys_base().as_u64() {
            return 0;
        }
        let (mut first, mut count, mut n) = (p.first, p.count, 0);
        while count != 0 {
            for page in first..first.saturating_add(count) {
                if let Some(slot) = out.get_mut(n) {
                    *slot = page;
                }
                n += 1;
            }
            (first, count) = (
                (self.read(first, 0) >> 12) as u32,
                (self.read(first, 1) >> 12) as u32,
            );
        }
        n
    }

    /// Return a flushed unmap's tables to the allocator: how many it freed. A table the
    /// allocator refuses stays allocated (the error names the first refusal).
    pub fn release(&mut self, flushed: Flushed) -> Result<u32, ReleaseError> {
        let p = flushed.pending;
        if p.pages == 0 {
            return Ok(0);
        }
        if p.pool != self.pool.phys_base().as_u64() {
            return Err(ReleaseError::OtherPool { pool: p.pool });
        }
        let (mut first, mut count, mut freed, mut refused) = (p.first, p.count, 0, None);
        while count != 0 {
            let (next, next_count) = self.unlink(first);
            match self.alloc.free_range(first, count) {
                Ok(()) => freed += count,
                Err(e) => refused = refused.or(Some(ReleaseError::Free(e))),
            }
            (first, count) = (next, next_count);
        }
        refused.map_or(Ok(freed), Err)
    }

    /// Hold the `count` emptied tables from pool page `first` in `batch` until it is flushed.
    pub(super) fn hold(&mut self, batch: &mut Pending, first: u32, count: u32) {
        // The link: entries 0 and 1 of the run's first page, present bit clear.
        self.write(first, 0, (batch.first as u64) << 12);
        self.write(first, 1, (batch.count as u64) << 12);
        (batch.first, batch.count) = (first, count);
        batch.pages += count;
    }

    /// The run linked after the one at `first`, its link cleared (the page zeroed again).
    fn unlink(&mut self, first: u32) -> (u32, u32) {
        let next = (self.read(first, 0) >> 12) as u32;
        let count = (self.read(first, 1) >> 12) as u32;
        self.write(first, 0, 0);
        self.write(first, 1, 0);
        (next, count)
    }
}

impl Unmap {
    /// The batch's range and held tables, for an unmap to add to.
    pub(super) fn parts(&mut self) -> (&mut FlushRange, &mut Pending) {
        (&mut self.range, &mut self.pending)
    }
}
