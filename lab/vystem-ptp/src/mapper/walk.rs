//! Reading the tables: translate one address, visit every mapping, count tables.

use super::*;

impl<A: PageAllocator> PoolMapper<A> {
    // ---- reading ---------------------------------------------------------------------------

    /// Where `virt` leads: frame plus offset, page size and leaf flags.
    ///
    /// # Errors
    /// [`TranslateError::NotMapped`] when no present entry maps it,
    /// [`TranslateError::ForeignTable`] when the walk leaves the pool.
    pub fn translate(&self, virt: VirtAddr) -> Result<Translation, TranslateError> {
        let va = virt.as_u64();
        let mut table = ROOT_PAGE;
        for level in (1..=4u8).rev() {
            let e = self.read(table, index(va, level));
            if e & F::PRESENT.bits() == 0 {
                return Err(TranslateError::NotMapped { virt });
            }
            if level == 1 || is_huge(e, level) {
                let size = PageSize::from_level(level).unwrap_or(PageSize::Size4KiB);
                let frame = e & ADDR_MASK & !(size.bytes() - 1);
                let flags = F::from_bits_truncate(e & !ADDR_MASK);
                let phys = PhysAddr::new_truncate(frame + (va & (size.bytes() - 1)));
                return Ok(Translation { phys, size, flags });
            }
            table = self
                .child(e)
                .map_err(|phys| TranslateError::ForeignTable { phys })?;
        }
        Err(TranslateError::NotMapped { virt })
    }

    /// Visit every leaf mapping, in ascending virtual order (audits, counting).
    pub fn for_each_mapping(&self, f: &mut impl FnMut(Mapping)) -> Result<(), TranslateError> {
        self.visit(ROOT_PAGE, 4, 0, f)
    }

    fn visit(
        &self,
        table: u32,
        level: u8,
        base: u64,
        f: &mut impl FnMut(Mapping),
    ) -> Result<(), TranslateError> {
        for i in 0..ENTRIES {
            let e = self.read(table, i);
            if e & F::PRESENT.bits() == 0 {
                continue;
            }
            let va = sign_extend(base + i as u64 * entry_span(level));
            if level == 1 || is_huge(e, level) {
                let size = PageSize::from_level(level).unwrap_or(PageSize::Size4KiB);
                f(Mapping {
                    virt: VirtAddr::new_truncate(va),
                    phys: PhysAddr::new_truncate(e & ADDR_MASK & !(size.bytes() - 1)),
                    size,
                    flags: F::from_bits_truncate(e & !ADDR_MASK),
                });
            } else {
                let child = self
                    .child(e)
                    .map_err(|phys| TranslateError::ForeignTable { phys })?;
                self.visit(child, level - 1, va, f)?;
            }
        }
        Ok(())
    }

    /// Count every table below `table` (not `table` itself), each pool page at most once.
    pub(super) fn count_tables(
        &self,
        table: u32,
        level: u8,
        seen: &mut [u64],
        tables: &mut TableCount,
    ) -> Result<(), AdoptError> {
        if level == 1 {
            return Ok(());
        }
        for i in 0..ENTRIES {
            let e = self.read(table, i);
            if e & F::PRESENT.bits() == 0 || is_huge(e, level) {
                continue;
            }
            let child = self
                .child(e)
                .map_err(|phys| AdoptError::ForeignTable { phys })?;
            let (w, bit) = (child as usize / 64, 1u64 << (child % 64));
            if seen[w] & bit != 0 {
                return Err(AdoptError::SharedTable { index: child });
            }
            seen[w] |= bit;
            *tables.level_mut(level - 1) += 1;
            self.count_tables(child, level - 1, seen, tables)?;
        }
        Ok(())
    }

    /// Visit every mapping whose frames reach into the pool's own pages (audits: an
    /// unmodifiable PTP must have none, a modifiable one only its self-map).
    pub fn for_each_pool_alias(&self, f: &mut impl FnMut(Mapping)) -> Result<(), TranslateError> {
        let lo = self.pool.phys_base().as_u64();
        let hi = lo + self.pool.bytes();
        self.for_each_mapping(&mut |m| {
            let p = m.phys.as_u64();
            if p < hi && p + m.size.bytes() > lo {
                f(m)
            }
        })
    }
}
