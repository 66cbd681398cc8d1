//! The three x86-64 page sizes, as a run-time value (the mapper picks them per chunk).

/// A page size and the paging level whose entry maps it (1 = PT, 2 = PD, 3 = PDPT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    Size4KiB,
    Size2MiB,
    Size1GiB,
}

impl PageSize {
    pub const ALL: [PageSize; 3] = [PageSize::Size4KiB, PageSize::Size2MiB, PageSize::Size1GiB];

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

    pub const fn from_level(level: u8) -> Option<PageSize> {
        match level {
            1 => Some(PageSize::Size4KiB),
            2 => Some(PageSize::Size2MiB),
            3 => Some(PageSize::Size1GiB),
            _ => None,
        }
    }

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
    pub huge_2mib: bool,
    pub huge_1gib: bool,
}

impl PageSizes {
    pub const ONLY_4KIB: PageSizes = PageSizes {
        huge_2mib: false,
        huge_1gib: false,
    };
    pub const UP_TO_2MIB: PageSizes = PageSizes {
        huge_2mib: true,
        huge_1gib: false,
    };
    pub const ALL: PageSizes = PageSizes {
        huge_2mib: true,
        huge_1gib: true,
    };

    pub const fn allows(self, size: PageSize) -> bool {
        match size {
            PageSize::Size4KiB => true,
            PageSize::Size2MiB => self.huge_2mib,
            PageSize::Size1GiB => self.huge_1gib,
        }
    }
}
