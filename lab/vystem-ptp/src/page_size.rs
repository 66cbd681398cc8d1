//! The three x86-64 page sizes, as a run-time value (the mapper picks them per chunk).

/// A page size and the paging level whose entry maps it (1 = PT, 2 = PD, 3 = PDPT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// 4 KiB, mapped by a PT entry (level 1).
    Size4KiB,
    /// 2 MiB, mapped by a PD entry (level 2).
    Size2MiB,
    /// 1 GiB, mapped by a PDPT entry (level 3).
    Size1GiB,
}

impl PageSize {
    /// Every size, smallest first.
    pub const ALL: [PageSize; 3] = [PageSize::Size4KiB, PageSize::Size2MiB, PageSize::Size1GiB];

    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4KiB => 1 << 12,
            PageSize::Size2MiB => 1 << 21,
            PageSize::Size1GiB => 1 << 30,
        }
    }

    /// Level of the table whose entry maps a page of this size.
    pub const fn level(self) -> u8 {
        match self {
            PageSize::Size4KiB => 1,
            PageSize::Size2MiB => 2,
            PageSize::Size1GiB => 3,
        }
    }

    /// The page size a leaf entry at `level` maps; `None` outside `1..=3`.
    pub const fn from_level(level: u8) -> Option<PageSize> {
        match level {
            1 => Some(PageSize::Size4KiB),
            2 => Some(PageSize::Size2MiB),
            3 => Some(PageSize::Size1GiB),
            _ => None,
        }
    }

    /// "4KiB", "2MiB" or "1GiB", for run records.
    pub const fn name(self) -> &'static str {
        match self {
            PageSize::Size4KiB => "4KiB",
            PageSize::Size2MiB => "2MiB",
            PageSize::Size1GiB => "1GiB",
        }
    }
}

/// Which huge page sizes a region mapping may use (4 KiB is always allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageSizes {
    /// 2 MiB pages allowed.
    pub huge_2mib: bool,
    /// 1 GiB pages allowed.
    pub huge_1gib: bool,
}

impl PageSizes {
    /// 4 KiB pages only.
    pub const ONLY_4KIB: PageSizes = PageSizes {
        huge_2mib: false,
        huge_1gib: false,
    };
    /// 4 KiB and 2 MiB pages.
    pub const UP_TO_2MIB: PageSizes = PageSizes {
        huge_2mib: true,
        huge_1gib: false,
    };
    /// Every size, 1 GiB included.
    pub const ALL: PageSizes = PageSizes {
        huge_2mib: true,
        huge_1gib: true,
    };

    /// Whether a mapping may use pages of `size` (always for 4 KiB).
    pub const fn allows(self, size: PageSize) -> bool {
        match size {
            PageSize::Size4KiB => true,
            PageSize::Size2MiB => self.huge_2mib,
            PageSize::Size1GiB => self.huge_1gib,
        }
    }
}
