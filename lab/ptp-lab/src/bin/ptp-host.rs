//! The host runner: the bench kernel's table in a host process on simulated memory, printing
//! the same JSON Lines to stdout; and the facts the Python tools ask Rust for.
//!
//! Usage:
//!   ptp-host [mode=bench|selftest] [suites=alloc,map,ptp] [pools=N,...] [quick=1] [seed=N]
//!   ptp-host facts                  record shapes, names, limits, exit codes, targets (JSON)
//!   ptp-host capacity [pools=N,...] pool pages each mapping and each self-map takes (JSON)
//!   ptp-host layout < RANGES         pool pages a layout needs ("START END" hex byte ranges on
//!                                    stdin, one per line), predicted and really mapped (JSON)
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
        Some("layout") => layout(&mut out),
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

/// The pool pages a layout needs, with 4 KiB pages and with 2 MiB pages where aligned: what the
/// capacity model predicts, and what mapping it for real on simulated memory takes (null when
/// more than the largest pool: it cannot be mapped to check).
fn layout(out: &mut Stdout) -> ExitCode {
    use std::io::BufRead;
    use vystem_ptp::pool::MAX_POOL_PAGES;
    use vystem_ptp::{
        layout_regions, predict_tables, PageSizes, PageTableFlags as F, PoolMapper, Region,
    };
    let mut ranges = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let Ok(line) = line else {
            eprintln!("ptp-host: layout: line {} is not text", i + 1);
            return ExitCode::Usage;
        };
        let hex = |w: &str| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            [] => continue,
            [a, b] => match (hex(a), hex(b)) {
                (Some(s), Some(e)) if s < e && s % 4096 == 0 && e % 4096 == 0 => {
                    ranges.push((s, e))
                }
                _ => {
                    eprintln!("ptp-host: layout: line {}: '{line}' is not START END (hex, 4 KiB aligned, START < END)", i + 1);
                    return ExitCode::Usage;
                }
            },
            _ => {
                eprintln!(
                    "ptp-host: layout: line {}: '{line}' is not START END",
                    i + 1
                );
                return ExitCode::Usage;
            }
        }
    }
    ranges.sort_unstable();
    let mut figures = Vec::new();
    for (name, sizes) in [
        ("4KiB", PageSizes::ONLY_4KIB),
        ("2MiB", PageSizes::UP_TO_2MIB),
    ] {
        let mut regions = vec![
            Region {
                start: VirtAddr::new(0),
                pages: 0,
                size: vystem_ptp::PageSize::Size4KiB
            };
            ranges.len() * 5
        ];
        let n = layout_regions(&ranges, sizes, &mut regions).unwrap_or(0);
        let predicted = match predict_tables(&mut regions[..n]) {
            Ok(t) => t.total(),
            Err(e) => {
                eprintln!("ptp-host: layout: {e}");
                return ExitCode::Usage;
            }
        };
        // Mapped for real into a pool of exactly the predicted size: it must fit, to the page.
        let mapped = (predicted <= MAX_POOL_PAGES as u64).then(|| {
            let pages = (predicted as u32).max(vystem_ptp::pool::MIN_POOL_PAGES);
            let mem = SimMemory::new(pages as u64);
            let pool = mem.pool(0, pages).ok()?;
            let mut m = PoolMapper::create(pool, BitmapAllocator::new(pages));
            for &(s, e) in &ranges {
                let phys = vystem_ptp::PhysAddr::new(s & ((1 << 30) - 1));
                m.map_region(
                    VirtAddr::new_truncate(s),
                    phys,
                    e - s,
                    sizes,
                    F::PRESENT | F::WRITABLE,
                )
                .ok()?;
            }
            Some(m.usage().tables.total())
        });
        figures.push((name, predicted, mapped.flatten()));
    }
    let bytes: u64 = ranges.iter().map(|(s, e)| e - s).sum();
    let o = Obj::new(out, "layout")
        .num("ranges", ranges.len() as u64)
        .num("bytes", bytes);
    let o = figures.iter().fold(o, |o, &(name, predicted, mapped)| {
        o.with(name, |w| {
            write!(
                w,
                "{{\"predicted\":{predicted},\"mapped\":{}}}",
                mapped.map_or("null".to_string(), |m| m.to_string())
            )
        })
    });
    match o.end() {
        Ok(()) => ExitCode::Success,
        Err(_) => ExitCode::Failure,
    }
}
