"""What every command shares: the error a user can fix, the argument parser that reports like it,
and the checks of the options several commands take (pool sizes, suites, positive numbers).
It knows nothing of any one command."""
from __future__ import annotations

import argparse
import enum
import sys

from . import lab


class Exit(enum.IntEnum):
    """How the bench job (and collect) ends: its process exit status. Interrupted by a signal:
    128 + the signal's number, after keeping what was measured. `python3 -m ptplab exit-codes`
    lists these beside the kernel's and the host runner's (docs/exit-codes.md)."""
    OK = 0
    CHECKS_FAILED = 1
    USAGE = 2
    KVM_UNUSABLE = 3
    HUNG = 4
    CRASHED = 5
    SCHEMA = 6


EXIT_MEANING = {
    Exit.OK: "every check passed; the results file is written",
    Exit.CHECKS_FAILED: "the run ended, some checks failed (named on stderr and in the file)",
    Exit.USAGE: "bad input: an option, a file, a value (the message names it); nothing was run",
    Exit.KVM_UNUSABLE: "--accel kvm, and KVM cannot run the bench kernel here (the probe says why)",
    Exit.HUNG: "the guest hung past --timeout; what it printed is kept as a .partial.jsonl file",
    Exit.CRASHED: "the guest crashed or its log was cut before the end record; kept as .partial.jsonl",
    Exit.SCHEMA: "the run's records do not match the schema (the first problems named)",
}
INTERRUPTED = "128 + N: interrupted by signal N (SIGINT: 130, SIGTERM: 143); what was measured is kept"


def interrupted(signum: int) -> int:
    """The exit status after signal `signum` stopped a run."""
    return 128 + signum


class BenchError(Exception):
    """A problem the user can fix; the message names the bad value."""

    def __init__(self, msg: str, code: int = Exit.USAGE):
        super().__init__(msg)
        self.code = int(code)


def exit_codes_table() -> str:
    """Every exit status of the lab: the bench job's (above), the bench kernel's through QEMU's
    isa-debug-exit and the host runner's (both from `ptp-host facts`), as one Markdown table."""
    ex = lab.facts()["exit"]
    rows = ["| program | status | meaning |", "| --- | --- | --- |"]
    rows += [f"| bench job | {int(e)} | {EXIT_MEANING[e]} |" for e in Exit]
    rows.append(f"| bench job | {INTERRUPTED.split(':')[0]} | {INTERRUPTED.split(': ', 1)[1]} |")
    port = ex["debug_exit_port"]
    for name, k in ex["kernel"].items():
        rows.append(f"| bench kernel under QEMU (isa-debug-exit, port {port:#x}, value {k['port_value']:#x}) | "
                    f"{k['qemu_status']} | {name} |")
    for name, code in ex["host"].items():
        rows.append(f"| host runner (`ptp-host`) | {code} | {name} |")
    return "\n".join(rows) + "\n"


def options_table() -> str:
    """Every option of scripts/bench.sh and scripts/lava.sh (the options table, `ptp-host facts`),
    as one Markdown table: what docs/running.md shows."""
    facts = lab.facts()
    runners = {r["name"]: r for r in facts["runners"]}
    rows = ["| option | script | runs it applies to | default | what |", "| --- | --- | --- | --- | --- |"]
    for o in facts["options"]:
        if o["hidden"]:
            continue
        flag = o["flag"] + (f" {o['metavar']}" if o["metavar"] else "" if o["kind"] == "switch"
                            else " " + "\\|".join(o["choices"]) if o["choices"] else f" {o['kind'].upper()}")
        scripts = sorted({runners[r]["script"] for r in o["on"]})
        on = "every run" if len(o["on"]) == len(runners) else ", ".join(r for r in o["on"])
        limits = f" ({o['min']}..{o['max']})" if o["kind"] == "number" and o["max"] < 2**63 else ""
        rows.append(f"| `{flag}` | {', '.join(f'`{x}`' for x in scripts)} | {on} | {o['default'] or '-'} | "
                    f"{o['help']}{limits} |")
    return "\n".join(rows) + "\n"


class Parser(argparse.ArgumentParser):
    def __init__(self, **kw):
        super().__init__(allow_abbrev=False, **kw)  # --pool-page is a typo, not --pool-pages

    def error(self, message):  # one line, exit 2, like every other bad input
        raise BenchError(message)


def say(msg: str) -> None:
    """A message to the person running the command (stderr: stdout carries the tables)."""
    print(msg, file=sys.stderr, flush=True)


def checked_plan(door: str, argv: list[str]) -> dict:
    """The run `argv` asks for at `door` (bench or lava), as the one check of a run's arguments
    (`ptp-host plan`, lab/ptp-lab/src/plan.rs) makes it; its one-line refusal as a BenchError."""
    return _ask_checked("plan", door, *argv)


def pools(text: str) -> list[int]:
    """The pool sizes of a --pool-pages value, checked where every other is (`ptp-host pools`)."""
    return _ask_checked("pools", text)["pools"]


def _ask_checked(*args: str) -> dict:
    try:
        return lab.ask(*args, plain=True)
    except lab.LabError as e:  # Refused: ptp-host's own line, shown as it is
        raise BenchError(str(e)) from None


def door_parser(door: str, **kw) -> argparse.ArgumentParser:
    """The --help of a front door, from the options table (`ptp-host facts`, key `options`): what
    it lists is what `ptp-host plan` takes. It checks nothing."""
    facts = lab.facts()
    at_door = {r["name"] for r in facts["runners"] if r["door"] == door}
    titles = {r["name"]: r["title"] for r in facts["runners"]}
    p = Parser(**kw)
    for o in facts["options"]:
        if o["hidden"] or not at_door & set(o["on"]):
            continue
        text = o["help"]
        if o["choices"]:
            text += f" (one of {', '.join(o['choices'])})"
        if o["default"] and o["kind"] != "choice":
            text += f" (default: {o['default']})"
        if set(o["on"]) != at_door:
            text += "; for " + ", ".join(titles[r] for r in o["on"] if r in at_door)
        if o["kind"] == "switch":
            p.add_argument(o["flag"], action="store_true", help=text)
        else:
            p.add_argument(o["flag"], metavar=o["metavar"] or o["kind"].upper(), help=text)
    return p
