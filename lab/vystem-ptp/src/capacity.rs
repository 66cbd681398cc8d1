//! Capacity accounting: how many pool pages a layout needs, and how many a pool has left.
//!
//! [`predict_tables`] is a pure function of the virtual layout: the pool-size model that tells a
//! kernel developer whether the standard 4096-page pool suffices.
//!
//! # Example
//!
//! ```
//! use vystem_ptp::{layout_regions, predict_tables, PageSize, PageSizes, Region, VirtAddr};
//!
//! // A layout: 4 GiB of RAM in the higher half, and 12 KiB low.
//! let ranges = [(0xffff_8000_0000_0000, 0xffff_8001_0000_0000), (0x40_0000, 0x40_3000)];
//! let mut regions = [Region { start: VirtAddr::zero(), pages: 0, size: PageSize::Size4KiB }; 8];
//! let n = layout_regions(&ranges, PageSizes::UP_TO_2MIB, &mut regions).unwrap();
//! assert_eq!(n, 2); // 2048 pages of 2 MiB, 3 pages of 4 KiB
//! let tables = predict_tables(&mut regions[..n]).unwrap();
//! // The root; two PDPTs (one per half); 4 + 1 PDs; one PT.
//! assert_eq!((tables.pml4, tables.pdpt, tables.pd, tables.pt), (1, 2, 5, 1));
//! assert!(tables.total() <= u64::from(vystem_ptp::pool::STANDARD_POOL_PAGES));
//! ```

use crate::page_size::PageSize;
use x86_64::VirtAddr;

/// Log2 of the bytes of virtual space one table at `level` covers (1 = PT: 21, i.e. 2 MiB,
/// ..., 4 = PML4: 48, i.e. 256 TiB).
pub const fn table_span_shift(level: u8) -> u32 {
    12 + 9 * level as u32
}

/// Tables of levels `leaf..=top` that must be created to map `[start, last]` below a missing
/// entry of level `top + 1`: at each level, one per distinct span the range touches.
pub(crate) fn tables_below(top: u8, leaf: u8, start: u64, last: u64) -> u64 {
    (leaf..=top)
        .map(|level| {
            let shift = table_span_shift(level);
            (last >> shift) - (start >> shift) + 1
        })
        .sum()
}

/// Pool pages per paging level, as the mapper keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCount {
    /// PML4s (1: the root).
    pub pml4: u64,
    /// Page-directory-pointer tables.
    pub pdpt: u64,
    /// Page directories.
    pub pd: u64,
    /// Page tables (the 4 KiB leaves' tables).
    pub pt: u64,
}

impl TableCount {
    /// Every table: the pool pages they take.
    pub fn total(&self) -> u64 {
        self.pml4 + self.pdpt + self.pd + self.pt
    }

    /// By level number: 4 = PML4 ... 1 = PT.
    pub fn level(&self, level: u8) -> u64 {
        match level {
            4 => self.pml4,
            3 => self.pdpt,
            2 => self.pd,
            1 => self.pt,
            _ => 0,
        }
    }

    pub(crate) fn level_mut(&mut self, level: u8) -> &mut u64 {
        match level {
            4 => &mut self.pml4,
            3 => &mut self.pdpt,
            2 => &mut self.pd,
            _ => &mut self.pt,
        }
    }
}

/// The pool's state: tables per level and pages left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Tables per level the mapper built.
    pub tables: TableCount,
    /// Pages the allocator counts as used (tables, plus anything else handed out).
    pub used: u32,
    /// Pages free.
    pub left: u32,
    /// Pages in the pool.
    pub capacity: u32,
}

/// A virtual range mapped with one page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The first address (aligned to `size`).
    pub start: VirtAddr,
    /// Number of pages of `size`.
    pub pages: u64,
    /// The page size of the whole region.
    pub size: PageSize,
}

impl Region {
    /// The region's last byte; `None` if it has no pages or runs past 2^64.
    pub fn last(&self) -> Option<u64> {
        let len = self.pages.checked_mul(self.size.bytes())?;
        self.start.as_u64().checked_add(len.checked_sub(1)?)
    }
}

/// Why a layout cannot be predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// The region starting at `start` runs past the end of the address space.
    PastEnd {
        /// The region's start.
        start: VirtAddr,
    },
}

impl core::fmt::Display for RegionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RegionError::PastEnd { start } => write!(
                f,
                "the region at {:#x} runs past the end of the address space",
                start.as_u64()
            ),
        }
    }
}

/// Cut byte ranges `[start, end)` (4 KiB aligned, not overlapping) into the regions
/// [`crate::PoolMapper::map_region`] would map them as, with the page sizes `sizes` allows
/// where the virtual alignment does (frames are the PTP's to choose: congruent to the virtual
/// address modulo 1 GiB). Writes into `out` and returns how many; `None` if `out` is too
/// small. A layout's pool pages: [`predict_tables`] of these.
pub fn layout_regions(
    ranges: &[(u64, u64)],
    sizes: crate::PageSizes,
    out: &mut [Region],
) -> Option<usize> {
    let mut n = 0;
    for &(start, end) in ranges {
        if end <= start {
            continue;
        }
        let phys = start & ((1 << 30) - 1);
        for c in crate::chunk::Chunks::new(start, phys, end - start, sizes) {
            *out.get_mut(n)? = Region {
                start: VirtAddr::new_truncate(c.virt),
                pages: c.count,
                size: c.size,
            };
            n += 1;
        }
    }
    Some(n)
}

