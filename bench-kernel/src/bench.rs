//! Name of the benchmark currently running, for fault and panic reports.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static NAME_PTR: AtomicPtr<u8> = AtomicPtr::new(c"none".as_ptr() as *mut u8);
static NAME_LEN: AtomicUsize = AtomicUsize::new(4);

/// Record which benchmark (or boot phase) is running. Single core: an exception can
/// only observe the state before or after this call, never a torn pair, because the
/// length is cleared first and only set after the pointer.
pub fn set_current_bench(name: &'static str) {
    NAME_LEN.store(0, Ordering::SeqCst);
    NAME_PTR.store(name.as_ptr() as *mut u8, Ordering::SeqCst);
    NAME_LEN.store(name.len(), Ordering::SeqCst);
}

pub fn current_bench() -> &'static str {
    let ptr = NAME_PTR.load(Ordering::SeqCst);
    let len = NAME_LEN.load(Ordering::SeqCst);
    // SAFETY: (ptr, len) always describe (a prefix of) a `&'static str` stored by
    // `set_current_bench`; a zero length is the empty string. A prefix at len 0 is
    // trivially valid UTF-8, and otherwise the full string is used.
    unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr, len)) }
}
