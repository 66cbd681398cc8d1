//! Panic handler: one `panic` record plus a human line, then the failure exit.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use ptp_lab::case::Case;
use ptp_lab::exit::ExitCode;
use ptp_lab::record;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // A panic while reporting a panic: do not recurse, just leave.
    if PANICKING.swap(true, Ordering::SeqCst) {
        crate::exit::exit(ExitCode::Failure);
    }
    let bench = crate::bench::current_bench();
    crate::serial::with_console(|w| {
        let location = info.location().map(|l| l as &dyn core::fmt::Display);
        let _ = record::PanicRecord {
            msg: format_args!("{}", info.message()),
            location,
            bench,
        }
        .report(w);
        let _ = write!(w, "# PANIC in bench '{bench}': {}", info.message());
        if let Some(loc) = info.location() {
            let _ = write!(w, " at {loc}");
        }
        let _ = writeln!(w);
    });
    crate::exit::exit(ExitCode::Failure)
}
