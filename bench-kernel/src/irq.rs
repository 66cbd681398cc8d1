//! The interrupt vectors the kernel handles besides the exceptions, and the hook through which
//! the shootdown IPI reaches its handler.
//!
//! It sits below both the interrupt path (`idt`, `interrupts`), which needs the vector numbers,
//! and `smp`, which owns the IPI's meaning and installs the handler, so neither imports the
//! other.

use core::sync::atomic::{AtomicPtr, Ordering};

/// The shootdown IPI's vector.
pub const IPI_VECTOR: u8 = 0xf0;
/// The local APIC's spurious-interrupt vector (its handler does nothing, and no EOI).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// The IPI handler as a raw `fn()` pointer; null until `smp` installs it.
static IPI_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Make `handler` serve [`IPI_VECTOR`]. Install it before any CPU can receive the IPI; the
/// handler must end the interrupt (EOI) itself.
pub fn set_ipi_handler(handler: fn()) {
    IPI_HANDLER.store(handler as *mut (), Ordering::Release);
}

/// The installed IPI handler, if any.
pub fn ipi_handler() -> Option<fn()> {
    let raw = IPI_HANDLER.load(Ordering::Acquire);
    // SAFETY: a non-null value was stored by `set_ipi_handler` from a `fn()`.
    (!raw.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), fn()>(raw) })
}
