//! Leaving the machine: QEMU `isa-debug-exit` (port 0xf4) with a halt-loop fallback.
//!
//! QEMU must be started with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
//! Writing `v` makes QEMU exit with status `(v << 1) | 1`, so status 0 can never be
//! produced and a triple-fault reboot under `-no-reboot` (status 0) is distinguishable.

use x86_64::instructions::port::Port;

/// Value written to port 0xf4 on success: QEMU exits with status 33.
pub const EXIT_SUCCESS_VALUE: u32 = 0x10;
/// Value written to port 0xf4 on failure: QEMU exits with status 35.
pub const EXIT_FAILURE_VALUE: u32 = 0x11;
/// Value written on a bad command line (nothing was measured): QEMU exits with status 37.
pub const EXIT_USAGE_VALUE: u32 = 0x12;
/// QEMU process exit status after [`exit_success`].
pub const QEMU_STATUS_SUCCESS: i32 = ((EXIT_SUCCESS_VALUE << 1) | 1) as i32;
/// QEMU process exit status after [`exit_failure`].
pub const QEMU_STATUS_FAILURE: i32 = ((EXIT_FAILURE_VALUE << 1) | 1) as i32;
/// QEMU process exit status after a bad command line.
pub const QEMU_STATUS_USAGE: i32 = ((EXIT_USAGE_VALUE << 1) | 1) as i32;

const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;

/// Outcome of a kernel run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Success,
    Failure,
    Usage,
}

impl ExitCode {
    const fn port_value(self) -> u32 {
        match self {
            ExitCode::Success => EXIT_SUCCESS_VALUE,
            ExitCode::Failure => EXIT_FAILURE_VALUE,
            ExitCode::Usage => EXIT_USAGE_VALUE,
        }
    }
}

/// Ask QEMU to exit; if there is no debug-exit device (e.g. real hardware), halt forever.
pub fn exit(code: ExitCode) -> ! {
    crate::serial::flush();
    // SAFETY: port 0xf4 is the isa-debug-exit device or unused; writing it has no
    // other effect.
    unsafe { Port::<u32>::new(ISA_DEBUG_EXIT_PORT).write(code.port_value()) };
    halt()
}

pub fn exit_success() -> ! {
    exit(ExitCode::Success)
}

pub fn exit_failure() -> ! {
    exit(ExitCode::Failure)
}

/// Stop the CPU for good: interrupts off, then `hlt` (looped, since NMIs/SMIs wake it).
pub fn halt() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
