//! multiboot2 (GRUB): the information structure's command-line and memory-map tags.

use super::{BootInfo, BootInfoError, MemoryRegion, Protocol, check_mapped, read_phys};
use ptp_lab::fixedstr::FixedStr;

const MB2_TAG_END: u32 = 0;
const MB2_TAG_CMDLINE: u32 = 1;
const MB2_TAG_MMAP: u32 = 6;
const MB2_TAG_MODULE: u32 = 3;
/// ACPI 1.0 / 2.0 RSDP: a copy of the RSDP inside the tag, from byte 8.
const MB2_TAG_ACPI_OLD: u32 = 14;
const MB2_TAG_ACPI_NEW: u32 = 15;
/// Sanity bound on the info structure (GRUB's is a few KiB).
const MB2_MAX_INFO_SIZE: u32 = 1 << 20;

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
