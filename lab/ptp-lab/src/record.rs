//! The one writer of the lab's JSON Lines records (schema [`SCHEMA`], results/README.md): one
//! object per line, to any `core::fmt::Write` (the serial port in the kernel, stdout on the
//! host), no allocator. The bench kernel, the host runner and the criterion driver all write
//! through these functions; [`RECORDS`] declares each type's fields, the tools learn them from
//! it (`ptp-host facts`), and a test holds every writer to its declaration.

use crate::json::{Hex, Str};
use crate::timing::Summary;
use core::fmt::{self, Write};

/// Version of the record shapes below. 4: the run record lists the CPUs that came up
/// (`cpus`), a fault names its CPU, the kernel's `smp` record tells the bring-up. 3: `run` and `end` carry the machine's load (null
/// where there is none to read). 2: criterion measurements have the full summary, the
/// run record names its timer, `cpu` holds CPUID facts only (the chosen TSC frequency and its
/// source appear once, at the top of `run`), boot self-checks have a suite.
pub const SCHEMA: u32 = 4;

/// Every record type and its fields, in the order written (`type` first, always).
pub const RECORDS: &[(&str, &[&str])] = &[
    (
        "run",
        &[
            "schema",
            "where",
            "execution",
            "calibration_ticks_per_iter",
            "tsc_hz",
            "tsc_hz_source",
            "tsc_hz_pit",
            "cpu",
            "config",
            "timer",
            "fill_path",
            "load",
            "cpus",
        ],
    ),
    (
        "measurement",
        &[
            "suite",
            "bench",
            "impl",
            "pool_pages",
            "params",
            "unit",
            "per",
            "ops_per_sample",
            "n",
            "min",
            "p50",
            "p90",
            "p99",
            "max",
            "mean",
            "ci_low",
            "ci_high",
            "overhead",
        ],
    ),
    (
        "check",
        &["suite", "bench", "name", "pool_pages", "ok", "detail"],
    ),
    ("skip", &["suite", "bench", "pool_pages", "reason"]),
    (
        "target",
        &[
            "name",
            "bench",
            "ours",
            "other",
            "pool_pages",
            "ratio",
            "direction",
            "want",
            "met",
            "note",
        ],
    ),
    (
        "fault",
        &[
            "cpu",
            "vector",
            "name",
            "error_code",
            "rip",
            "cr2",
            "rsp",
            "bench",
        ],
    ),
    ("panic", &["msg", "location", "bench"]),
    ("error", &["kind", "msg"]),
    (
        "boot",
        &[
            "protocol",
            "cmdline",
            "cmdline_truncated",
            "free_ram_bytes",
            "free_regions",
            "kernel_start",
            "kernel_end",
            "boot_info",
            "rsdp",
        ],
    ),
    (
        "memmap",
        &["truncated", "entries", "free", "free_truncated"],
    ),
    ("selftest", &["passed", "failed"]),
    ("smp", &["source", "apic", "found", "left_out", "cpus"]),
    (
        "end",
        &[
            "status",
            "measurements",
            "checks",
            "checks_failed",
            "skips",
            "targets_missed",
            "load",
        ],
    ),
    ("exit", &["ok", "qemu_status", "boot_stack_used_bytes"]),
    (
        "crossover",
        &[
            "suite",
            "bench",
            "pool_pages",
            "page_size",
            "per_page",
            "full",
            "unit",
            "sizes",
            "per_page_costs",
            "full_costs",
            "n_star",
            "ceiling",
            "fixed_ceilings",
            "calibrated_ceiling",
            "calibration_ticks",
            "calibrated_worst_excess",
        ],
    ),
];

/// The suite of the kernel's boot self-checks (they belong to no benchmark suite).
pub const BOOT_SUITE: &str = "boot";

