//! The host runner: the bench kernel's table in a host process on simulated memory, printing
//! the same JSON Lines to stdout; and the facts the Python tools ask Rust for.
//!
//! Usage:
//!   ptp-host [mode=bench|selftest] [suites=alloc,map,ptp] [pools=N,...] [quick=1] [seed=N]
//!   ptp-host facts                  record shapes, names, limits, exit codes, targets (JSON)
//!   ptp-host schema                 this schema version's record shapes (results/schema/vN.json)
//!   ptp-host plan bench|lava ARGS   the one check of a run's arguments (what scripts/bench.sh
//!                                    and scripts/lava.sh take): the runner, the canonical config
//!                                    and kernel command line, every option's value (JSON)
//!   ptp-host pools TEXT             the pool sizes of a --pool-pages value, checked (JSON)
//!   ptp-host capacity [pools=N,...] pool pages each mapping and each self-map takes (JSON)
//!   ptp-host pool-limits [pools=N,...] per pool size: the largest region an unmodifiable PTP
//!                                    can map, and which kernel mappings a modifiable one holds
//!   ptp-host replay [pools=N,...] < OPS  each process's lifetime (replay ops on stdin, as
//!                                    `ptplab replay` writes them) with bump and with bitmap (JSON)
//!   ptp-host layout < RANGES         pool pages a layout needs ("START END" hex byte ranges on
//!                                    stdin, one per line), predicted and really mapped (JSON)
//!   ptp-host flush-costs < JSON      per workload, the expected cost per flush of every ceiling
//!                                    and the one that minimises it (`vystem_ptp::flush::
//!                                    calibrate_for`), from one CPU's flush + refill rounds:
//!                                    {"costs": [[PAGES, PER_PAGE, FULL], ...], "ceilings": [N, ...],
//!                                     "workloads": {NAME: [[PAGES, COUNT], ...], ...}}
//! Bad arguments: one line on stderr naming the bad value, exit 2. Failed checks: exit 1.

use ptp_lab::config::Config;
use ptp_lab::exit::ExitCode;
use ptp_lab::host::{Host, Stdout};
use ptp_lab::suites::MAPPINGS;
use ptp_lab::suites::SELF_MAP;
use ptp_lab::timing::{Budget, Harness};
use ptp_lab::{facts, session};
use serde_json::{json, Map, Value};
use std::fmt::Write;
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
        Some("schema") => {
            let _ = facts::write_schema(&mut out);
            ExitCode::Success
        }
        Some("capacity") => {
            parse(&args[1..]).map_or(ExitCode::Usage, |cfg| capacity(&mut out, &cfg))
        }
        Some("layout") => layout(&mut out),
        Some("flush-costs") => flush_costs(&mut out),
        Some("plan") => plan(&mut out, &args[1..]),
        Some("pools") => pools(&mut out, &args[1..]),
        Some("replay") => parse(&args[1..]).map_or(ExitCode::Usage, |cfg| replay(&mut out, &cfg)),
        Some("pool-limits") => {
            parse(&args[1..]).map_or(ExitCode::Usage, |cfg| pool_limits(&mut out, &cfg))
        }
        _ => parse(&args).map_or(ExitCode::Usage, |cfg| {
            let mut host = match Host::new(&cfg) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("ptp-host: {e}");
                    return ExitCode::Usage;
                }
            };
            let mut harness = Harness::new(host_rdtscp(), Budget::of(&cfg));
            harness.seed(cfg.seed);
            let counts = session::run(&mut host, &mut out, &mut harness, &cfg, Default::default());
            session::status(&counts).0
        }),
    };
    std::process::exit(code.host_status());
}

fn host_rdtscp() -> bool {
    ptp_lab::cpu::CpuFacts::detect().rdtscp
}

/// `ptp-host plan DOOR ARGS...`: the checked plan, or one line naming the bad value (exit 2).
fn plan(out: &mut Stdout, args: &[String]) -> ExitCode {
    use ptp_lab::runner::Door;
    let Some(door) = args.first().and_then(|d| Door::from_name(d)) else {
        eprintln!("ptp-host: plan: the first word is the door, bench or lava");
        return ExitCode::Usage;
    };
    match ptp_lab::plan::plan(door, &args[1..]) {
        Ok(p) => print_record(out, p.to_json()),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::Usage
        }
    }
}

