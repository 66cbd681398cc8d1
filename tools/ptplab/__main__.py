"""python3 -m ptplab bench|show|criterion ..."""
from __future__ import annotations

import sys

from . import bench


def usage() -> int:
    print("usage: python3 -m ptplab bench [options] | show FILE... | criterion [--dir D] [--out DIR]", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    if not argv:
        return usage()
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench":
        return bench.main(rest)
    if cmd == "show":
        from .show import main as show
        return show(rest)
    if cmd == "criterion":
        from .criterion import main as crit
        return crit(rest)
    print(f"ptplab: unknown command {cmd!r}", file=sys.stderr)
    return usage()


sys.exit(main(sys.argv[1:]))
