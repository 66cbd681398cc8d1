"""A GRUB rescue ISO around the bench kernel (multiboot2), for real hardware and to test the
multiboot2 entry under QEMU. Needs grub-mkrescue (grub-pc-bin, grub-common), xorriso, mtools."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

GRUB_CFG = """set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "bench-kernel" {{
    multiboot2 /boot/bench-kernel {cmdline}
{module}    boot
}}
"""


class IsoError(Exception):
    pass


def make_iso(kernel: Path, cmdline: str, out: Path, module: Path | None = None) -> Path:
    """Write a bootable ISO to `out` whose GRUB boots `kernel` with `cmdline` (serial console),
    handing it `module` (multiboot2 module) if given."""
    if shutil.which("grub-mkrescue") is None:
        raise IsoError("grub-mkrescue not found: install grub-pc-bin grub-common xorriso mtools")
    if any(c in cmdline for c in "\n\"'{}$;\\"):
        raise IsoError(f"kernel command line {cmdline!r} has characters GRUB would interpret")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "boot/grub").mkdir(parents=True)
        shutil.copy(kernel, root / "boot/bench-kernel")
        if module is not None:
            shutil.copy(module, root / "boot/module")
        line = "    module2 /boot/module\n" if module is not None else ""
        (root / "boot/grub/grub.cfg").write_text(GRUB_CFG.format(cmdline=cmdline, module=line))
        p = subprocess.run(["grub-mkrescue", "-o", str(out), str(root)], capture_output=True, text=True)
        if p.returncode != 0:
            raise IsoError(f"grub-mkrescue failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return out