/// Page tables needed to map `regions` into a fresh pool (the root included).
///
/// Regions must not overlap; a region of zero pages needs nothing. They are sorted in place
/// (no allocation, so this runs in the kernel too). Two regions sharing a table's span share
/// the table.
pub fn predict_tables(regions: &mut [Region]) -> Result<TableCount, RegionError> {
    if let Some(r) = regions.iter().find(|r| r.pages > 0 && r.last().is_none()) {
        return Err(RegionError::PastEnd { start: r.start });
    }
    regions.sort_unstable_by_key(|r| r.start.as_u64());
    let mut count = TableCount {
        pml4: 1,
        ..TableCount::default()
    };
    for level in 1..=3u8 {
        let shift = table_span_shift(level);
        // Sorted by start, so the first span of each region is >= every span counted before.
        let mut counted: Option<u64> = None;
        let mut n = 0;
        for r in regions.iter().filter(|r| r.size.level() <= level) {
            let Some(last) = r.last() else {
                continue; // no pages: nothing to map
            };
            let (first, last) = (r.start.as_u64() >> shift, last >> shift);
            let from = match counted {
                Some(c) if c >= first => c + 1,
                _ => first,
            };
            if last >= from {
                n += last - from + 1;
            }
            counted = Some(counted.map_or(last, |c| c.max(last)));
        }
        *count.level_mut(level) = n;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: u64, pages: u64, size: PageSize) -> Region {
        Region {
            start: VirtAddr::new(start),
            pages,
            size,
        }
    }

    #[test]
    fn one_gib_of_4kib_pages() {
        let t = predict_tables(&mut [region(0x4000_0000, 262_144, PageSize::Size4KiB)]).unwrap();
        assert_eq!(
            t,
            TableCount {
                pml4: 1,
                pdpt: 1,
                pd: 1,
                pt: 512
            }
        );
    }

    #[test]
    fn sixty_four_gib_of_2mib_pages() {
        let t = predict_tables(&mut [region(0, 64 * 512, PageSize::Size2MiB)]).unwrap();
        assert_eq!(
            t,
            TableCount {
                pml4: 1,
                pdpt: 1,
                pd: 64,
                pt: 0
            }
        );
    }

    #[test]
    fn neighbours_share_tables_and_halves_do_not() {
        let mut r = [
            region(0xffff_8000_0020_0000, 1, PageSize::Size4KiB),
            region(0x1000, 1, PageSize::Size4KiB),
            region(0x3000, 2, PageSize::Size4KiB),
            region(0xffff_8000_4000_0000, 1, PageSize::Size1GiB),
        ];
        let t = predict_tables(&mut r).unwrap();
        assert_eq!(
            t,
            TableCount {
                pml4: 1,
                pdpt: 2,
                pd: 2,
                pt: 2
            }
        );
    }

    #[test]
    fn spans_crossing_a_table_boundary() {
        // 2 pages straddling a 2 MiB boundary need two PTs, one PD.
        let t = predict_tables(&mut [region(0x1f_f000, 2, PageSize::Size4KiB)]).unwrap();
        assert_eq!(
            t,
            TableCount {
                pml4: 1,
                pdpt: 1,
                pd: 1,
                pt: 2
            }
        );
        assert_eq!(tables_below(3, 1, 0x1f_f000, 0x20_0fff), 4);
    }

    #[test]
    fn empty_regions_need_nothing_and_overflow_is_an_error() {
        let empty = predict_tables(&mut [region(0x1000, 0, PageSize::Size4KiB)]).unwrap();
        assert_eq!(empty.total(), 1, "only the root");
        let top = region(0xffff_ffff_ffff_f000, 2, PageSize::Size4KiB);
        assert_eq!(
            predict_tables(&mut [top]),
            Err(RegionError::PastEnd { start: top.start })
        );
        let huge = region(0x1000, u64::MAX, PageSize::Size1GiB);
        assert!(predict_tables(&mut [huge]).is_err());
        assert_eq!(
            region(0xffff_ffff_ffff_f000, 1, PageSize::Size4KiB).last(),
            Some(u64::MAX)
        );
    }

    #[test]
    fn layouts_are_cut_as_map_region_cuts_them() {
        let mut out = [region(0, 0, PageSize::Size4KiB); 8];
        // 4 KiB head up to 2 MiB, 2 MiB pages, a 4 KiB tail; a range of 4 KiB pages only.
        let ranges = [(0x1ff000, 0x601000), (0x7000_0000, 0x7000_3000)];
        let n = layout_regions(&ranges, crate::PageSizes::UP_TO_2MIB, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &[
                region(0x1ff000, 1, PageSize::Size4KiB),
                region(0x200000, 2, PageSize::Size2MiB),
                region(0x600000, 1, PageSize::Size4KiB),
                region(0x7000_0000, 3, PageSize::Size4KiB),
            ]
        );
        let n = layout_regions(&ranges, crate::PageSizes::ONLY_4KIB, &mut out).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            layout_regions(&ranges, crate::PageSizes::UP_TO_2MIB, &mut out[..2]),
            None
        );
    }
}
