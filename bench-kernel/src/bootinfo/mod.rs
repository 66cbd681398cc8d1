//! Boot information from PVH (`hvm_start_info`) or multiboot2, reduced to what the
//! kernel needs: the command line, the firmware memory map, and the free RAM left
//! after removing the low 1 MiB, the kernel image and the boot information itself.
//!
//! Everything is read through the identity map, which covers physical 0..4 GiB only;
//! pointers beyond that are rejected rather than followed.

use core::fmt;
use core::ptr;

mod multiboot2;
mod pvh;
mod regions;

pub use regions::{FreeRegions, Range};

use crate::boot::{MULTIBOOT2_BOOTLOADER_MAGIC, PVH_START_INFO_MAGIC};
use ptp_lab::fixedstr::FixedStr;

/// Memory-map entries kept (more are dropped and flagged).
pub const MAX_MEMMAP_ENTRIES: usize = 128;
/// Command-line bytes kept (more are dropped and flagged).
pub const MAX_CMDLINE: usize = 1024;
/// Free-region list capacity: every RAM entry can be split by the exclusions.
pub const MAX_FREE_REGIONS: usize = 2 * MAX_MEMMAP_ENTRIES;
/// End of the boot identity map.
pub const IDENTITY_MAP_END: u64 = 4 << 30;
/// Below this, RAM is left alone (real-mode IVT/BDA/EBDA, option ROM data, and where
/// QEMU's PVH loader puts its tables).
pub const LOW_MEMORY_END: u64 = 1 << 20;

pub(crate) const PAGE_SIZE: u64 = 4096;
/// Memory-map type of usable RAM (same value in E820, PVH and multiboot2).
pub const MEMORY_TYPE_RAM: u32 = 1;
/// Boot-info ranges (structures, strings, tables, modules) remembered for exclusion.
const MAX_BOOT_RANGES: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Pvh,
    Multiboot2,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pvh => "pvh",
            Protocol::Multiboot2 => "multiboot2",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// `kmain` got a boot magic of no supported protocol.
    UnknownMagic(u64),
    /// The boot-info pointer is null.
    NullInfo,
    /// A structure lies (partly) outside the identity-mapped 0..4 GiB.
    OutsideIdentityMap { paddr: u64, len: u64 },
    /// `hvm_start_info.magic` is wrong.
    BadPvhMagic(u32),
    /// `hvm_start_info` version 0 carries no memory map (we need version >= 1).
    PvhNoMemmap { version: u32 },
    /// The multiboot2 info `total_size` is implausible.
    BadMultiboot2Size(u32),
    /// A multiboot2 memory-map tag whose entries are not the spec's 24 bytes.
    BadMultiboot2Tag { offset: u32, kind: u32, size: u32 },
    /// No multiboot2 memory-map tag (type 6).
    Multiboot2NoMemmap,
    /// The `multiboot2` crate rejected the information structure (alignment, sizes, end tag).
    Multiboot2(::multiboot2::LoadError),
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownMagic(m) => write!(f, "unknown boot magic {m:#x}"),
            Self::NullInfo => write!(f, "boot info pointer is null"),
            Self::OutsideIdentityMap { paddr, len } => {
                write!(
                    f,
                    "boot data at {paddr:#x} (+{len:#x}) is outside the 4 GiB identity map"
                )
            }
            Self::BadPvhMagic(m) => write!(f, "bad hvm_start_info magic {m:#x}"),
            Self::PvhNoMemmap { version } => {
                write!(f, "hvm_start_info version {version} has no memory map")
            }
            Self::BadMultiboot2Size(s) => write!(f, "bad multiboot2 info size {s}"),
            Self::BadMultiboot2Tag { offset, kind, size } => {
                write!(
                    f,
                    "bad multiboot2 tag type {kind} size {size} at offset {offset}"
                )
            }
            Self::Multiboot2NoMemmap => write!(f, "multiboot2 info has no memory map tag"),
            Self::Multiboot2(::multiboot2::LoadError::Memory(e)) => {
                write!(f, "bad multiboot2 info: {e} ({e:?})")
            }
            Self::Multiboot2(e) => write!(f, "bad multiboot2 info: {e}"),
        }
    }
}

/// One firmware memory-map entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryRegion {
    pub base: u64,
    pub len: u64,
    /// E820-style type: 1 RAM, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 bad.
    pub kind: u32,
}

