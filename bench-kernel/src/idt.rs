//! IDT: all 32 exception vectors point at the stubs in `interrupts`, each on an IST
//! stack (see `gdt`), and so do the shootdown IPI and the APIC's spurious vector (handled on
//! the application processors, the only CPUs that enable interrupts). The other vectors stay
//! non-present: any of them firing is a bug that surfaces as #NP/#GP (error code names the IDT
//! slot) and gets reported.

use x86_64::VirtAddr;
use x86_64::structures::idt::{Entry, HandlerFunc, InterruptDescriptorTable};

use crate::gdt::IstSlot;
use crate::interrupts::{STUBS, stub_for};
use crate::irq::{IPI_VECTOR, SPURIOUS_VECTOR};
use crate::sync::RacyCell;

static IDT: RacyCell<InterruptDescriptorTable> = RacyCell::new(InterruptDescriptorTable::new());

/// IST slot for each exception vector.
pub const fn ist_slot(vector: usize) -> IstSlot {
    match vector {
        8 => IstSlot::DoubleFault,
        2 => IstSlot::Nmi,
        18 => IstSlot::MachineCheck,
        14 => IstSlot::PageFault,
        13 => IstSlot::GeneralProtection,
        1 | 3 => IstSlot::Debug,
        _ => IstSlot::Other,
    }
}

/// The 32 exception entries viewed uniformly.
///
/// The `x86_64` crate types its exception fields by handler signature and keeps the
/// reserved vectors (15, 22-27, 31) private, but `InterruptDescriptorTable` is
/// `#[repr(C)]` with 256 consecutive 16-byte `Entry<_>` (whose layout does not
/// depend on the phantom type), so the first 32 form an array. With raw handler
/// addresses the signature typing buys nothing anyway.
fn exception_entries(idt: &mut InterruptDescriptorTable) -> &mut [Entry<HandlerFunc>; 32] {
    const _: () =
        assert!(size_of::<InterruptDescriptorTable>() == 256 * size_of::<Entry<HandlerFunc>>());
    // SAFETY: layout argument above; the borrow of `idt` is carried over.
    unsafe { &mut *(idt as *mut InterruptDescriptorTable).cast::<[Entry<HandlerFunc>; 32]>() }
}

/// Fill and load the IDT. Requires `gdt::init` first (entries take the current CS,
/// and the IST indices refer to the loaded TSS).
pub fn init() {
    // SAFETY: single-threaded boot, the IDT is not loaded yet so nothing else reads it;
    // after `load` it is never mutated again.
    unsafe {
        let idt = &mut *IDT.get();
        for (vector, entry) in exception_entries(idt).iter_mut().enumerate() {
            entry
                .set_handler_addr(VirtAddr::new(STUBS[vector] as usize as u64))
                .set_stack_index(ist_slot(vector) as u16);
        }
        for vector in [IPI_VECTOR, SPURIOUS_VECTOR] {
            idt[vector]
                .set_handler_addr(VirtAddr::new(stub_for(vector) as usize as u64))
                .set_stack_index(IstSlot::Other as u16);
        }
        let idt: &'static InterruptDescriptorTable = &*IDT.get();
        idt.load();
    }
}

/// Load the (shared, complete) IDT on an application processor.
pub fn load_here() {
    // SAFETY: built by `init` on the boot CPU before any AP starts, never mutated after.
    let idt: &'static InterruptDescriptorTable = unsafe { &*IDT.get() };
    idt.load();
}
