"""`scripts/lava.sh`: the bench kernel as LAVA jobs. `--local` renders lava-server's stock qemu
device type with our dictionary (lava/devices/qemu-tcg.jinja2), writes the job
(lava/jobs/qemu-iso.yaml) for the suite options of scripts/bench.sh, runs it through Debian's
`lava-run` (as root, no server) under a time limit, says the job's result and its test cases,
and collects the job's log into a results file, with the job's log and LAVA's results beside it.
(Server submission, PXE/TFTP and iPXE jobs: not yet.)

Each check, skip, fault, panic, error and end record is one LAVA test case, named from the
record: the kernel prints a case line after each (lab/ptp-lab/src/case.rs), which the job's
monitor reads."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import collect, iso, lab, lavalog, limits
from .bootmodule import layouts_module
from .plan import Plan, checked, hand_over
from .cli import BenchError, Exit, door_parser, interrupted, say

LAVA = lab.REPO / "lava"
# lava-server ships the device-type templates; installing it pulls Django and a database, so
# its package is only unpacked (apt-get download, dpkg -x) when it is not installed.
INSTALLED_TEMPLATES = Path("/usr/share/lava-server/device-types")
UNPACKED = lab.REPO / "target" / "lava-server"
WORK = lab.REPO / "target" / "lava"
# Where lava-run keeps a job's files (named by job id): a job id another job has used is refused.
DISPATCHER_TMP = Path("/var/lib/lava/dispatcher/tmp")
RENDER = """import sys, jinja2
env = jinja2.Environment(loader=jinja2.FileSystemLoader(sys.argv[1:3]), trim_blocks=True, autoescape=False)
sys.stdout.write(env.get_template(sys.argv[3]).render())
"""
# The job's device type (lava-server's stock qemu.jinja2) and its monitor's name: LAVA files
# the kernel's test cases under this suite.
DEVICE_TYPE, SUITE = "qemu", "ptp-lab"
# The device: a QEMU of this machine's, named by our dictionary (two dispatchers stay apart).
DEVICE = f"{socket.gethostname()}-qemu-tcg"
# The test action waits for the run (bench.sh's --timeout); deploy and boot get these.
DEPLOY_S, BOOT_S = 120, 120
# lava-run's own timeouts end a hung job; past them by this much, lava-run itself is stopped
# (SIGTERM, then this grace, then every process it started is killed).
LIMIT_MARGIN_S, GRACE_S = 60, 30


def templates() -> Path:
    """lava-server's device-type templates: installed, or unpacked from its Debian package."""
    if (INSTALLED_TEMPLATES / "qemu.jinja2").exists():
        return INSTALLED_TEMPLATES
    found = UNPACKED / "usr/share/lava-server/device-types"
    if (found / "qemu.jinja2").exists():
        return found
    UNPACKED.mkdir(parents=True, exist_ok=True)
    got = bounded(["apt-get", "download", "lava-server"], 300, "apt-get download lava-server (for its device types)",
                  cwd=UNPACKED)
    debs = sorted(UNPACKED.glob("lava-server_*.deb"))
    if got.returncode != 0 or not debs:
        raise BenchError(f"could not download lava-server for its device types: {got.stderr.strip()[-300:]}")
    got = bounded(["dpkg", "-x", str(debs[-1]), str(UNPACKED)], 120, f"dpkg -x {debs[-1].name}")
    if got.returncode != 0:
        raise BenchError(f"dpkg -x {debs[-1]} failed: {got.stderr.strip()[-300:]}")
    return found


def bounded(cmd: list[str], seconds: float, what: str, **kwargs) -> subprocess.CompletedProcess:
    """A helper command under a limit (killed with its process group); its expiry a BenchError."""
    try:
        return limits.run(cmd, seconds, what=what, capture_output=True, text=True, errors="replace",
                          stdin=subprocess.DEVNULL, **kwargs)
    except limits.TimedOut as e:
        raise BenchError(str(e))


def render_device(dictionary: Path) -> str:
    """The device YAML lava-run takes. Rendered by the system's python3, which has jinja2 (a
    dependency of lava-dispatcher), not the tools' .venv."""
    p = bounded(["/usr/bin/python3", "-c", RENDER, str(dictionary.parent), str(templates()), dictionary.name], 60,
                f"rendering {dictionary}")
    if p.returncode != 0:
        raise BenchError(f"rendering {dictionary}: {p.stderr.strip()[-400:]}")
    return p.stdout


