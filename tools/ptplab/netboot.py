"""Network boot: what a lab's DHCP, TFTP and HTTP servers hand a machine. `write_roots(DIR, ...)`
writes DIR/tftp, GRUB's network directory for BIOS and UEFI (grub-mknetdir) with its menu, the
kernel and the layouts module, and DIR/http, the hybrid image and an iPXE script that sanboots
it. A DHCP server's boot file is `BOOTFILES[firmware]` in the TFTP root; GRUB finds its menu
and the kernel on the server that booted it (`(tftp)`). docs/real-hardware.md says how to
serve them; the LAVA stand-ins (lava.py) serve the same under QEMU's user-mode network."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from . import iso, limits
from .packages import GRUB_PLATFORMS

# The file a machine's PXE firmware fetches first, per firmware, relative to the TFTP root.
BOOTFILES = {"bios": "boot/grub/i386-pc/core.0", "uefi": "boot/grub/x86_64-efi/core.efi"}
# Where the kernel and its module sit in the TFTP root; the image and the script in the HTTP root.
KERNEL, MODULE = "ptplab/bench-kernel", "ptplab/module"
IMAGE, SCRIPT = "ptplab.iso", "boot.ipxe"
MKNETDIR_TIMEOUT_S = 120
# The iPXE script, chained from the HTTP root: the image's URI is relative to the script's.
IPXE_SCRIPT = f"#!ipxe\necho PTP lab: sanboot of {IMAGE}\nsanboot {IMAGE}\n"


class NetbootError(Exception):
    pass


def mknetdir(root: Path, subdir: str = "boot/grub") -> None:
    """GRUB's network directory in the TFTP root `root` for BIOS and UEFI: `subdir`/<platform>/
    (core image, modules, a grub.cfg that reads `subdir`/grub.cfg)."""
    if shutil.which("grub-mknetdir") is None:
        raise NetbootError("grub-mknetdir not found: install grub-common grub-pc-bin grub-efi-amd64-bin")
    for name, modules in GRUB_PLATFORMS.items():
        if not modules.is_dir():
            raise NetbootError(f"GRUB has no modules for {name} ({modules})")
        try:
            p = limits.run(["grub-mknetdir", f"--net-directory={root}", f"--subdir={subdir}", "-d", str(modules)],
                           MKNETDIR_TIMEOUT_S, capture_output=True, text=True, errors="replace",
                           stdin=subprocess.DEVNULL)
        except limits.TimedOut as e:
            raise NetbootError(str(e)) from None
        if p.returncode != 0:
            raise NetbootError(f"grub-mknetdir ({name}) failed ({p.returncode}): {p.stderr.strip()[-400:]}")


def write_tftp(root: Path, kernel: Path, entries: list[tuple[str, str]], timeout: int,
               module: Path | None) -> None:
    """The TFTP root: GRUB's network directory, its menu (each entry's command line), the
    kernel and the module."""
    mknetdir(root)
    (root / KERNEL).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(kernel, root / KERNEL)
    if module is not None:
        shutil.copy(module, root / MODULE)
    (root / "boot/grub/grub.cfg").write_text(
        iso.grub_cfg(entries, timeout, module is not None, kernel=f"(tftp)/{KERNEL}", module_path=f"(tftp)/{MODULE}"))


def write_roots(out: Path, kernel: Path, entries: list[tuple[str, str]], timeout: int,
                module: Path | None) -> tuple[Path, Path]:
    """`out`/tftp and `out`/http (see the module's doc); neither may exist yet."""
    tftp, http = out / "tftp", out / "http"
    for d in (tftp, http):
        if d.exists():
            raise NetbootError(f"{d} exists; network roots are not overwritten (remove it or name another DIR)")
    tftp.mkdir(parents=True)
    http.mkdir(parents=True)
    write_tftp(tftp, kernel, entries, timeout, module)
    try:
        iso.make_image(kernel, http / IMAGE, entries, timeout=timeout, module=module)
    except iso.IsoError as e:
        raise NetbootError(str(e)) from None
    (http / SCRIPT).write_text(IPXE_SCRIPT)
    return tftp, http
