//! The host runner: the same benchmark table as the bench kernel, in a host process on
//! simulated memory, printing the same JSON Lines (schema 1) to stdout.
//!
//! Usage: ptp-host [mode=bench|selftest] [suites=alloc,map,ptp] [pools=N,...] [quick=1] [seed=N]
//! Bad arguments: one line on stderr naming the bad value, exit 2. Failed checks: exit 1.

use lab::cpu::CpuFacts;
use lab::pool::{Pool, PAGE_BYTES};
use lab::report::{self, RunInfo};
use lab::sim::SimMemory;
use lab::suites::{self, reason, Config, Mmu, Platform, Reason};
use lab::timing::{calibration_loop, Execution, Harness};
use std::io::Write as _;
use std::time::Instant;
use x86_64::PhysAddr;

struct Host {
    cpu: CpuFacts,
    mem: SimMemory,
    largest: u32,
}

impl Platform for Host {
    fn name(&self) -> &'static str {
        "host"
    }
    fn cpu(&self) -> &CpuFacts {
        &self.cpu
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
}

/// Host TSC frequency when CPUID does not give it: ticks over 50 ms of the OS clock.
fn tsc_hz_by_clock() -> u64 {
    let (t0, i0) = (lab::timing::start(), Instant::now());
    while i0.elapsed().as_millis() < 50 {}
    let ticks = lab::timing::start() - t0;
    (ticks as f64 / i0.elapsed().as_secs_f64()) as u64
}

/// `fmt::Write` over stdout.
struct Stdout(std::io::Stdout);
impl core::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match Config::parse(&args.join(" "), &[]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ptp-host: {e}");
            std::process::exit(2);
        }
    };
    let cpu = CpuFacts::detect();
    let mut host = Host {
        cpu,
        mem: SimMemory::new(cfg.largest_pool() as u64 + 1),
        largest: cfg.largest_pool(),
    };
    let (tsc_hz, source) = match cpu.tsc_hz() {
        Some((hz, src)) => (hz, src.name()),
        None => (tsc_hz_by_clock(), "host_clock"),
    };
    let calib = calibration_loop(cpu.rdtscp);
    let budget = suites::budget(&cfg);
    let mut harness = Harness::new(cpu.rdtscp, budget);
    let mut out = Stdout(std::io::stdout());
    let info = RunInfo {
        place: "host",
        execution: Execution::classify(cpu.hypervisor.as_ref().map(|h| h.as_str()), calib),
        calibration_ticks_per_iter: calib,
        tsc_hz: Some(tsc_hz),
        tsc_hz_source: source,
        cpu: &cpu,
        pit_hz: None,
        cfg: &cfg,
        harness_overhead: harness.overhead,
        budget,
    };
    let _ = report::run(&mut out, &info);
    let counts = suites::run_all(&mut host, &mut out, &mut harness, &cfg);
    let status = if counts.checks_failed == 0 {
        "ok"
    } else {
        "checks_failed"
    };
    let _ = report::end(&mut out, status, &counts);
    std::process::exit(if counts.checks_failed == 0 { 0 } else { 1 });
}
