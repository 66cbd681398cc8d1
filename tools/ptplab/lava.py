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
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import collect, httpd, iso, lab, lavalog, limits, netboot, qemu
from .bootmodule import layouts_module
from .packages import OVMF
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


@dataclass(frozen=True)
class Device:
    """A device `--device` names (ptp-host facts: lava_devices): its job, the lava-server type
    its dictionary extends, the firmware of its stand-in (None: LAVA's qemu type starts QEMU
    itself), and how it boots the kernel (the run record's device.boot)."""
    job: str
    device_type: str
    firmware: str | None
    boot: str


DEVICES = {
    "qemu-tcg": Device("qemu-iso.yaml", "qemu", None, "grub-cdrom-bios"),
    "grub-pxe-bios": Device("grub-pxe.yaml", "base-grub", "bios", "grub-pxe-bios"),
    "grub-pxe-uefi": Device("grub-pxe.yaml", "base-grub", "uefi", "grub-pxe-uefi"),
    "ipxe-bios": Device("ipxe.yaml", "x86", "bios", "ipxe-http-bios"),
    "ipxe-uefi": Device("ipxe.yaml", "x86", "uefi", "ipxe-http-uefi"),
}
# The stand-ins' PXE: GRUB's network directory under LAVA's TFTP directory (its menu waits for
# LAVA to interrupt it), and the address at which a guest on QEMU's user-mode network reaches
# this machine (its TFTP, and its loopback: the HTTP server).
GRUB_NETDIR = "ptplab-grub"
GUEST_HOST_IP = "10.0.2.2"
STANDIN_MEMORY_MIB = 1024
STANDIN_GRUB_CFG = """serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=60
menuentry "PTP lab stand-in: LAVA interrupts this menu and gives GRUB its commands" {
    echo "LAVA did not interrupt the menu"
    halt
}
"""
TFTPD_DEFAULTS = Path("/etc/default/tftpd-hpa")


def device_name(name: str) -> str:
    """The device's hostname: this machine's, with the dictionary's name (dispatchers stay apart)."""
    return f"{socket.gethostname()}-{name}"


def tftp_directory() -> Path:
    """LAVA's TFTP directory: what its tftp deploy reads from tftpd-hpa's defaults."""
    try:
        m = re.search(r'^TFTP_DIRECTORY="?([^"\n]+)"?', TFTPD_DEFAULTS.read_text(), re.M)
    except OSError:
        m = None
    return Path(m.group(1)) if m else Path("/srv/tftp")
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


def job(device: Device, name: str, test_s: int, facts: dict, **files: str) -> str:
    """The device's job (lava/jobs/), its words filled in; `files`: ISO_URL, KERNEL_URL,
    MODULE_URL (None: no module, its lines left out), CMDLINE, IMAGE_URL, HTTP_PORT."""
    words = {"DEVICE_TYPE": device.device_type, "SUITE": SUITE, "JOB_NAME": name,
             "JOB_S": str(job_seconds(test_s)), "DEPLOY_S": str(DEPLOY_S), "BOOT_S": str(BOOT_S),
             "TEST_S": str(test_s), **monitor(facts)}
    text = (LAVA / "jobs" / device.job).read_text()
    if files.get("MODULE_URL", "") is None:
        text = "".join(line for line in text.splitlines(True)
                       if not any(w in line for w in ("ramdisk:", "MODULE_URL", "install_", "module2")))
    for k, v in {**words, **{k: v for k, v in files.items() if v is not None}}.items():
        text = text.replace(k, v.replace("'", "''"))  # every value sits in a single-quoted YAML string
    return text


def job_seconds(test_s: int) -> int:
    return DEPLOY_S + BOOT_S + test_s + 30



