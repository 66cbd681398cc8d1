//! One run of the benchmark table, as every platform builds it: calibrate and classify the
//! execution, write the `run` record, run the table, judge the speed targets, write `end`.
//! The bench kernel, the host runner and the criterion driver all call [`run`].

use crate::case::Case;
use crate::config::Config;
use crate::exit::ExitCode;
use crate::json::With;
use crate::platform::Platform;
use crate::record::{self, Counts, RunRecord};
use crate::suites::{self, Tally};
use crate::target::Judge;
use crate::timing::{self, Execution, TimerScope};
use core::fmt::Write;

/// Run `cfg` on `platform`, timing through `scope`. `counts` carries what the caller already
/// printed (the kernel's boot self-checks); the `end` record counts everything.
pub fn run(
    platform: &mut dyn Platform,
    out: &mut dyn Write,
    scope: &mut dyn TimerScope,
    cfg: &Config,
    mut counts: Counts,
) -> Counts {
    platform.set_current_bench("calibration");
    let cpu = *platform.cpu();
    let calibration = timing::calibration_loop(cpu.rdtscp);
    let execution = Execution::classify(cpu.hypervisor.as_ref().map(|h| h.as_str()), calibration);
    let place = platform.place();
    let tsc = platform.tsc();
    let shared: &dyn Platform = platform;
    let _ = RunRecord {
        schema: record::SCHEMA,
        place,
        execution,
        calibration_ticks_per_iter: calibration,
        tsc_hz: tsc.hz,
        tsc_hz_source: tsc.source,
        tsc_hz_pit: tsc.pit_hz,
        cpu: &cpu,
        config: cfg,
        timer: &With(|w: &mut dyn Write| scope.write_json(w)),
        fill_path: cpu.fill(),
        load: shared.load(),
        cpus: &With(|w: &mut dyn Write| shared.write_cpus(w)),
    }
    .write(out);
    let _ = writeln!(
        out,
        "# {} run, {}: {} ticks per calibration iteration",
        place.name(),
        execution.name(),
        calibration
    );
    let mut judge = Judge::new(crate::suites::targets::TARGETS);
    let tally = Tally {
        counts: &mut counts,
        judge: &mut judge,
        execution,
    };
    suites::run_all(platform, out, scope, cfg, tally);
    judge.report(out, place, execution, cfg.pools(), &mut counts);
    let _ = record::end(status(&counts).1, &counts, platform.load()).report(out);
    let _ = writeln!(
        out,
        "# summary: {} run, {} ({}): {} measurements, {} checks ({} failed), {} skipped, {} targets missed",
        place.name(),
        execution.name(),
        cpu.brand.as_str().trim(),
        counts.measurements,
        counts.checks,
        counts.checks_failed,
        counts.skips,
        counts.targets_missed
    );
    counts
}

/// How a run with these counts ends: its exit code and `end` status.
pub fn status(counts: &Counts) -> (ExitCode, &'static str) {
    if counts.checks_failed == 0 {
        (ExitCode::Success, "ok")
    } else {
        (ExitCode::Failure, "checks_failed")
    }
}
