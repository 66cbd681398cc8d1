"""The main job: boot the bench kernel under QEMU (KVM or TCG) or run the host runner, collect
its JSON Lines, write one new results file, and print a readable table.

Every bad input is one line naming the value and a non-zero exit (BenchError); a hung guest is
a timeout error showing the last serial lines; nothing already recorded is overwritten.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import lab, layouts, qemu, results, schema, stream
from .cli import BenchError, Exit, checked_plan, door_parser, interrupted, say
from .table import render

# The criterion driver over the same table (lab/ptp-lab/benches/lab.rs); PTP_LAB_ARGS carries the run's words.
CRITERION = ["cargo", "bench", "--quiet", "-p", "ptp-lab", "--features", "std", "--bench", "lab", "--"]


def arg_parser() -> argparse.ArgumentParser:
    """scripts/bench.sh's --help, from the options table (the plan checks, this only lists)."""
    return door_parser("bench", prog="scripts/bench.sh", description="Run the PTP lab's benchmark suites: boot the "
                       "bench kernel (or run the host runner, or criterion), write one new results file, print a table.",
                       epilog="Every option is checked before anything is set up or run. Arguments after -- go to "
                              "criterion (with --criterion). Ctrl-C or SIGTERM stops the run and keeps what was "
                              "measured as a partial file (exit 130 or 143).")


# scripts/bench.sh hands the plan its check made to the run it starts, so the arguments are checked once.
PLAN_ENV = "PTPLAB_PLAN"


@dataclass
class Plan:
    """A checked run: `ptp-host plan`'s answer (lab/ptp-lab/src/plan.rs), as the runners use it."""
    runner: str
    needs: list[str]
    pools: list[int]
    suites: list[str]
    quick: bool
    selftest: bool
    out: Path
    accel: str
    timeout: int
    memory: int
    seed: int
    cpus: int
    kernel: Path
    host_bin: Path
    qemu: str
    bochs: str
    extra: str
    words: str
    criterion_args: list[str] = field(default_factory=list)
    repeat: int = 1
    layouts: Path | None = None
    report: Path | None = None
    image: Path | None = None
    menu_timeout: int = 5
    validate: bool = False

    @property
    def host(self) -> bool:
        return self.runner == "host"

    @property
    def criterion(self) -> bool:
        return self.runner == "criterion"

    @classmethod
    def from_checked(cls, p: dict) -> "Plan":
        o = p["options"]
        path = lambda k: None if o.get(k) is None else Path(o[k])  # noqa: E731
        return cls(runner=p["runner"], needs=p["needs"], pools=p["config"]["pool_pages"],
                   suites=p["config"]["suites"], quick=p["config"]["quick"], selftest=p["config"]["mode"] == "selftest",
                   out=path("out"), accel=o.get("accel") or "none", timeout=o.get("timeout") or 0,
                   memory=o.get("memory") or 0, seed=p["config"]["seed"], cpus=o.get("cpus") or 1,
                   kernel=path("kernel") or lab.KERNEL, host_bin=path("host_bin") or lab.HOST_BIN,
                   qemu=o.get("qemu") or "", bochs=o.get("bochs") or "", extra=o.get("append_extra") or "",
                   words=p["cmdline"], criterion_args=p["criterion_args"], repeat=o.get("repeat") or 1,
                   layouts=path("layouts"), report=path("report"), image=path("image"),
                   menu_timeout=o.get("menu_timeout", 5), validate=o.get("validate", False))

    def cmdline(self) -> str:
        return self.words


def plan_from_args(argv: list[str], door: str = "bench") -> Plan:
    return Plan.from_checked(checked(argv, door))


def checked(argv: list[str], door: str = "bench") -> dict:
    """The run `argv` asks for, checked once: by `ptp-host plan`, or the plan scripts/bench.sh
    had it make for these very arguments (a file named by PLAN_ENV, used once)."""
    handed = os.environ.get(PLAN_ENV)
    if handed and Path(handed).is_file():
        try:
            made = json.loads(Path(handed).read_text())
            Path(handed).unlink()
            if made.get("args") == argv and made.get("door") == door:
                return made
        except (OSError, ValueError):
            pass  # not ours to trust: check the arguments here
    return checked_plan(door, argv)


def hand_over(made: dict, argv: list[str]) -> None:
    """--validate under scripts/bench.sh: keep the plan for the run it starts with the same
    arguments (less this --validate)."""
    handed = os.environ.get(PLAN_ENV)
    if handed and "--validate" in argv:
        rest = list(argv)
        rest.remove("--validate")
        run = {**made, "args": rest, "options": {**made["options"], "validate": False}}
        Path(handed).write_text(json.dumps(run))


