"""The lab's LAVA devices (`--device NAME`, lava/devices/NAME.jinja2) and how each boots the
kernel, and the stand-ins for real machines booted from the network: a QEMU (TCG, SeaBIOS or
OVMF) on QEMU's user-mode network, whose DHCP and TFTP serve LAVA's TFTP directory, its power
commands scripts that start it (bounded) and stop it, its serial port a TCP server on 127.0.0.1
that LAVA reaches through socat. `scripts/lava.sh --local` makes one per job; the loopback
server (lavaserver.py) one per device it registers."""
from __future__ import annotations

import re
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import limits, netboot, qemu
from .cli import BenchError
from .packages import OVMF


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
        self.port = self.port or limits.free_port()

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
        log = self.work / "standin-qemu.log"
        on, off = self.work / "power-on.sh", self.work / "power-off.sh"
        # setsid -f: LAVA's power command returns at once; timeout(1) bounds the machine. LAVA
        # runs the command on a pty, which hangs up as this shell ends: until setsid's child has
        # left the pty's session, it must not die of that SIGHUP (it did, now and then).
        on.write_text("#!/bin/sh\n# The stand-in's power switch (tools/ptplab/lavadevice.py)\ntrap '' HUP\n"
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
        try:
            limits.run(["/bin/sh", str(self.work / "power-off.sh")], 30, what="stopping the stand-in",
                       stdin=subprocess.DEVNULL, capture_output=True)
        except limits.TimedOut as e:
            raise BenchError(str(e))


def grub_netdir(tftp: Path) -> None:
    """GRUB's network directory for the stand-ins under LAVA's TFTP directory, once."""
    root = tftp / GRUB_NETDIR
    if not all((root / f).exists() for f in netboot.BOOTFILES.values()):
        try:
            netboot.mknetdir(tftp, subdir=f"{GRUB_NETDIR}/boot/grub")
        except netboot.NetbootError as e:
            raise BenchError(str(e))
    (root / "boot/grub/grub.cfg").write_text(STANDIN_GRUB_CFG)
