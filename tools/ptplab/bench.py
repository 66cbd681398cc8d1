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
from .cli import BenchError, Exit, Parser, interrupted, parse_pools, parse_suites, positive, say
from .table import render

# The criterion driver over the same table (lab/ptp-lab/benches/lab.rs); PTP_LAB_ARGS carries the run's words.
CRITERION = ["cargo", "bench", "--quiet", "-p", "ptp-lab", "--features", "std", "--bench", "lab", "--"]


def arg_parser() -> argparse.ArgumentParser:
    p = Parser(prog="scripts/bench.sh", description="Run the PTP lab's benchmark suites: boot the bench kernel "
               "(or run the host runner, or criterion), write one new results file, print a table.",
               epilog="Every option is checked before anything is set up or run. Arguments after -- go to "
                      "criterion (with --criterion). Ctrl-C or SIGTERM stops the run and keeps what was measured "
                      "as a partial file (exit 130 or 143).")
    p.add_argument("--accel", default=None, choices=["auto", "kvm", "tcg", "bochs"],
                   help="auto (default): probe KVM with a short boot, fall back to TCG loudly if it cannot run "
                        "the kernel; kvm: fail instead of falling back; tcg: QEMU's emulation; bochs: the Bochs "
                        "emulator's Intel Haswell (PCID, INVPCID, x2APIC), booting the GRUB ISO")
    p.add_argument("--pool-pages", default=None, help="pool sizes to sweep, e.g. 1024,4096,16384 "
                   "(default: the standard size)")
    p.add_argument("--suite", default=None, help="suites, e.g. alloc,map (default: all)")
    p.add_argument("--quick", action="store_true", help="a few samples per benchmark")
    p.add_argument("--selftest", action="store_true", help="every check, minimal timing (what tests run)")
    p.add_argument("--out", default=str(results.RESULTS), help="directory for the results file")
    p.add_argument("--host", action="store_true", help="run the suites in a host process on simulated memory")
    p.add_argument("--criterion", action="store_true",
                   help="run the suites under criterion on the host (arguments after -- go to criterion)")
    p.add_argument("--timeout", type=positive, default=None, help="seconds before a run counts as hung (default: "
                   "120 with --quick or --selftest, else 1800; five times that under Bochs)")
    p.add_argument("--cpus", type=positive, default=None,
                   help="CPUs of the guest (QEMU -smp, Bochs cpu count; default 1); the kernel starts them all")
    p.add_argument("--memory", type=positive, default=None, help="guest RAM in MiB (default: fits the pools)")
    p.add_argument("--seed", type=positive, default=None, help="seed of the random fills (default: the lab's)")
    p.add_argument("--report", default=str(lab.REPORT_DIR),
                   help="where the decision report (report.md) is written after the run")
    p.add_argument("--layouts", default=str(layouts.DIR),
                   help="with --suite layouts: the layouts handed to the kernel as a boot module")
    p.add_argument("--repeat", type=positive, default=1,
                   help="run K times (K files), then print the run-to-run spread of every median")
    p.add_argument("--image", metavar="FILE", default=None,
                   help="write the hybrid real-hardware image (BIOS and UEFI, CD and USB stick) instead of running: "
                        "its GRUB menu's first entry runs these options, then the standard suites, a pool-size "
                        "sweep, the selftest and the TLB suite on every CPU")
    p.add_argument("--menu-timeout", type=int, default=5, metavar="S",
                   help="with --image: seconds the GRUB menu waits before its first entry (default 5)")
    p.add_argument("--validate", action="store_true",
                   help="only check the options (what scripts/bench.sh does before it sets anything up)")
    p.add_argument("--kernel", default=str(lab.KERNEL), help=argparse.SUPPRESS)
    p.add_argument("--host-bin", default=str(lab.HOST_BIN), help=argparse.SUPPRESS)
    p.add_argument("--qemu", default=qemu.QEMU, help=argparse.SUPPRESS)
    p.add_argument("--bochs", default="bochs", help=argparse.SUPPRESS)
    p.add_argument("--append-extra", default="", help=argparse.SUPPRESS)  # tests: raw kernel words
    return p


@dataclass
class Plan:
    pools: list[int]
    suites: list[str]
    quick: bool
    selftest: bool
    out: Path
    host: bool
    criterion: bool
    accel: str
    timeout: int
    memory: int
    seed: int
    cpus: int
    kernel: Path
    host_bin: Path
    qemu: str
    bochs: str = "bochs"
    extra: str = ""
    criterion_args: list[str] = field(default_factory=list)
    repeat: int = 1
    layouts: Path | None = None
    report: Path | None = None
    image: Path | None = None
    menu_timeout: int = 5

    def cmdline(self) -> str:
        words = [f"mode={'selftest' if self.selftest else 'bench'}", f"suites={','.join(self.suites)}",
                 f"pools={','.join(map(str, self.pools))}", f"quick={int(self.quick)}", f"seed={self.seed}"]
        return " ".join(words + ([self.extra] if self.extra else []))