def monitor(facts: dict) -> dict[str, str]:
    """The monitor's start, end and case pattern, from the kernel's case lines (`ptp-host facts`)."""
    line = facts["case_line"]
    return {"MONITOR_START": re.escape(line["first_line"]), "MONITOR_END": re.escape(line["last_line"]),
            "MONITOR_PATTERN": re.escape(line["prefix"]) + r"(?P<test_case_id>\w+) (?P<result>"
                               + "|".join(line["results"]) + ")"}


def job(name: str, iso_url: str, test_s: int, facts: dict) -> str:
    words = {"DEVICE_TYPE": DEVICE_TYPE, "SUITE": SUITE, "JOB_NAME": name, "ISO_URL": iso_url, "JOB_S": str(job_seconds(test_s)), "DEPLOY_S": str(DEPLOY_S),
             "BOOT_S": str(BOOT_S), "TEST_S": str(test_s), **monitor(facts)}
    text = (LAVA / "jobs" / "qemu-iso.yaml").read_text()
    for k, v in words.items():
        text = text.replace(k, v.replace("'", "''"))  # every value sits in a single-quoted YAML string
    return text


def job_seconds(test_s: int) -> int:
    return DEPLOY_S + BOOT_S + test_s + 30


@dataclass
class Job:
    """A lava-run job: its id (unique on this machine), its folder, its log."""
    id: int
    work: Path

    @property
    def log(self) -> Path:
        return self.work / "job.log"

    @staticmethod
    def new() -> Job:
        """A job id and folder no other job has used: lava-run keeps a job's files under its id."""
        WORK.mkdir(parents=True, exist_ok=True)
        n = int(time.time() * 1000)
        while True:
            work = WORK / f"job-{n}"
            if not (DISPATCHER_TMP / str(n)).exists():
                try:
                    work.mkdir()
                    return Job(n, work)
                except FileExistsError:
                    pass
            n += 1


