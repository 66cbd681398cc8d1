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


class Parser(argparse.ArgumentParser):
    def __init__(self, **kw):
        super().__init__(allow_abbrev=False, **kw)  # --pool-page is a typo, not --pool-pages

    def error(self, message):  # one line, exit 2, like every other bad input
        raise BenchError(message)


def say(msg: str) -> None:
    """A message to the person running the command (stderr: stdout carries the tables)."""
    print(msg, file=sys.stderr, flush=True)


def positive(text: str) -> int:
    """A positive whole number (argparse names the option in its message)."""
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def parse_pools(text: str, guest_mib: int | None, limits: dict | None = None) -> list[int]:
    """The pool sizes, checked against the limits the lab declares (syntax only without them)."""
    if limits is None:
        limits = lab.facts()["pool_pages"]
    pools = []
    for word in text.split(","):
        word = word.strip()
        if not word.isdigit():
            raise BenchError(f"--pool-pages: {word!r} is not a number of pages")
        n = int(word)
        if not limits["min"] <= n <= limits["max"]:
            raise BenchError(f"--pool-pages: {n} is outside {limits['min']}..{limits['max']} pages")
        if n in pools:
            raise BenchError(f"--pool-pages: {n} is given twice")
        pools.append(n)
    if len(pools) > limits["max_pools"]:
        raise BenchError(f"--pool-pages: {len(pools)} sizes given, at most {limits['max_pools']}")
    if guest_mib is not None:
        # The pool plus a scratch page must fit beside the kernel (~2 MiB) and low memory.
        for n in pools:
            need = (n + 1) * lab.PAGE / 2**20 + 4
            if need > guest_mib:
                raise BenchError(
                    f"--pool-pages: a pool of {n} pages ({n * lab.PAGE >> 20} MiB) does not fit in the guest's "
                    f"{guest_mib} MiB of RAM (--memory)")
    return pools


def parse_suites(text: str, known: list[str] | None = None) -> list[str]:
    known = known or lab.facts()["suites"]
    suites = [s.strip() for s in text.split(",") if s.strip()]
    for s in suites:
        if s not in known:
            raise BenchError(f"--suite: unknown suite {s!r} (known: {', '.join(known)})")
    if not suites:
        raise BenchError("--suite: empty list")
    return suites