def plan_from_args(argv: list[str], facts: dict | None = None) -> Plan:
    """Every option checked, before anything is set up. `facts` (what the lab declares) default to
    asking the host runner; `check_syntax` runs the checks that need nothing."""
    argv, rest = split_criterion_args(argv)
    a = arg_parser().parse_args(argv)
    check_combination(a, rest)
    facts = facts or lab.facts()
    suites = parse_suites(a.suite or ",".join(facts["suites"]), facts["suites"])
    pool_text = a.pool_pages or str(facts["pool_pages"]["standard"])
    pools = parse_pools(pool_text, None, facts["pool_pages"])
    on_host = a.host or a.criterion
    memory = a.memory or max(512, ((max(pools) + 1) * lab.PAGE >> 20) + 256)
    parse_pools(pool_text, None if on_host else memory, facts["pool_pages"])
    # Bochs interprets every instruction: a selftest that takes 10 s under TCG takes 100-150 s there.
    timeout = a.timeout or (120 if (a.quick or a.selftest) else 1800) * (5 if a.accel == "bochs" else 1)
    cpus = a.cpus or 1
    if cpus > facts["max_cpus"]:
        raise BenchError(f"--cpus {cpus}: the kernel starts at most {facts['max_cpus']} CPUs")
    out = Path(a.out)
    check_writable(out)
    return Plan(pools=pools, suites=suites, quick=a.quick, selftest=a.selftest, out=out, host=a.host,
                criterion=a.criterion, accel=a.accel or "auto", timeout=timeout, memory=memory, cpus=cpus,
                seed=facts["default_seed"] if a.seed is None else a.seed, kernel=Path(a.kernel),
                host_bin=Path(a.host_bin), qemu=a.qemu, bochs=a.bochs, extra=a.append_extra,
                criterion_args=rest, repeat=a.repeat, layouts=Path(a.layouts),
                report=Path(a.report), image=None if a.image is None else Path(a.image),
                menu_timeout=a.menu_timeout)


def split_criterion_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def check_combination(a: argparse.Namespace, rest: list[str]) -> None:
    """Options that contradict each other are errors, not silently ignored."""
    if a.host and a.criterion:
        raise BenchError("--host and --criterion: choose one (both run on the host)")
    if (a.host or a.criterion) and a.accel is not None:
        raise BenchError(f"--accel {a.accel}: applies to the bench kernel, not to --{'host' if a.host else 'criterion'}")
    if (a.host or a.criterion) and a.memory is not None:
        raise BenchError("--memory: guest RAM applies to the bench kernel only")
    if (a.host or a.criterion) and a.cpus is not None:
        raise BenchError("--cpus: the guest's CPUs apply to the bench kernel only")
    if a.image is not None and (a.host or a.criterion or a.accel is not None or a.repeat != 1):
        raise BenchError("--image: writes the real-hardware image and runs nothing here "
                         "(no --host, --criterion, --accel or --repeat with it)")
    if not 0 <= a.menu_timeout <= 600:
        raise BenchError(f"--menu-timeout {a.menu_timeout}: seconds, 0 ... 600")
    if rest and not a.criterion:
        raise BenchError(f"arguments after --, {' '.join(rest)!r}, go to criterion: they need --criterion")


def check_syntax(argv: list[str]) -> None:
    """What can be checked with nothing built: the options, numbers, combinations, --out; and the
    pool sizes' syntax. Limits and suite names are checked once the lab can be asked."""
    argv, rest = split_criterion_args(argv)
    a = arg_parser().parse_args(argv)
    check_combination(a, rest)
    if a.pool_pages:
        parse_pools(a.pool_pages, None, {"min": 1, "max": 2**32, "max_pools": 2**32})
    check_writable(Path(a.out))


def check_writable(out: Path) -> None:
    """--out must take a file: created if missing, a probe written and removed."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".ptplab-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise BenchError(f"--out: {out} cannot take a results file: {e.strerror or e}")


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


def setup_needs(plan: Plan) -> list[str]:
    """What scripts/bench.sh must set up before this run (packages.NEEDS names each but the kernel build)."""
    if plan.host or plan.criterion:
        return []
    if plan.image is not None:
        return ["grub", "kernel"]
    if plan.accel == "bochs":
        return ["grub", "bochs", "kernel"]
    return ["qemu", "kernel"]


def main(argv: list[str]) -> int:
    try:
        if "--validate" in split_criterion_args(argv)[0]:
            if lab.facts(build=False) is None:
                check_syntax(argv)  # nothing built yet: limits and names wait for the host runner
            else:
                print(" ".join(setup_needs(plan_from_args(argv))))
            return 0
        plan = plan_from_args(argv)
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
    standard suites, a pool-size sweep, the selftest and the TLB suite on every CPU."""
    def line(**change) -> str:
        return Plan(**{**plan.__dict__, **change}).cmdline()
    all_suites, standard = facts["suites"], [facts["pool_pages"]["standard"]]
    sweep = [n for n in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
             if facts["pool_pages"]["min"] <= n <= facts["pool_pages"]["max"]]
    entries = [("PTP lab: the default run (as built)", plan.cmdline()),
               ("PTP lab: every suite, the standard pool", line(suites=all_suites, pools=standard, selftest=False,
                                                               quick=False)),
               ("PTP lab: pool-size sweep 512 ... 65536", line(suites=all_suites, pools=sweep, selftest=False,
                                                              quick=False)),
               ("PTP lab: selftest (every check, quick)", line(suites=all_suites, pools=[64, 1024], selftest=True)),
               ("PTP lab: TLB suite on every CPU", line(suites=["tlb"], pools=standard, selftest=False, quick=False))]
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
