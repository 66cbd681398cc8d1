"""GRUB images around the bench kernel (multiboot2). `make_image` writes the one hybrid image
for real hardware: it boots from a CD and from a USB stick, under BIOS and under UEFI
(grub-mkrescue with grub-pc-bin and grub-efi-amd64-bin, xorriso, mtools), with a menu;
`make_iso` the one-entry ISO the bench job boots under Bochs."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from . import limits
from .packages import GRUB_PLATFORMS

# grub-mkrescue (and the xorriso and mformat it runs) takes seconds; past this it is killed.
MKRESCUE_TIMEOUT_S = 300

# Menu on the screen and on COM1 alike. UEFI: load the GOP drivers so GRUB hands the kernel a
# framebuffer; BIOS: keep VGA text mode (set inside each entry: entries do not see variables
# set outside them).
GRUB_HEAD = """set timeout={timeout}
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
if [ "${{grub_platform}}" = "efi" ]; then insmod efi_gop; insmod efi_uga; fi
"""
GRUB_ENTRY = """menuentry "{title}" {{
    if [ "${{grub_platform}}" = "pc" ]; then set gfxpayload=text; fi
    multiboot2 {kernel} {cmdline}
{module}    boot
}}
"""


class IsoError(Exception):
    pass


def grub_cfg(entries: list[tuple[str, str]], timeout: int, module: bool, kernel: str = "/boot/bench-kernel",
             module_path: str = "/boot/module") -> str:
    """The menu: one entry per (title, kernel command line), the first the default; the kernel
    and its module at these GRUB paths (on the image, or `(tftp)/...` on the boot server)."""
    for title, cmdline in entries:
        for what, text in (("menu title", title), ("kernel command line", cmdline)):
            if any(c in text for c in "\n\"'{}$;\\"):
                raise IsoError(f"{what} {text!r} has characters GRUB would interpret")
    line = f"    module2 {module_path}\n" if module else ""
    return GRUB_HEAD.format(timeout=timeout) + "".join(
        GRUB_ENTRY.format(title=title, kernel=kernel, cmdline=cmdline, module=line) for title, cmdline in entries)


def make_image(kernel: Path, out: Path, entries: list[tuple[str, str]], timeout: int = 5,
               module: Path | None = None, platforms: tuple[str, ...] = ("BIOS", "UEFI")) -> Path:
    """Write to `out` an image whose GRUB menu boots `kernel` with each entry's command line,
    handing it `module` (a multiboot2 module) if given; for `platforms` (BIOS, UEFI: both make
    it hybrid, and grub-mkrescue makes it bootable from a USB stick as well as a CD)."""
    if shutil.which("grub-mkrescue") is None:
        raise IsoError("grub-mkrescue not found: install grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools "
                       "(scripts/make-image.sh does it when run as root)")
    missing = [f"{p} ({GRUB_PLATFORMS[p]})" for p in platforms if not GRUB_PLATFORMS[p].is_dir()]
    if missing:
        raise IsoError(f"GRUB has no modules for {', '.join(missing)}: install grub-pc-bin (BIOS) and "
                       "grub-efi-amd64-bin (UEFI)")
    cfg = grub_cfg(entries, timeout, module is not None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "boot/grub").mkdir(parents=True)
        shutil.copy(kernel, root / "boot/bench-kernel")
        if module is not None:
            shutil.copy(module, root / "boot/module")
        (root / "boot/grub/grub.cfg").write_text(cfg)
        dirs = [a for p in platforms for a in ("-d", str(GRUB_PLATFORMS[p]))] if len(platforms) == 1 else []
        try:
            p = limits.run(["grub-mkrescue", *dirs, "-o", str(out), str(root)], MKRESCUE_TIMEOUT_S,
                           capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        except limits.TimedOut as e:
            raise IsoError(f"{e}: {e.output.strip()[-500:] or 'it printed nothing'}") from None
        if p.returncode != 0:
            raise IsoError(f"grub-mkrescue failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return out


def make_iso(kernel: Path, cmdline: str, out: Path, module: Path | None = None) -> Path:
    """A BIOS ISO that boots `kernel` with `cmdline` at once (what the bench job boots in Bochs)."""
    return make_image(kernel, out, [("bench-kernel", cmdline)], timeout=0, module=module, platforms=("BIOS",))
