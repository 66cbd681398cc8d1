"""QEMU: the one command line that boots the bench kernel (or an image), the KVM probe that
decides whether KVM can run the kernel here, and the version recorded with a run."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from . import lab, stream
from .cli import BenchError, checked_plan, interrupted

QEMU = "qemu-system-x86_64"
# A selftest boot takes well under a second under KVM; a guest KVM cannot run hangs paused.
PROBE_TIMEOUT_S = 10


def qemu_args(qemu: str, accel: str, memory_mib: int, boot: list[str], cpu: str | None = None,
              cpus: int = 1, serial: str = "stdio", monitor: list[str] | None = None,
              debug_exit: bool = True) -> list[str]:
    """The one QEMU command line: `boot` is `-kernel K -append LINE` (PVH), `-cdrom ISO` (GRUB),
    or an image as a USB stick (with `-bios OVMF` for UEFI). To look at the screen after the run:
    `serial` a file, `monitor` a QMP socket, no `debug_exit` (the kernel halts instead)."""
    cpu = cpu or ("host" if accel == "kvm" else "max")
    port = lab.facts()["exit"]["debug_exit_port"]
    exit_device = ["-device", f"isa-debug-exit,iobase={port:#x},iosize=0x04"] if debug_exit else []
    return [qemu, "-accel", accel, "-cpu", cpu, "-smp", str(cpus), "-m", f"{memory_mib}M", "-nographic", "-no-reboot",
            "-serial", serial, "-display", "none", *(monitor or ["-monitor", "none"]), *exit_device, *boot]


def qemu_cmd(qemu: str, kernel: Path, memory_mib: int, cpus: int, accel: str, cmdline: str,
             module: Path | None = None) -> list[str]:
    """The kernel booted directly (PVH) with `cmdline`, and `module` (the layouts) as its initrd."""
    boot = ["-kernel", str(kernel), "-append", cmdline] + (["-initrd", str(module)] if module else [])
    return qemu_args(qemu, accel, memory_mib, boot, cpus=cpus)


def probe_kvm(qemu: str, kernel: Path, cpus: int) -> tuple[bool, str]:
    """Can KVM run this kernel? A short selftest boot with -cpu host decides."""
    dev = Path("/dev/kvm")
    if not dev.exists():
        return False, "/dev/kvm does not exist"
    if not os.access(dev, os.R_OK | os.W_OK):
        return False, "/dev/kvm is not readable and writable by this user"
    # The probe's command line as any run's is made: by the plan's check.
    probe = checked_plan("bench", ["--image", "probe.iso", "--selftest", "--suite", "alloc", "--pool-pages", "64",
                                   "--quick"])["cmdline"]
    out = stream.run_process(qemu_cmd(qemu, kernel, 256, cpus, "kvm", probe), timeout=PROBE_TIMEOUT_S)
    if out.interrupted is not None:
        raise BenchError(f"interrupted by {signal.Signals(out.interrupted).name} during the KVM probe: "
                         "nothing was measured", code=interrupted(out.interrupted))
    end = out.end()
    if end and end.get("status") == "ok" and out.status == lab.kernel_status("success"):
        return True, "a selftest boot under KVM passed"
    if out.timed_out:
        why = f"the probe boot hung (no result within {PROBE_TIMEOUT_S} s)"
    else:
        why = f"the probe boot ended with QEMU status {out.status}"
    tail = " | ".join(line for line in out.log[-3:] if line.strip())
    return False, f"{why}{': ' + tail if tail else ''}"


def qemu_version(qemu: str) -> str:
    try:
        first = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=10).stdout.splitlines()
        return first[0] if first else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
