//! The benchmark table under criterion, on the host: the same entries, under the same names, as
//! the bench kernel and the host runner run them. A thin adapter: each benchmark is a criterion
//! group (its contenders side by side, the pool size as parameter), each measurement goes
//! through `iter_custom` (untimed setup, timed batch), and criterion's own samples and
//! estimate come back as the lab's records, written by its one record writer.
//!
//! `scripts/bench.sh --criterion` runs it; the run configuration comes from `PTP_LAB_ARGS`
//! (`pools=1024,4096 suites=alloc quick=1`: criterion owns the command line), criterion's
//! options (`--save-baseline`, filters) pass through.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use ptp_lab::config::Config;
use ptp_lab::host::{Host, Stdout};
use ptp_lab::session;
use ptp_lab::timing::{nearest_rank, Id, Summary, Timer, TimerScope, Unit, Work};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Criterion's settings for a run: full, or `quick=1` / `mode=selftest` (a few samples).
struct Settings {
    sample_size: usize,
    warm_up: Duration,
    measurement: Duration,
}

impl Settings {
    fn of(cfg: &Config) -> Settings {
        if cfg.quick || cfg.mode == ptp_lab::config::Mode::Selftest {
            Settings {
                sample_size: 10,
                warm_up: Duration::from_millis(20),
                measurement: Duration::from_millis(100),
            }
        } else {
            Settings {
                sample_size: 20,
                warm_up: Duration::from_millis(500),
                measurement: Duration::from_secs(2),
            }
        }
    }
}

struct CriterionScope {
    c: Criterion,
    settings: Settings,
    /// The cost of an empty timed interval (`Instant::now` then `elapsed`), subtracted from
    /// every timed batch, as the RDTSC harness subtracts its own: one batch per iteration
    /// (the setup is untimed), so single-operation benchmarks would otherwise carry it.
    overhead: Duration,
    /// Where criterion writes its estimates (CRITERION_HOME).
    dir: PathBuf,
    args: Vec<String>,
}

impl TimerScope for CriterionScope {
    fn write_json(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        // A path that is not UTF-8 cannot be written: an error, not json!'s panic.
        let dir = serde_json::to_value(&self.dir).map_err(|_| core::fmt::Error)?;
        let timer = serde_json::json!({
            "kind": "criterion",
            "sample_size": self.settings.sample_size,
            "warm_up_ms": self.settings.warm_up.as_millis() as u64,
            "measurement_ms": self.settings.measurement.as_millis() as u64,
            "overhead_ns": self.overhead.as_nanos() as u64,
            "args": self.args,
            "dir": dir,
        });
        write!(w, "{timer}")
    }

    fn with_timer(
        &mut self,
        suite: &'static str,
        bench: &'static str,
        run: &mut dyn FnMut(&mut dyn Timer),
    ) {
        let mut group = self.c.benchmark_group(format!("{suite}/{bench}"));
        run(&mut CriterionTimer {
            group: &mut group,
            dir: &self.dir,
            overhead: self.overhead,
        });
        group.finish();
    }
}

struct CriterionTimer<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    dir: &'g Path,
    overhead: Duration,
}

impl Timer for CriterionTimer<'_, '_> {
    fn time(&mut self, id: Id<'_>, ops: u64, work: &mut dyn Work) -> Option<Summary> {
        let started = SystemTime::now();
        let overhead = self.overhead;
        let mut ran = false;
        self.group.throughput(Throughput::Elements(ops));
        self.group
            .bench_function(BenchmarkId::new(id.imp, id.pool_pages), |b| {
                ran = true;
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        work.setup();
                        let t = Instant::now();
                        work.batch();
                        total += t.elapsed().saturating_sub(overhead);
                    }
                    total
                })
            });
        if !ran {
            // Left out by a criterion filter: the work still runs once, untimed, so the checks
            // after it judge what it did (as after a selftest's one sample), not a state it
            // never reached.
            work.setup();
            work.batch();
        }
        let group = format!("{}/{}", id.suite, id.bench);
        read_back(
            self.dir,
            &group,
            id.imp,
            &id.pool_pages.to_string(),
            ops,
            started,
        )
    }
}