/// The framebuffer the loader set up (multiboot2 tag 8): EGA text (BIOS) or RGB pixels (UEFI).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framebuffer {
    pub addr: u64,
    /// Bytes per row (of pixels, or of text cells).
    pub pitch: u32,
    /// Pixels, or text columns and rows.
    pub width: u32,
    pub height: u32,
    pub bpp: u8,
    pub text: bool,
    /// (bit position, mask size) of each colour in a pixel.
    pub red: (u8, u8),
    pub green: (u8, u8),
    pub blue: (u8, u8),
}

impl Framebuffer {
    pub fn bytes_per_pixel(&self) -> u32 {
        (self.bpp as u32).div_ceil(8)
    }

    /// Something this kernel can draw on: inside the identity map, a known layout.
    pub fn usable(&self) -> bool {
        let bytes = self.pitch as u64 * self.height as u64;
        let layout = if self.text {
            self.pitch >= self.width * 2
        } else {
            matches!(self.bpp, 16 | 24 | 32) && self.pitch >= self.width * self.bytes_per_pixel()
        };
        self.addr != 0
            && self.width > 0
            && self.height > 0
            && layout
            && self
                .addr
                .checked_add(bytes)
                .is_some_and(|end| end <= IDENTITY_MAP_END)
    }

    /// The pixel value of colour (r, g, b) in this framebuffer's layout.
    pub fn pixel(&self, r: u8, g: u8, b: u8) -> u32 {
        let c = |v: u8, (pos, size): (u8, u8)| -> u32 {
            let size = size.min(8);
            ((v as u32) >> (8 - size)) << pos.min(31)
        };
        c(r, self.red) | c(g, self.green) | c(b, self.blue)
    }
}

pub struct BootInfo {
    pub protocol: Protocol,
    pub info_paddr: u64,
    cmdline: FixedStr<MAX_CMDLINE>,
    pub cmdline_truncated: bool,
    memmap: [MemoryRegion; MAX_MEMMAP_ENTRIES],
    memmap_len: usize,
    pub memmap_truncated: bool,
    /// ACPI RSDP physical address, when the loader provides it (PVH does).
    pub rsdp_paddr: Option<u64>,
    /// The first boot module (PVH modlist entry, multiboot2 module tag): `[start, end)`.
    pub module: Option<Range>,
    /// The screen the loader set up (multiboot2 only).
    pub framebuffer: Option<Framebuffer>,
    boot_ranges: [Range; MAX_BOOT_RANGES],
    boot_ranges_len: usize,
}

impl BootInfo {
    fn new(protocol: Protocol, info_paddr: u64) -> Self {
        Self {
            protocol,
            info_paddr,
            cmdline: FixedStr::new(),
            cmdline_truncated: false,
            memmap: [MemoryRegion::default(); MAX_MEMMAP_ENTRIES],
            memmap_len: 0,
            memmap_truncated: false,
            rsdp_paddr: None,
            module: None,
            framebuffer: None,
            boot_ranges: [Range::default(); MAX_BOOT_RANGES],
            boot_ranges_len: 0,
        }
    }

    pub fn cmdline(&self) -> &str {
        self.cmdline.as_str()
    }

