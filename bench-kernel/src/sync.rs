//! Minimal shared-state cell for a single-core kernel.
//!
//! The kernel never enables interrupts and runs on one CPU, so the only "concurrency"
//! is an exception handler interrupting the code that raised it. `RacyCell` makes a
//! `static` mutable without `static mut` (whose references are denied in edition 2024);
//! every access is `unsafe` and documents why it cannot alias.

use core::cell::UnsafeCell;

#[repr(transparent)]
pub struct RacyCell<T>(UnsafeCell<T>);

// SAFETY: single core, no preemption; callers of `get` uphold exclusivity.
unsafe impl<T> Sync for RacyCell<T> {}

impl<T> RacyCell<T> {
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// Raw pointer to the contents; dereferencing it is the caller's responsibility.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}
