//! The host runner: the bench kernel's table in a host process on simulated memory, printing
//! the same JSON Lines to stdout; and the facts the Python tools ask Rust for.
//!
//! Usage:
//!   ptp-host [mode=bench|selftest] [suites=alloc,map,ptp] [pools=N,...] [quick=1] [seed=N]
//!   ptp-host facts                  record shapes, names, limits, exit codes, targets (JSON)
//!   ptp-host capacity [pools=N,...] pool pages each mapping and each self-map takes (JSON)
//! Bad arguments: one line on stderr naming the bad value, exit 2. Failed checks: exit 1.

use ptp_lab::config::Config;
use ptp_lab::exit::ExitCode;
use ptp_lab::host::{Host, Stdout};
use ptp_lab::record::Obj;
use ptp_lab::suites::MAPPINGS;
use ptp_lab::suites::SELF_MAP;
use ptp_lab::timing::{Budget, Harness};
use ptp_lab::{facts, session};
use vystem_ptp::sim::SimMemory;
use vystem_ptp::{BitmapAllocator, Ptp, VirtAddr};

fn main() {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => {
                eprintln!("ptp-host: argument {bad:?} is not UTF-8");
                std::process::exit(ExitCode::Usage.host_status());
            }
        }
    }
    let mut out = Stdout(std::io::stdout());
    let code = match args.first().map(String::as_str) {
        Some("facts") => {
            let _ = facts::write(&mut out);
            ExitCode::Success
        }
        Some("capacity") => {
            parse(&args[1..]).map_or(ExitCode::Usage, |cfg| capacity(&mut out, &cfg))
        }
        _ => parse(&args).map_or(ExitCode::Usage, |cfg| {
            let mut host = Host::new(&cfg);
            let mut harness = Harness::new(host_rdtscp(), Budget::of(&cfg));
            let counts = session::run(&mut host, &mut out, &mut harness, &cfg, Default::default());
            session::status(&counts).0
        }),
    };
    std::process::exit(code.host_status());
}

fn host_rdtscp() -> bool {
    ptp_lab::cpu::CpuFacts::detect().rdtscp
}

/// The run configuration, or the one-line error naming the bad value.
fn parse(words: &[String]) -> Option<Config> {
    Config::parse(&words.join(" "), &[])
        .map_err(|e| eprintln!("ptp-host: {e}"))
        .ok()
}

/// What the capacity model says about the benchmarks' mappings, and what the self-map of a
/// modifiable PTP really takes at each pool size of `cfg`.
fn capacity(out: &mut Stdout, cfg: &Config) -> ExitCode {
    let mem = SimMemory::new(cfg.largest_pool() as u64);
    let o = Obj::new(out, "capacity")
        .with("mappings", |w| {
            w.write_char('[')?;
            for (i, m) in MAPPINGS.iter().enumerate() {
                write!(
                    w,
                    "{}{{\"bench\":\"{}\",\"page_size\":\"{}\",\"pages\":{},\"tables\":{}}}",
                    if i == 0 { "" } else { "," },
                    m.bench,
                    m.size.name(),
                    m.pages,
                    m.tables()
                )?;
            }
            w.write_char(']')
        })
        .with("self_map_tables", |w| {
            w.write_char('{')?;
            for (i, &n) in cfg.pools().iter().enumerate() {
                let pool = mem.pool(0, n).map_err(|_| core::fmt::Error)?;
                let ptp = Ptp::modifiable(pool, BitmapAllocator::new(n), VirtAddr::new(SELF_MAP))
                    .map_err(|_| core::fmt::Error)?;
                write!(
                    w,
                    "{}\"{n}\":{}",
                    if i == 0 { "" } else { "," },
                    ptp.self_map_tables()
                )?;
            }
            w.write_char('}')
        });
    match o.end() {
        Ok(()) => ExitCode::Success,
        Err(_) => ExitCode::Failure,
    }
}