/// A JSON object being written: `Obj::new(w, "check").str("name", n).bool("ok", ok).end()`.
/// Write errors are remembered, not raised: output goes to a serial line that cannot fail
/// in a way the caller could handle.
pub struct Obj<'w> {
    w: &'w mut dyn Write,
    result: fmt::Result,
}

impl<'w> Obj<'w> {
    pub fn new(w: &'w mut dyn Write, ty: &str) -> Self {
        let result = write!(w, "{{\"type\":{}", Str(ty));
        Obj { w, result }
    }

    fn key(&mut self, k: &str) {
        if self.result.is_ok() {
            self.result = write!(self.w, ",{}:", Str(k));
        }
    }

    /// A string formatted while written, JSON-escaped (no allocator for a `format!`).
    pub fn str_fmt(mut self, k: &str, v: fmt::Arguments<'_>) -> Self {
        self.key(k);
        if self.result.is_ok() {
            self.result = (|| {
                self.w.write_char('"')?;
                crate::json::Escaper(&mut *self.w).write_fmt(v)?;
                self.w.write_char('"')
            })();
        }
        self
    }

    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        if self.result.is_ok() {
            self.result = write!(self.w, "{}", Str(v));
        }
        self
    }

    pub fn opt_str(self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    pub fn num(self, k: &str, v: u64) -> Self {
        self.raw(k, format_args!("{v}"))
    }

    pub fn opt_num(self, k: &str, v: Option<u64>) -> Self {
        match v {
            Some(v) => self.num(k, v),
            None => self.null(k),
        }
    }

    /// An address or other 64-bit value, as a hex string.
    pub fn hex(self, k: &str, v: u64) -> Self {
        self.raw(k, format_args!("{}", Hex(v)))
    }

    /// A float with 3 decimals (ticks per op); non-finite values become null.
    pub fn float(self, k: &str, v: f64) -> Self {
        if v.is_finite() {
            self.raw(k, format_args!("{v:.3}"))
        } else {
            self.null(k)
        }
    }

    pub fn opt_float(self, k: &str, v: Option<f64>) -> Self {
        match v {
            Some(v) => self.float(k, v),
            None => self.null(k),
        }
    }

    pub fn bool(self, k: &str, v: bool) -> Self {
        self.raw(k, format_args!("{v}"))
    }

    pub fn opt_bool(self, k: &str, v: Option<bool>) -> Self {
        match v {
            Some(v) => self.bool(k, v),
            None => self.null(k),
        }
    }

    /// The `load` field: the machine's load, or null.
    pub fn opt_load(self, v: Option<crate::load::Load>) -> Self {
        match v {
            Some(l) => self.with("load", |w| l.write_json(w)),
            None => self.null("load"),
        }
    }

    pub fn null(self, k: &str) -> Self {
        self.raw(k, format_args!("null"))
    }

    /// Already-formatted JSON (a nested object, a list).
    pub fn raw(mut self, k: &str, v: fmt::Arguments<'_>) -> Self {
        self.key(k);
        if self.result.is_ok() {
            self.result = self.w.write_fmt(v);
        }
        self
    }

    /// A nested value written by `f` (which writes the whole value, braces included).
    pub fn with(mut self, k: &str, f: impl FnOnce(&mut dyn Write) -> fmt::Result) -> Self {
        self.key(k);
        if self.result.is_ok() {
            self.result = f(self.w);
        }
        self
    }

    pub fn end(self) -> fmt::Result {
        self.result?;
        self.w.write_str("}\n")
    }
}

/// A JSON list written element by element: `List::new(w)?.item(...)`.
pub struct List<'w> {
    w: &'w mut dyn Write,
    first: bool,
}

impl<'w> List<'w> {
    pub fn open(w: &'w mut dyn Write) -> Result<Self, fmt::Error> {
        w.write_char('[')?;
        Ok(List { w, first: true })
    }

    pub fn item(&mut self, v: fmt::Arguments<'_>) -> fmt::Result {
        if !self.first {
            self.w.write_char(',')?;
        }
        self.first = false;
        self.w.write_fmt(v)
    }

