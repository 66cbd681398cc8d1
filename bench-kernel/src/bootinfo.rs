//! Boot information from PVH (`hvm_start_info`) or multiboot2, reduced to what the
//! kernel needs: the command line, the firmware memory map, and the free RAM left
//! after removing the low 1 MiB, the kernel image and the boot information itself.
//!
//! Everything is read through the identity map, which covers physical 0..4 GiB only;
//! pointers beyond that are rejected rather than followed.

use core::fmt;
use core::ptr;

use crate::boot::{MULTIBOOT2_BOOTLOADER_MAGIC, PVH_START_INFO_MAGIC};
use crate::fixedstr::FixedStr;

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

const PAGE_SIZE: u64 = 4096;
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
    /// A multiboot2 tag header is inconsistent.
    BadMultiboot2Tag { offset: u32, kind: u32, size: u32 },
    /// No multiboot2 memory-map tag (type 6).
    Multiboot2NoMemmap,
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

/// Half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn len(&self) -> u64 {
        self.end - self.start
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

/// Fixed-capacity set of disjoint free ranges.
pub struct FreeRegions {
    ranges: [Range; MAX_FREE_REGIONS],
    len: usize,
    /// Set if a split did not fit (the affected piece is lost, never over-reported).
    pub truncated: bool,
}

impl FreeRegions {
    fn new() -> Self {
        Self {
            ranges: [Range::default(); MAX_FREE_REGIONS],
            len: 0,
            truncated: false,
        }
    }

    pub fn as_slice(&self) -> &[Range] {
        &self.ranges[..self.len]
    }

    pub fn total_bytes(&self) -> u64 {
        self.as_slice().iter().map(Range::len).sum()
    }

    fn push(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        if self.len == MAX_FREE_REGIONS {
            self.truncated = true;
            return;
        }
        self.ranges[self.len] = Range { start, end };
        self.len += 1;
    }

    /// Subtract `[start, end)`; a range straddling it splits in two.
    fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let old = self.ranges;
        let old_len = self.len;
        self.len = 0;
        for r in &old[..old_len] {
            if r.end <= start || r.start >= end {
                self.push(r.start, r.end);
            } else {
                self.push(r.start, start.max(r.start).min(r.end));
                self.push(end.min(r.end).max(r.start), r.end);
            }
        }
    }

    fn page_align(&mut self) {
        let old = self.ranges;
        let old_len = self.len;
        self.len = 0;
        for r in &old[..old_len] {
            let start = r.start.next_multiple_of(PAGE_SIZE);
            let end = r.end & !(PAGE_SIZE - 1);
            self.push(start, end);
        }
    }

    fn sort(&mut self) {
        // Insertion sort: at most a few hundred entries, no allocator.
        let s = &mut self.ranges[..self.len];
        for i in 1..s.len() {
            let mut j = i;
            while j > 0 && s[j - 1].start > s[j].start {
                s.swap(j - 1, j);
                j -= 1;
            }
        }
    }
}

