//! bench-kernel: a small no_std kernel that runs the PTP lab's benchmark table on real page
//! tables.
//!
//! Built for the host target (`x86_64-unknown-linux-gnu`) as a freestanding static ELF; see
//! README.md for build/run and `boot` for the entry protocols. Every serial line is one JSON
//! record (written by `ptp_lab::record`) or a human-readable line starting with `# `.

#![no_std]
#![no_main]

mod bench;
mod boot;
mod bootinfo;
mod cpu;
mod exit;
mod frame;
mod gdt;
mod idt;
mod interrupts;
mod irq;
mod panic;
mod platform;
mod probe;
mod rt;
mod screen;
mod selftest;
mod serial;
mod smp;
mod sync;

use core::fmt;

pub use bench::set_current_bench;
use bootinfo::{BootInfo, FreeRegions};
use ptp_lab::case::{BANNER, Case};
use ptp_lab::config::Config;
use ptp_lab::exit::ExitCode;
use ptp_lab::json::Items;
use ptp_lab::record::{self, BootRecord, Counts};
use ptp_lab::session;
use ptp_lab::timing::{Budget, Harness};

/// Entered from `boot` in 64-bit mode on the boot stack, with paging (identity map
/// of 0..4 GiB) and SSE enabled and `.bss` zeroed.
///
/// `boot_magic` is [`boot::PVH_START_INFO_MAGIC`] or
/// [`boot::MULTIBOOT2_BOOTLOADER_MAGIC`]; `boot_info_paddr` points at the
/// protocol's boot information.
#[unsafe(no_mangle)]
pub extern "C" fn kmain(boot_magic: u64, boot_info_paddr: u64) -> ! {
    // Keep going without a verified UART: output may still work, and the exit code
    // tells the story either way.
    let serial_ok = serial::init();
    gdt::init();
    idt::init();
    set_current_bench("boot");
    // Leading newline: firmware (SeaBIOS "Booting from ROM..") leaves the line open.
    println!("\n{BANNER} {}", env!("CARGO_PKG_VERSION"));
    if let Err(e) = serial_ok {
        println!("# warning: COM1 init/loopback failed: {e}");
    }
    let info = match bootinfo::parse(boot_magic, boot_info_paddr) {
        Ok(info) => {
            screen::init(info.framebuffer);
            println!("{BANNER} {}", env!("CARGO_PKG_VERSION"));
            info
        }
        Err(e) => {
            let _ = record::ErrorRecord {
                kind: "boot_info",
                msg: format_args!("{e}"),
            }
            .report(&mut serial::SerialOut);
            println!("# boot info error: {e}");
            exit::exit(ExitCode::Failure);
        }
    };
    let free = info.free_regions();
    let cpu = cpu::CpuFacts::detect();
    let pit = cpu::calibrate_tsc_pit();
    report_boot(&info, &free, &cpu, pit);

    set_current_bench("selftest");
    let boot_checks = selftest::run();
    let _ = record::SelftestRecord {
        passed: boot_checks.checks - boot_checks.checks_failed,
        failed: boot_checks.checks_failed,
    }
    .write(&mut serial::SerialOut);
    fault_demo(info.arg("fault"));

    // Every CPU the firmware lists, started before the run so its record can name them.
    set_current_bench("smp");
    let hz = ptp_lab::platform::Tsc::choose(&cpu, || pit.ok().map(|hz| (hz, "pit")), None)
        .hz
        .unwrap_or(1_000_000_000);
    let cpus = smp::start(
        &info,
        &cpu,
        hz,
        info.arg("ap_hang").and_then(|v| v.parse().ok()),
    );
    if info.arg("fault") == Some("ap_pf") {
        ap_fault_demo(cpus);
    }

    // The benchmark run proper: the command line selects mode, suites and pool sizes.
    let cfg = match Config::parse(info.cmdline(), &["fault", "ap_hang", "acpi"]) {
        Ok(cfg) => cfg,
        Err(e) => usage_error("bad_cmdline", format_args!("{e}")),
    };
    let mut kernel = match platform::Kernel::new(cpu, pit.ok(), &free, cfg.largest_pool()) {
        Ok(k) => k,
        Err(why) => usage_error("pool_does_not_fit", format_args!("{why}")),
    };
    kernel.module = info.module_bytes();
    kernel.cpus = Some(cpus);
    let mut harness = Harness::new(cpu.rdtscp, Budget::of(&cfg));
    harness.seed(cfg.seed);
    println!(
        "# pools at {:#x}, harness overhead {} ticks",
        kernel.region(),
        harness.overhead
    );
    let counts = session::run(
        &mut kernel,
        &mut serial::SerialOut,
        &mut harness,
        &cfg,
        boot_checks,
    );
    finish(&counts)
}