    pub fn close(self) -> fmt::Result {
        self.w.write_char(']')
    }
}

/// Identifies one measurement.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub suite: &'a str,
    pub bench: &'a str,
    pub imp: &'a str,
    pub pool_pages: u32,
    /// "op" or "page".
    pub per: &'a str,
}

pub fn measurement(
    w: &mut dyn Write,
    key: Key<'_>,
    params: fmt::Arguments<'_>,
    s: &Summary,
) -> fmt::Result {
    Obj::new(w, "measurement")
        .str("suite", key.suite)
        .str("bench", key.bench)
        .str("impl", key.imp)
        .num("pool_pages", key.pool_pages as u64)
        .raw("params", params)
        .str("unit", s.unit.name())
        .str("per", key.per)
        .num("ops_per_sample", s.ops_per_sample)
        .num("n", s.n as u64)
        .float("min", s.min)
        .float("p50", s.p50)
        .float("p90", s.p90)
        .float("p99", s.p99)
        .float("max", s.max)
        .float("mean", s.mean)
        .opt_float("ci_low", s.ci.map(|c| c.0))
        .opt_float("ci_high", s.ci.map(|c| c.1))
        .opt_num("overhead", s.overhead)
        .end()
}

/// A check's identity: the suite and benchmark it belongs to, its name and pool size (none
/// for the kernel's boot self-checks).
#[derive(Debug, Clone, Copy)]
pub struct CheckKey<'a> {
    pub suite: &'a str,
    pub bench: &'a str,
    pub name: &'a str,
    pub pool_pages: Option<u32>,
}

pub fn check(
    w: &mut dyn Write,
    key: CheckKey<'_>,
    ok: bool,
    detail: fmt::Arguments<'_>,
) -> fmt::Result {
    Obj::new(w, "check")
        .str("suite", key.suite)
        .str("bench", key.bench)
        .str("name", key.name)
        .opt_num("pool_pages", key.pool_pages.map(u64::from))
        .bool("ok", ok)
        .str_fmt("detail", detail)
        .end()
}

pub fn skip(
    w: &mut dyn Write,
    suite: &str,
    bench: &str,
    pool_pages: u32,
    reason: &str,
) -> fmt::Result {
    Obj::new(w, "skip")
        .str("suite", suite)
        .str("bench", bench)
        .num("pool_pages", pool_pages as u64)
        .str("reason", reason)
        .end()
}

/// A speed target judged on a run (see [`crate::target`]).
#[derive(Debug, Clone, Copy)]
pub struct TargetRecord<'a> {
    pub name: &'a str,
    pub bench: &'a str,
    pub ours: &'a str,
    pub other: &'a str,
    pub pool_pages: u32,
    pub ratio: f64,
    /// How `ratio` is formed, e.g. "other/ours (higher is better)".
    pub direction: &'a str,
    pub want: fmt::Arguments<'a>,
    /// None: not judged here (the note says why).
    pub met: Option<bool>,
    pub note: &'a str,
}

pub fn target(w: &mut dyn Write, t: &TargetRecord<'_>) -> fmt::Result {
    Obj::new(w, "target")
        .str("name", t.name)
        .str("bench", t.bench)
        .str("ours", t.ours)
        .str("other", t.other)
        .num("pool_pages", t.pool_pages as u64)
        .float("ratio", t.ratio)
        .str("direction", t.direction)
        .str_fmt("want", t.want)
        .opt_bool("met", t.met)
        .str("note", t.note)
        .end()
}

/// An unexpected CPU exception (the run ends).
#[derive(Debug, Clone, Copy)]
pub struct FaultRecord<'a> {
    /// The CPU it happened on (0: the boot CPU).
    pub cpu: u32,
    pub vector: u8,
    pub name: &'a str,
    pub error_code: u64,
    pub rip: u64,
    pub cr2: u64,
    pub rsp: u64,
    pub bench: &'a str,
}

