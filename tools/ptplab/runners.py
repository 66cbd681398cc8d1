"""How each runner of the lab starts: one entry per row of the Rust runner table
(lab/ptp-lab/src/runner.rs, `ptp-host facts` key `runners`, which says what each needs set up
and which options it takes). A runner that runs here gives the bench job a `Start`: the command,
its environment, which exit statuses mean the run ended, and what it adds to the run record; the
job (bench.py) runs, collects and judges them all alike. The image writes a file instead; the
LAVA job has its own door (lava.py)."""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import lab, qemu
from .bootmodule import host_layouts, layouts_module
from .cli import BenchError, Exit, checked_plan, say
from .plan import Plan

# The criterion driver over the same table (lab/ptp-lab/benches/lab.rs); PTP_LAB_ARGS carries the run's words.
CRITERION = ["cargo", "bench", "--quiet", "-p", "ptp-lab", "--features", "std", "--bench", "lab", "--"]


@dataclass
class Start:
    """A run, ready to start."""
    cmd: list[str]
    accel: str  # the run record's accel
    label: str  # the results file's name part
    where: str  # in words, for the progress line
    place: str  # "kernel" (exit statuses through QEMU's isa-debug-exit) or "host"
    env: dict | None = None
    serial: Path | None = None  # where the emulator writes COM1 (Bochs), else stdout
    extra: dict = field(default_factory=dict)  # what it adds to the run record
    record_extra: Callable[[], dict] | None = None  # the same, asked once the run ended
    after: Callable[[dict], str] | None = None  # a line to say after a complete run

    def ended(self) -> set[int]:
        """The exit statuses of a run that ended (passed or failed), not crashed."""
        ex = lab.facts()["exit"][self.place]
        return {ex[k]["qemu_status"] if self.place == "kernel" else ex[k] for k in ("success", "failure")}

    def refused(self) -> int | None:
        """The exit status of a kernel that refused the run (nothing measured); None on the host."""
        return lab.kernel_status("usage") if self.place == "kernel" else None


def _need_kernel(plan: Plan) -> None:
    if not plan.kernel.exists():
        raise BenchError(f"kernel {plan.kernel} not built (cd bench-kernel && cargo build --release)")


def start_criterion(plan: Plan) -> Start:
    def where_report(run: dict) -> str:
        home = Path((run.get("timer") or {}).get("dir") or "")
        if "--noplot" in plan.criterion_args:
            return f"bench: criterion's estimates in {home} (no HTML report: --noplot)"
        return f"bench: criterion's HTML report: {home / 'report' / 'index.html'}"
    return Start(cmd=CRITERION + plan.criterion_args, accel="none", label="criterion", where="criterion on the host",
                 place="host", env={"PTP_LAB_ARGS": plan.cmdline(), **host_layouts(plan)}, after=where_report)


def start_host(plan: Plan) -> Start:
    if not plan.host_bin.exists():
        raise BenchError(f"host runner {plan.host_bin} not built (cargo build --release -p ptp-lab --features std)")
    return Start(cmd=[str(plan.host_bin)] + plan.cmdline().split(), accel="none", label="none",
                 where="host process", place="host", env=host_layouts(plan))


def start_bochs(plan: Plan) -> Start:
    if shutil.which(plan.bochs) is None:
        raise BenchError(f"{plan.bochs} not found: install the Debian packages bochs bochs-sdl bochsbios vgabios "
                         "(scripts/bench.sh does it when run as root)")
    _need_kernel(plan)
    from . import bochs
    from .iso import IsoError, make_iso
    work = Path(tempfile.mkdtemp(prefix="ptplab-bochs-"))
    try:
        iso = make_iso(plan.kernel, plan.cmdline(), work / "bench.iso", module=layouts_module(plan, work))
    except IsoError as e:
        raise BenchError(f"--accel bochs: {e}")
    cmd, serial = bochs.command(plan.bochs, work, iso, plan.memory, plan.cpus)
    return Start(cmd=cmd, accel="bochs", label="bochs", where="bench kernel under Bochs", place="kernel",
                 env=bochs.ENV, serial=serial,
                 record_extra=lambda: {"emulator": bochs.version(plan.bochs, plan.cpus),
                                       "bochs_config": Path(cmd[3]).read_text().splitlines()})


def start_qemu(plan: Plan) -> Start:
    if shutil.which(plan.qemu) is None:
        raise BenchError(f"{plan.qemu} not found: install the Debian package qemu-system-x86 "
                         "(scripts/bench.sh does it when run as root)")
    _need_kernel(plan)
    accel, extra = plan.accel, {}
    if accel in ("auto", "kvm"):
        ok, why = qemu.probe_kvm(plan.qemu, plan.kernel, plan.cpus)
        extra["kvm_probe"] = f"kvm probe: {'usable' if ok else 'unusable'}: {why}"
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
    module = layouts_module(plan, Path(tempfile.mkdtemp(prefix="ptplab-module-")))
    cmd = qemu.qemu_cmd(plan.qemu, plan.kernel, plan.memory, plan.cpus, accel, plan.cmdline(), module)

    def version() -> dict:
        v = qemu.qemu_version(plan.qemu)
        return {"emulator": v, "qemu_version": v, "qemu_args": cmd[1:]}
    return Start(cmd=cmd, accel=accel, label=accel, where=f"bench kernel under {accel.upper()}", place="kernel",
                 extra=extra, record_extra=version)