def run_lava(cmd: list[str], log: Path, limit: float) -> tuple[int | None, list]:
    """Run lava-run with its stderr (the job log) in `log`. Past `limit` seconds it is stopped
    with everything it started (limits.stop_tree). (exit status or None when stopped, killed)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            return proc.wait(timeout=limit), []
        except subprocess.TimeoutExpired:
            return None, limits.stop_tree(proc, GRACE_S)
        except BaseException:  # Ctrl-C, SIGTERM: nothing of the job is left running
            limits.stop_tree(proc, GRACE_S)
            raise


def outcome(entries: list[tuple[int, dict]], suite: str) -> tuple[str, str | None, list[dict]]:
    """The job's result (pass, fail, or 'unfinished' when the log has none), LAVA's error
    message, and the test cases of our monitor (LAVA's `results` entries of `suite`)."""
    result, error, cases = "unfinished", None, []
    for _, e in entries:
        msg = e.get("msg")
        if e.get("lvl") != "results" or not isinstance(msg, dict):
            continue
        if msg.get("definition") == "lava" and msg.get("case") == "job":
            result = str(msg.get("result"))
            error = msg.get("error_msg")
        elif msg.get("definition") == suite:
            cases.append({"name": str(msg.get("case")), "result": str(msg.get("result"))})
    return result, error, cases


def counts(cases: list[dict], results: list[str]) -> str:
    n = {r: sum(c["result"] == r for c in cases) for r in results}
    other = len(cases) - sum(n.values())
    return ", ".join(f"{v} {k}" for k, v in n.items()) + (f", {other} other" if other else "")


def keep_beside(results_file: Path, log: Path, cases: list[dict], header: dict) -> list[Path]:
    """The job's log and LAVA's results, next to the results file they became (same stem)."""
    stem = results_file.name.removesuffix(".jsonl")
    kept = [results_file.with_name(stem + ".lava-job.log"), results_file.with_name(stem + ".lava-results.yaml")]
    shutil.copyfile(log, kept[0])
    kept[1].write_text(lavalog.dump({**header, "cases": cases}))
    return kept


def usage() -> str:
    """scripts/lava.sh's --help, from the options table (the plan checks, this only lists)."""
    return door_parser("lava", prog="scripts/lava.sh", description=__doc__.split("\n\n")[0],
                             epilog="--timeout: seconds the test action waits for the kernel's last line.").format_help()


def main(argv: list[str], limit_margin: float = LIMIT_MARGIN_S) -> int:
    if "-h" in argv or "--help" in argv:
        print(usage())
        return 0
    try:
        made = checked(argv, door="lava")
        plan = Plan.from_checked(made)
        if plan.validate:  # what scripts/lava.sh checks before it sets anything up, and its needs
            hand_over(made, argv)
            print(" ".join(plan.needs))
            return Exit.OK
        if shutil.which("lava-run") is None:
            raise BenchError("lava-run is not installed (scripts/lava.sh installs it: `python3 -m ptplab setup lava`)")
        if os.geteuid() != 0:
            raise BenchError("lava-run runs a job as root only")
        if not lab.KERNEL.exists():
            raise BenchError(f"{lab.KERNEL} not built (scripts/lava.sh builds it)")
        facts = lab.facts()
        j = Job.new()
        image = iso.make_iso(plan.kernel, plan.cmdline(), j.work / "bench.iso",
                             module=layouts_module(plan, j.work))
        (j.work / "device.yaml").write_text(render_device(LAVA / "devices" / "qemu-tcg.jinja2"))
        (j.work / "job.yaml").write_text(job(f"ptp-lab {plan.cmdline()}", f"file://{image}", plan.timeout, facts))
        limit = job_seconds(plan.timeout) + limit_margin
        say(f"lava: job {j.id}: {j.work / 'job.yaml'} through lava-run, at most {limit:.0f} s "
            f"(its log: {j.log})")
        cmd = ["lava-run", "--job-id", str(j.id), "--output-dir", str(j.work / "output"), "--device",
               str(j.work / "device.yaml"), str(j.work / "job.yaml")]
        try:
            with limits.exits_on_signals():
                status, killed = run_lava(cmd, j.log, limit)
        except (KeyboardInterrupt, SystemExit) as e:  # run_lava stopped lava-run and all it started
            code = interrupted(signal.SIGINT) if isinstance(e, KeyboardInterrupt) else int(e.code)
            say(f"lava: job {j.id}: interrupted by {signal.Signals(code - 128).name}: lava-run and its QEMU stopped")
            report(j, plan, None, [], limit, facts["case_line"])
            return code
        finally:
            (j.work / "bench.iso").unlink(missing_ok=True)  # the job's files stay, not its 15 MB image
        return report(j, plan, status, killed, limit, facts["case_line"])
    except (BenchError, iso.IsoError) as e:
        say(f"lava: error: {e}")
        return getattr(e, "code", Exit.USAGE)


def report(j: Job, plan: Plan, status: int | None, killed: list, limit: float, case_line: dict) -> int:
    """Say how the job ended and what its cases were, collect its log (what the kernel printed
    so far, when it did not end) with the job's log and LAVA's results beside it. The exit
    status is scripts/bench.sh's: 4 when the kernel never printed its last line, 5 on a crash
    (a fault, a panic) or when LAVA itself failed the job, 1 when a check failed."""
    entries = lavalog.entries(j.log.read_text(errors="replace"), str(j.log))
    result, error, cases = outcome(entries, SUITE)
    if status is None:
        say(f"lava: job {j.id}: lava-run stopped before it ended (SIGTERM, then {len(killed)} process(es) it "
            "left killed)")
    say(f"lava: job {j.id}: result {result}" + (f" ({error})" if error else "")
        + f"; test cases: {counts(cases, case_line['results'])}")
    for c in cases:
        if c["result"] == "fail":
            say(f"lava:   failed: {c['name']}")
    printed = [line for _, line in lavalog.target_lines(entries)]
    if not printed and status is not None:
        # LAVA stopped before the machine said anything: its own failure (a job or device it
        # refused, a deploy that failed), not the kernel's.
        raise BenchError(f"lava-run exited {status} with job result {result}: {error or 'no error given'} "
                         f"(its log: {j.log})", code=Exit.CRASHED)
    out = Path(plan.out)
    before = set(out.glob("*.jsonl"))
    rc = collect.main([str(j.log), "--accel", "tcg", "--out", str(out), "--partial", "--lenient",
                       "--device", DEVICE, "--device-type", DEVICE_TYPE, "--lava-job-id", str(j.id)])
    new = sorted(set(out.glob("*.jsonl")) - before)
    if new:
        header = {"job_id": j.id, "device": DEVICE, "device_type": DEVICE_TYPE, "result": result, "error": error}
        for p in keep_beside(new[0], j.log, cases, header):
            say(f"lava: kept {p}")
    else:
        say(f"lava: the job's log stays in {j.log}")
    if status is None or not any(case_line["last_line"] in line for line in printed):
        tail = "\n".join(printed[-8:]) or "(nothing)"
        say(f"lava: job {j.id}: the kernel never printed its last line within the job's limits (--timeout "
            f"{plan.timeout} s for the run); the last lines it printed:\n{tail}")
        return Exit.HUNG
    if rc != Exit.OK:
        return rc
    if any(c["result"] == "fail" for c in cases):
        return Exit.CHECKS_FAILED
    if result != "pass":
        say(f"lava: job {j.id}: the kernel's run ended, but LAVA failed the job: {error or 'no error given'}")
        return Exit.CRASHED
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