/// The `boot` and `memmap` records, and a line for humans.
fn report_boot(
    info: &BootInfo,
    free: &FreeRegions,
    cpu: &cpu::CpuFacts,
    pit: Result<u64, cpu::CalibrationError>,
) {
    let out = &mut serial::SerialOut;
    let (kernel_start, kernel_end) = boot::kernel_image_range();
    let _ = BootRecord {
        protocol: info.protocol.name(),
        cmdline: info.cmdline(),
        cmdline_truncated: info.cmdline_truncated,
        free_ram_bytes: free.total_bytes(),
        free_regions: free.as_slice().len(),
        kernel_start,
        kernel_end,
        boot_info: info.info_paddr,
        rsdp: info.rsdp_paddr,
    }
    .write(out);
    let mut entries = info.memory_map().iter().map(|r| record::MemEntry {
        base: r.base,
        len: r.len,
        kind: r.kind,
    });
    let mut ranges = free.as_slice().iter().map(|r| record::FreeRange {
        start: r.start,
        end: r.end,
    });
    let _ = record::MemmapRecord {
        truncated: info.memmap_truncated,
        entries: &Items::new(&mut entries),
        free: &Items::new(&mut ranges),
        free_truncated: free.truncated,
    }
    .write(out);
    println!(
        "# booted via {} cmdline='{}' free RAM {} MiB in {} regions; CPU {} (hypervisor: {}), TSC {}",
        info.protocol.name(),
        info.cmdline(),
        free.total_bytes() >> 20,
        free.as_slice().len(),
        cpu.brand,
        // No hypervisor bit is not bare metal: Bochs sets none. Native or emulated is the run
        // record's verdict (calibration too), printed with it.
        cpu.hypervisor
            .as_ref()
            .map_or("none reported", |h| h.as_str()),
        TscText(pit),
    );
}

/// Deliberate, unprotected faults (`fault=pf|gp|ud|df|panic`; `ap_pf` on CPU 1) that show the crash
/// reports, and `fault=hang`, a kernel that never ends.
fn fault_demo(which: Option<&str>) {
    match which {
        Some("pf") => {
            set_current_bench("fault_demo_pf");
            // SAFETY: not safe at all, on purpose: this must fault and be reported.
            let v = unsafe { core::ptr::read_volatile(selftest::UNMAPPED_CANONICAL as *const u8) };
            println!("# unreachable: read {v}");
        }
        Some("gp") => {
            set_current_bench("fault_demo_gp");
            // SAFETY: as above; non-canonical address -> #GP.
            let v = unsafe { core::ptr::read_volatile(selftest::NON_CANONICAL as *const u8) };
            println!("# unreachable: read {v}");
        }
        Some("ud") => {
            set_current_bench("fault_demo_ud");
            // SAFETY: raises #UD on purpose.
            unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
        }
        Some("df") => {
            set_current_bench("fault_demo_df");
            // A #PF whose IST stack is unmapped cannot be delivered -> #DF (own IST).
            // SAFETY: deliberately breaks #PF delivery; the run ends in the #DF report.
            unsafe {
                gdt::set_ist_top(gdt::IstSlot::PageFault, selftest::UNMAPPED_CANONICAL);
                let v = core::ptr::read_volatile(selftest::UNMAPPED_CANONICAL as *const u8);
                println!("# unreachable: read {v}");
            }
        }
        Some("panic") => {
            set_current_bench("fault_demo_panic");
            panic!("deliberate panic requested by the command line (\"fault=panic\")");
        }
        Some("hang") => {
            // A guest that never ends (as a firmware prompt does): what every time limit of
            // the lab is tested against.
            set_current_bench("fault_demo_hang");
            println!("# fault=hang: waiting forever, interrupts off");
            exit::halt()
        }
        Some("ap_pf") => {} // after the APs are up: `ap_fault_demo`
        Some(other) => println!("# unknown fault={other} ignored"),
        None => {}
    }
}

/// `fault=ap_pf`: CPU 1 reads an unmapped address when interrupted, and reports the #PF with
/// its CPU number (the run ends there, as for any unexpected fault).
fn ap_fault_demo(cpus: &'static smp::Cpus) {
    use ptp_lab::platform::{Smp, Work};
    set_current_bench("fault_demo_ap_pf");
    let work = Work {
        probe: Some(selftest::UNMAPPED_CANONICAL),
        ..Work::NOTHING
    };
    match cpus.ipi(vystem_ptp::shootdown::CpuSet::EMPTY.with(1), &work) {
        Ok(_) => println!("# unreachable: CPU 1 read an unmapped address"),
        Err(e) => println!("# fault=ap_pf: {e}"),
    }
}

/// The `exit` record, then leave with the code the counts call for.
fn finish(counts: &Counts) -> ! {
    let code = session::status(counts).0;
    let _ = record::ExitRecord {
        ok: code == ExitCode::Success,
        qemu_status: code.qemu_status(),
        boot_stack_used_bytes: Some(boot::boot_stack_high_water()),
    }
    .write(&mut serial::SerialOut);
    exit::exit(code)
}

/// A bad command line or a pool that cannot fit: one error record naming the value, then the
/// usage exit code (nothing was measured).
fn usage_error(kind: &str, msg: fmt::Arguments<'_>) -> ! {
    let out = &mut serial::SerialOut;
    let _ = record::ErrorRecord { kind, msg }.report(out);
    println!("# error: {msg}");
    let _ = record::ExitRecord {
        ok: false,
        qemu_status: ExitCode::Usage.qemu_status(),
        boot_stack_used_bytes: None,
    }
    .write(out);
    exit::exit(ExitCode::Usage)
}

struct TscText(Result<u64, cpu::CalibrationError>);

impl fmt::Display for TscText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(hz) => write!(f, "{}.{:03} MHz by PIT", hz / 1_000_000, (hz / 1000) % 1000),
            Err(e) => write!(f, "PIT calibration failed: {e}"),
        }
    }
}
