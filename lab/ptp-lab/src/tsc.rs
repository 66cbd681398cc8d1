//! The three ways this lab reads the time-stamp counter, in one place for the host and the
//! bench kernel.
//!
//! Which one to use:
//! - a measured interval: [`start`] before the work, [`stop`] after it. Both are fenced so the
//!   work can neither leak out of nor into the interval (Intel SDM vol. 2B, RDTSC/RDTSCP);
//! - a point in time where order matters but no interval is being measured (a calibration
//!   window against another clock): [`start`] at both ends;
//! - deadlines, timeouts, spin loops and handshakes: [`now`], unfenced and cheapest, where a
//!   few ticks of reordering change nothing.
//!
//! RDTSC is unprivileged on every x86-64 CPU (in user mode too unless CR4.TSD is set, which
//! no OS this lab runs on does), so none of these is `unsafe` to call.

use core::arch::x86_64::{__rdtscp, _mm_lfence, _rdtsc};

/// Read the TSC at the start of a measured interval: `lfence; rdtsc; lfence`.
///
/// The first fence waits for earlier instructions to complete, the second keeps the timed
/// work from starting before the read.
#[inline(always)]
pub fn start() -> u64 {
    // SAFETY: lfence and rdtsc exist on every x86-64 CPU and touch no memory.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// Read the TSC at the end of a measured interval: `rdtscp; lfence` where the CPU has RDTSCP
/// (`rdtscp`, from CPUID: [`crate::cpu::CpuFacts::rdtscp`]), else the fenced read of
/// [`start`].
///
/// RDTSCP waits for the timed work to complete; the fence keeps later instructions out.
#[inline(always)]
pub fn stop(rdtscp: bool) -> u64 {
    if !rdtscp {
        return start();
    }
    let mut aux = 0;
    // SAFETY: the caller's flag says the CPU has RDTSCP; lfence exists on every x86-64 CPU.
    unsafe {
        let t = __rdtscp(&mut aux);
        _mm_lfence();
        t
    }
}

/// Read the TSC without fences: for timeouts and loops that only compare against a bound,
/// never for a measurement.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: rdtsc exists on every x86-64 CPU and touches no memory.
    unsafe { _rdtsc() }
}