/// `ptp-host pools TEXT`: the pool sizes of a `--pool-pages` value, or one line naming the bad one.
fn pools(out: &mut Stdout, args: &[String]) -> ExitCode {
    match ptp_lab::plan::pools(args.first().map_or("", String::as_str)) {
        Ok(p) => print_record(out, json!({"pools": p})),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::Usage
        }
    }
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
    let mappings: Vec<Value> = MAPPINGS
        .iter()
        .map(|m| {
            json!({
                "bench": m.bench,
                "page_size": m.size.name(),
                "pages": m.pages,
                "tables": m.tables(),
            })
        })
        .collect();
    let mut self_map = Map::new();
    for &n in cfg.pools() {
        let Some(tables) = self_map_tables(n) else {
            return ExitCode::Failure;
        };
        self_map.insert(n.to_string(), tables.into());
    }
    print_record(
        out,
        json!({"type": "capacity", "mappings": mappings, "self_map_tables": self_map}),
    )
}

/// Each process of the replay ops on stdin, replayed: one `replay` record each.
fn replay(out: &mut Stdout, cfg: &Config) -> ExitCode {
    use ptp_lab::replay::{self, Lifetime, CEILINGS};
    use std::io::Read;
    let mut text = String::new();
    if std::io::stdin().read_to_string(&mut text).is_err() {
        eprintln!("ptp-host: replay: the input is not text (UTF-8)");
        return ExitCode::Usage;
    }
    let processes = match replay::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ptp-host: replay: {e}");
            return ExitCode::Usage;
        }
    };
    let mem = SimMemory::new(vystem_ptp::pool::MAX_POOL_PAGES as u64);
    let life = |l: &Lifetime| {
        let exhausted: Map<String, Value> = l
            .exhausted
            .iter()
            .map(|&(n, c)| (n.to_string(), json!(c)))
            .collect();
        json!({
            "peak": l.peak, "peak_call": l.peak_call, "end": l.end,
            "beyond_largest_pool": l.beyond_largest_pool, "exhausted": exhausted,
            "tables_freed": l.tables_freed, "tables_reused": l.tables_reused,
            "tables_kept_empty": l.tables_kept_empty, "ticks": l.ticks,
            "waiting": l.waiting.iter().map(|w| json!({"every": w.every, "peak_waiting": w.peak_waiting, "peak_pool": w.peak_pool})).collect::<Vec<_>>(),
            "failed": l.failed.as_ref().map(|(c, why)| json!({"call": c, "why": why})),
        })
    };
    let mut code = ExitCode::Success;
    for p in &processes {
        let r = replay::replay(&mem, p, cfg.pools(), ptp_lab::tsc::now);
        let over: Map<String, Value> = CEILINGS
            .iter()
            .zip(r.forgets.over)
            .map(|(c, n)| (c.to_string(), json!(n)))
            .collect();
        let model = json!({
            "checked": r.bitmap.model_checked,
            "mismatch": r.bitmap.model_mismatch.map(|(c, want, held)| json!({"call": c, "predicted": want, "held": held})),
        });
        if r.bitmap.model_mismatch.is_some() || r.bitmap.failed.is_some() || r.bump.failed.is_some()
        {
            code = ExitCode::Failure;
        }
        let rec = json!({
            "type": "replay", "process": p.id, "program": p.program, "ops": p.ops.len(),
            "bump": life(&r.bump), "bitmap": life(&r.bitmap),
            "peak_2mib": r.peak_2mib, "peak_4kib_model": r.peak_4kib_model,
            "forget": {"calls": r.forgets.calls, "pages": r.forgets.pages,
                       "largest": r.forgets.largest, "over": over},
            "model": model,
        });
        if print_record(out, rec) != ExitCode::Success {
            return ExitCode::Failure;
        }
    }
    code
}

/// One record line of the host runner's own output.
fn print_record(out: &mut Stdout, record: Value) -> ExitCode {
    match writeln!(out, "{record}") {
        Ok(()) => ExitCode::Success,
        Err(_) => ExitCode::Failure,
    }
}

/// The pool pages a layout needs, with 4 KiB pages and with 2 MiB pages where aligned: what the
/// capacity model predicts, and what mapping it for real on simulated memory takes (null when
/// more than the largest pool: it cannot be mapped to check).
/// How `flush-costs` costs a flush: said once, here, beside the code that does it.
fn flush_cost_rule() -> String {
    format!(
        "per page up to the ceiling, one full flush above it, each with its refill; a size between \
two measured sizes costs the line between them; the ceiling goes no higher than {} \
(vystem_ptp::flush::MAX_CEILING) nor the largest size measured; beyond the largest size \
measured a flush costs that size's full flush",
        vystem_ptp::flush::MAX_CEILING
    )
}

