//! multiboot2 (GRUB): the information structure's command-line, memory-map, module, ACPI and
//! framebuffer tags, parsed from a copy in the kernel's memory.

use super::{BootInfo, BootInfoError, MemoryRegion, Protocol, check_mapped, read_phys};
use ptp_lab::fixedstr::FixedStr;

const MB2_TAG_END: u32 = 0;
const MB2_TAG_CMDLINE: u32 = 1;
const MB2_TAG_MMAP: u32 = 6;
const MB2_TAG_MODULE: u32 = 3;
const MB2_TAG_FRAMEBUFFER: u32 = 8;
/// ACPI 1.0 / 2.0 RSDP: a copy of the RSDP inside the tag, from byte 8.
const MB2_TAG_ACPI_OLD: u32 = 14;
const MB2_TAG_ACPI_NEW: u32 = 15;
/// Sanity bound on the info structure (GRUB's is a few KiB).
const MB2_MAX_INFO_SIZE: u32 = 1 << 20;
/// The copy the kernel parses (GRUB may put the original anywhere in low memory): larger
/// structures are parsed where they are (and stay excluded from free memory either way).
const MB2_COPY_SIZE: usize = 64 * 1024;

#[repr(C, align(8))]
struct InfoCopy([u8; MB2_COPY_SIZE]);
static COPY: crate::sync::RacyCell<InfoCopy> =
    crate::sync::RacyCell::new(InfoCopy([0; MB2_COPY_SIZE]));

fn read_phys_u8(at: u64) -> u8 {
    // SAFETY: callers pass addresses inside the checked (or copied) info structure.
    unsafe { read_phys(at) }
}

pub(super) fn parse(paddr: u64) -> Result<BootInfo, BootInfoError> {
    check_mapped(paddr, 8)?;
    // SAFETY: checked above.
    let total_size: u32 = unsafe { read_phys(paddr) };
    if !(16..=MB2_MAX_INFO_SIZE).contains(&total_size) {
        return Err(BootInfoError::BadMultiboot2Size(total_size));
    }
    check_mapped(paddr, u64::from(total_size))?;
    let mut info = BootInfo::new(Protocol::Multiboot2, paddr);
    info.push_boot_range(paddr, u64::from(total_size));
    // Parse a copy in the kernel's own memory: what points into the structure (the RSDP
    // copy in GRUB's ACPI tag) then stays valid whatever later reuses low memory.
    let paddr = if total_size as usize <= MB2_COPY_SIZE {
        let copy = COPY.get() as *mut u8;
        // SAFETY: the original is mapped (checked); the copy is ours, parsed once at boot.
        unsafe { core::ptr::copy_nonoverlapping(paddr as *const u8, copy, total_size as usize) };
        copy as u64
    } else {
        paddr
    };

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
            MB2_TAG_MODULE if size >= 16 => {
                // SAFETY: mod_start and mod_end are inside this tag (size >= 16).
                let (start, end): (u32, u32) = unsafe { (read_phys(tag + 8), read_phys(tag + 12)) };
                if end > start {
                    info.push_boot_range(u64::from(start), u64::from(end - start));
                    if info.module.is_none() {
                        info.module = Some(super::Range {
                            start: start.into(),
                            end: end.into(),
                        });
                    }
                }
            }
            // The new (2.0) copy wins over the old when GRUB gives both.
            MB2_TAG_ACPI_NEW if size >= 8 + 20 => info.rsdp_paddr = Some(tag + 8),
            MB2_TAG_ACPI_OLD if size >= 8 + 20 && info.rsdp_paddr.is_none() => {
                info.rsdp_paddr = Some(tag + 8)
            }
            MB2_TAG_FRAMEBUFFER if size >= 31 => {
                // SAFETY: the fixed fields and, for RGB, the six colour bytes lie in the tag.
                let fb = unsafe {
                    let kind: u8 = read_phys(tag + 29);
                    let colour = |at: u64| -> (u8, u8) {
                        if size >= 38 {
                            (read_phys(tag + at), read_phys(tag + at + 1))
                        } else {
                            (0, 0)
                        }
                    };
                    super::Framebuffer {
                        addr: read_phys(tag + 8),
                        pitch: read_phys(tag + 16),
                        width: read_phys(tag + 20),
                        height: read_phys(tag + 24),
                        bpp: read_phys(tag + 28),
                        text: kind == 2,
                        red: colour(32),
                        green: colour(34),
                        blue: colour(36),
                    }
                };
                if fb.text || (read_phys_u8(tag + 29) == 1) {
                    info.framebuffer = Some(fb);
                }
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