def suite_choices(plan: Plan, facts: dict) -> list[tuple[str, str, str]]:
    """The runs a real machine is offered, (key, title, kernel command line): this run's options
    first (the default), then the standard suites, a pool-size sweep, the selftest and the TLB
    suite on every CPU, each line made by the plan's check, as a run's is. The image's and the
    network's menus, and the LAVA jobs for real machines, are made from these."""
    def line(*args: str) -> str:
        keep = ["--seed", str(plan.seed)] + (["--append-extra", plan.extra] if plan.extra else [])
        return checked_plan("bench", ["--image", "menu.iso", *keep, *args])["cmdline"]
    sweep = facts["pool_pages"]["sweep"]
    return [("default", "PTP lab: the default run (as built)", plan.cmdline()),
            ("standard", "PTP lab: every suite, the standard pool", line()),
            ("sweep", f"PTP lab: pool-size sweep {sweep[0]} ... {sweep[-1]}",
             line("--pool-pages", ",".join(map(str, sweep)))),
            ("selftest", "PTP lab: selftest (every check, quick)", line("--selftest", "--pool-pages", "64,1024")),
            ("tlb", "PTP lab: TLB suite on every CPU", line("--suite", "tlb"))]


def image_entries(plan: Plan, facts: dict) -> list[tuple[str, str]]:
    """The real-hardware image's menu: `suite_choices`, each command line once."""
    seen, out = set(), []
    for _, title, cmd in suite_choices(plan, facts):
        if cmd not in seen:
            seen.add(cmd)
            out.append((title, cmd))
    return out


def write_image(plan: Plan) -> int:
    """--image FILE: the hybrid image for real machines (and for QEMU/Bochs)."""
    from .iso import IsoError, make_image
    _need_kernel(plan)
    if plan.image.exists():
        raise BenchError(f"--image {plan.image}: exists; images are not overwritten (remove it or name another)")
    try:
        plan.image.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="ptplab-image-"))
        # Every suite's module: the menu offers them all.
        module = layouts_module(dataclasses.replace(plan, suites=lab.facts()["suites"]), work)
        entries = image_entries(plan, lab.facts())
        make_image(plan.kernel, plan.image, entries, timeout=plan.menu_timeout, module=module)
    except IsoError as e:
        raise BenchError(f"--image: {e}")
    except OSError as e:
        raise BenchError(f"--image {plan.image}: {e.strerror}")
    say(f"bench: wrote {plan.image} (BIOS and UEFI, CD and USB stick); menu, first entry after "
        f"{plan.menu_timeout} s:\n" + "\n".join(f"  {t}: {c}" for t, c in entries))
    return 0


def write_netboot(plan: Plan) -> int:
    """--netboot DIR: the TFTP and HTTP roots a lab's boot servers hand its machines."""
    from .netboot import BOOTFILES, IMAGE, SCRIPT, NetbootError, write_roots
    _need_kernel(plan)
    try:
        work = Path(tempfile.mkdtemp(prefix="ptplab-netboot-"))
        module = layouts_module(dataclasses.replace(plan, suites=lab.facts()["suites"]), work)
        entries = image_entries(plan, lab.facts())
        tftp, http = write_roots(plan.netboot, plan.kernel, entries, plan.menu_timeout, module)
    except NetbootError as e:
        raise BenchError(f"--netboot: {e}")
    except OSError as e:
        raise BenchError(f"--netboot {plan.netboot}: {e.strerror}")
    say(f"bench: wrote {tftp} (TFTP root; DHCP boot file {BOOTFILES['bios']} for BIOS, {BOOTFILES['uefi']} for "
        f"UEFI) and {http} (HTTP root; iPXE: chain http://SERVER/{SCRIPT}, which sanboots {IMAGE}); menu, first "
        f"entry after {plan.menu_timeout} s:\n" + "\n".join(f"  {t}: {c}" for t, c in entries))
    return 0


# The runners the bench job starts, by the name the Rust table gives them.
STARTS: dict[str, Callable[[Plan], Start]] = {
    "qemu": start_qemu,
    "bochs": start_bochs,
    "host": start_host,
    "criterion": start_criterion,
}
# The runners that write a file instead of running.
WRITES: dict[str, Callable[[Plan], int]] = {
    "image": write_image,
    "netboot": write_netboot,
}
