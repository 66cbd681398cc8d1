//! The local APIC, in x2APIC mode (MSRs) where CPUID reports it, else xAPIC (MMIO at the base
//! IA32_APIC_BASE names, inside the boot identity map, made uncacheable first). All CPUs use
//! the same mode; the boot CPU picks it.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::registers::model_specific::Msr;

use crate::irq::SPURIOUS_VECTOR;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2: u64 = 1 << 10;

// Register offsets (xAPIC MMIO; x2APIC MSR = 0x800 + offset / 16).
const ID: u32 = 0x20;
const TPR: u32 = 0x80;
const EOI: u32 = 0xb0;
const SVR: u32 = 0xf0;
const ICR_LOW: u32 = 0x300;
const ICR_HIGH: u32 = 0x310;
const ICR_PENDING: u32 = 1 << 12;

static X2: AtomicBool = AtomicBool::new(false);
static BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);

/// ICR commands.
pub const INIT: u32 = 0x4500;
pub fn startup(page: u64) -> u32 {
    0x4600 | (page >> 12) as u32
}
pub fn fixed(vector: u8) -> u32 {
    0x4000 | vector as u32
}

pub fn x2apic() -> bool {
    X2.load(Ordering::Relaxed)
}

/// Enable this CPU's local APIC in the mode chosen on the boot CPU (`choose` there first).
///
/// # Safety
/// Ring 0; on the boot CPU, [`choose`] must have run.
pub unsafe fn enable_here() {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: architectural MSR, ring 0.
    unsafe {
        let v = msr.read() | APIC_BASE_ENABLE | if x2apic() { APIC_BASE_X2 } else { 0 };
        msr.write(v);
    }
    write(TPR, 0);
    write(SVR, 0x100 | SPURIOUS_VECTOR as u32);
}

/// Pick the mode for every CPU: x2APIC when the CPU has it; else xAPIC at the MSR's base,
/// whose 2 MiB identity page is made uncacheable (PCD | PWT), as the SDM asks of APIC space.
///
/// # Safety
/// Ring 0, boot CPU, running on the boot identity map (CR3 = the boot tables).
pub unsafe fn choose(has_x2apic: bool) {
    X2.store(has_x2apic, Ordering::Relaxed);
    if has_x2apic {
        return;
    }
    // SAFETY: architectural MSR.
    let base = unsafe { Msr::new(IA32_APIC_BASE).read() } & 0x000f_ffff_ffff_f000;
    BASE.store(base, Ordering::Relaxed);
    // The boot tables: PML4[0] -> PDPT -> PD (2 MiB pages), all identity-mapped.
    let (root, _) = x86_64::registers::control::Cr3::read();
    let at = |table: u64, index: u64| (table + index * 8) as *mut u64;
    // SAFETY: the boot page tables are identity-mapped and ours; one entry's cache bits change.
    unsafe {
        let pdpt = at(root.start_address().as_u64(), 0).read_volatile() & 0x000f_ffff_ffff_f000;
        let pd = at(pdpt, (base >> 30) & 511).read_volatile() & 0x000f_ffff_ffff_f000;
        let entry = at(pd, (base >> 21) & 511);
        entry.write_volatile(entry.read_volatile() | 0x18);
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(base));
    }
}

fn read(reg: u32) -> u32 {
    if x2apic() {
        // SAFETY: x2APIC register MSRs, enabled on this CPU.
        unsafe { Msr::new(0x800 + (reg >> 4)).read() as u32 }
    } else {
        // SAFETY: the APIC page, identity-mapped uncacheable by `choose`.
        unsafe { ((BASE.load(Ordering::Relaxed) + reg as u64) as *const u32).read_volatile() }
    }
}

fn write(reg: u32, v: u32) {
    if x2apic() {
        // SAFETY: as in `read`.
        unsafe { Msr::new(0x800 + (reg >> 4)).write(v as u64) }
    } else {
        // SAFETY: as in `read`.
        unsafe { ((BASE.load(Ordering::Relaxed) + reg as u64) as *mut u32).write_volatile(v) }
    }
}

/// This CPU's APIC ID.
pub fn id() -> u32 {
    if x2apic() { read(ID) } else { read(ID) >> 24 }
}

pub fn eoi() {
    write(EOI, 0);
}

/// Send an interprocessor interrupt (`command`: [`INIT`], [`startup`], [`fixed`]) to `dest`.
pub fn send(dest: u32, command: u32) {
    if x2apic() {
        // SAFETY: the ICR MSR; one 64-bit write sends.
        unsafe { Msr::new(0x830).write((dest as u64) << 32 | command as u64) }
    } else {
        wait_idle();
        write(ICR_HIGH, dest << 24);
        write(ICR_LOW, command);
        wait_idle();
    }
}

/// xAPIC: the previous IPI has left (bounded: a stuck bit is not worth a hang).
fn wait_idle() {
    for _ in 0..1_000_000 {
        if read(ICR_LOW) & ICR_PENDING == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}