def layouts_module(plan: Plan, work: Path) -> Path | None:
    """With the layouts or churn suite: the layouts as the kernel reads them (`# NAME`, then
    `START END` hex lines of the ranges a PTP maps), in a file to hand over as a boot module (on
    the host: the file the facts' `layouts_env` variable names)."""
    if not {"layouts", "churn"} & set(plan.suites) or plan.layouts is None:
        return None
    paths = sorted(plan.layouts.glob("*.json"))
    if not paths:
        raise BenchError(f"--layouts: no layouts in {plan.layouts} (scripts/capture-layouts.sh records them)")
    text = []
    for p in paths:
        lay = layouts.read(p)
        text.append(f"# {lay.name}\n" + "".join(f"{s:x} {e:x}\n" for s, e in lay.mapped()))
    if "layouts" in plan.suites:
        from .lifetimes import DIR as TRACES
        from .replay import kernel_blocks
        text.append(kernel_blocks(TRACES))  # a few lifetimes, replayed on real page tables
    path = work / "layouts.txt"
    path.write_text("".join(text))
    return path


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
        if plan.image is not None:
            return write_image(plan)
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


def image_entries(plan: Plan, facts: dict) -> list[tuple[str, str]]:
    """The real-hardware image's menu: this run's options first (the default), then the
    standard suites, a pool-size sweep, the selftest and the TLB suite on every CPU (each line
    made by the plan's check, as a run's is)."""
    def line(*args: str) -> str:
        keep = ["--seed", str(plan.seed)] + (["--append-extra", plan.extra] if plan.extra else [])
        return checked_plan("bench", ["--image", "menu.iso", *keep, *args])["cmdline"]
    sweep = facts["pool_pages"]["sweep"]
    entries = [("PTP lab: the default run (as built)", plan.cmdline()),
               ("PTP lab: every suite, the standard pool", line()),
               (f"PTP lab: pool-size sweep {sweep[0]} ... {sweep[-1]}",
                line("--pool-pages", ",".join(map(str, sweep)))),
               ("PTP lab: selftest (every check, quick)", line("--selftest", "--pool-pages", "64,1024")),
               ("PTP lab: TLB suite on every CPU", line("--suite", "tlb"))]
    seen, out = set(), []
    for title, cmd in entries:
        if cmd not in seen:
            seen.add(cmd)
            out.append((title, cmd))
    return out


def host_layouts(plan: Plan) -> dict:
    """The environment that hands the layouts to a host run (its boot module, in the kernel)."""
    module = layouts_module(plan, Path(tempfile.mkdtemp(prefix="ptplab-module-")))
    return {lab.facts()["layouts_env"]: str(module)} if module else {}


def write_image(plan: Plan) -> int:
    """--image FILE: the hybrid image for real machines (and for QEMU/Bochs)."""
    from .iso import IsoError, make_image
    if not plan.kernel.exists():
        raise BenchError(f"kernel {plan.kernel} not built (cd bench-kernel && cargo build --release)")
    if plan.image.exists():
        raise BenchError(f"--image {plan.image}: exists; images are not overwritten (remove it or name another)")
    try:
        plan.image.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="ptplab-image-"))
        module = layouts_module(Plan(**{**plan.__dict__, "suites": lab.facts()["suites"]}), work)
        entries = image_entries(plan, lab.facts())
        make_image(plan.kernel, plan.image, entries, timeout=plan.menu_timeout, module=module)
    except IsoError as e:
        raise BenchError(f"--image: {e}")
    except OSError as e:
        raise BenchError(f"--image {plan.image}: {e.strerror}")
    say(f"bench: wrote {plan.image} (BIOS and UEFI, CD and USB stick); menu, first entry after "
        f"{plan.menu_timeout} s:\n" + "\n".join(f"  {t}: {c}" for t, c in entries))
    return 0


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


def criterion_report(plan: Plan, run: dict) -> str:
    """Where criterion's own HTML report is, from the directory the driver says it wrote to."""
    home = Path((run.get("timer") or {}).get("dir") or "")
    if "--noplot" in plan.criterion_args:
        return f"bench: criterion's estimates in {home} (no HTML report: --noplot)"
    return f"bench: criterion's HTML report: {home / 'report' / 'index.html'}"