/// Criterion's result for one benchmark, per operation: its samples (each the mean time per
/// iteration over that sample) summarised as the lab summarises its own, and its estimate of
/// the mean with the 95 % confidence interval. None if criterion wrote nothing new (filtered).
fn read_back(
    dir: &Path,
    group: &str,
    function: &str,
    value: &str,
    ops: u64,
    since: SystemTime,
) -> Option<Summary> {
    let new = find(dir, group, function, value)?;
    let fresh = std::fs::metadata(new.join("estimates.json"))
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    if !fresh {
        return None;
    }
    let read = |name: &str| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(new.join(name)).ok()?).ok()
    };
    let (estimates, sample) = (read("estimates.json")?, read("sample.json")?);
    let ops = ops.max(1) as f64;
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (iters, times) = (nums(&sample["iters"]), nums(&sample["times"]));
    let mut per_op: Vec<f64> = iters.iter().zip(&times).map(|(i, t)| t / i / ops).collect();
    per_op.sort_by(f64::total_cmp);
    let n = per_op.len();
    if n == 0 {
        return None;
    }
    let pct = |p| per_op[nearest_rank(p, n)];
    let mean = &estimates["mean"];
    let ci = &mean["confidence_interval"];
    Some(Summary {
        unit: Unit::Ns,
        n,
        ops_per_sample: ops as u64,
        min: per_op[0],
        p50: pct(50),
        p90: pct(90),
        p99: pct(99),
        max: per_op[n - 1],
        mean: mean["point_estimate"].as_f64()? / ops,
        ci: Some((
            ci["lower_bound"].as_f64()? / ops,
            ci["upper_bound"].as_f64()? / ops,
        )),
        overhead: None,
    })
}

/// The `new/` directory criterion keeps for (group, function, value): found by the ids it
/// records in `benchmark.json`, not by guessing how it names directories.
fn find(dir: &Path, group: &str, function: &str, value: &str) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let meta = path.join("benchmark.json");
            if path.file_name().is_some_and(|n| n == "new") && meta.exists() {
                let v: Value = serde_json::from_slice(&std::fs::read(&meta).ok()?).ok()?;
                if v["group_id"] == group && v["function_id"] == function && v["value_str"] == value
                {
                    return Some(path);
                }
            } else {
                stack.push(path);
            }
        }
    }
    None
}

/// The least an empty timed interval costs on this machine (minimum of many).
fn clock_overhead() -> Duration {
    (0..10_000)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(&t);
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Where criterion writes (estimates, and its HTML report in `report/`): `CRITERION_HOME` first,
/// as criterion itself does; else `criterion/` in the target directory this driver was built
/// into (cargo puts it in `<target>/<profile>/deps/`), so it follows `CARGO_TARGET_DIR`,
/// `--target-dir` and `build.target-dir` alike, however relative the path was given.
fn criterion_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().ok();
    let deps = exe.as_deref().and_then(Path::parent);
    match deps
        .filter(|d| d.ends_with("deps"))
        .and_then(Path::parent)
        .and_then(Path::parent)
    {
        Some(target) => target.join("criterion"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion"),
    }
}

fn main() {
    let words = std::env::var("PTP_LAB_ARGS").unwrap_or_default();
    let cfg = match Config::parse(&words, &[]) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("criterion driver: PTP_LAB_ARGS: {e}");
            std::process::exit(ptp_lab::exit::ExitCode::Usage.host_status());
        }
    };
    // Criterion writes here, and the driver reads its estimates back from here.
    let dir = criterion_home();
    std::env::set_var("CRITERION_HOME", &dir);
    let settings = Settings::of(&cfg);
    let c = Criterion::default()
        .sample_size(settings.sample_size)
        .warm_up_time(settings.warm_up)
        .measurement_time(settings.measurement)
        .configure_from_args();
    let mut scope = CriterionScope {
        c,
        settings,
        overhead: clock_overhead(),
        dir,
        args: std::env::args().skip(1).collect(),
    };
    let mut host = Host::new(&cfg).unwrap_or_else(|e| {
        eprintln!("criterion driver: {e}");
        std::process::exit(ptp_lab::exit::ExitCode::Usage.host_status());
    });
    let mut out = Stdout(std::io::stdout());
    let counts = session::run(&mut host, &mut out, &mut scope, &cfg, Default::default());
    scope.c.final_summary();
    std::process::exit(session::status(&counts).0.host_status());
}
