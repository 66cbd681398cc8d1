//! The host as a [`Platform`]: pools in simulated memory, no ring 0, a heap for the peers.
//! The host runner (`ptp-host`) and the criterion driver run the table on it.

use crate::config::Config;
use crate::cpu::CpuFacts;
use crate::platform::{reason, Mmu, Place, Platform, Reason, Tsc, LAYOUTS_ENV};
use std::io::Write as _;
use std::time::Instant;
use vystem_ptp::pool::PAGE_BYTES;
use vystem_ptp::sim::SimMemory;
use vystem_ptp::Pool;
use x86_64::PhysAddr;

pub struct Host {
    cpu: CpuFacts,
    mem: SimMemory,
    largest: u32,
    layouts: Option<&'static [u8]>,
}

impl Host {
    /// Simulated memory for the largest pool of `cfg`, plus the scratch page; the layouts of
    /// [`LAYOUTS_ENV`], if it names a file. Err: the message naming the file it cannot read.
    pub fn new(cfg: &Config) -> Result<Host, std::string::String> {
        let layouts = match std::env::var_os(LAYOUTS_ENV) {
            None => None,
            Some(path) => Some(
                &*std::fs::read(&path)
                    .map_err(|e| std::format!("{LAYOUTS_ENV}={}: {e}", path.to_string_lossy()))?
                    .leak(),
            ),
        };
        Ok(Host {
            cpu: CpuFacts::detect(),
            mem: SimMemory::new(cfg.largest_pool() as u64 + 1),
            largest: cfg.largest_pool(),
            layouts,
        })
    }
}

impl Platform for Host {
    fn place(&self) -> Place {
        Place::Host
    }
    fn cpu(&self) -> &CpuFacts {
        &self.cpu
    }
    fn tsc(&mut self) -> Tsc {
        Tsc::choose(&self.cpu, || Some((tsc_hz_by_clock(), "host_clock")), None)
    }
    fn pool(&mut self, pages: u32) -> Result<Pool, Reason> {
        self.mem
            .pool(0, pages)
            .map_err(|e| reason(format_args!("{e}")))
    }
    fn scratch(&self) -> PhysAddr {
        PhysAddr::new(self.largest as u64 * PAGE_BYTES)
    }
    fn set_current_bench(&mut self, _: &'static str) {}
    fn mmu(&mut self) -> Option<&mut dyn Mmu> {
        None
    }
    fn has_heap(&self) -> bool {
        true
    }
    fn boot_module(&self) -> Option<&'static [u8]> {
        self.layouts
    }
    fn load(&self) -> Option<crate::load::Load> {
        crate::load::Load::parse(&std::fs::read_to_string("/proc/loadavg").ok()?)
    }
}

/// Host TSC frequency when CPUID does not give it: ticks over 50 ms of the OS clock.
fn tsc_hz_by_clock() -> u64 {
    let (t0, i0) = (crate::tsc::start(), Instant::now());
    while i0.elapsed().as_millis() < 50 {}
    let ticks = crate::tsc::start() - t0;
    (ticks as f64 / i0.elapsed().as_secs_f64()) as u64
}

/// `fmt::Write` over stdout, flushed per line so a reader sees each record as it is made.
pub struct Stdout(pub std::io::Stdout);

impl core::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let mut out = self.0.lock();
        out.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)?;
        if s.ends_with('\n') {
            out.flush().map_err(|_| core::fmt::Error)?;
        }
        Ok(())
    }
}
