"""Bochs as a way to run the bench kernel: an emulated Intel CPU (Haswell) with what QEMU's TCG
lacks here (PCID, INVPCID, x2APIC), with as many CPUs as asked (`--cpus`). It boots the lab's GRUB ISO (BIOS, from the
CD), writes COM1 to a file, and runs headless: SDL2 with the dummy video driver opens no window
and no listener (never `rfb`: an unauthenticated VNC server on every interface). Debian builds
it with its debugger, so `-rc` feeds it `c` (continue). It has no isa-debug-exit: the bench
job stops it once the kernel's exit record is out."""
from __future__ import annotations

import subprocess
from pathlib import Path

from .packages import BOCHS_BIOS

BOCHS = "bochs"
CPU_MODEL = "corei7_haswell_4770"
# Emulated instructions per second: fixes the emulated clock, so runs are comparable.
IPS = 200_000_000
BIOS = BOCHS_BIOS
VGA_BIOS = Path("/usr/share/bochs/VGABIOS-lgpl-latest")
ENV = {"SDL_VIDEODRIVER": "dummy"}


def config(iso: Path, serial: Path, log: Path, memory_mib: int, cpus: int) -> str:
    return "\n".join([
        f"megs: {memory_mib}",
        f"cpu: count={cpus}, model={CPU_MODEL}, ips={IPS}",
        f"romimage: file={BIOS}",
        f"vgaromimage: file={VGA_BIOS}",
        f"ata0-master: type=cdrom, path={iso}, status=inserted",
        "boot: cdrom",
        f"com1: enabled=1, mode=file, dev={serial}",
        "display_library: sdl2",
        f"log: {log}",
        "panic: action=fatal",
        "",
    ])


def command(bochs: str, workdir: Path, iso: Path, memory_mib: int, cpus: int) -> tuple[list[str], Path]:
    """The command that boots `iso`, and the file its serial output goes to."""
    serial = workdir / "serial.log"
    rc = workdir / "bochs.rc"
    cfg = workdir / "bochsrc"
    cfg.write_text(config(iso, serial, workdir / "bochs.log", memory_mib, cpus))
    rc.write_text("c\n")
    return [bochs, "-q", "-f", str(cfg), "-rc", str(rc)], serial


def version(bochs: str, cpus: int) -> str:
    """`Bochs x86 Emulator 2.7` (and the CPU model it runs)."""
    try:
        text = subprocess.run([bochs, "--help"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        line = next((x.strip() for x in (text.stdout + text.stderr).splitlines() if "Bochs x86 Emulator" in x),
                    "Bochs")
    except (OSError, subprocess.TimeoutExpired):
        line = "Bochs"
    return f"{line} ({CPU_MODEL}, {cpus} CPU{'s' if cpus > 1 else ''})"