@dataclass
class Standin:
    """A stand-in machine: its power and connection commands (scripts in the job's folder), and
    the QEMU they start, bounded by `limit` seconds, its serial port a TCP server on 127.0.0.1."""
    device: Device
    work: Path
    tftp: Path
    limit: int
    port: int = 0

    def __post_init__(self) -> None:
        self.port = limits.free_port()

    @property
    def pidfile(self) -> Path:
        return self.work / "standin.pid"

    def qemu(self) -> list[str]:
        # SeaBIOS (and the iPXE ROM it runs) prints on COM1 only when told the port, as a
        # little-endian integer (a string is not read as one).
        sercon = self.work / "sercon-port.bin"
        sercon.write_bytes((0x3F8).to_bytes(2, "little"))
        fw = ["-bios", str(OVMF)] if self.device.firmware == "uefi" else \
            ["-fw_cfg", f"name=etc/sercon-port,file={sercon}"]
        bootfile = (f",bootfile={GRUB_NETDIR}/{netboot.BOOTFILES[self.device.firmware]}"
                    if self.device.job == "grub-pxe.yaml" else "")
        net = ["-netdev", f"user,id=n0,tftp={self.tftp}{bootfile}", "-device", "e1000,netdev=n0", "-boot", "n"]
        return qemu.qemu_args(qemu.QEMU, "tcg", STANDIN_MEMORY_MIB, [*fw, *net, "-pidfile", str(self.pidfile)],
                              serial=f"tcp:127.0.0.1:{self.port},server=on,wait=on")

    def write(self) -> dict:
        """The scripts, and the dictionary's variables naming them."""
        import shlex
        log = self.work / "standin-qemu.log"
        on, off = self.work / "power-on.sh", self.work / "power-off.sh"
        # setsid -f: LAVA's power command returns at once; timeout(1) bounds the machine.
        on.write_text("#!/bin/sh\n# The stand-in's power switch (tools/ptplab/lava.py)\n"
                      f"setsid -f timeout -k 5 {self.limit} {shlex.join(self.qemu())} >>{shlex.quote(str(log))} 2>&1 "
                      "</dev/null\n")
        off.write_text("#!/bin/sh\n# Stops the stand-in, if it runs\n"
                       f"pid=$(cat {shlex.quote(str(self.pidfile))} 2>/dev/null) && kill \"$pid\" 2>/dev/null\n"
                       f"rm -f {shlex.quote(str(self.pidfile))}\nexit 0\n")
        return {"standin_power_on": f"/bin/sh {on}", "standin_power_off": f"/bin/sh {off}",
                "standin_hard_reset": f"/bin/sh -c '/bin/sh {off}; sleep 1; /bin/sh {on}'",
                # socat retries until the stand-in's serial port listens (power-on may come after);
                # raw: a key LAVA types reaches the machine at once, not at the end of a line.
                "standin_connect": f"socat STDIO,raw,echo=0 TCP:127.0.0.1:{self.port},retry=600,interval=0.1"}

    def stop(self) -> None:
        bounded(["/bin/sh", str(self.work / "power-off.sh")], 30, "stopping the stand-in")


def grub_netdir(tftp: Path) -> None:
    """GRUB's network directory for the stand-ins under LAVA's TFTP directory, once."""
    root = tftp / GRUB_NETDIR
    if not all((root / f).exists() for f in netboot.BOOTFILES.values()):
        try:
            netboot.mknetdir(tftp, subdir=f"{GRUB_NETDIR}/boot/grub")
        except netboot.NetbootError as e:
            raise BenchError(str(e))
    (root / "boot/grub/grub.cfg").write_text(STANDIN_GRUB_CFG)


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


# A server's job: how often its state is asked, and what a job's state and health are said as.
POLL_S = 3
FINISHED = "Finished"


def lavacli(identity: str, *args: str, seconds: float = 60) -> subprocess.CompletedProcess:
    p = bounded(["lavacli", "-i", identity, *args], seconds, f"lavacli -i {identity} {' '.join(args)}")
    if p.returncode != 0:
        raise BenchError(f"lavacli -i {identity} {' '.join(args)}: {(p.stderr or p.stdout).strip()[-400:]}")
    return p


def server_devices(identity: str) -> list[tuple[str, str]]:
    """(hostname, device type) of the server's devices whose type has a job here, online."""
    import yaml
    listed = yaml.safe_load(lavacli(identity, "devices", "list", "--yaml").stdout) or []
    types = {d.device_type: name for name, d in DEVICES.items() if d.firmware is None}
    return [(d["hostname"], d["type"]) for d in listed if d.get("type") in types and d.get("health") != "Retired"]