pub fn fault(w: &mut dyn Write, f: &FaultRecord<'_>) -> fmt::Result {
    Obj::new(w, "fault")
        .num("cpu", f.cpu as u64)
        .num("vector", f.vector as u64)
        .str("name", f.name)
        .hex("error_code", f.error_code)
        .hex("rip", f.rip)
        .hex("cr2", f.cr2)
        .hex("rsp", f.rsp)
        .str("bench", f.bench)
        .end()
}

/// A panic: its message, where (`file:line:col`), and what was running.
pub fn panic(
    w: &mut dyn Write,
    msg: fmt::Arguments<'_>,
    location: Option<&dyn fmt::Display>,
    bench: &str,
) -> fmt::Result {
    let o = Obj::new(w, "panic").str_fmt("msg", msg);
    let o = match location {
        Some(l) => o.str_fmt("location", format_args!("{l}")),
        None => o.null("location"),
    };
    o.str("bench", bench).end()
}

/// The run was refused or could not start: `kind` names what (a bad command line, pools that
/// do not fit, unreadable boot information), `msg` names the bad value.
pub fn error(w: &mut dyn Write, kind: &str, msg: fmt::Arguments<'_>) -> fmt::Result {
    Obj::new(w, "error")
        .str("kind", kind)
        .str_fmt("msg", msg)
        .end()
}

/// What the boot loader handed over (kernel only).
#[derive(Debug, Clone, Copy)]
pub struct BootRecord<'a> {
    pub protocol: &'a str,
    pub cmdline: &'a str,
    pub cmdline_truncated: bool,
    pub free_ram_bytes: u64,
    pub free_regions: usize,
    pub kernel: (u64, u64),
    pub boot_info: u64,
    pub rsdp: Option<u64>,
}

pub fn boot(w: &mut dyn Write, b: &BootRecord<'_>) -> fmt::Result {
    let o = Obj::new(w, "boot")
        .str("protocol", b.protocol)
        .str("cmdline", b.cmdline)
        .bool("cmdline_truncated", b.cmdline_truncated)
        .num("free_ram_bytes", b.free_ram_bytes)
        .num("free_regions", b.free_regions as u64)
        .hex("kernel_start", b.kernel.0)
        .hex("kernel_end", b.kernel.1)
        .hex("boot_info", b.boot_info);
    match b.rsdp {
        Some(r) => o.hex("rsdp", r),
        None => o.null("rsdp"),
    }
    .end()
}

/// The firmware memory map (base, length, E820 type) and the free RAM left (start, end).
pub fn memmap(
    w: &mut dyn Write,
    entries: &mut dyn Iterator<Item = (u64, u64, u32)>,
    truncated: bool,
    free: &mut dyn Iterator<Item = (u64, u64)>,
    free_truncated: bool,
) -> fmt::Result {
    Obj::new(w, "memmap")
        .bool("truncated", truncated)
        .with("entries", |w| {
            let mut l = List::open(w)?;
            for (base, len, kind) in entries {
                l.item(format_args!(
                    "{{\"base\":{},\"len\":{},\"type\":{kind}}}",
                    Hex(base),
                    Hex(len)
                ))?;
            }
            l.close()
        })
        .with("free", |w| {
            let mut l = List::open(w)?;
            for (start, end) in free {
                l.item(format_args!(
                    "{{\"start\":{},\"end\":{}}}",
                    Hex(start),
                    Hex(end)
                ))?;
            }
            l.close()
        })
        .bool("free_truncated", free_truncated)
        .end()
}

/// One CPU of the bring-up: its index (0: the boot CPU), its APIC ID, whether it came up, its
/// TSC against the boot CPU's (ticks, positive = ahead), and what happened, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuStart<'a> {
    pub cpu: u32,
    pub apic_id: u32,
    pub up: bool,
    pub tsc_offset_ticks: Option<i64>,
    pub detail: &'a str,
}