/// `ptp-host flush-costs`: see the usage above. Bad input: one line naming it, exit 2.
fn flush_costs(out: &mut Stdout) -> ExitCode {
    use std::io::Read;
    use vystem_ptp::flush::{calibrate_for, expected_cost, RoundCost};
    use vystem_ptp::FlushSize;
    let fail = |what: String| {
        eprintln!("ptp-host: flush-costs: {what}");
        ExitCode::Usage
    };
    let mut text = String::new();
    if std::io::stdin().read_to_string(&mut text).is_err() {
        return fail("the input is not text (UTF-8)".into());
    }
    let input: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return fail(format!("the input is not JSON ({e})")),
    };
    let num = |v: &Value| v.as_f64().filter(|x| x.is_finite() && *x >= 0.0);
    let whole = |v: &Value| v.as_u64();
    let mut costs: Vec<RoundCost> = Vec::new();
    for c in input["costs"].as_array().map_or(&[][..], Vec::as_slice) {
        match c.as_array().map(Vec::as_slice) {
            Some([p, a, b]) => match (whole(p), num(a), num(b)) {
                (Some(pages), Some(per_page), Some(full))
                    if pages > 0 && costs.last().is_none_or(|l| l.pages < pages) =>
                {
                    costs.push(RoundCost {
                        pages,
                        per_page,
                        full,
                    })
                }
                _ => {
                    return fail(format!(
                    "cost {c} is not [PAGES, PER_PAGE, FULL] (PAGES > 0, increasing; costs >= 0)"
                ))
                }
            },
            _ => return fail(format!("cost {c} is not [PAGES, PER_PAGE, FULL]")),
        }
    }
    if costs.is_empty() {
        return fail("no costs: \"costs\" holds [PAGES, PER_PAGE, FULL] rounds".into());
    }
    let mut ceilings = Vec::new();
    for c in input["ceilings"].as_array().map_or(&[][..], Vec::as_slice) {
        match whole(c) {
            Some(n) => ceilings.push(n),
            None => return fail(format!("ceiling {c} is not a whole number")),
        }
    }
    let Some(workloads) = input["workloads"].as_object() else {
        return fail("no workloads: \"workloads\" maps names to [[PAGES, COUNT], ...]".into());
    };
    let top = costs[costs.len() - 1]
        .pages
        .min(vystem_ptp::flush::MAX_CEILING);
    let mut answer = Map::new();
    for (name, w) in workloads {
        let mut sizes = Vec::new();
        for s in w.as_array().map_or(&[][..], Vec::as_slice) {
            match s.as_array().map(Vec::as_slice) {
                Some([p, n]) if whole(p).is_some_and(|p| p > 0) && whole(n).is_some() => sizes
                    .push(FlushSize {
                        pages: whole(p).unwrap_or(1),
                        count: whole(n).unwrap_or(0),
                    }),
                _ => {
                    return fail(format!(
                        "workload {name:?}: size {s} is not [PAGES, COUNT] (PAGES > 0)"
                    ))
                }
            }
        }
        sizes.sort_unstable_by_key(|s| s.pages);
        let flushes: u64 = sizes.iter().map(|s| s.count).sum();
        let Some((best, cost)) = calibrate_for(&costs, &sizes) else {
            answer.insert(name.clone(), json!({"flushes": flushes, "best": null}));
            continue;
        };
        // Every ceiling costs what the flushed size at or below it costs (the cost only
        // changes at sizes flushed): the curve at 0 and at each of them.
        let mut curve = vec![json!([0, expected_cost(&costs, &sizes, 0)])];
        for s in sizes.iter().filter(|s| s.count > 0 && s.pages <= top) {
            curve.push(json!([s.pages, expected_cost(&costs, &sizes, s.pages)]));
        }
        curve.dedup();
        let same_up_to = sizes
            .iter()
            .filter(|s| s.count > 0 && s.pages > best.ceiling && s.pages <= top)
            .map(|s| s.pages - 1)
            .next()
            .unwrap_or(top);
        let at: Map<String, Value> = ceilings
            .iter()
            .map(|&c| (c.to_string(), json!(expected_cost(&costs, &sizes, c))))
            .collect();
        answer.insert(
            name.clone(),
            json!({"flushes": flushes,
                   "best": {"ceiling": best.ceiling, "same_up_to": same_up_to, "cost": cost},
                   "at": at, "curve": curve}),
        );
    }
    print_record(
        out,
        json!({"type": "flush-costs", "rule": flush_cost_rule(), "largest_ceiling": top, "workloads": answer}),
    )
}

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
    let mut record = json!({"type": "layout", "ranges": ranges.len(), "bytes": bytes});
    for (name, predicted, mapped) in figures {
        record[name] = json!({"predicted": predicted, "mapped": mapped});
    }
    print_record(out, record)
}

