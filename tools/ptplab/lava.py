"""`scripts/lava.sh`: the bench kernel as LAVA jobs. `--local --device NAME` renders the device's
dictionary (lava/devices/NAME.jinja2) on lava-server's stock device types, writes its job
(lava/jobs/) for the suite options of scripts/bench.sh, runs it through Debian's `lava-run` (as
root, no server) under a time limit, says the job's result and its test cases, and collects the
job's log into a results file, with the job's log and LAVA's results beside it.

The devices: `qemu-tcg` (lava-server's qemu type boots the image), and stand-ins for real
machines booted from the network: `grub-pxe-bios`, `grub-pxe-uefi` (GRUB over PXE and TFTP) and
`ipxe-bios`, `ipxe-uefi` (iPXE sanboots the image over HTTP). A stand-in is a QEMU (TCG, SeaBIOS
or OVMF) on QEMU's user-mode network, whose DHCP and TFTP serve LAVA's TFTP directory and
through which the guest reaches the host's loopback as 10.0.2.2 (the dispatcher's address in
the job's commands); its power commands start it, bounded, and stop it, and LAVA reaches its
serial port, a TCP server on 127.0.0.1, through socat. For iPXE, an HTTP server of LAVA's TFTP
directory on 127.0.0.1 (tools/ptplab/httpd.py) lives as long as the job.

`--server IDENTITY` submits the same jobs to a LAVA server through lavacli: one per device in
service (its tag names which of the devices above it is) and suite choice (`--choices`), waits
for them (a bounded poll), fetches each job's raw log however it ended (cancelled and
infrastructure errors named), collects one results file per job and shows the devices side by
side. The loopback server of scripts/lava-server.sh (tools/ptplab/lavaserver.py) has all five.

Each check, skip, fault, panic, error and end record is one LAVA test case, named from the
record: the kernel prints a case line after each (lab/ptp-lab/src/case.rs), which the job's
monitor reads."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import collect, httpd, iso, lab, lavalog, limits
from .bootmodule import layouts_module
from .lavadevice import DEVICES, GUEST_HOST_IP, Device, Standin, device_name, grub_netdir, tftp_directory
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
RENDER = """import json, sys, jinja2
env = jinja2.Environment(loader=jinja2.FileSystemLoader(sys.argv[1:3]), trim_blocks=True, autoescape=False)
sys.stdout.write(env.get_template(sys.argv[3]).render(**json.loads(sys.argv[4])))
"""
# The monitor's name: LAVA files the kernel's test cases under this suite.
SUITE = "ptp-lab"


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


def render_device(dictionary: Path, context: dict | None = None) -> str:
    """The device YAML lava-run takes, `context` the dictionary's variables. Rendered by the
    system's python3, which has jinja2 (a dependency of lava-dispatcher), not the tools' .venv."""
    p = bounded(["/usr/bin/python3", "-c", RENDER, str(dictionary.parent), str(templates()), dictionary.name,
                 json.dumps(context or {})], 60, f"rendering {dictionary}")
    if p.returncode != 0:
        raise BenchError(f"rendering {dictionary}: {p.stderr.strip()[-400:]}")
    return p.stdout


def monitor(facts: dict) -> dict[str, str]:
    """The monitor's start, end and case pattern, from the kernel's case lines (`ptp-host facts`)."""
    line = facts["case_line"]
    return {"MONITOR_START": re.escape(line["first_line"]), "MONITOR_END": re.escape(line["last_line"]),
            "MONITOR_PATTERN": re.escape(line["prefix"]) + r"(?P<test_case_id>\w+) (?P<result>"
                               + "|".join(line["results"]) + ")"}


def job(device: Device, name: str, test_s: int, facts: dict, tag: str | None = None, **files: str | None) -> str:
    """The device's job (lava/jobs/), its words filled in; `files`: ISO_URL, KERNEL_URL,
    MODULE_URL (None: no module, its lines left out), CMDLINE, IMAGE_URL, HTTP_PORT. `tag`: a
    server runs it only on a device with that tag (the lab's device name: how it boots)."""
    words = {"DEVICE_TYPE": device.device_type, "SUITE": SUITE, "JOB_NAME": name,
             "JOB_S": str(job_seconds(test_s)), "DEPLOY_S": str(DEPLOY_S), "BOOT_S": str(BOOT_S),
             "TEST_S": str(test_s), **monitor(facts)}
    text = (LAVA / "jobs" / device.job).read_text()
    if files.get("MODULE_URL", "") is None:
        text = "".join(line for line in text.splitlines(True)
                       if not any(w in line for w in ("ramdisk:", "MODULE_URL", "install_", "module2")))
    for k, v in {**words, **{k: v for k, v in files.items() if v is not None}}.items():
        text = text.replace(k, v.replace("'", "''"))  # every value sits in a single-quoted YAML string
    if tag:
        text = re.sub(r"^(job_name: .*\n)", lambda m: m.group(1) + f"tags: ['{tag}']\n", text, count=1, flags=re.M)
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


def outcome(entries: list[tuple[int, dict]], suite: str) -> tuple[str, str | None, str | None, list[dict]]:
    """The job's result (pass, fail, or 'unfinished' when the log has none), LAVA's error
    message and its kind (Infrastructure, Job, Test, Bootloader, Canceled, ...), and the test
    cases of our monitor (LAVA's `results` entries of `suite`)."""
    result, error, kind, cases = "unfinished", None, None, []
    for _, e in entries:
        msg = e.get("msg")
        if e.get("lvl") != "results" or not isinstance(msg, dict):
            continue
        if msg.get("definition") == "lava" and msg.get("case") == "job":
            result = str(msg.get("result"))
            error = msg.get("error_msg")
            kind = msg.get("error_type")
        elif msg.get("definition") == suite:
            cases.append({"name": str(msg.get("case")), "result": str(msg.get("result"))})
    return result, error, kind, cases


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


# The suite choices a real machine's jobs are written for (runners.suite_choices' keys), and
# the network boots they use: the device a family's dictionaries are (BIOS and UEFI share a job).
JOB_CHOICES = ("default", "sweep", "tlb")
JOB_FAMILIES = {"grub-pxe": "grub-pxe-bios", "ipxe": "ipxe-bios"}
# Real machines: their own boot loader waits longer, and the runs are the whole suites.
REAL_TEST_S = 3600


def write_jobs(plan: Plan) -> int:
    """--jobs DIR: DIR/jobs/FAMILY-CHOICE.yaml for each network boot and suite choice, their
    command lines made by the plan's check (runners.suite_choices), and DIR/artifacts (the
    kernel, its module, an image per choice) that the lab serves at --artifacts URL."""
    from .runners import suite_choices
    if not plan.artifacts:
        raise BenchError("--jobs: --artifacts URL is needed: where the lab serves DIR/artifacts (the jobs download "
                         "from there)")
    out, url = plan.jobs, plan.artifacts.rstrip("/")
    jobs_dir, art = out / "jobs", out / "artifacts"
    for d in (jobs_dir, art):
        if d.exists():
            raise BenchError(f"--jobs: {d} exists; jobs are not overwritten (remove it or name another DIR)")
    facts = lab.facts()
    choices = {key: (title, cmd) for key, title, cmd in suite_choices(plan, facts) if key in JOB_CHOICES}
    try:
        jobs_dir.mkdir(parents=True)
        art.mkdir(parents=True)
        module = layouts_module(dataclasses.replace(plan, suites=facts["suites"]), art)
        shutil.copy(plan.kernel, art / "bench-kernel")
        written = []
        for key, (title, cmd) in choices.items():
            image = iso.make_image(plan.kernel, art / f"ptplab-{key}.iso", [(title, cmd)], timeout=0, module=module)
            for family, device in JOB_FAMILIES.items():
                text = job(DEVICES[device], f"ptp-lab {key}: {cmd}", REAL_TEST_S, facts,
                           KERNEL_URL=f"{url}/bench-kernel", CMDLINE=cmd,
                           MODULE_URL=None if module is None else f"{url}/{module.name}",
                           IMAGE_URL=f"{url}/{image.name}", HTTP_PORT="80")
                path = jobs_dir / f"{family}-{key}.yaml"
                path.write_text(text)
                written.append(path)
    except iso.IsoError as e:
        raise BenchError(f"--jobs: {e}")
    except OSError as e:
        raise BenchError(f"--jobs {out}: {e.strerror}")
    say(f"lava: wrote {len(written)} jobs in {jobs_dir} and what they deploy in {art} (serve it at {url}):\n"
        + "\n".join(f"  {p.name}" for p in written))
    return Exit.OK


# A server's job: how often its state is asked; the device healths LAVA schedules jobs on.
POLL_S = 3
FINISHED = "Finished"
IN_SERVICE = ("Good", "Unknown")
# Seconds a job cancelled past its limit may take to end.
CANCEL_S = 60
# The HTTP port of a lab's dispatcher serving its TFTP directory, for iPXE (docs/fleet.md); the
# loopback server says its own.
LAB_HTTP_PORT = 80


def lavacli(identity: str, *args: str, seconds: float = 60) -> subprocess.CompletedProcess:
    p = bounded(["lavacli", "-i", identity, *args], seconds, f"lavacli -i {identity} {' '.join(args)}")
    if p.returncode != 0:
        raise BenchError(f"lavacli -i {identity} {' '.join(args)}: {(p.stderr or p.stdout).strip()[-400:]}")
    return p


def server_devices(identity: str) -> list[tuple[str, str, bool]]:
    """(hostname, the lab's device name, whether a tag says it) of the server's devices in
    service that a job here runs on: the name is the device's tag naming one of DEVICES (how it
    boots), or, untagged, the one device of its type (qemu). A device it cannot place is said
    and left out."""
    import yaml
    listed = yaml.safe_load(lavacli(identity, "devices", "list", "--yaml").stdout) or []
    by_type: dict[str, list[str]] = {}
    for name, d in DEVICES.items():
        by_type.setdefault(d.device_type, []).append(name)
    found = []
    for d in listed:
        host, dtype = d.get("hostname"), d.get("type")
        if dtype not in by_type:
            continue
        if d.get("health") not in IN_SERVICE:
            say(f"lava: {host} ({dtype}) is {d.get('health')}: no job for it")
            continue
        shown = yaml.safe_load(lavacli(identity, "devices", "show", str(host), "--yaml").stdout) or {}
        tagged = [t for t in shown.get("tags") or [] if t in by_type[dtype]]
        if tagged or len(by_type[dtype]) == 1:
            found.append((str(host), (tagged or by_type[dtype])[0], bool(tagged)))
        else:
            say(f"lava: {host} ({dtype}): no tag says how it boots ({' or '.join(by_type[dtype])}); no job for it")
    return found


def server_choices(plan: Plan, facts: dict) -> list[tuple[str, str]]:
    """--choices: (key, kernel command line) of each suite choice asked for, from the image
    menu's (runners.suite_choices); a key it does not offer is refused, named."""
    from .runners import suite_choices
    offered = {key: cmd for key, _, cmd in suite_choices(plan, facts)}
    keys = [k.strip() for k in plan.choices.split(",")]
    bad = [k for k in keys if k not in offered]
    if bad:
        raise BenchError(f"--choices {plan.choices!r}: {', '.join(map(repr, bad))} is not a suite choice (they are: "
                         f"{', '.join(offered)})", code=Exit.USAGE)
    return [(k, offered[k]) for k in dict.fromkeys(keys)]


@dataclass
class Submitted:
    """A job on the server: the device it was written for and the suite choice it runs."""
    host: str
    name: str
    choice: str
    info: dict = dataclasses.field(default_factory=dict)


def submit_matrix(plan: Plan, facts: dict, j: Job, devices: list[tuple[str, str, bool]],
                  choices: list[tuple[str, str]]) -> dict[str, Submitted]:
    """One job per device and suite choice, each for the device's tag (when it has one), its
    files where the worker (this machine's) downloads them."""
    from . import lavaserver
    module = layouts_module(plan, j.work)
    http_port = lavaserver.http_port(plan.server) or LAB_HTTP_PORT
    ids: dict[str, Submitted] = {}
    for key, cmd in choices:
        for host, name, tagged in devices:
            device = DEVICES[name]
            files = artifacts(device, plan.kernel, cmd, j.work / f"{key}-{name}.iso", module)
            if device.job == "ipxe.yaml":
                files["HTTP_PORT"] = str(http_port)
            path = j.work / f"{key}-{name}.yaml"
            path.write_text(job(device, f"ptp-lab {key} on {name}: {cmd}", plan.timeout, facts,
                                 tag=name if tagged else None, **files))
            jid = lavacli(plan.server, "jobs", "submit", str(path)).stdout.split()[0]
            ids[jid] = Submitted(host, name, key)
            say(f"lava: submitted job {jid} ({key} on {name}) to {plan.server}")
    return ids


def run_server(plan: Plan, limit_margin: float) -> int:
    """--server IDENTITY: the job matrix (the server's devices in service by the run's suite
    choice) submitted, waited for with a bounded poll (cancelled past the jobs' limit), each
    job's raw log fetched when it ends, however it ended, and collected, one results file per
    device; then the devices side by side (ptplab machines)."""
    import yaml
    facts = lab.facts()
    devices = server_devices(plan.server)
    if not devices:
        raise BenchError(f"--server {plan.server}: the server has no device in service that these jobs run on "
                         f"(types {', '.join(sorted({d.device_type for d in DEVICES.values()}))})")
    j = Job.new()
    choices = server_choices(plan, facts)
    ids = submit_matrix(plan, facts, j, devices, choices)
    # A job waits for the one before it on a worker that runs one at a time: each job's limit,
    # one after the other.
    limit = len(ids) * job_seconds(plan.timeout) + limit_margin
    deadline, cancelled = time.monotonic() + limit, set()
    ended: dict[str, Submitted] = {}
    while len(ended) < len(ids):
        for jid, sub in ids.items():
            if jid not in ended:
                sub.info = yaml.safe_load(lavacli(plan.server, "jobs", "show", jid, "--yaml").stdout) or {}
                if sub.info.get("state") == FINISHED:
                    ended[jid] = sub
        if len(ended) < len(ids):
            if time.monotonic() > deadline and not cancelled:
                for jid in sorted(set(ids) - set(ended)):
                    say(f"lava: job {jid} did not end within {limit:.0f} s: cancelling it")
                    lavacli(plan.server, "jobs", "cancel", jid)
                    cancelled.add(jid)
                deadline = time.monotonic() + CANCEL_S
            elif cancelled and time.monotonic() > deadline:
                raise BenchError(f"--server {plan.server}: jobs {', '.join(sorted(set(ids) - set(ended)))} did not "
                                 f"end within {CANCEL_S} s of their cancellation (see the server's web page)")
            time.sleep(POLL_S)
    out, files, worst = Path(plan.out), [], Exit.OK
    for jid, sub in ids.items():
        log = j.work / f"job-{jid}.log"
        try:
            log.write_text(lavacli(plan.server, "jobs", "logs", "--raw", "--no-follow", jid, seconds=120).stdout)
        except BenchError as e:  # a job cancelled before it started has no log
            say(f"lava: job {jid}: no log ({e})")
            log.write_text("")
        health = str(sub.info.get("health"))
        stopped = None
        if health == "Canceled":
            stopped = "cancelled" + (" by lava.sh (past its limit)" if jid in cancelled else " on the server")
        say(f"lava: job {jid} ({sub.choice} on {sub.info.get('device') or sub.host}): {health}")
        new, rc = report(Ended(log, jid, str(sub.info.get("device") or sub.host), DEVICES[sub.name], stopped),
                         plan, facts["case_line"], out)
        files += new
        worst = max(worst, rc)
    for image in j.work.glob("*.iso"):
        image.unlink()  # the jobs' files stay, not their images
    whole = [f for f in files if not f.name.endswith(".partial.jsonl")]
    if len(whole) < len(files):
        say(f"lava: left out of the table (partial: the kernel's run did not end): "
            f"{', '.join(f.name for f in files if f not in whole)}")
    if whole:
        from . import aggregate
        aggregate.main(list(map(str, whole)), "machines")
    return worst


def main(argv: list[str], limit_margin: float = LIMIT_MARGIN_S) -> int:
    if "-h" in argv or "--help" in argv:
        print(usage())
        return 0
    try:
        made = checked(argv, door="lava")
        plan = Plan.from_checked(made)
        if plan.validate:  # what scripts/lava.sh checks before it sets anything up, and its needs
            if plan.runner == "lava-server":
                server_choices(plan, lab.facts())
            hand_over(made, argv)
            print(" ".join(plan.needs))
            return Exit.OK
        if plan.runner == "lava-jobs":
            return write_jobs(plan)
        if plan.runner == "lava-server":
            return run_server(plan, limit_margin)
        if shutil.which("lava-run") is None:
            raise BenchError("lava-run is not installed (scripts/lava.sh installs it: `python3 -m ptplab setup lava`)")
        if os.geteuid() != 0:
            raise BenchError("lava-run runs a job as root only")
        if not lab.KERNEL.exists():
            raise BenchError(f"{lab.KERNEL} not built (scripts/lava.sh builds it)")
        facts = lab.facts()
        device = DEVICES[plan.device]
        j = Job.new()
        limit = job_seconds(plan.timeout) + limit_margin
        context, standin = {}, None
        module = layouts_module(plan, j.work)
        tftp = tftp_directory()
        if device.firmware is not None:
            standin = Standin(device, j.work, tftp, int(limit))
            context = standin.write()
            (j.work / "dispatcher.yaml").write_text(f"dispatcher_ip: {GUEST_HOST_IP}\n")
        if device.job == "grub-pxe.yaml":
            grub_netdir(tftp)  # this dispatcher's GRUB for PXE (a server's worker has its own)
        files = artifacts(device, plan.kernel, plan.cmdline(), j.work / "bench.iso", module)
        (j.work / "device.yaml").write_text(render_device(LAVA / "devices" / f"{plan.device}.jinja2", context))
        cmd = ["lava-run", "--job-id", str(j.id), "--output-dir", str(j.work / "output"), "--device",
               str(j.work / "device.yaml")]
        if standin is not None:
            cmd += ["--dispatcher", str(j.work / "dispatcher.yaml")]
        serving = httpd.Serving(tftp, limit) if device.job == "ipxe.yaml" else None
        if serving is not None:
            files["HTTP_PORT"] = str(serving.port)
        (j.work / "job.yaml").write_text(job(device, f"ptp-lab {plan.cmdline()}", plan.timeout, facts, **files))
        cmd.append(str(j.work / "job.yaml"))
        say(f"lava: job {j.id} on {plan.device}: {j.work / 'job.yaml'} through lava-run, at most {limit:.0f} s "
            f"(its log: {j.log})" + (f"; its HTTP server on 127.0.0.1:{serving.port}" if serving else ""))
        ended = Ended(j.log, j.id, device_name(plan.device), device)
        try:
            with limits.exits_on_signals(), (serving or contextlib.nullcontext()):
                status, killed = run_lava(cmd, j.log, limit)
        except (KeyboardInterrupt, SystemExit) as e:  # run_lava stopped lava-run and all it started
            code = interrupted(signal.SIGINT) if isinstance(e, KeyboardInterrupt) else int(e.code)
            name = signal.Signals(code - 128).name
            say(f"lava: job {j.id}: interrupted by {name}: lava-run and its QEMU stopped")
            report(dataclasses.replace(ended, stopped=f"interrupted by {name}"), plan, facts["case_line"],
                   Path(plan.out))
            return code
        finally:
            if standin is not None:
                standin.stop()  # power-off: whatever LAVA left running
            (j.work / "bench.iso").unlink(missing_ok=True)  # the job's files stay, not its 15 MB image
        if status is None:
            ended.stopped = f"lava-run stopped past {limit:.0f} s (SIGTERM, then {len(killed)} process(es) it left killed)"
        return report(ended, plan, facts["case_line"], Path(plan.out))[1]
    except (BenchError, iso.IsoError) as e:
        say(f"lava: error: {e}")
        return getattr(e, "code", Exit.USAGE)


def artifacts(device: Device, kernel: Path, cmdline: str, image: Path, module: Path | None) -> dict[str, str | None]:
    """What the device's job deploys for one kernel command line, as file:// URLs on this
    machine (`image`: where an image is made, when the device boots one)."""
    if device.job == "qemu-iso.yaml":
        return {"ISO_URL": f"file://{iso.make_iso(kernel, cmdline, image, module=module)}"}
    if device.job == "grub-pxe.yaml":
        return {"KERNEL_URL": f"file://{kernel}", "CMDLINE": cmdline,
                "MODULE_URL": None if module is None else f"file://{module}"}
    # iPXE: the hybrid image, its GRUB running the job's command line under BIOS or UEFI.
    return {"IMAGE_URL": f"file://{iso.make_image(kernel, image, [('bench-kernel', cmdline)], timeout=0, module=module)}"}


@dataclass
class Ended:
    """A job that ended, to report: its log, its id, the device it ran on (its hostname, and the
    lab's device), and how it was stopped when it did not end by itself."""
    log: Path
    job_id: int | str
    host: str
    device: Device
    stopped: str | None = None


def report(ended: Ended, plan: Plan, case_line: dict, out: Path) -> tuple[list[Path], int]:
    """Say how the job ended (its result, LAVA's error and its kind: a job cancelled or ended by
    an infrastructure error is named) and what its cases were; collect its log (what the kernel
    printed so far, when it did not end) into a results file in `out`, the job's log and LAVA's
    results beside it. (the results files, the exit status): scripts/bench.sh's, 4 when the
    kernel never printed its last line, 5 on a crash (a fault, a panic) or when LAVA itself
    failed the job, 1 when a check failed."""
    jid, device = ended.job_id, ended.device
    entries = lavalog.entries(ended.log.read_text(errors="replace"), str(ended.log))
    result, error, kind, cases = outcome(entries, SUITE)
    why = f" ({kind + ' error: ' if kind else ''}{error})" if error else ""
    if ended.stopped:
        say(f"lava: job {jid}: {ended.stopped}")
    say(f"lava: job {jid}: result {result}{why}; test cases: {counts(cases, case_line['results'])}")
    for c in cases:
        if c["result"] == "fail":
            say(f"lava:   failed: {c['name']}")
    printed = [line for _, line in lavalog.target_lines(entries)]
    if not printed and not ended.stopped:
        # LAVA stopped before the machine said anything: its own failure (a job or device it
        # refused, a deploy or a power switch that failed), not the kernel's.
        say(f"lava: job {jid}: LAVA ended it before the machine printed anything: result {result}{why or ' (no error given)'} "
            f"(its log: {ended.log})")
        return [], Exit.CRASHED
    before = set(out.glob("*.jsonl"))
    rc = collect.main([str(ended.log), "--accel", "tcg", "--out", str(out), "--partial", "--lenient",
                       "--device", ended.host, "--device-type", device.device_type,
                       "--lava-job-id", str(jid), "--boot", device.boot])
    new = sorted(set(out.glob("*.jsonl")) - before)
    if new:
        header = {"job_id": jid, "device": ended.host, "device_type": device.device_type, "boot": device.boot,
                  "result": result, "error": error, "error_type": kind, "stopped": ended.stopped}
        for p in keep_beside(new[0], ended.log, cases, header):
            say(f"lava: kept {p}")
    else:
        say(f"lava: the job's log stays in {ended.log}")
    finished = any(case_line["last_line"] in line for line in printed)
    if ended.stopped and finished:
        say(f"lava: job {jid}: {ended.stopped} after the kernel's last line: what it measured is complete")
    if not finished:
        tail = "\n".join(printed[-8:]) or "(nothing)"
        if not any(case_line["first_line"] in line for line in printed):
            # Nothing of the kernel: the firmware or the boot loader never got to it (a boot
            # file the network does not have, a menu LAVA could not interrupt).
            say(f"lava: job {jid}: the machine never started the kernel ({error or ended.stopped or 'no error given'}); "
                f"the last lines it printed:\n{tail}")
            return new, Exit.HUNG
        say(f"lava: job {jid}: the kernel never printed its last line"
            + (f" before it was {ended.stopped}" if ended.stopped else
               f" within the job's limits (--timeout {plan.timeout} s for the run)")
            + f"; the last lines it printed:\n{tail}")
        return new, Exit.HUNG
    if rc != Exit.OK:
        return new, rc
    if any(c["result"] == "fail" for c in cases):
        return new, Exit.CHECKS_FAILED
    if result != "pass":
        say(f"lava: job {jid}: the kernel's run ended, but LAVA failed the job{why or ': no error given'}")
        return new, Exit.CRASHED
    return new, Exit.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