/// How the kernel found and started the CPUs: `source` of the list (`madt`, or `none` with
/// the reason in the boot CPU's detail), `apic` mode (`x2apic`, `xapic`), how many the firmware
/// listed, how many it left out (beyond the lab's maximum), each CPU.
pub fn smp(
    w: &mut dyn Write,
    source: &str,
    apic: &str,
    found: u32,
    left_out: u32,
    cpus: &[CpuStart<'_>],
) -> fmt::Result {
    Obj::new(w, "smp")
        .str("source", source)
        .str("apic", apic)
        .num("found", found as u64)
        .num("left_out", left_out as u64)
        .with("cpus", |w| {
            let mut l = List::open(w)?;
            for c in cpus {
                l.item(format_args!(
                    "{{\"cpu\":{},\"apic_id\":{},\"up\":{},\"tsc_offset_ticks\":{},\"detail\":{}}}",
                    c.cpu,
                    c.apic_id,
                    c.up,
                    OptI64(c.tsc_offset_ticks),
                    Str(c.detail)
                ))?;
            }
            l.close()
        })
        .end()
}

struct OptI64(Option<i64>);

impl fmt::Display for OptI64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("null"),
        }
    }
}

pub fn selftest(w: &mut dyn Write, passed: u32, failed: u32) -> fmt::Result {
    Obj::new(w, "selftest")
        .num("passed", passed as u64)
        .num("failed", failed as u64)
        .end()
}

/// Counts of what a run printed, for its `end` record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub measurements: u32,
    pub checks: u32,
    pub checks_failed: u32,
    pub skips: u32,
    pub targets_missed: u32,
}

/// `load`: the machine's load as the run ends ([`crate::platform::Platform::load`]).
pub fn end(
    w: &mut dyn Write,
    status: &str,
    c: &Counts,
    load: Option<crate::load::Load>,
) -> fmt::Result {
    Obj::new(w, "end")
        .str("status", status)
        .num("measurements", c.measurements as u64)
        .num("checks", c.checks as u64)
        .num("checks_failed", c.checks_failed as u64)
        .num("skips", c.skips as u64)
        .num("targets_missed", c.targets_missed as u64)
        .opt_load(load)
        .end()
}

/// The kernel's last words: whether everything passed, the exit status QEMU will report, and
/// how deep the boot stack went (`None` where not measured).
pub fn exit(
    w: &mut dyn Write,
    ok: bool,
    qemu_status: i32,
    boot_stack_used_bytes: Option<u64>,
) -> fmt::Result {
    Obj::new(w, "exit")
        .bool("ok", ok)
        .raw("qemu_status", format_args!("{qemu_status}"))
        .opt_num("boot_stack_used_bytes", boot_stack_used_bytes)
        .end()
}

/// Where flushing everything starts to beat flushing page by page, on this CPU.
pub struct CrossoverRecord<'a> {
    pub suite: &'a str,
    pub bench: &'a str,
    pub pool_pages: u32,
    pub page_size: &'a str,
    /// The two strategies compared, as named in their measurements.
    pub per_page: &'a str,
    pub full: &'a str,
    pub unit: &'a str,
    /// Cost of one flush + refill round per page count, both strategies.
    pub costs: &'a [vystem_ptp::flush::RoundCost],
    /// The smallest page count from which the full flush stays cheaper (None: never here).
    pub n_star: Option<u64>,
    /// The ceiling that calls for: flush page by page up to it.
    pub ceiling: u64,
    /// Fixed ceilings (Linux's 33 and neighbours) and what each costs over the sizes measured
    /// against always choosing the cheaper strategy (sum of the extra per round).
    pub fixed: &'a [(u64, f64)],
    pub calibrated_ceiling: u64,
    /// TSC ticks `vystem_ptp::flush::calibrate` took.
    pub calibration_ticks: u64,
    /// The calibrated policy's worst cost over the best choice, at any size measured (1.0 =
    /// always the best).
    pub calibrated_worst_excess: f64,
}

