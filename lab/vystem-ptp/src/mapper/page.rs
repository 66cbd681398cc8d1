//! Mapping one page: one walk from the root, creating missing tables on the way.

use super::{index, is_huge, Bits, MapError, PoolMapper, F, MAX_PHYS, ROOT_PAGE};
use crate::allocator::PageAllocator;
use crate::flush::FlushRange;
use crate::page_size::PageSize;
use x86_64::{PhysAddr, VirtAddr};

/// What one walk changed on its way down, so an error can put it back.
#[derive(Default)]
struct Walk {
    /// (parent table, entry index, new table, its level) for each table created.
    created: [(u32, usize, u32, u8); 3],
    n_created: usize,
    /// Existing entries that need more permission bits: widened only once the leaf is written.
    widen: [(u32, usize, u64); 3],
    n_widen: usize,
}

impl<A: PageAllocator> PoolMapper<A> {
    /// Map one page: one walk from the root, creating missing tables on the way. All or
    /// nothing, with any allocator: a read-only walk first finds conflicts and counts exactly
    /// the tables missing, and nothing is written unless the pool has them.
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
        let needed = self.plan_page(virt, &bits)?;
        if needed > self.alloc.left() as u64 {
            return Err(MapError::PoolExhausted {
                needed,
                left: self.alloc.left(),
            });
        }
        let mut walk = Walk::default();
        let result = self
            .descend(virt, &bits, &mut walk)
            .and_then(|table| self.write_leaf(table, virt, p, &bits, &walk));
        match result {
            Ok(()) => Ok(FlushRange::new(va, va + (size.bytes() - 1), size, 1)),
            Err(e) => Err(self.undo(&walk, e)),
        }
    }

    /// The walk, read-only: a conflict, or how many tables are missing on the way.
    fn plan_page(&self, virt: VirtAddr, bits: &Bits) -> Result<u64, MapError> {
        let va = virt.as_u64();
        let (mut table, mut needed) = (Some(ROOT_PAGE), 0);
        for level in (bits.leaf + 1..=4).rev() {
            let Some(t) = table else {
                needed += 1;
                continue;
            };
            let e = self.read(t, index(va, level));
            if e == 0 {
                needed += 1;
                table = None;
            } else if is_huge(e, level) {
                return Err(MapError::AlreadyMapped { virt });
            } else {
                table = Some(
                    self.child(e)
                        .map_err(|phys| MapError::ForeignTable { phys })?,
                );
            }
        }
        if let Some(t) = table {
            let e = self.read(t, index(va, bits.leaf));
            if e != 0 {
                return Err(if bits.leaf > 1 && !is_huge(e, bits.leaf) {
                    MapError::TableInTheWay { virt }
                } else {
                    MapError::AlreadyMapped { virt }
                });
            }
        }
        Ok(needed)
    }

    /// Walk from the root to the table that holds the leaf, creating missing tables.
    fn descend(&mut self, virt: VirtAddr, bits: &Bits, walk: &mut Walk) -> Result<u32, MapError> {
        let va = virt.as_u64();
        let mut table = ROOT_PAGE;
        for level in (bits.leaf + 1..=4).rev() {
            let i = index(va, level);
            let e = self.read(table, i);
            if e == 0 {
                let c = match self.table_page() {
                    Ok(c) => c,
                    Err(MapError::PoolExhausted { .. }) => {
                        return Err(MapError::PoolExhausted {
                            needed: (level - bits.leaf) as u64,
                            left: 0,
                        })
                    }
                    Err(e) => return Err(e),
                };
                // SAFETY: a pool page just handed out; it becomes a table, so clear it.
                unsafe { core::ptr::write_bytes(self.pool.page_ptr(c), 0, 1) };
                self.write(table, i, self.pool.page_phys(c).as_u64() | bits.table_bits);
                *self.tables.level_mut(level - 1) += 1;
                walk.created[walk.n_created] = (table, i, c, level - 1);
                walk.n_created += 1;
                table = c;
            } else if is_huge(e, level) {
                return Err(MapError::AlreadyMapped { virt });
            } else {
                let c = self
                    .child(e)
                    .map_err(|phys| MapError::ForeignTable { phys })?;
                if e & bits.table_bits != bits.table_bits {
                    walk.widen[walk.n_widen] = (table, i, e);
                    walk.n_widen += 1;
                }
                table = c;
            }
        }
        Ok(table)
    }

    /// Write the leaf if its slot is free, then widen the entries above it.
    fn write_leaf(
        &mut self,
        table: u32,
        virt: VirtAddr,
        phys: u64,
        bits: &Bits,
        walk: &Walk,
    ) -> Result<(), MapError> {
        let i = index(virt.as_u64(), bits.leaf);
        let e = self.read(table, i);
        if e != 0 {
            return Err(if bits.leaf > 1 && !is_huge(e, bits.leaf) {
                MapError::TableInTheWay { virt }
            } else {
                MapError::AlreadyMapped { virt }
            });
        }
        self.write(table, i, phys | bits.leaf_bits);
        for &(t, j, old) in &walk.widen[..walk.n_widen] {
            self.write(t, j, old | bits.table_bits);
        }
        Ok(())
    }

    /// Unlink and free the tables this walk created: after the plan, only an allocator that
    /// hands out pages past the pool (a set-up error) gets here. With the bump allocator the
    /// pages stay used; the links are undone all the same.
    fn undo(&mut self, walk: &Walk, err: MapError) -> MapError {
        let mut freed = 0;
        for &(parent, i, c, level) in walk.created[..walk.n_created].iter().rev() {
            self.write(parent, i, 0);
            *self.tables.level_mut(level) -= 1;
            if self.alloc.free(c).is_ok() {
                freed += 1;
            }
        }
        match err {
            MapError::PoolExhausted { needed, .. } => MapError::PoolExhausted {
                needed: needed + freed,
                left: self.alloc.left(),
            },
            other => other,
        }
    }
}
