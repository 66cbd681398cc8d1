"""The main job: run the suites where the plan says (the bench kernel under QEMU or Bochs, the
host runner, criterion: tools/ptplab/runners.py), collect its JSON Lines, write one new results
file, print a readable table, and judge the run alike whatever ran it.

Every bad input is one line naming the value and a non-zero exit (BenchError); a hung guest is
a timeout error showing the last serial lines; nothing already recorded is overwritten.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import signal
import sys
from pathlib import Path

from . import results, runners, schema, stream
from .cli import BenchError, Exit, door_parser, interrupted, say
from .plan import Plan, checked, hand_over
from .table import render


def arg_parser() -> argparse.ArgumentParser:
    """scripts/bench.sh's --help, from the options table (the plan checks, this only lists)."""
    return door_parser("bench", prog="scripts/bench.sh", description="Run the PTP lab's benchmark suites: boot the "
                       "bench kernel (or run the host runner, or criterion), write one new results file, print a table.",
                       epilog="Every option is checked before anything is set up or run. Arguments after -- go to "
                              "criterion (with --criterion). Ctrl-C or SIGTERM stops the run and keeps what was "
                              "measured as a partial file (exit 130 or 143).")


def main(argv: list[str]) -> int:
    try:
        if {"-h", "--help"} & set(argv[:argv.index("--")] if "--" in argv else argv):
            arg_parser().print_help()
            return 0
        made = checked(argv)
        plan = Plan.from_checked(made)
        if plan.validate:
            # What scripts/bench.sh sets up before the run: the runner's needs, one line.
            hand_over(made, argv)
            print(" ".join(plan.needs))
            return 0
        if plan.runner in runners.WRITES:
            return runners.WRITES[plan.runner](plan)
        paths = []
        for i in range(plan.repeat):
            if plan.repeat > 1:
                say(f"bench: run {i + 1} of {plan.repeat}")
            paths.append(run(plan))
        if plan.repeat > 1:
            from .table import spread
            print(spread([results.load(p) for p in paths]))
        return write_report(plan, paths)
    except BenchError as e:
        say(f"bench: error: {e}")
        return e.code
    except KeyboardInterrupt:
        say("bench: interrupted before anything was measured")
        return 128 + signal.SIGINT


def write_report(plan: Plan, paths: list[Path]) -> int:
    """The decision report after a run, from this run's files and those in results/: the costs
    from this run (and its repeats) when it is a native host run, otherwise from the newest one
    recorded; the report says which files it used and which it left out."""
    if plan.report is None:
        return 0
    from . import report
    files = list(dict.fromkeys(p.resolve() for p in [*paths, *sorted(results.RESULTS.glob("*.jsonl"))]))
    say(f"bench: decision report from this run and results/ ({plan.report})")
    return report.main([*map(str, files), "--out", str(plan.report), "--layouts", str(plan.layouts)])


def run(plan: Plan) -> Path:
    """One run; the results file it wrote (or BenchError)."""
    try:
        plan.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"--out: cannot create {plan.out}: {e.strerror}")
    start = runners.STARTS[plan.runner](plan)
    say(f"bench: running {start.where}: suites {','.join(plan.suites)}, pools {','.join(map(str, plan.pools))}"
        f"{', quick' if plan.quick else ''}{', selftest' if plan.selftest else ''} (timeout {plan.timeout} s)")
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    # The source measured is the tree as the run starts: a long run outlives commits made meanwhile.
    commit, dirty = results.git_facts()
    out = stream.run_process(start.cmd, plan.timeout, progress=lambda s: say(f"bench:   {s}"), env=start.env,
                             serial=start.serial)

    extra = {"started_utc": started, "git_commit": commit, "git_dirty": dirty, "wall_s": round(out.wall_s, 3),
             "first_result_s": None if out.first_result_s is None else round(out.first_result_s, 3)}
    if start.record_extra is not None:
        extra.update(start.record_extra())
    extra.update(start.extra)
    run_rec = results.complete_run_record(out.records, out.boot, start.accel, extra)

    end = out.end()
    failed_checks = [r for r in out.records if r.get("type") == "check" and not r.get("ok")]
    fault = next((r for r in out.records if r.get("type") in ("fault", "panic")), None)
    usage = next((r for r in out.records if r.get("type") == "error"), None)
    complete = end is not None and run_rec is not None and not out.timed_out and out.status in start.ended()
    if start.serial is not None:
        shutil.rmtree(start.serial.parent, ignore_errors=True)  # the ISO and Bochs's files; the lines are in out
    if start.refused() is not None and out.status == start.refused():
        # Nothing was measured: a bad command line or a pool that does not fit. No file.
        raise BenchError(f"the kernel refused the run: {usage.get('msg') if usage else 'usage exit'}")
    complete = complete and out.interrupted is None
    path = results.save(plan.out, start.label, out.records, out.log, partial=not complete)

    problems = schema.validate(out.records) if complete else []
    if complete:
        print(render(out.records))
        say(f"bench: wrote {path} ({sum(r.get('type') == 'measurement' for r in out.records)} measurements, "
            f"{len(failed_checks)} failed checks) in {out.wall_s:.1f} s")
        if start.after is not None:
            say(start.after(out.records[0]))
    if out.interrupted is not None:
        name = signal.Signals(out.interrupted).name
        raise BenchError(f"interrupted by {name}: stopped the run and kept what was measured "
                         f"({sum(r.get('type') == 'measurement' for r in out.records)} measurements) in {path}",
                         code=interrupted(out.interrupted))
    if out.timed_out:
        tail = "\n".join(out.log[-15:])
        raise BenchError(f"timeout: no end record after {plan.timeout} s; partial output kept in {path}\n"
                         f"last serial lines:\n{tail}", code=Exit.HUNG)
    if not complete:
        detail = json.dumps(fault) if fault else f"exit status {out.status}"
        tail = "\n".join(out.log[-15:])
        raise BenchError(f"the run crashed ({detail}); partial output kept in {path}\nlast lines:\n{tail}", code=Exit.CRASHED)
    if problems:
        raise BenchError("schema problems: " + "; ".join(problems[:5]), code=Exit.SCHEMA)
    if failed_checks:
        names = ", ".join(f"{c.get('suite', '')}/{c['name']}" for c in failed_checks[:5])
        raise BenchError(f"{len(failed_checks)} checks failed: {names} (see {path})", code=Exit.CHECKS_FAILED)
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
