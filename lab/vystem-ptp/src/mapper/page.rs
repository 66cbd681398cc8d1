//! Mapping one page: one walk from the root, creating missing tables on the way.

use super::{index, is_huge, Bits, MapError, PoolMapper, F, MAX_PHYS, ROOT_PAGE};
use crate::allocator::PageAllocator;
use crate::flush::FlushRange;
use crate::page_size::PageSize;
use x86_64::{PhysAddr, VirtAddr};

/// Where the read-only part of the walk stopped, and what it found on the way.
struct Walk {
    /// The deepest existing table on the way, and its level.
    table: u32,
    level: u8,
    /// Existing entries that need more permission bits: widened only once the leaf is written.
    widen: [(u32, usize, u64); 3],
    n_widen: usize,
}

impl<A: PageAllocator> PoolMapper<A> {
    /// Map one page: one walk from the root, creating missing tables on the way. All or
    /// nothing, with any allocator: the walk reads down to the first missing entry (a conflict
    /// there is an error before anything is written), and tables are created only if the
    /// pool has every one the rest of the way needs.
    pub fn map_page(
        &mut self,
        virt: VirtAddr,
        phys: PhysAddr,
        size: PageSize,
        flags: F,
    ) -> Result<FlushRange, MapError> {
        let (va, p) = (virt.as_u64(), phys.as_u64());
        if va % size.bytes() != 0 || p % size.bytes() != 0 {
            return Err(MapError::Misaligned {
                virt: va,
                phys: p,
                size,
            });
        }
        if p + size.bytes() > MAX_PHYS {
            return Err(MapError::FrameOutOfRange {
                phys: p + size.bytes(),
            });
        }
        self.check_frames(p, size.bytes())?;
        let bits = Bits::new(size, flags);
        let mut walk = Walk {
            table: ROOT_PAGE,
            level: 4,
            widen: [(0, 0, 0); 3],
            n_widen: 0,
        };
        self.walk_existing(virt, &bits, &mut walk)?;
        let needed = (walk.level - bits.leaf) as u64;
        if needed > 0 && needed > self.alloc.left() as u64 {
            return Err(MapError::PoolExhausted {
                needed,
                left: self.alloc.left(),
            });
        }
        let leaf_table = self.create_rest(va, &bits, walk.table, walk.level)?;
        self.write(leaf_table, index(va, bits.leaf), p | bits.leaf_bits);
        for &(t, j, old) in &walk.widen[..walk.n_widen] {
            self.write(t, j, old | bits.table_bits);
        }
        Ok(FlushRange::new(va, va + (size.bytes() - 1), size, 1))
    }

    /// Read down from the root through the tables that exist. Stops at the first missing entry
    /// (the rest must be created), or at the leaf, whose slot must be free.
    #[inline]
    fn walk_existing(&self, virt: VirtAddr, bits: &Bits, w: &mut Walk) -> Result<(), MapError> {
        let va = virt.as_u64();
        while w.level > bits.leaf {
            let i = index(va, w.level);
            let e = self.read(w.table, i);
            if e == 0 {
                return Ok(());
            }
            if is_huge(e, w.level) {
                return Err(MapError::AlreadyMapped { virt });
            }
            let child = self
                .child(e)
                .map_err(|phys| MapError::ForeignTable { phys })?;
            if e & bits.table_bits != bits.table_bits {
                w.widen[w.n_widen] = (w.table, i, e);
                w.n_widen += 1;
            }
            w.table = child;
            w.level -= 1;
        }
        let e = self.read(w.table, index(va, bits.leaf));
        if e != 0 {
            return Err(if bits.leaf > 1 && !is_huge(e, bits.leaf) {
                MapError::TableInTheWay { virt }
            } else {
                MapError::AlreadyMapped { virt }
            });
        }
        Ok(())
    }

    /// Create the tables from `table` (at `level`) down to the leaf's; returns the leaf's
    /// table. The pool has them (checked); only an allocator that hands out pages past the
    /// pool (a set-up error) can fail here, and then the links made are undone.
    fn create_rest(
        &mut self,
        va: u64,
        bits: &Bits,
        table: u32,
        level: u8,
    ) -> Result<u32, MapError> {
        let (mut table, mut level) = (table, level);
        let mut created = [(0u32, 0usize, 0u8); 3];
        let mut n = 0;
        while level > bits.leaf {
            let i = index(va, level);
            let c = match self.table_page() {
                Ok(c) => c,
                Err(e) => {
                    // Unlink what this call linked (the pages stay used with a bump allocator).
                    for &(parent, j, lvl) in created[..n].iter().rev() {
                        let child = self.child(self.read(parent, j)).unwrap_or(0);
                        self.write(parent, j, 0);
                        *self.tables.level_mut(lvl) -= 1;
                        let _ = self.alloc.free(child);
                    }
                    return Err(e);
                }
            };
            // SAFETY: a pool page just handed out; it becomes a table, so clear it.
            unsafe { core::ptr::write_bytes(self.pool.page_ptr(c), 0, 1) };
            self.write(table, i, self.pool.page_phys(c).as_u64() | bits.table_bits);
            *self.tables.level_mut(level - 1) += 1;
            created[n] = (table, i, level - 1);
            n += 1;
            table = c;
            level -= 1;
        }
        Ok(table)
    }
}
