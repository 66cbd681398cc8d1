//! Leaving the machine: QEMU `isa-debug-exit` with a halt-loop fallback. The codes and the port
//! are the lab's (`ptp_lab::exit`), so the bench job and the tests read the same ones.

use ptp_lab::exit::{DEBUG_EXIT_PORT, ExitCode, HALTED};
use x86_64::instructions::port::Port;

/// Say the run is over and what to do next (serial and screen), ask QEMU to exit; if there is
/// no debug-exit device (real hardware, Bochs), halt forever: no reboot loop.
pub fn exit(code: ExitCode) -> ! {
    crate::println!(
        "{HALTED} ({}): the results are the JSON lines on COM1; save that log and run `python3 -m ptplab collect LOG --accel bare-metal` (docs/real-hardware.md). You can switch the machine off.",
        code.name()
    );
    crate::serial::flush();
    // SAFETY: port 0xf4 is the isa-debug-exit device or unused; writing it has no
    // other effect.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code.port_value()) };
    halt()
}

/// Stop the CPU for good: interrupts off, then `hlt` (looped, since NMIs/SMIs wake it).
pub fn halt() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