/// Parse the boot information handed over by the entry code.
pub fn parse(boot_magic: u64, info_paddr: u64) -> Result<BootInfo, BootInfoError> {
    if info_paddr == 0 {
        return Err(BootInfoError::NullInfo);
    }
    match boot_magic {
        PVH_START_INFO_MAGIC => parse_pvh(info_paddr),
        MULTIBOOT2_BOOTLOADER_MAGIC => parse_multiboot2(info_paddr),
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

// ---------------------------------------------------------------- PVH

/// `struct hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    // version >= 1:
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `struct hvm_memmap_table_entry`.
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// `struct hvm_modlist_entry`.
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

fn parse_pvh(paddr: u64) -> Result<BootInfo, BootInfoError> {
    let size = size_of::<HvmStartInfo>() as u64;
    check_mapped(paddr, size)?;
    // SAFETY: checked to be inside the identity map; plain-integer struct.
    let si: HvmStartInfo = unsafe { read_phys(paddr) };
    if u64::from(si.magic) != PVH_START_INFO_MAGIC {
        return Err(BootInfoError::BadPvhMagic(si.magic));
    }
    if si.version < 1 {
        return Err(BootInfoError::PvhNoMemmap {
            version: si.version,
        });
    }
    let mut info = BootInfo::new(Protocol::Pvh, paddr);
    info.push_boot_range(paddr, size);

    if si.cmdline_paddr != 0 {
        let (s, occupied, truncated) = read_c_string(si.cmdline_paddr)?;
        info.cmdline = s;
        info.cmdline_truncated = truncated;
        info.push_boot_range(si.cmdline_paddr, occupied);
    }
    if si.rsdp_paddr != 0 {
        info.rsdp_paddr = Some(si.rsdp_paddr);
    }

    // Modules (e.g. an initrd) are boot data the free-RAM list must not hand out.
    if si.nr_modules != 0 && si.modlist_paddr != 0 {
        let entry = size_of::<HvmModlistEntry>() as u64;
        let table_len = entry * u64::from(si.nr_modules);
        check_mapped(si.modlist_paddr, table_len)?;
        info.push_boot_range(si.modlist_paddr, table_len);
        for i in 0..u64::from(si.nr_modules) {
            // SAFETY: inside the checked table.
            let m: HvmModlistEntry = unsafe { read_phys(si.modlist_paddr + i * entry) };
            info.push_boot_range(m.paddr, m.size);
        }
    }

    let entry = size_of::<HvmMemmapEntry>() as u64;
    let table_len = entry * u64::from(si.memmap_entries);
    check_mapped(si.memmap_paddr, table_len)?;
    info.push_boot_range(si.memmap_paddr, table_len);
    for i in 0..u64::from(si.memmap_entries) {
        // SAFETY: inside the checked table.
        let e: HvmMemmapEntry = unsafe { read_phys(si.memmap_paddr + i * entry) };
        info.push_region(MemoryRegion {
            base: e.addr,
            len: e.size,
            kind: e.kind,
        });
    }
    Ok(info)
}

// ---------------------------------------------------------------- multiboot2

const MB2_TAG_END: u32 = 0;
const MB2_TAG_CMDLINE: u32 = 1;
const MB2_TAG_MMAP: u32 = 6;
/// Sanity bound on the info structure (GRUB's is a few KiB).
const MB2_MAX_INFO_SIZE: u32 = 1 << 20;

fn parse_multiboot2(paddr: u64) -> Result<BootInfo, BootInfoError> {
    check_mapped(paddr, 8)?;
    // SAFETY: checked above.
    let total_size: u32 = unsafe { read_phys(paddr) };
    if !(16..=MB2_MAX_INFO_SIZE).contains(&total_size) {
        return Err(BootInfoError::BadMultiboot2Size(total_size));
    }
    check_mapped(paddr, u64::from(total_size))?;
    let mut info = BootInfo::new(Protocol::Multiboot2, paddr);
    info.push_boot_range(paddr, u64::from(total_size));

    let mut have_mmap = false;
    let mut offset: u32 = 8;
    while offset + 8 <= total_size {
        let tag = paddr + u64::from(offset);
        // SAFETY: within the checked info structure.
        let (kind, size): (u32, u32) = unsafe { (read_phys(tag), read_phys(tag + 4)) };
        if size < 8 || offset.checked_add(size).is_none_or(|end| end > total_size) {
            return Err(BootInfoError::BadMultiboot2Tag { offset, kind, size });
        }
        match kind {
            MB2_TAG_END => break,
            MB2_TAG_CMDLINE => {
                // SAFETY: the string bytes are inside this tag.
                let bytes = unsafe {
                    core::slice::from_raw_parts((tag + 8) as *const u8, (size - 8) as usize)
                };
                let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                let (s, complete) = FixedStr::from_bytes_lossy(&bytes[..len]);
                info.cmdline = s;
                info.cmdline_truncated = !complete;
            }
            MB2_TAG_MMAP => {
                have_mmap = true;
                // SAFETY: within the tag (size >= 8 checked; entry header needs 16).
                let entry_size: u32 = if size >= 16 {
                    unsafe { read_phys(tag + 8) }
                } else {
                    0
                };
                if entry_size < 24 {
                    return Err(BootInfoError::BadMultiboot2Tag { offset, kind, size });
                }
                let mut e = 16;
                while e + entry_size <= size {
                    let at = tag + u64::from(e);
                    // SAFETY: the entry lies inside the tag.
                    let (base, len, ty): (u64, u64, u32) =
                        unsafe { (read_phys(at), read_phys(at + 8), read_phys(at + 16)) };
                    info.push_region(MemoryRegion {
                        base,
                        len,
                        kind: ty,
                    });
                    e += entry_size;
                }
            }
            _ => {}
        }
        offset = offset.saturating_add(size.next_multiple_of(8));
    }
    if !have_mmap {
        return Err(BootInfoError::Multiboot2NoMemmap);
    }
    Ok(info)
}