def run(plan: Plan) -> Path:
    """One run; the results file it wrote (or BenchError)."""
    try:
        plan.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"--out: cannot create {plan.out}: {e.strerror}")
    probe_note = None
    env = None
    serial = None
    exit_codes = lab.facts()["exit"]
    if plan.criterion:
        accel, label = "none", "criterion"
        cmd = CRITERION + plan.criterion_args
        env = {"PTP_LAB_ARGS": plan.cmdline(), **host_layouts(plan)}
        done = set(exit_codes["host"][k] for k in ("success", "failure"))
    elif plan.host:
        if not plan.host_bin.exists():
            raise BenchError(f"host runner {plan.host_bin} not built (cargo build --release -p ptp-lab --features std)")
        accel = label = "none"
        cmd = [str(plan.host_bin)] + plan.cmdline().split()
        env = host_layouts(plan)
        done = set(exit_codes["host"][k] for k in ("success", "failure"))
    elif plan.accel == "bochs":
        if shutil.which(plan.bochs) is None:
            raise BenchError(f"{plan.bochs} not found: install the Debian packages bochs bochs-sdl bochsbios vgabios "
                             "(scripts/bench.sh does it when run as root)")
        if not plan.kernel.exists():
            raise BenchError(f"kernel {plan.kernel} not built (cd bench-kernel && cargo build --release)")
        from . import bochs
        from .iso import IsoError, make_iso
        accel = label = "bochs"
        work = Path(tempfile.mkdtemp(prefix="ptplab-bochs-"))
        try:
            iso = make_iso(plan.kernel, plan.cmdline(), work / "bench.iso", module=layouts_module(plan, work))
        except IsoError as e:
            raise BenchError(f"--accel bochs: {e}")
        cmd, serial = bochs.command(plan.bochs, work, iso, plan.memory, plan.cpus)
        env = bochs.ENV
        done = set(exit_codes["kernel"][k]["qemu_status"] for k in ("success", "failure"))
    else:
        if shutil.which(plan.qemu) is None:
            raise BenchError(f"{plan.qemu} not found: install the Debian package qemu-system-x86 "
                             "(scripts/bench.sh does it when run as root)")
        if not plan.kernel.exists():
            raise BenchError(f"kernel {plan.kernel} not built (cd bench-kernel && cargo build --release)")
        accel = plan.accel
        if accel in ("auto", "kvm"):
            ok, why = qemu.probe_kvm(plan.qemu, plan.kernel, plan.cpus)
            probe_note = f"kvm probe: {'usable' if ok else 'unusable'}: {why}"
            if ok:
                accel = "kvm"
            elif plan.accel == "kvm":
                raise BenchError(f"--accel kvm: KVM cannot run the bench kernel here: {why}", code=Exit.KVM_UNUSABLE)
            else:
                accel = "tcg"
                banner = "!" * 78
                say(f"{banner}\n! KVM cannot run the bench kernel here: {why}\n"
                    f"! Falling back to TCG (emulation). Results are labelled accel=tcg, execution=emulated:\n"
                    f"! timings of privileged instructions (invlpg, CR3) mean nothing there.\n{banner}")
        label = accel
        module = layouts_module(plan, Path(tempfile.mkdtemp(prefix="ptplab-module-")))
        cmd = qemu.qemu_cmd(plan.qemu, plan.kernel, plan.memory, plan.cpus, accel, plan.cmdline(), module)
        done = set(exit_codes["kernel"][k]["qemu_status"] for k in ("success", "failure"))
    where = ("criterion on the host" if plan.criterion else "host process" if plan.host
             else "bench kernel under " + ("Bochs" if accel == "bochs" else accel.upper()))
    say(f"bench: running {where}: suites {','.join(plan.suites)}, pools {','.join(map(str, plan.pools))}"
        f"{', quick' if plan.quick else ''}{', selftest' if plan.selftest else ''} (timeout {plan.timeout} s)")
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    # The source measured is the tree as the run starts: a long run outlives commits made meanwhile.
    commit, dirty = results.git_facts()
    out = stream.run_process(cmd, plan.timeout, progress=lambda s: say(f"bench:   {s}"), env=env, serial=serial)

    extra = {"started_utc": started, "git_commit": commit, "git_dirty": dirty, "wall_s": round(out.wall_s, 3),
             "first_result_s": None if out.first_result_s is None else round(out.first_result_s, 3)}
    if accel == "bochs":
        from . import bochs
        extra.update({"emulator": bochs.version(plan.bochs, plan.cpus),
                      "bochs_config": (Path(cmd[3])).read_text().splitlines()})
    elif not (plan.host or plan.criterion):
        version = qemu.qemu_version(plan.qemu)
        extra.update({"emulator": version, "qemu_version": version, "qemu_args": cmd[1:]})
    if probe_note:
        extra["kvm_probe"] = probe_note
    run_rec = results.complete_run_record(out.records, out.boot, accel, extra)

    end = out.end()
    failed_checks = [r for r in out.records if r.get("type") == "check" and not r.get("ok")]
    fault = next((r for r in out.records if r.get("type") in ("fault", "panic")), None)
    usage = next((r for r in out.records if r.get("type") == "error"), None)
    complete = end is not None and run_rec is not None and not out.timed_out and out.status in done
    if serial is not None:
        shutil.rmtree(serial.parent, ignore_errors=True)  # the ISO and Bochs's files; the serial lines are in out
    if out.status == exit_codes["kernel"]["usage"]["qemu_status"] and not (plan.host or plan.criterion):
        # Nothing was measured: a bad command line or a pool that does not fit. No file.
        raise BenchError(f"the kernel refused the run: {usage.get('msg') if usage else 'usage exit'}")
    complete = complete and out.interrupted is None
    path = results.save(plan.out, label, out.records, out.log, partial=not complete)

    problems = schema.validate(out.records) if complete else []
    if complete:
        print(render(out.records))
        say(f"bench: wrote {path} ({sum(r.get('type') == 'measurement' for r in out.records)} measurements, "
            f"{len(failed_checks)} failed checks) in {out.wall_s:.1f} s")
        if plan.criterion:
            say(criterion_report(plan, out.records[0]))
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
