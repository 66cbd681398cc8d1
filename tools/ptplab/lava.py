"""`scripts/lava.sh`: the bench kernel as LAVA jobs. This first step runs the QEMU device type
locally: `--local` renders lava-server's stock qemu device type with our dictionary
(lava/devices/qemu-tcg.jinja2), writes the job (lava/jobs/qemu-iso.yaml) for the suite options
of scripts/bench.sh, runs it through Debian's `lava-run` (as root, no server), and collects the
job's log into a results file. (Server submission, PXE/TFTP and iPXE jobs: not yet.)"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import bench, collect, iso, lab
from .cli import BenchError, say

LAVA = lab.REPO / "lava"
# lava-server ships the device-type templates; installing it pulls Django and a database, so
# its package is only unpacked (apt-get download, dpkg -x) when it is not installed.
INSTALLED_TEMPLATES = Path("/usr/share/lava-server/device-types")
UNPACKED = lab.REPO / "target" / "lava-server"
WORK = lab.REPO / "target" / "lava"
RENDER = """import sys, jinja2
env = jinja2.Environment(loader=jinja2.FileSystemLoader(sys.argv[1:3]), trim_blocks=True, autoescape=False)
sys.stdout.write(env.get_template(sys.argv[3]).render())
"""


def templates() -> Path:
    """lava-server's device-type templates: installed, or unpacked from its Debian package."""
    if (INSTALLED_TEMPLATES / "qemu.jinja2").exists():
        return INSTALLED_TEMPLATES
    found = UNPACKED / "usr/share/lava-server/device-types"
    if (found / "qemu.jinja2").exists():
        return found
    UNPACKED.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["apt-get", "download", "lava-server"], cwd=UNPACKED, capture_output=True, text=True)
    debs = sorted(UNPACKED.glob("lava-server_*.deb"))
    if got.returncode != 0 or not debs:
        raise BenchError(f"could not download lava-server for its device types: {got.stderr.strip()[-300:]}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(UNPACKED)], check=True)
    return found


def render_device(dictionary: Path) -> str:
    """The device YAML lava-run takes. Rendered by the system's python3, which has jinja2 (a
    dependency of lava-dispatcher), not the tools' .venv."""
    p = subprocess.run(["/usr/bin/python3", "-c", RENDER, str(dictionary.parent), str(templates()), dictionary.name],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"rendering {dictionary}: {p.stderr.strip()[-400:]}")
    return p.stdout


def job(name: str, iso_url: str, minutes: int) -> str:
    text = (LAVA / "jobs" / "qemu-iso.yaml").read_text()
    return text.replace("JOB_NAME", name).replace("ISO_URL", iso_url).replace("MINUTES", str(minutes))


USAGE = ("usage: scripts/lava.sh --local [--selftest] [--suite LIST] [--pool-pages LIST] [--out DIR]\n"
         "  --local  run the job of the QEMU device type through lava-run here (as root) and collect its log;\n"
         "           the other options are scripts/bench.sh's")


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(__doc__.split("\n\n")[0] + "\n\n" + USAGE)
        return 0
    if "--local" not in argv:
        say("lava: error: only --local is supported yet (the QEMU device type through lava-run on this machine)")
        return 2
    rest = [a for a in argv if a != "--local"]
    try:
        if shutil.which("lava-run") is None:
            raise BenchError("lava-run is not installed (apt-get install -t bookworm-backports --no-remove "
                             "--no-install-recommends lava-dispatcher)")
        if os.geteuid() != 0:
            raise BenchError("lava-run runs a job as root only")
        plan = bench.plan_from_args(rest)
        if plan.host or plan.criterion or plan.image is not None:
            raise BenchError("--local runs the kernel: --host, --criterion and --image do not apply")
        if plan.cpus != 1:
            raise BenchError(f"--cpus {plan.cpus}: the QEMU device's job runs one CPU yet")
        if not lab.KERNEL.exists():
            raise BenchError(f"{lab.KERNEL} not built (scripts/lava.sh builds it)")
        # The ISO, device and job are work files (target/lava); what is collected goes to --out.
        stamp = time.strftime("%Y%m%d-%H%M%S")
        work, n = WORK / stamp, 1
        while work.exists():
            work, n = WORK / f"{stamp}-{n}", n + 1
        work.mkdir(parents=True)
        image = iso.make_iso(plan.kernel, plan.cmdline(), work / "bench.iso", module=bench.layouts_module(plan, work))
        (work / "device.yaml").write_text(render_device(LAVA / "devices" / "qemu-tcg.jinja2"))
        minutes = max(2, plan.timeout // 60 + 1)
        (work / "job.yaml").write_text(job(f"ptp-lab {plan.cmdline()}", f"file://{image}", minutes))
        say(f"lava: running {work / 'job.yaml'} through lava-run (log: {work / 'job.log'})")
        with open(work / "job.log", "w") as log:
            p = subprocess.run(["lava-run", "--job-id", "1", "--output-dir", str(work / "output"), "--device",
                                str(work / "device.yaml"), str(work / "job.yaml")], stdout=subprocess.DEVNULL,
                               stderr=log, stdin=subprocess.DEVNULL, timeout=minutes * 60 * 3 + 60)
        if p.returncode != 0:
            raise BenchError(f"lava-run exited {p.returncode} (its log: {work / 'job.log'})")
    except (BenchError, iso.IsoError) as e:
        say(f"lava: error: {e}")
        return getattr(e, "code", 2)
    except subprocess.TimeoutExpired:
        say(f"lava: error: lava-run did not finish in time (its log so far: {work / 'job.log'})")
        return 2
    return collect.main([str(work / "job.log"), "--accel", "tcg", "--out", str(plan.out)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
