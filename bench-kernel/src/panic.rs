//! Panic handler: one JSON `panic` record plus a human line, then the failure exit.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::json::{Escaper, Str};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // A panic while reporting a panic: do not recurse, just leave.
    if PANICKING.swap(true, Ordering::SeqCst) {
        crate::exit::exit_failure();
    }
    let bench = crate::bench::current_bench();
    crate::serial::with_console(|w| {
        let _ = w.write_str("{\"type\":\"panic\",\"msg\":\"");
        let _ = write!(Escaper(&mut *w), "{}", info.message());
        let _ = w.write_str("\",\"location\":\"");
        if let Some(loc) = info.location() {
            let _ = write!(
                Escaper(&mut *w),
                "{}:{}:{}",
                loc.file(),
                loc.line(),
                loc.column()
            );
        }
        let _ = writeln!(w, "\",\"bench\":{}}}", Str(bench));
        let _ = write!(w, "# PANIC in bench '{bench}': {}", info.message());
        if let Some(loc) = info.location() {
            let _ = write!(w, " at {loc}");
        }
        let _ = writeln!(w);
    });
    crate::exit::exit_failure()
}