pub fn crossover(w: &mut dyn Write, c: &CrossoverRecord<'_>) -> fmt::Result {
    let list = |w: &mut dyn Write, f: &dyn Fn(&vystem_ptp::flush::RoundCost) -> f64| {
        let mut l = List::open(w)?;
        for x in c.costs {
            l.item(format_args!("{:.1}", f(x)))?;
        }
        l.close()
    };
    Obj::new(w, "crossover")
        .str("suite", c.suite)
        .str("bench", c.bench)
        .num("pool_pages", c.pool_pages as u64)
        .str("page_size", c.page_size)
        .str("per_page", c.per_page)
        .str("full", c.full)
        .str("unit", c.unit)
        .with("sizes", |w| {
            let mut l = List::open(w)?;
            for x in c.costs {
                l.item(format_args!("{}", x.pages))?;
            }
            l.close()
        })
        .with("per_page_costs", |w| list(w, &|x| x.per_page))
        .with("full_costs", |w| list(w, &|x| x.full))
        .opt_num("n_star", c.n_star)
        .num("ceiling", c.ceiling)
        .with("fixed_ceilings", |w| {
            w.write_char('{')?;
            for (i, (ceiling, extra)) in c.fixed.iter().enumerate() {
                write!(
                    w,
                    "{}\"{ceiling}\":{{\"regret\":{extra:.1}}}",
                    if i == 0 { "" } else { "," }
                )?;
            }
            w.write_char('}')
        })
        .num("calibrated_ceiling", c.calibrated_ceiling)
        .num("calibration_ticks", c.calibration_ticks)
        .float("calibrated_worst_excess", c.calibrated_worst_excess)
        .end()
}

/// What the `run` record says about where and how a run happened. The bench job on the host
/// adds what only it knows (run id, accel, git commit, QEMU version and arguments).
pub struct RunInfo<'a> {
    pub place: crate::platform::Place,
    pub execution: crate::timing::Execution,
    pub calibration_ticks_per_iter: f64,
    pub tsc: crate::platform::Tsc,
    pub cpu: &'a crate::cpu::CpuFacts,
    pub cfg: &'a crate::config::Config,
    /// Writes the `timer` object (braces included).
    pub timer: &'a dyn Fn(&mut dyn Write) -> fmt::Result,
    pub fill: vystem_ptp::Fill,
    /// The machine's load as the run starts.
    pub load: Option<crate::load::Load>,
    /// Writes the `cpus` value ([`crate::platform::Platform::write_cpus`]).
    pub cpus: &'a dyn Fn(&mut dyn Write) -> fmt::Result,
}

