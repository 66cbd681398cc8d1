//! GDT with kernel code/data segments and a TSS providing the IST stacks.
//!
//! Every exception handler runs on an IST stack: the precompiled `core` uses the
//! System V red zone, so an exception delivered on the interrupted stack could
//! overwrite live data below RSP. The IST also gives #DF/#NMI/#MC a known-good stack.

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use crate::sync::RacyCell;

/// Size of each IST stack.
pub const IST_STACK_SIZE: usize = 32 * 1024;

/// IST slots (0-based, as the `x86_64` crate's `set_stack_index` counts them).
/// Exceptions that can nest inside another handler get their own stack, because a
/// nested exception on the SAME IST slot restarts at the top and clobbers the outer
/// frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum IstSlot {
    DoubleFault = 0,
    Nmi = 1,
    MachineCheck = 2,
    PageFault = 3,
    GeneralProtection = 4,
    Debug = 5,
    Other = 6,
}

pub const IST_SLOTS: usize = 7;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

static IST_STACKS: RacyCell<[IstStack; IST_SLOTS]> =
    RacyCell::new([const { IstStack([0; IST_STACK_SIZE]) }; IST_SLOTS]);
static TSS: RacyCell<TaskStateSegment> = RacyCell::new(TaskStateSegment::new());
static GDT: RacyCell<GlobalDescriptorTable> = RacyCell::new(GlobalDescriptorTable::new());

/// `[bottom, top)` of the stack behind IST slot `slot`.
pub fn ist_stack_range(slot: IstSlot) -> (u64, u64) {
    let base = IST_STACKS.get() as u64 + (slot as u64) * IST_STACK_SIZE as u64;
    (base, base + IST_STACK_SIZE as u64)
}

/// Build and load the GDT and TSS, reload the segment registers. Call once, early.
pub fn init() {
    // SAFETY: called once during single-threaded boot before any exception handler
    // is installed; nothing else references TSS/GDT yet.
    unsafe {
        load(
            TSS.get(),
            GDT.get(),
            IST_STACKS.get() as u64,
            IST_STACK_SIZE,
        )
    }
}

/// Point `tss`'s IST slots at the `stack_size` stacks from `stacks`, put kernel code, data and
/// `tss` into `gdt`, load both on this CPU and reload the segment registers.
///
/// # Safety
/// `tss` and `gdt` belong to this CPU alone and are not loaded yet; after this they are only
/// read by the CPU and never mutated again (except IST tops through [`set_ist_top`]), so the
/// `'static` references handed to the x86_64 crate stay valid. `stacks` holds `IST_SLOTS`
/// stacks of `stack_size` bytes.
unsafe fn load(
    tss: *mut TaskStateSegment,
    gdt: *mut GlobalDescriptorTable,
    stacks: u64,
    stack_size: usize,
) {
    // SAFETY: per the contract.
    unsafe {
        for slot in 0..IST_SLOTS {
            let base = stacks + (slot * stack_size) as u64;
            // Stacks grow down: the IST entry is the (16-byte aligned) top.
            (*tss).interrupt_stack_table[slot] = VirtAddr::new(base + stack_size as u64);
        }
        let tss: &'static TaskStateSegment = &*tss;
        let code = (*gdt).append(Descriptor::kernel_code_segment());
        let data = (*gdt).append(Descriptor::kernel_data_segment());
        let tss_sel = (*gdt).append(Descriptor::tss_segment(tss));
        let gdt: &'static GlobalDescriptorTable = &*gdt;
        gdt.load();

        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss_sel);
    }
}

/// Most application processors the kernel starts (the boot CPU is CPU 0).
pub const MAX_APS: usize = ptp_lab::acpi::MAX_CPUS - 1;
/// Each AP's IST stacks: smaller than the boot CPU's (an AP runs IPI handlers only).
const AP_IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct ApIst([[u8; AP_IST_STACK_SIZE]; IST_SLOTS]);

static AP_IST: RacyCell<[ApIst; MAX_APS]> =
    RacyCell::new([const { ApIst([[0; AP_IST_STACK_SIZE]; IST_SLOTS]) }; MAX_APS]);
static AP_TSS: RacyCell<[TaskStateSegment; MAX_APS]> =
    RacyCell::new([const { TaskStateSegment::new() }; MAX_APS]);
static AP_GDT: RacyCell<[GlobalDescriptorTable; MAX_APS]> =
    RacyCell::new([const { GlobalDescriptorTable::new() }; MAX_APS]);

/// The GDT and TSS of application processor `cpu` (1-based), built and loaded on it: each
/// CPU needs its own TSS (the CPU marks a loaded TSS busy) and so its own IST stacks.
///
/// # Safety
/// Once per AP, on that AP, `1 <= cpu <= MAX_APS`.
pub unsafe fn init_ap(cpu: usize) {
    let i = cpu - 1;
    // SAFETY: slot `i` belongs to this AP alone, which runs this once before anything uses it.
    unsafe {
        load(
            &raw mut (*AP_TSS.get())[i],
            &raw mut (*AP_GDT.get())[i],
            &raw const (*AP_IST.get())[i] as u64,
            AP_IST_STACK_SIZE,
        )
    }
}

/// Point IST slot `slot` somewhere else (the CPU reads the TSS at each exception).
///
/// # Safety
/// `top` must be a usable 16-byte-aligned stack top for every exception routed to
/// `slot` — or the caller wants the resulting fault (the `fault=df` demo points the
/// #PF stack at unmapped memory to force a double fault).
pub unsafe fn set_ist_top(slot: IstSlot, top: u64) {
    // SAFETY: single core; the CPU only reads the TSS, during exception delivery.
    // The TSS is packed: write the field without creating a reference to it.
    unsafe {
        let tss = TSS.get();
        let mut table = (*tss).interrupt_stack_table;
        table[slot as usize] = VirtAddr::new(top);
        (*tss).interrupt_stack_table = table;
    }
}
