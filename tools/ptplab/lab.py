"""What the Python tools learn from the Rust side, instead of restating it: record shapes, names,
pool limits, exit codes and speed targets (`ptp-host facts`), and the capacity model
(`ptp-host capacity`). The host runner is built on first use if it is missing."""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST_BIN = REPO / "target/release/ptp-host"
KERNEL = REPO / "bench-kernel/target/x86_64-unknown-linux-gnu/release/bench-kernel"
PAGE = 4096  # bytes in a page, a page table, a pool page
# Where the decision report goes unless told (bench.sh after a run, report.sh).
REPORT_DIR = REPO / "target/report"
BUILD = ["cargo", "build", "--release", "--quiet", "-p", "ptp-lab", "--features", "std", "--bin", "ptp-host"]
# Seconds the first build of the host runner (fetching crates included) and one question to it may take.
BUILD_TIMEOUT_S = 1800
ASK_TIMEOUT_S = 300


class LabError(Exception):
    pass


def host_bin() -> Path:
    if not HOST_BIN.exists():
        print(f"ptplab: building the host runner ({' '.join(BUILD)})", file=sys.stderr)
        from . import limits
        try:
            p = limits.run(BUILD, BUILD_TIMEOUT_S, cwd=REPO, stdin=subprocess.DEVNULL)
        except limits.TimedOut as e:
            raise LabError(f"could not build {HOST_BIN}: {e}") from None
        if p.returncode != 0 or not HOST_BIN.exists():
            raise LabError(f"could not build {HOST_BIN} (cargo exit {p.returncode})")
    return HOST_BIN


class Refused(LabError):
    """ptp-host refused the arguments: its one line, as it wrote it (`ask(..., plain=True)`)."""


def ask(*args: str, stdin: str | None = None, plain: bool = False) -> dict:
    """ptp-host's JSON answer to `args`. A refusal is a LabError naming the question, or with
    `plain` a Refused holding ptp-host's own line (what a user is shown as it is)."""
    try:
        p = subprocess.run([str(host_bin()), *args], capture_output=True, text=True, errors="replace",
                           input=stdin if stdin is not None else "", timeout=ASK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LabError(f"ptp-host {' '.join(args)}: no answer within {ASK_TIMEOUT_S} s (killed)") from None
    if p.returncode != 0:
        line = p.stderr.strip() or f"ptp-host {args[0]}: exit {p.returncode}"
        raise Refused(line) if plain else LabError(f"ptp-host {' '.join(args)}: {line}")
    return json.loads(p.stdout)


_facts: dict | None = None


def facts(build: bool = True) -> dict | None:
    """Everything `ptp-host facts` says (lab/ptp-lab/src/facts.rs); None if the host runner is
    not built and `build` is false."""
    global _facts
    if _facts is None:
        if not build and not HOST_BIN.exists():
            return None
        _facts = ask("facts")
    return _facts


def bench(role: str) -> str:
    """The benchmark the tools know by `role` ("shootdown", "pool_build": lab/ptp-lab/src/suites/roles.rs)."""
    return facts()["roles"]["benches"][role]


def contender(role: str) -> str:
    """The contender the tools know by `role` ("bitmap", "bump", "modifiable_ptp")."""
    return facts()["roles"]["contenders"][role]


def pool_word(pools: list[int] | tuple[int, ...]) -> str:
    """The host runner's command-line word for these pool sizes (its key from the options table)."""
    key = next(o["word"] for o in facts()["options"] if o["name"] == "pool_pages")
    return f"{key}={','.join(map(str, pools))}"


@functools.lru_cache(maxsize=None)
def capacity(pools: tuple[int, ...]) -> dict:
    """Pool pages each benchmark mapping takes, and the self-map of a modifiable PTP per pool size."""
    return ask("capacity", pool_word(pools))


def kernel_status(name: str) -> int:
    """QEMU's exit status when the kernel ends with `name` (success, failure, usage)."""
    return facts()["exit"]["kernel"][name]["qemu_status"]