def run_server(plan: Plan, limit_margin: float) -> int:
    """--server IDENTITY: the job on each of the server's devices, submitted, waited for (a
    bounded poll), its raw log fetched and collected, the devices shown side by side."""
    import yaml
    facts = lab.facts()
    devices = server_devices(plan.server)
    if not devices:
        raise BenchError(f"--server {plan.server}: the server has no device of a type these jobs run on "
                         f"({', '.join(sorted({d.device_type for d in DEVICES.values() if d.firmware is None}))})")
    j = Job.new()
    module = layouts_module(plan, j.work)
    image = iso.make_iso(plan.kernel, plan.cmdline(), j.work / "bench.iso", module=module)
    device = DEVICES["qemu-tcg"]
    (j.work / "job.yaml").write_text(job(device, f"ptp-lab {plan.cmdline()}", plan.timeout, facts,
                                         ISO_URL=f"file://{image}"))
    ids = {}
    for host, dtype in devices:
        out = lavacli(plan.server, "jobs", "submit", str(j.work / "job.yaml")).stdout.split()
        ids[out[0]] = (host, dtype)
        say(f"lava: submitted job {out[0]} ({dtype}) to {plan.server}")
    limit = job_seconds(plan.timeout) + limit_margin
    deadline = time.monotonic() + limit
    shown: dict[str, dict] = {}
    while len(shown) < len(ids):
        for jid in ids:
            if jid in shown:
                continue
            info = yaml.safe_load(lavacli(plan.server, "jobs", "show", jid, "--yaml").stdout) or {}
            if info.get("state") == FINISHED:
                shown[jid] = info
        if len(shown) < len(ids):
            if time.monotonic() > deadline:
                for jid in set(ids) - set(shown):
                    say(f"lava: job {jid} did not finish within {limit:.0f} s: cancelling it")
                    lavacli(plan.server, "jobs", "cancel", jid)
                deadline = time.monotonic() + 60  # the cancellation's own bound
                limit = 60
            time.sleep(POLL_S)
    out_dir = Path(plan.out)
    files, worst = [], Exit.OK
    for jid, info in shown.items():
        host, dtype = ids[jid]
        log = j.work / f"job-{jid}.log"
        log.write_text(lavacli(plan.server, "jobs", "logs", "--raw", "--no-follow", jid, seconds=120).stdout)
        entries = lavalog.entries(log.read_text(errors="replace"), str(log))
        result, error, cases = outcome(entries, SUITE)
        say(f"lava: job {jid} on {info.get('device') or host}: {info.get('health')}"
            + (f" ({error})" if error else "") + f"; test cases: {counts(cases, facts['case_line']['results'])}")
        for c in cases:
            if c["result"] == "fail":
                say(f"lava:   failed: {c['name']}")
        before = set(out_dir.glob("*.jsonl"))
        rc = collect.main([str(log), "--accel", "tcg", "--out", str(out_dir), "--partial", "--lenient",
                           "--device", str(info.get("device") or host), "--device-type", dtype,
                           "--lava-job-id", jid, "--boot", device.boot])
        new = sorted(set(out_dir.glob("*.jsonl")) - before)
        files += new
        if new:
            keep_beside(new[0], log, cases, {"job_id": jid, "device": info.get("device") or host, "device_type": dtype,
                                             "boot": device.boot, "health": info.get("health"), "error": error})
        worst = max(worst, rc if rc != Exit.OK else (Exit.CHECKS_FAILED if any(c["result"] == "fail" for c in cases)
                                                    else Exit.OK))
    (j.work / "bench.iso").unlink(missing_ok=True)
    if files:
        from . import aggregate
        aggregate.main(list(map(str, files)), "machines")
    return worst


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
        context, standin, files = {}, None, {}
        module = layouts_module(plan, j.work)
        tftp = tftp_directory()
        if device.firmware is not None:
            standin = Standin(device, j.work, tftp, int(limit))
            context = standin.write()
            (j.work / "dispatcher.yaml").write_text(f"dispatcher_ip: {GUEST_HOST_IP}\n")
        if device.job == "qemu-iso.yaml":
            files["ISO_URL"] = f"file://{iso.make_iso(plan.kernel, plan.cmdline(), j.work / 'bench.iso', module=module)}"
        elif device.job == "grub-pxe.yaml":
            grub_netdir(tftp)
            files.update(KERNEL_URL=f"file://{plan.kernel}", CMDLINE=plan.cmdline(),
                         MODULE_URL=None if module is None else f"file://{module}")
        else:  # iPXE: the hybrid image, its GRUB running the job's command line under BIOS or UEFI
            image = iso.make_image(plan.kernel, j.work / "bench.iso", [("bench-kernel", plan.cmdline())], timeout=0,
                                   module=module)
            files.update(IMAGE_URL=f"file://{image}")
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
        try:
            with limits.exits_on_signals(), (serving or contextlib.nullcontext()):
                status, killed = run_lava(cmd, j.log, limit)
        except (KeyboardInterrupt, SystemExit) as e:  # run_lava stopped lava-run and all it started
            code = interrupted(signal.SIGINT) if isinstance(e, KeyboardInterrupt) else int(e.code)
            say(f"lava: job {j.id}: interrupted by {signal.Signals(code - 128).name}: lava-run and its QEMU stopped")
            report(j, plan, device, None, [], limit, facts["case_line"])
            return code
        finally:
            if standin is not None:
                standin.stop()  # power-off: whatever LAVA left running
            (j.work / "bench.iso").unlink(missing_ok=True)  # the job's files stay, not its 15 MB image
        return report(j, plan, device, status, killed, limit, facts["case_line"])
    except (BenchError, iso.IsoError) as e:
        say(f"lava: error: {e}")
        return getattr(e, "code", Exit.USAGE)


def report(j: Job, plan: Plan, device: Device, status: int | None, killed: list, limit: float,
           case_line: dict) -> int:
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
                       "--device", device_name(plan.device), "--device-type", device.device_type,
                       "--lava-job-id", str(j.id), "--boot", device.boot])
    new = sorted(set(out.glob("*.jsonl")) - before)
    if new:
        header = {"job_id": j.id, "device": device_name(plan.device), "device_type": device.device_type,
                  "boot": device.boot, "result": result, "error": error}
        for p in keep_beside(new[0], j.log, cases, header):
            say(f"lava: kept {p}")
    else:
        say(f"lava: the job's log stays in {j.log}")
    if status is None or not any(case_line["last_line"] in line for line in printed):
        tail = "\n".join(printed[-8:]) or "(nothing)"
        if not any(case_line["first_line"] in line for line in printed):
            # Nothing of the kernel: the firmware or the boot loader never got to it (a boot
            # file the network does not have, a menu LAVA could not interrupt).
            say(f"lava: job {j.id}: the machine never started the kernel ({error or 'no error given'}); the last "
                f"lines it printed:\n{tail}")
            return Exit.HUNG
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
