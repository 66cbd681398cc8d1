//! Kernel-only CPU pieces: the PIT-calibrated TSC, this CPU's index. CPU facts live in `ptp_lab::cpu`,
//! shared with the host runner.

use core::fmt;

use ptp_lab::tsc;
use x86_64::VirtAddr;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::GsBase;

pub use ptp_lab::cpu::*;

/// This CPU's index (0: the boot CPU), kept in GS.base (the kernel uses no GS otherwise).
pub fn this_cpu() -> u32 {
    GsBase::read().as_u64() as u32
}

/// Record this CPU's index: each AP once, at its entry (the boot CPU's GS.base is 0 from the
/// flat segment `boot` loads into GS).
pub fn set_this_cpu(index: u32) {
    GsBase::write(VirtAddr::new(u64::from(index)));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationError {
    /// PIT channel 2 never reached terminal count (no PIT, or gate not wired).
    PitTimeout,
    /// The TSC did not advance.
    TscNotRunning,
}

impl fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PitTimeout => f.write_str("PIT channel 2 did not reach terminal count"),
            Self::TscNotRunning => f.write_str("TSC did not advance"),
        }
    }
}

/// PIT input clock.
const PIT_HZ: u64 = 1_193_182;
/// Calibration gate length.
const PIT_GATE_MS: u64 = 10;
/// Polls of port 0x61 before giving up (a 10 ms gate needs far fewer).
const PIT_MAX_POLLS: u64 = 50_000_000;

/// Measure the TSC frequency against PIT channel 2 over a ~10 ms one-shot.
///
/// Channel 2 is the only PIT channel whose output can be polled (port 0x61 bit 5)
/// and whose gate is software-controlled (port 0x61 bit 0), so no interrupts are
/// needed. Mode 0 drives OUT2 high on terminal count.
pub fn calibrate_tsc_pit() -> Result<u64, CalibrationError> {
    let latch = PIT_HZ * PIT_GATE_MS / 1000; // 11931 ticks, fits 16 bits
    let mut ctrl = Port::<u8>::new(0x61);
    let mut mode = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: legacy PIT/system-control ports, owned by this kernel; the original
    // port 0x61 value is restored.
    unsafe {
        let saved = ctrl.read();
        // Gate high (bit 0), speaker data off (bit 1).
        ctrl.write((saved & !0x02) | 0x01);
        // Channel 2, lobyte/hibyte access, mode 0, binary.
        mode.write(0xb0);
        ch2.write(latch as u8);
        ch2.write((latch >> 8) as u8);
        // Fenced: neither read may drift across the port I/O that opens and closes the window.
        let start = tsc::start();
        let mut polls = 0u64;
        while ctrl.read() & 0x20 == 0 {
            polls += 1;
            if polls == PIT_MAX_POLLS {
                ctrl.write(saved);
                return Err(CalibrationError::PitTimeout);
            }
        }
        let end = tsc::start();
        ctrl.write(saved);
        let ticks = end.wrapping_sub(start);
        if ticks == 0 {
            return Err(CalibrationError::TscNotRunning);
        }
        // hz = ticks / (latch / PIT_HZ)
        Ok((u128::from(ticks) * u128::from(PIT_HZ) / u128::from(latch)) as u64)
    }
}