/// Pool pages `bytes` from a 1 GiB-aligned address take with the largest pages `sizes`
/// allows (the best case a kernel can arrange), the root included.
fn region_tables(bytes: u64, sizes: vystem_ptp::PageSizes) -> u64 {
    use vystem_ptp::{layout_regions, predict_tables, Region};
    let start = 1u64 << 39; // PML4 slot 1: aligned to everything
    let mut regions = [Region {
        start: VirtAddr::new(0),
        pages: 0,
        size: vystem_ptp::PageSize::Size4KiB,
    }; 5];
    let n = layout_regions(&[(start, start + bytes)], sizes, &mut regions).unwrap_or(0);
    predict_tables(&mut regions[..n]).map_or(u64::MAX, |t| t.total())
}

/// The largest region (a multiple of `unit` bytes) whose tables fit `pages` pool pages.
fn largest_region(pages: u64, unit: u64, sizes: vystem_ptp::PageSizes) -> u64 {
    let (mut lo, mut hi) = (0u64, 1u64 << 47 >> unit.trailing_zeros()); // in units
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if region_tables(mid * unit, sizes) <= pages {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo * unit
}

/// What each pool size holds: for an unmodifiable PTP the largest contiguous region it can map
/// (4 KiB pages; 2 MiB pages), for a modifiable one its self-map and which kernel mappings and
/// direct maps fit beside it.
fn pool_limits(out: &mut Stdout, cfg: &Config) -> ExitCode {
    use vystem_ptp::PageSizes;
    const GIB: u64 = 1 << 30;
    let mut pools = Vec::new();
    for &n in cfg.pools() {
        let Some(self_map) = self_map_tables(n) else {
            return ExitCode::Failure;
        };
        let all = [
            (1, "4KiB"),
            (4, "4KiB"),
            (16, "4KiB"),
            (64, "4KiB"),
            (1, "2MiB"),
            (4, "2MiB"),
            (16, "2MiB"),
            (64, "2MiB"),
            (4, "direct-2MiB"),
            (64, "direct-2MiB"),
            (512, "direct-2MiB"),
            (4, "direct-1GiB"),
            (64, "direct-1GiB"),
            (512, "direct-1GiB"),
        ];
        let mut mappings = Map::new();
        for (gib, how) in all {
            let sizes = match how {
                "4KiB" => PageSizes::ONLY_4KIB,
                "2MiB" | "direct-2MiB" => PageSizes::UP_TO_2MIB,
                _ => PageSizes::ALL,
            };
            // Beside the self-map (its tables) and the root, counted once.
            let tables = region_tables(gib * GIB, sizes) - 1 + self_map;
            mappings.insert(
                format!("{gib}GiB-{how}"),
                json!({"tables": tables, "fits": tables <= u64::from(n)}),
            );
        }
        pools.push(json!({
            "pool_pages": n,
            "bytes": u64::from(n) * 4096,
            "largest_region_4KiB": largest_region(n.into(), 4096, PageSizes::ONLY_4KIB),
            "largest_region_2MiB": largest_region(n.into(), 2 << 20, PageSizes::UP_TO_2MIB),
            "self_map_tables": self_map,
            "mappings": mappings,
        }));
    }
    print_record(out, json!({"type": "pool_limits", "pools": pools}))
}

/// The pool pages a modifiable PTP's self-map takes, from building one.
fn self_map_tables(n: u32) -> Option<u64> {
    let mem = SimMemory::new(n as u64);
    let pool = mem.pool(0, n).ok()?;
    let ptp = Ptp::modifiable(pool, BitmapAllocator::new(n), VirtAddr::new(SELF_MAP)).ok()?;
    Some(ptp.self_map_tables().into())
}
