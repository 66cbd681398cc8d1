//! How a run ends, as an exit status: the bench kernel's (through QEMU's `isa-debug-exit`) and
//! the host runner's. The kernel, the bench job and the tests all take them from here.

/// I/O port of QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// How the kernel's last line starts, whatever the end (`# halted (success): ...`): what a
/// harness reading the serial port waits for (LAVA's monitor ends there).
pub const HALTED: &str = "# halted";

/// Outcome of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Every check passed.
    Success,
    /// A check failed, an unexpected exception, a panic, bad boot information.
    Failure,
    /// A bad command line, or pools that do not fit: nothing was measured.
    Usage,
}

impl ExitCode {
    pub const ALL: [ExitCode; 3] = [ExitCode::Success, ExitCode::Failure, ExitCode::Usage];

    pub const fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Failure => "failure",
            ExitCode::Usage => "usage",
        }
    }

    /// What the kernel writes to [`DEBUG_EXIT_PORT`].
    pub const fn port_value(self) -> u32 {
        match self {
            ExitCode::Success => 0x10,
            ExitCode::Failure => 0x11,
            ExitCode::Usage => 0x12,
        }
    }

    /// QEMU's exit status after the kernel wrote [`ExitCode::port_value`]: `(v << 1) | 1`, so
    /// it is never 0 (which a triple fault under `-no-reboot` gives).
    pub const fn qemu_status(self) -> i32 {
        ((self.port_value() << 1) | 1) as i32
    }

    /// The host runner's process exit status.
    pub const fn host_status(self) -> i32 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_statuses_are_odd_and_distinct() {
        let s = ExitCode::ALL.map(ExitCode::qemu_status);
        assert_eq!(s, [33, 35, 37]);
        assert_eq!(ExitCode::ALL.map(ExitCode::host_status), [0, 1, 2]);
    }
}