pub fn run(w: &mut dyn Write, info: &RunInfo<'_>) -> fmt::Result {
    let cfg = info.cfg;
    Obj::new(w, "run")
        .num("schema", SCHEMA as u64)
        .str("where", info.place.name())
        .str("execution", info.execution.name())
        .float(
            "calibration_ticks_per_iter",
            info.calibration_ticks_per_iter,
        )
        .opt_num("tsc_hz", info.tsc.hz)
        .str("tsc_hz_source", info.tsc.source)
        .opt_num("tsc_hz_pit", info.tsc.pit_hz)
        .with("cpu", |w| info.cpu.write_json(w))
        .with("config", |w| cfg.write_json(w))
        .with("timer", info.timer)
        .str("fill_path", info.fill.name())
        .opt_load(info.load)
        .with("cpus", info.cpus)
        .end()
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::timing::Unit;
    use std::string::String;
    use std::vec::Vec;

    fn summary() -> Summary {
        Summary {
            unit: Unit::Ticks,
            n: 2,
            ops_per_sample: 4,
            min: 1.0,
            p50: 1.5,
            p90: 2.0,
            p99: 2.0,
            max: 2.0,
            mean: 1.5,
            ci: None,
            overhead: Some(30),
        }
    }

    #[test]
    fn records_are_one_json_object_per_line() {
        let mut out = String::new();
        let key = Key {
            suite: "alloc",
            bench: "bump_alloc",
            imp: "lab-bump",
            pool_pages: 64,
            per: "op",
        };
        measurement(&mut out, key, format_args!("{{}}"), &summary()).unwrap();
        let key = CheckKey {
            suite: "ptp",
            bench: "ptp_build",
            name: "alias",
            pool_pages: Some(64),
        };
        check(
            &mut out,
            key,
            false,
            format_args!("read {:#x}, \"want\" 0x5a", 0),
        )
        .unwrap();
        Obj::new(&mut out, "x")
            .float("nan", f64::NAN)
            .opt_str("none", None)
            .end()
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "{\"type\":\"measurement\",\"suite\":\"alloc\",\"bench\":\"bump_alloc\",\"impl\":\"lab-bump\",\"pool_pages\":64,\"params\":{},\"unit\":\"ticks\",\"per\":\"op\",\"ops_per_sample\":4,\"n\":2,\"min\":1.000,\"p50\":1.500,\"p90\":2.000,\"p99\":2.000,\"max\":2.000,\"mean\":1.500,\"ci_low\":null,\"ci_high\":null,\"overhead\":30}");
        assert_eq!(lines[1], "{\"type\":\"check\",\"suite\":\"ptp\",\"bench\":\"ptp_build\",\"name\":\"alias\",\"pool_pages\":64,\"ok\":false,\"detail\":\"read 0x0, \\\"want\\\" 0x5a\"}");
        assert_eq!(lines[2], "{\"type\":\"x\",\"nan\":null,\"none\":null}");
    }

    /// The top-level keys of a one-line JSON object, in order (enough of a parser for our own
    /// output: strings never hold an unescaped quote, nesting is tracked).
    fn keys(line: &str) -> Vec<String> {
        let (mut keys, mut depth, mut in_str, mut esc, mut cur) =
            (Vec::new(), 0, false, false, String::new());
        let mut expect_key = false;
        for c in line.chars() {
            if in_str {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    in_str = false;
                    if expect_key {
                        keys.push(core::mem::take(&mut cur));
                        expect_key = false;
                    }
                } else if expect_key {
                    cur.push(c);
                }
                continue;
            }
            match c {
                '"' => {
                    in_str = true;
                }
                '{' | '[' => {
                    depth += 1;
                    expect_key = depth == 1 && c == '{';
                }
                '}' | ']' => depth -= 1,
                ',' if depth == 1 => expect_key = true,
                ':' => expect_key = false,
                _ => {}
            }
        }
        keys
    }

    fn declared(ty: &str) -> Vec<String> {
        let (_, fields) = RECORDS.iter().find(|(t, _)| *t == ty).unwrap();
        core::iter::once("type")
            .chain(fields.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn every_writer_writes_exactly_its_declared_fields() {
        use crate::config::Config;
        use crate::cpu::CpuFacts;
        use crate::platform::{Place, Tsc};
        use crate::timing::Execution;
        let mut lines: Vec<(&str, String)> = Vec::new();
        let mut w = |ty: &'static str, f: &dyn Fn(&mut String) -> fmt::Result| {
            let mut s = String::new();
            f(&mut s).unwrap();
            assert!(
                s.ends_with("}\n") && s.matches('\n').count() == 1,
                "{ty}: {s}"
            );
            lines.push((ty, s));
        };
        let key = Key {
            suite: "map",
            bench: "b",
            imp: "i",
            pool_pages: 64,
            per: "page",
        };
        let ck = CheckKey {
            suite: "boot",
            bench: "selftest",
            name: "n",
            pool_pages: None,
        };
        let cpu = CpuFacts::detect();
        let cfg = Config::default();
        w("run", &|s| {
            run(
                s,
                &RunInfo {
                    place: Place::Host,
                    execution: Execution::Native,
                    calibration_ticks_per_iter: 1.0,
                    tsc: Tsc {
                        hz: Some(1),
                        source: "x",
                        pit_hz: None,
                    },
                    cpu: &cpu,
                    cfg: &cfg,
                    timer: &|w| w.write_str("{}"),
                    fill: vystem_ptp::Fill::SSE2,
                    load: crate::load::Load::parse("0.1 0.2 0.3 1/2 3"),
                    cpus: &|w| w.write_str("null"),
                },
            )
        });
        w("measurement", &|s| {
            measurement(s, key, format_args!("{{\"a\":[1,2]}}"), &summary())
        });
        w("check", &|s| check(s, ck, true, format_args!("d")));
        w("skip", &|s| skip(s, "map", "b", 64, "why"));
        w("target", &|s| {
            target(
                s,
                &TargetRecord {
                    name: "t",
                    bench: "b",
                    ours: "o",
                    other: "p",
                    pool_pages: 64,
                    ratio: 2.0,
                    direction: "other/ours",
                    want: format_args!(">= 2x"),
                    met: None,
                    note: "",
                },
            )
        });
        w("fault", &|s| {
            fault(
                s,
                &FaultRecord {
                    cpu: 1,
                    vector: 14,
                    name: "#PF",
                    error_code: 0,
                    rip: 1,
                    cr2: 2,
                    rsp: 3,
                    bench: "b",
                },
            )
        });
        w("panic", &|s| panic(s, format_args!("m"), None, "b"));
        w("error", &|s| error(s, "bad_cmdline", format_args!("m")));
        w("boot", &|s| {
            boot(
                s,
                &BootRecord {
                    protocol: "pvh",
                    cmdline: "",
                    cmdline_truncated: false,
                    free_ram_bytes: 0,
                    free_regions: 0,
                    kernel: (0, 0),
                    boot_info: 0,
                    rsdp: None,
                },
            )
        });
        w("memmap", &|s| {
            memmap(
                s,
                &mut [(0, 1, 1), (2, 3, 2)].into_iter(),
                false,
                &mut [(0, 1)].into_iter(),
                false,
            )
        });
        w("selftest", &|s| selftest(s, 1, 0));
        w("smp", &|s| {
            let c = CpuStart {
                cpu: 1,
                apic_id: 1,
                up: false,
                tsc_offset_ticks: Some(-3),
                detail: "no \"answer\"",
            };
            smp(s, "madt", "x2apic", 2, 0, &[c, CpuStart { up: true, ..c }])
        });
        w("end", &|s| end(s, "ok", &Counts::default(), None));
        w("exit", &|s| exit(s, true, 33, Some(4096)));
        let costs = [vystem_ptp::flush::RoundCost {
            pages: 1,
            per_page: 2.0,
            full: 3.0,
        }];
        w("crossover", &|s| {
            crossover(
                s,
                &CrossoverRecord {
                    suite: "tlb",
                    bench: "tlb_crossover",
                    pool_pages: 64,
                    page_size: "4KiB",
                    per_page: "invlpg",
                    full: "cr3-reload",
                    unit: "ticks",
                    costs: &costs,
                    n_star: None,
                    ceiling: 1,
                    fixed: &[(33, 0.0)],
                    calibrated_ceiling: 1,
                    calibration_ticks: 5,
                    calibrated_worst_excess: 1.0,
                },
            )
        });
        let written: Vec<&str> = lines.iter().map(|(t, _)| *t).collect();
        let all: Vec<&str> = RECORDS.iter().map(|(t, _)| *t).collect();
        assert_eq!(written, all, "one writer per declared record type");
        for (ty, line) in &lines {
            assert_eq!(keys(line), declared(ty), "{ty}: {line}");
        }
    }
}
