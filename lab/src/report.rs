//! JSON Lines records, schema version 1 (results/README.md): one object per line, written to
//! any `core::fmt::Write` (the serial port in the kernel, stdout on the host). No allocator.

use crate::json::Str;
use crate::timing::Summary;
use core::fmt::{self, Write};

pub const SCHEMA: u32 = 1;

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
            None => self.raw(k, format_args!("null")),
        }
    }

    pub fn num(self, k: &str, v: u64) -> Self {
        self.raw(k, format_args!("{v}"))
    }

    pub fn opt_num(self, k: &str, v: Option<u64>) -> Self {
        match v {
            Some(v) => self.num(k, v),
            None => self.raw(k, format_args!("null")),
        }
    }

    /// A float with 3 decimals (ticks per op); non-finite values become null.
    pub fn float(self, k: &str, v: f64) -> Self {
        if v.is_finite() {
            self.raw(k, format_args!("{v:.3}"))
        } else {
            self.raw(k, format_args!("null"))
        }
    }

    pub fn bool(self, k: &str, v: bool) -> Self {
        self.raw(k, format_args!("{v}"))
    }

    /// Already-formatted JSON (a nested object, a list, null).
    pub fn raw(mut self, k: &str, v: fmt::Arguments<'_>) -> Self {
        self.key(k);
        if self.result.is_ok() {
            self.result = self.w.write_fmt(v);
        }
        self
    }

    /// A nested object written by `f` (which writes the braces' content, without them).
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
        .str("unit", "ticks")
        .str("per", key.per)
        .num("ops_per_sample", s.ops_per_sample)
        .num("n", s.n as u64)
        .float("min", s.min)
        .float("p50", s.p50)
        .float("p90", s.p90)
        .float("p99", s.p99)
        .float("max", s.max)
        .float("mean", s.mean)
        .num("overhead", s.overhead)
        .end()
}

/// A check's identity: the suite and benchmark it belongs to, its name and pool size.
#[derive(Debug, Clone, Copy)]
pub struct CheckKey<'a> {
    pub suite: &'a str,
    pub bench: &'a str,
    pub name: &'a str,
    pub pool_pages: u32,
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
        .num("pool_pages", key.pool_pages as u64)
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

/// Counts of what a run printed, for its `end` record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub measurements: u32,
    pub checks: u32,
    pub checks_failed: u32,
    pub skips: u32,
}

pub fn end(w: &mut dyn Write, status: &str, c: &Counts) -> fmt::Result {
    Obj::new(w, "end")
        .str("status", status)
        .num("measurements", c.measurements as u64)
        .num("checks", c.checks as u64)
        .num("checks_failed", c.checks_failed as u64)
        .num("skips", c.skips as u64)
        .end()
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::string::String;

    #[test]
    fn records_are_one_json_object_per_line() {
        let mut out = String::new();
        let s = Summary {
            n: 2,
            ops_per_sample: 4,
            min: 1.0,
            p50: 1.5,
            p90: 2.0,
            p99: 2.0,
            max: 2.0,
            mean: 1.5,
            overhead: 30,
        };
        let key = Key {
            suite: "alloc",
            bench: "bump_alloc",
            imp: "lab-bump",
            pool_pages: 64,
            per: "op",
        };
        measurement(&mut out, key, format_args!("{{}}"), &s).unwrap();
        let key = CheckKey {
            suite: "ptp",
            bench: "ptp_build",
            name: "alias",
            pool_pages: 64,
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
        let lines: std::vec::Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "{\"type\":\"measurement\",\"suite\":\"alloc\",\"bench\":\"bump_alloc\",\"impl\":\"lab-bump\",\"pool_pages\":64,\"params\":{},\"unit\":\"ticks\",\"per\":\"op\",\"ops_per_sample\":4,\"n\":2,\"min\":1.000,\"p50\":1.500,\"p90\":2.000,\"p99\":2.000,\"max\":2.000,\"mean\":1.500,\"overhead\":30}");
        assert_eq!(lines[1], "{\"type\":\"check\",\"suite\":\"ptp\",\"bench\":\"ptp_build\",\"name\":\"alias\",\"pool_pages\":64,\"ok\":false,\"detail\":\"read 0x0, \\\"want\\\" 0x5a\"}");
        assert_eq!(lines[2], "{\"type\":\"x\",\"nan\":null,\"none\":null}");
    }
}

/// What the `run` record says about where and how a run happened. The host-side collector adds
/// what only the host knows (run id, accel, git commit, QEMU version and arguments).
pub struct RunInfo<'a> {
    /// "kernel" or "host".
    pub place: &'a str,
    pub execution: crate::timing::Execution,
    pub calibration_ticks_per_iter: f64,
    pub tsc_hz: Option<u64>,
    pub tsc_hz_source: &'a str,
    pub cpu: &'a crate::cpu::CpuFacts,
    /// The PIT-calibrated TSC (kernel only).
    pub pit_hz: Option<u64>,
    pub cfg: &'a crate::suites::Config,
    pub harness_overhead: u64,
    pub budget: crate::timing::Budget,
}

pub fn run(w: &mut dyn Write, info: &RunInfo<'_>) -> fmt::Result {
    let cfg = info.cfg;
    Obj::new(w, "run")
        .num("schema", SCHEMA as u64)
        .str("where", info.place)
        .str("execution", info.execution.name())
        .float("calibration_ticks_per_iter", info.calibration_ticks_per_iter)
        .opt_num("tsc_hz", info.tsc_hz)
        .str("tsc_hz_source", info.tsc_hz_source)
        .with("cpu", |w| info.cpu.write_json(w, info.pit_hz))
        .with("config", |w| {
            write!(w, "{{\"mode\":{},\"suites\":[", Str(if cfg.mode == crate::suites::Mode::Selftest { "selftest" } else { "bench" }))?;
            let mut first = true;
            for s in crate::suites::Suite::ALL.into_iter().filter(|s| cfg.suites.has(*s)) {
                write!(w, "{}{}", if first { "" } else { "," }, Str(s.name()))?;
                first = false;
            }
            w.write_str("],\"pool_pages\":[")?;
            for (i, p) in cfg.pools().iter().enumerate() {
                write!(w, "{}{p}", if i == 0 { "" } else { "," })?;
            }
            write!(w, "],\"quick\":{},\"seed\":{}}}", cfg.quick, cfg.seed)
        })
        .with("harness", |w| {
            let b = info.budget;
            write!(
                w,
                "{{\"overhead_ticks\":{},\"budget_ticks\":{},\"min_samples\":{},\"max_samples\":{},\"warmup\":{},\"fill_path\":{}}}",
                info.harness_overhead,
                b.ticks,
                b.min_samples,
                b.max_samples,
                b.warmup,
                Str(crate::fill::path_name())
            )
        })
        .end()
}
