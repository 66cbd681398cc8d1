"""What every command shares: the error a user can fix, the argument parser that reports like it,
and the checks of the options several commands take (pool sizes, suites, positive numbers).
It knows nothing of any one command."""
from __future__ import annotations

import argparse
import sys

from . import lab


class BenchError(Exception):
    """A problem the user can fix; the message names the bad value."""

    def __init__(self, msg: str, code: int = 2):
        super().__init__(msg)
        self.code = code


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
