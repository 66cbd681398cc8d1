"""python3 -m ptplab COMMAND ...: the PTP lab's tools (each command has --help)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from . import lab, qemu
from .cli import BenchError, Parser

COMMANDS = {
    "bench": "run the suites (what scripts/bench.sh calls after setting up)",
    "show": "show recorded runs: a list, one run's table, or runs side by side",
    "collect": "turn a captured serial log (bare metal) into a results file",
    "iso": "write a BIOS GRUB ISO that boots the bench kernel (multiboot2)",
    "boot": "boot the bench kernel under QEMU/TCG, serial output on stdout",
    "capacity": "pool pages a PTP needs for real process layouts, and whether they fit each pool size",
    "layouts": "capture: record the layouts of a set of running programs (results/layouts)",
    "lava": "LAVA jobs of the bench kernel: --local runs the QEMU device type through lava-run and collects its log "
            "(what scripts/lava.sh runs)",
    "lava-server": "a LAVA server on 127.0.0.1 (start, stop, status): what scripts/lava-server.sh runs",
    "replay": "replay lifetime traces (scripts/capture-traces.sh, or strace -f logs): peak pool pages per process, "
              "bump and bitmap",
    "capture-traces": "record a program's lifetime: strace -f of its memory and process calls, its exec and exit "
                      "layouts (what scripts/capture-traces.sh runs)",
    "flushes": "the TLB flushes lifetime traces ask for, per process and class; with --costs, the ceiling that "
               "costs them least on one CPU",
    "compare": "baseline against candidate runs: ratio per benchmark, beyond the noise or not (--fail-on-regression)",
    "machines": "runs of several machines side by side (latest per machine; native and emulated apart)",
    "targets": "the speed targets judged over repeated runs: each run's ratio and the ratio of the means",
    "report": "the decision report (Markdown): what the standard pool size buys, what changes at N",
    "facts": "print what the Rust side declares: record shapes, names, limits, exit codes, targets",
    "setup": "install the Debian packages a run needs (qemu, grub, ovmf, bochs), removing nothing",
    "exit-codes": "every exit status: the bench job's, the bench kernel's under QEMU, the host runner's",
    "options": "every option of scripts/bench.sh and scripts/lava.sh, from the options table (Markdown)",
}


def usage(file=sys.stdout) -> None:
    print("usage: python3 -m ptplab COMMAND [--help] ...\n\ncommands:", file=file)
    from .table import grid
    for line in grid([[name, what] for name, what in COMMANDS.items()]):
        print("  " + line, file=file)


def iso(argv: list[str]) -> int:
    from .iso import IsoError, make_iso
    ap = Parser(prog="python3 -m ptplab iso", description=COMMANDS["iso"])
    ap.add_argument("out", help="the ISO file to write")
    ap.add_argument("cmdline", nargs="*", help="the kernel command line (default: mode=bench)")
    try:
        a = ap.parse_args(argv)
    except BenchError as e:
        print(f"iso: error: {e}", file=sys.stderr)
        return 2
    if not lab.KERNEL.exists():
        print(f"iso: {lab.KERNEL} not built (cd bench-kernel && cargo build --release)", file=sys.stderr)
        return 2
    try:
        out = make_iso(lab.KERNEL, " ".join(a.cmdline) or "mode=bench", Path(a.out))
    except IsoError as e:
        print(f"iso: {e}", file=sys.stderr)
        return 2
    print(f"iso: wrote {out}: boot it (BIOS) and read the results on COM1 at 115200 baud", file=sys.stderr)
    return 0


def boot(argv: list[str]) -> int:
    ap = Parser(prog="python3 -m ptplab boot", description=COMMANDS["boot"],
                      epilog="Environment: TIMEOUT (seconds, default 30), MEM_MIB (default 1024).")
    ap.add_argument("cmdline", nargs=argparse.REMAINDER, help="the kernel command line")
    a = ap.parse_args(argv)
    if not lab.KERNEL.exists():
        print(f"boot: {lab.KERNEL} not built (cd bench-kernel && cargo build --release)", file=sys.stderr)
        return 2
    cmd = qemu.qemu_args(qemu.QEMU, "tcg", int(os.environ.get("MEM_MIB", "1024")),
                          ["-kernel", str(lab.KERNEL), "-append", " ".join(a.cmdline)])
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=float(os.environ.get("TIMEOUT", "30"))).returncode
    except subprocess.TimeoutExpired:
        print("boot: timed out (TIMEOUT seconds)", file=sys.stderr)
        return 124


def facts(argv: list[str]) -> int:
    import json

    Parser(prog="python3 -m ptplab facts", description=COMMANDS["facts"]).parse_args(argv)
    print(json.dumps(lab.facts(), indent=1))
    return 0


def exit_codes(argv: list[str]) -> int:
    from .cli import exit_codes_table

    Parser(prog="python3 -m ptplab exit-codes", description=COMMANDS["exit-codes"]).parse_args(argv)
    print(exit_codes_table(), end="")
    return 0


def options(argv: list[str]) -> int:
    from .cli import options_table

    Parser(prog="python3 -m ptplab options", description=COMMANDS["options"]).parse_args(argv)
    print(options_table(), end="")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        usage(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "bench":
            from . import bench
            return bench.main(rest)
        if cmd == "collect":
            from .collect import main as collect
            return collect(rest)
        if cmd == "show":
            from .show import main as show
            return show(rest)
        if cmd == "iso":
            return iso(rest)
        if cmd == "boot":
            return boot(rest)
        if cmd == "facts":
            return facts(rest)
        if cmd == "exit-codes":
            return exit_codes(rest)
        if cmd == "options":
            return options(rest)
        if cmd == "setup":
            from .packages import main as setup
            return setup(rest)
        if cmd in ("compare", "machines", "targets"):
            from . import aggregate
            return aggregate.main(rest, cmd)
        if cmd == "report":
            from .report import main as report
            return report(rest)
        if cmd == "lava":
            from .lava import main as lava
            return lava(rest)
        if cmd == "lava-server":
            from .lavaserver import main as lava_server
            return lava_server(rest)
        if cmd == "replay":
            from .replay import main as replay
            return replay(rest)
        if cmd == "flushes":
            from .flushes import main as flushes
            return flushes(rest)
        if cmd == "capture-traces":
            from .programs import main as capture
            return capture(rest)
        if cmd in ("capacity", "layouts"):
            from . import layouts
            return layouts.capacity(rest) if cmd == "capacity" else layouts.main(rest)
    except BenchError as e:
        print(f"{cmd}: error: {e}", file=sys.stderr)
        return e.code
    print(f"ptplab: unknown command {cmd!r}", file=sys.stderr)
    usage(sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
