//! PVH (QEMU `-kernel`): `hvm_start_info` and its memory map, command line and modules.

use super::{
    BootInfo, BootInfoError, MemoryRegion, Protocol, check_mapped, read_c_string, read_phys,
};
use crate::boot::PVH_START_INFO_MAGIC;

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

pub(super) fn parse(paddr: u64) -> Result<BootInfo, BootInfoError> {
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
            if info.module.is_none() && m.size > 0 {
                info.module = Some(super::Range {
                    start: m.paddr,
                    end: m.paddr.saturating_add(m.size),
                });
            }
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
