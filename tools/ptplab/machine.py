"""Booting the real-hardware image as a machine would: under SeaBIOS or OVMF (UEFI), from a CD or
as a USB stick on an xHCI controller; and reading its screen afterwards (VGA text memory under
BIOS, a screendump of the framebuffer under UEFI) through QMP. The image tests use it; so can a
person checking an image before writing it to a stick. QEMU runs under a time limit in a
session of its own, killed with its process group; every read from its QMP monitor waits at most
QMP_TIMEOUT_S, and a timeout is an error naming what it waited for."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .lab import facts
from .qemu import QEMU, qemu_args
from .stream import parse_line
from .packages import OVMF

VGA_TEXT = 0xB8000
# Seconds a QMP exchange (the greeting, a command's reply) may take; QEMU answers in milliseconds.
QMP_TIMEOUT_S = 30


class MachineError(Exception):
    """QEMU's monitor did not answer (in time, or at all); the message says what was awaited."""


class Qmp:
    """QEMU's QMP monitor at a Unix socket: connects, reads the greeting, and runs commands, each
    read waiting at most `timeout` seconds."""

    def __init__(self, path: Path, timeout: float = QMP_TIMEOUT_S):
        self.path, self.timeout = path, timeout
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as e:
            self.sock.close()
            raise MachineError(f"QMP: could not connect to QEMU's monitor at {path}: {e}") from None
        self.file = self.sock.makefile("rw")
        self.read("its greeting", time.monotonic() + timeout)

    def read(self, waiting_for: str, deadline: float) -> dict:
        try:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            line = self.file.readline()
        except TimeoutError:
            raise MachineError(f"QMP: no {waiting_for} from QEMU's monitor ({self.path}) within "
                               f"{self.timeout:g} s") from None
        if not line:
            raise MachineError(f"QMP: QEMU's monitor ({self.path}) closed the connection before {waiting_for}")
        try:
            return json.loads(line)
        except ValueError:
            raise MachineError(f"QMP: {waiting_for} from QEMU's monitor ({self.path}) is not JSON: "
                               f"{line.strip()[:200]!r}") from None

    def __call__(self, command: str, **arguments) -> dict:
        """Run `command`; its reply (events on the way are skipped), all within `timeout` s."""
        deadline = time.monotonic() + self.timeout
        try:
            self.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
            self.file.flush()
        except OSError as e:
            raise MachineError(f"QMP: could not send {command} to QEMU's monitor ({self.path}): {e}") from None
        while True:
            reply = self.read(f"reply to {command}", deadline)
            if "return" in reply or "error" in reply:
                return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def drive(image: Path, how: str) -> list[str]:
    if how == "cdrom":
        return ["-cdrom", str(image)]
    if how == "usb":
        return ["-device", "qemu-xhci", "-drive", f"if=none,id=stick,format=raw,file={image}",
                "-device", "usb-storage,drive=stick"]
    raise ValueError(f"drive {how!r}: cdrom or usb")


def firmware(which: str) -> list[str]:
    if which == "bios":
        return []  # QEMU's default, SeaBIOS
    if which == "uefi":
        if not OVMF.exists():
            raise FileNotFoundError(f"{OVMF}: install the Debian package ovmf")
        return ["-bios", str(OVMF)]
    raise ValueError(f"firmware {which!r}: bios or uefi")


@dataclass
class Booted:
    records: list[dict] = field(default_factory=list)
    log: str = ""
    status: int | None = None
    # Text rows read back from VGA memory (BIOS), or the screendump (UEFI): width, height, RGB bytes.
    text: list[str] | None = None
    pixels: tuple[int, int, bytes] | None = None


def boot(image: Path, fw: str, how: str, timeout: float = 120, cpus: int = 1, look: bool = False) -> Booted:
    """Boot `image`; return its serial records. `look`: the kernel halts instead of leaving QEMU,
    and once its last line is out the screen is read, then QEMU is stopped."""
    args = [*firmware(fw), *drive(image, how)]
    if not look:
        cmd = qemu_args(QEMU, "tcg", 512, args, cpus=cpus)
        # timeout(1) kills QEMU (KILL 10 s after TERM) and leaves status 124 and what it printed.
        p = subprocess.run(["timeout", "-k", "10", str(int(timeout))] + cmd, capture_output=True, text=True,
                           errors="replace", stdin=subprocess.DEVNULL, timeout=timeout + 60)
        return Booted(records=[r for r in map(parse_line, p.stdout.splitlines()) if r], log=p.stdout,
                      status=p.returncode)
    with tempfile.TemporaryDirectory(prefix="ptplab-look-") as tmp:
        serial, qmp_path = Path(tmp) / "serial.log", Path(tmp) / "qmp.sock"
        cmd = qemu_args(QEMU, "tcg", 512, args, cpus=cpus, serial=f"file:{serial}",
                              monitor=["-qmp", f"unix:{qmp_path},server,nowait"], debug_exit=False)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        halted = facts()["case_line"]["last_line"]  # the kernel's last line (ptp_lab::exit::HALTED)
        try:
            t0 = time.monotonic()
            text = ""
            while time.monotonic() - t0 < timeout and halted not in text and proc.poll() is None:
                time.sleep(0.2)
                text = serial.read_text(errors="replace") if serial.exists() else ""
            out = Booted(records=[r for r in map(parse_line, text.splitlines()) if r], log=text)
            if halted not in text:
                return out
            time.sleep(0.3)  # the halted line reaches the screen right after the serial port
            with Qmp(qmp_path) as qmp:
                qmp("qmp_capabilities")
                if fw == "bios":
                    dump = Path(tmp) / "vga.bin"
                    qmp("pmemsave", val=VGA_TEXT, size=80 * 25 * 2, filename=str(dump))
                    raw = dump.read_bytes()
                    out.text = [raw[r * 160:(r + 1) * 160:2].decode("ascii", "replace").rstrip() for r in range(25)]
                else:
                    dump = Path(tmp) / "screen.ppm"
                    qmp("screendump", filename=str(dump))
                    out.pixels = ppm(dump.read_bytes())
                try:
                    qmp("quit")
                except MachineError:
                    pass  # QEMU may close the monitor before it answers; it is killed below anyway
            return out
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # QEMU's session: QEMU and anything it started
            except ProcessLookupError:
                pass
            proc.wait()


def ppm(data: bytes) -> tuple[int, int, bytes]:
    """A binary PPM (P6, 8-bit) as (width, height, RGB bytes)."""
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or int(fields[3]) != 255:
        raise ValueError("not an 8-bit binary PPM")
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos + 1:pos + 1 + w * h * 3]


def lit_rows(pixels: tuple[int, int, bytes], rows: int = 12, row_height: int = 16,
             threshold: int = 128) -> list[int]:
    """For the first `rows` text rows of `row_height` pixels, how many pixels are brighter than
    `threshold` (the kernel draws light text on black)."""
    w, h, rgb = pixels
    counts = []
    for top in range(0, min(h, rows * row_height) - row_height + 1, row_height):
        n = 0
        for y in range(top, top + row_height):
            line = rgb[y * w * 3:(y + 1) * w * 3]
            n += sum(1 for i in range(0, len(line), 3) if max(line[i], line[i + 1], line[i + 2]) > threshold)
        counts.append(n)
    return counts