    /// Value of the first `key=value` argument.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.cmdline()
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// The first boot module's bytes, if one was handed over inside the identity map.
    pub fn module_bytes(&self) -> Option<&'static [u8]> {
        let m = self.module?;
        check_mapped(m.start, m.len()).ok()?;
        // SAFETY: boot data inside the identity map, excluded from free RAM (boot_ranges), never
        // written by the kernel.
        Some(unsafe { core::slice::from_raw_parts(m.start as *const u8, m.len() as usize) })
    }

    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.memmap[..self.memmap_len]
    }

    /// Ranges occupied by boot information (structures, strings, tables, modules).
    pub fn boot_ranges(&self) -> &[Range] {
        &self.boot_ranges[..self.boot_ranges_len]
    }

    fn push_region(&mut self, region: MemoryRegion) {
        if self.memmap_len == MAX_MEMMAP_ENTRIES {
            self.memmap_truncated = true;
            return;
        }
        self.memmap[self.memmap_len] = region;
        self.memmap_len += 1;
    }

    fn push_boot_range(&mut self, start: u64, len: u64) {
        // Overflowing this list would make free_regions() hand out boot data; it is
        // sized far beyond what either protocol produces here (<= 4 + modules).
        if len == 0 || self.boot_ranges_len == MAX_BOOT_RANGES {
            return;
        }
        self.boot_ranges[self.boot_ranges_len] = Range {
            start,
            end: start.saturating_add(len),
        };
        self.boot_ranges_len += 1;
    }

    /// Usable RAM: type-1 entries clipped to [1 MiB, 4 GiB), minus every non-RAM
    /// entry (maps can overlap), the kernel image and the boot information, shrunk to
    /// whole 4 KiB pages and sorted by address.
    /// A page of RAM below 1 MiB that no boot data occupies, from `from` on: where the
    /// application processors' real-mode trampoline goes (a SIPI starts them below 1 MiB).
    pub fn low_free_page(&self, from: u64) -> Option<u64> {
        let ram = |p: u64| {
            self.memory_map().iter().any(|r| {
                r.kind == MEMORY_TYPE_RAM
                    && r.base <= p
                    && r.base.saturating_add(r.len) >= p + PAGE_SIZE
            }) && !self.memory_map().iter().any(|r| {
                r.kind != MEMORY_TYPE_RAM
                    && r.base < p + PAGE_SIZE
                    && r.base.saturating_add(r.len) > p
            })
        };
        let taken = |p: u64| {
            self.boot_ranges()
                .iter()
                .any(|r| r.start < p + PAGE_SIZE && r.end > p)
        };
        (from.max(PAGE_SIZE) / PAGE_SIZE..0x9f)
            .map(|i| i * PAGE_SIZE)
            .find(|&p| ram(p) && !taken(p))
    }

    pub fn free_regions(&self) -> FreeRegions {
        let mut set = FreeRegions::new();
        for r in self
            .memory_map()
            .iter()
            .filter(|r| r.kind == MEMORY_TYPE_RAM)
        {
            let start = r.base.max(LOW_MEMORY_END);
            let end = r.base.saturating_add(r.len).min(IDENTITY_MAP_END);
            set.push(start, end);
        }
        for r in self
            .memory_map()
            .iter()
            .filter(|r| r.kind != MEMORY_TYPE_RAM)
        {
            set.remove(r.base, r.base.saturating_add(r.len));
        }
        let (kstart, kend) = crate::boot::kernel_image_range();
        set.remove(kstart, kend);
        for r in self.boot_ranges() {
            set.remove(r.start, r.end);
        }
        set.page_align();
        set.sort();
        set
    }
}

/// Parse the boot information handed over by the entry code.
pub fn parse(boot_magic: u64, info_paddr: u64) -> Result<BootInfo, BootInfoError> {
    if info_paddr == 0 {
        return Err(BootInfoError::NullInfo);
    }
    match boot_magic {
        PVH_START_INFO_MAGIC => pvh::parse(info_paddr),
        MULTIBOOT2_BOOTLOADER_MAGIC => multiboot2::parse(info_paddr),
        other => Err(BootInfoError::UnknownMagic(other)),
    }
}

/// Check that `[paddr, paddr + len)` lies inside the identity map.
fn check_mapped(paddr: u64, len: u64) -> Result<(), BootInfoError> {
    match paddr.checked_add(len) {
        Some(end) if end <= IDENTITY_MAP_END => Ok(()),
        _ => Err(BootInfoError::OutsideIdentityMap { paddr, len }),
    }
}

/// Read a `T` from physical memory (identity-mapped, possibly unaligned).
///
/// # Safety
/// `paddr..paddr+size_of::<T>()` must be RAM inside the identity map (checked by the
/// caller with `check_mapped`), and every bit pattern must be a valid `T`.
unsafe fn read_phys<T: Copy>(paddr: u64) -> T {
    // SAFETY: forwarded to the caller.
    unsafe { ptr::read_unaligned(paddr as *const T) }
}

/// Bounded copy of a NUL-terminated string at `paddr`; returns (string, bytes
/// occupied including the NUL, truncated).
fn read_c_string(paddr: u64) -> Result<(FixedStr<MAX_CMDLINE>, u64, bool), BootInfoError> {
    // Only look at what we can keep, plus one byte to detect truncation.
    let window = (MAX_CMDLINE as u64 + 1).min(IDENTITY_MAP_END.saturating_sub(paddr));
    check_mapped(paddr, 1)?;
    // SAFETY: `[paddr, paddr + window)` is inside the identity map.
    let bytes = unsafe { core::slice::from_raw_parts(paddr as *const u8, window as usize) };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (s, complete) = FixedStr::from_bytes_lossy(&bytes[..len]);
    Ok((s, len as u64 + 1, !complete))
}
