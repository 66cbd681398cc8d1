"""python3 -m ptplab bench|show|iso|collect|facts ..."""
from __future__ import annotations

import sys
from pathlib import Path

from . import bench


def usage() -> int:
    print("usage: python3 -m ptplab bench [options] | show FILE...\n"
          "       python3 -m ptplab iso OUT.iso [KERNEL COMMAND LINE...]\n"
          "       python3 -m ptplab collect SERIAL_LOG --accel bare-metal|kvm|tcg [--out DIR]\n"
          "       python3 -m ptplab facts   (what the Rust side declares: records, names, limits, targets)",
          file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    if not argv:
        return usage()
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench":
        return bench.main(rest)
    if cmd == "collect":
        return bench.collect(rest)
    if cmd == "show":
        from .show import main as show
        return show(rest)
    if cmd == "iso":
        from .iso import IsoError, make_iso
        if not rest:
            return usage()
        if not bench.KERNEL.exists():
            print(f"iso: {bench.KERNEL} not built (cd bench-kernel && cargo build --release)", file=sys.stderr)
            return 2
        try:
            out = make_iso(bench.KERNEL, " ".join(rest[1:]) or "mode=bench", Path(rest[0]))
        except IsoError as e:
            print(f"iso: {e}", file=sys.stderr)
            return 2
        print(f"iso: wrote {out}: boot it (BIOS) and read the results on COM1 at 115200 baud", file=sys.stderr)
        return 0
    if cmd == "facts":
        import json

        from . import lab
        print(json.dumps(lab.facts(), indent=1))
        return 0
    print(f"ptplab: unknown command {cmd!r}", file=sys.stderr)
    return usage()


sys.exit(main(sys.argv[1:]))
