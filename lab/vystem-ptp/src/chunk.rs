//! A region cut into runs of equal pages: what the mapper maps chunk by chunk and the capacity
//! model counts tables for, so both cut a region the same way.

use crate::page_size::{PageSize, PageSizes};
use crate::pool::PAGE_BYTES;

/// One run of equal pages of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Virtual address of the first page.
    pub virt: u64,
    /// Physical address of the first page.
    pub phys: u64,
    /// Number of pages (of `size`, not bytes).
    pub count: u64,
    /// The size of every page of the run.
    pub size: PageSize,
}

/// A region cut into chunks as [`crate::PoolMapper::map_region`] maps it: at each point the largest
/// page size that alignment, the length left and `sizes` allow, each chunk stopping where a
/// larger page could begin. The capacity model cuts layouts with the same iterator.
///
/// # Example
///
/// ```
/// use vystem_ptp::{Chunk, Chunks, PageSize, PageSizes};
///
/// // 4 KiB up to the first 2 MiB boundary, 2 MiB pages, then a 4 KiB tail.
/// let chunks: Vec<Chunk> = Chunks::new(0x1ff000, 0x1ff000, 0x402000, PageSizes::UP_TO_2MIB).collect();
/// let cut: Vec<(u64, u64, PageSize)> = chunks.iter().map(|c| (c.virt, c.count, c.size)).collect();
/// assert_eq!(
///     cut,
///     [
///         (0x1ff000, 1, PageSize::Size4KiB),
///         (0x200000, 2, PageSize::Size2MiB),
///         (0x600000, 1, PageSize::Size4KiB),
///     ]
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Chunks {
    v: u64,
    p: u64,
    rem: u64,
    sizes: PageSizes,
}

impl Chunks {
    /// `bytes` (a multiple of 4 KiB) from `virt` to `phys` (both 4 KiB aligned).
    pub fn new(virt: u64, phys: u64, bytes: u64, sizes: PageSizes) -> Chunks {
        Chunks {
            v: virt,
            p: phys,
            rem: bytes & !(PAGE_BYTES - 1),
            sizes,
        }
    }
}

impl Chunks {
    /// `count` pages of `size` from `virt` to `phys` (both `size` aligned), as one chunk.
    pub(crate) fn single(virt: u64, phys: u64, count: u64, size: PageSize) -> Chunks {
        let sizes = PageSizes {
            huge_2mib: size == PageSize::Size2MiB,
            huge_1gib: size == PageSize::Size1GiB,
        };
        Chunks {
            v: virt,
            p: phys,
            rem: count.saturating_mul(size.bytes()),
            sizes,
        }
    }

    /// The chunk that maps `va`, if the region does.
    pub(crate) fn at(&self, va: u64) -> Option<Chunk> {
        self.into_iter()
            .find(|c| va >= c.virt && va - c.virt < c.count * c.size.bytes())
    }
}

impl Iterator for Chunks {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        if self.rem == 0 {
            return None;
        }
        let (v, p, rem, sizes) = (self.v, self.p, self.rem, self.sizes);
        let size = [PageSize::Size1GiB, PageSize::Size2MiB]
            .into_iter()
            .find(|s| {
                sizes.allows(*s) && v % s.bytes() == 0 && p % s.bytes() == 0 && rem >= s.bytes()
            })
            .unwrap_or(PageSize::Size4KiB);
        let mut count = rem / size.bytes();
        for big in [PageSize::Size2MiB, PageSize::Size1GiB] {
            if big > size && sizes.allows(big) && (v.wrapping_sub(p)) % big.bytes() == 0 {
                let to_boundary = (big.bytes() - v % big.bytes()) % big.bytes() / size.bytes();
                let after = rem.checked_sub(to_boundary * size.bytes());
                if to_boundary > 0 && after.is_some_and(|a| a >= big.bytes()) {
                    count = count.min(to_boundary);
                }
            }
        }
        let len = count * size.bytes();
        self.v = v.wrapping_add(len);
        self.p = p + len;
        self.rem = rem - len;
        Some(Chunk {
            virt: v,
            phys: p,
            count,
            size,
        })
    }
}
