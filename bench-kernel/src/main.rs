//! bench-kernel: boot platform of a small no_std benchmark kernel.
//!
//! Built for the host target (`x86_64-unknown-linux-gnu`) as a freestanding static
//! ELF; see README.md for build/run and `boot` for the entry protocols.
//!
//! Serial protocol: every line is one JSON object (`"type"`: boot, memmap, check,
//! selftest, fault, panic, exit) or a human-readable line starting with `# `.

#![no_std]
#![no_main]

mod bench;
mod boot;
mod bootinfo;
mod cpu;
mod exit;
use lab::fixedstr;
mod gdt;
mod idt;
mod interrupts;
use lab::json;
mod panic;
mod platform;
mod probe;
mod rt;
mod selftest;
mod serial;
mod sync;

use core::fmt::Write;

pub use bench::set_current_bench;
use json::{Hex, Str};
use lab::report::{self, RunInfo};
use lab::suites::Config;
use lab::timing::Execution;

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
    println!("\n# bench-kernel {}", env!("CARGO_PKG_VERSION"));
    if let Err(e) = serial_ok {
        println!("# warning: COM1 init/loopback failed: {e}");
    }

    let info = match bootinfo::parse(boot_magic, boot_info_paddr) {
        Ok(info) => info,
        Err(e) => {
            println!("{{\"type\":\"boot_error\",\"msg\":\"{}\"}}", Escaped(&e));
            println!("# boot info error: {e}");
            exit::exit_failure();
        }
    };
    let free = info.free_regions();
    let cpu = cpu::CpuFacts::detect();
    let pit = cpu::calibrate_tsc_pit();
    let (kstart, kend) = boot::kernel_image_range();

    serial::with_console(|w| {
        let _ = write!(
            w,
            "{{\"type\":\"boot\",\"protocol\":{},\"cmdline\":{},\"cmdline_truncated\":{},\
             \"free_ram_bytes\":{},\"free_regions\":{},\"kernel_start\":{},\"kernel_end\":{},\
             \"boot_info\":{},\"rsdp\":{},\"cpu\":",
            Str(info.protocol.name()),
            Str(info.cmdline()),
            info.cmdline_truncated,
            free.total_bytes(),
            free.as_slice().len(),
            Hex(kstart),
            Hex(kend),
            Hex(info.info_paddr),
            Hex(info.rsdp_paddr.unwrap_or(0)),
        );
        let _ = cpu.write_json(w, pit.ok());
        let _ = writeln!(w, "}}");

        let _ = write!(
            w,
            "{{\"type\":\"memmap\",\"truncated\":{},\"entries\":[",
            info.memmap_truncated
        );
        for (i, r) in info.memory_map().iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                w,
                "{sep}{{\"base\":{},\"len\":{},\"type\":{}}}",
                Hex(r.base),
                Hex(r.len),
                r.kind
            );
        }
        let _ = write!(w, "],\"free\":[");
        for (i, r) in free.as_slice().iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                w,
                "{sep}{{\"start\":{},\"end\":{}}}",
                Hex(r.start),
                Hex(r.end)
            );
        }
        let _ = writeln!(w, "],\"free_truncated\":{}}}", free.truncated);
        let _ = writeln!(
            w,
            "# booted via {} cmdline='{}' free RAM {} MiB in {} regions; CPU {} ({}), TSC {}",
            info.protocol.name(),
            info.cmdline(),
            free.total_bytes() >> 20,
            free.as_slice().len(),
            cpu.brand,
            cpu.hypervisor.as_ref().map_or("bare metal", |h| h.as_str()),
            match pit {
                Ok(hz) => TscText(Ok(hz)),
                Err(e) => TscText(Err(e)),
            },
        );
    });

    set_current_bench("selftest");
    let summary = selftest::run();
    println!(
        "{{\"type\":\"selftest\",\"passed\":{},\"failed\":{}}}",
        summary.passed, summary.failed
    );

    // Deliberate, unprotected faults to demonstrate the crash-report paths.
    match info.arg("fault") {
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
        Some(other) => println!("# unknown fault={other} ignored"),
        None => {}
    }

    // The benchmark run proper: the command line selects mode, suites and pool sizes.
    let cfg = match Config::parse(info.cmdline(), &["fault"]) {
        Ok(cfg) => cfg,
        Err(e) => usage_error("bad_cmdline", format_args!("{e}")),
    };
    let mut kernel = match platform::Kernel::new(cpu, &free, cfg.largest_pool()) {
        Ok(k) => k,
        Err(why) => usage_error("pool_does_not_fit", format_args!("{why}")),
    };
    set_current_bench("calibration");
    let calibration = lab::timing::calibration_loop(cpu.rdtscp);
    let (tsc_hz, tsc_source) = match (cpu.tsc_hz(), pit) {
        (Some((hz, src)), _) => (Some(hz), src.name()),
        (None, Ok(hz)) => (Some(hz), "pit"),
        (None, Err(_)) => (None, "unknown"),
    };
    let budget = lab::suites::budget(&cfg);
    let mut harness = lab::timing::Harness::new(cpu.rdtscp, budget);
    let info_rec = RunInfo {
        place: "kernel",
        execution: Execution::classify(cpu.hypervisor.as_ref().map(|h| h.as_str()), calibration),
        calibration_ticks_per_iter: calibration,
        tsc_hz,
        tsc_hz_source: tsc_source,
        cpu: &cpu,
        pit_hz: pit.ok(),
        cfg: &cfg,
        harness_overhead: harness.overhead,
        budget,
    };
    let mut out = platform::SerialOut;
    let _ = report::run(&mut out, &info_rec);
    println!(
        "# pools at {:#x}, harness overhead {} ticks",
        kernel.region(),
        harness.overhead
    );
    let counts = lab::suites::run_all(&mut kernel, &mut out, &mut harness, &cfg);

    let ok = summary.failed == 0 && counts.checks_failed == 0;
    let _ = report::end(&mut out, if ok { "ok" } else { "checks_failed" }, &counts);
    println!(
        "{{\"type\":\"exit\",\"ok\":{ok},\"qemu_status\":{},\"boot_stack_used_bytes\":{}}}",
        if ok {
            exit::QEMU_STATUS_SUCCESS
        } else {
            exit::QEMU_STATUS_FAILURE
        },
        boot::boot_stack_high_water()
    );
    if ok {
        exit::exit_success()
    } else {
        exit::exit_failure()
    }
}

/// A bad command line or a pool that cannot fit: one error record naming the value, then the
/// usage exit code (nothing was measured).
fn usage_error(kind: &str, msg: core::fmt::Arguments<'_>) -> ! {
    let mut out = platform::SerialOut;
    let _ = lab::report::Obj::new(&mut out, "error")
        .str("kind", kind)
        .str_fmt("msg", msg)
        .end();
    println!("# error: {msg}");
    println!(
        "{{\"type\":\"exit\",\"ok\":false,\"qemu_status\":{}}}",
        exit::QEMU_STATUS_USAGE
    );
    exit::exit(exit::ExitCode::Usage)
}

/// Display adapter: JSON-escape any `Display` value (for use inside quotes).
struct Escaped<'a, T: core::fmt::Display>(&'a T);

impl<T: core::fmt::Display> core::fmt::Display for Escaped<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(json::Escaper(f), "{}", self.0)
    }
}

struct TscText(Result<u64, cpu::CalibrationError>);

impl core::fmt::Display for TscText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Ok(hz) => write!(f, "{}.{:03} MHz by PIT", hz / 1_000_000, (hz / 1000) % 1000),
            Err(e) => write!(f, "PIT calibration failed: {e}"),
        }
    }
}
