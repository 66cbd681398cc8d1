"""The serial stream: a bench run's output (a process's stdout, or an emulator's serial port
written to a file) split into records and log lines as they arrive, into an Outcome. It knows
lines, not what the job does with them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .lab import REPO


@dataclass
class Outcome:
    records: list[dict] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    status: int | None = None
    timed_out: bool = False
    first_result_s: float | None = None
    wall_s: float = 0.0
    boot: dict = field(default_factory=dict)
    # The signal that stopped the run (SIGINT, SIGTERM), if one did.
    interrupted: int | None = None
    # The kernel's last record: how it asked to end (what QEMU's exit status says, elsewhere).
    exit_record: dict | None = None

    def end(self) -> dict | None:
        return next((r for r in reversed(self.records) if r.get("type") == "end"), None)


KERNEL_LOG_TYPES = {"boot", "memmap", "smp", "selftest", "exit"}


def follow(path: Path, proc: subprocess.Popen):
    """The lines written to `path` while `proc` runs (an emulator's serial port as a file)."""
    pos, pending = 0, ""
    while True:
        running = proc.poll() is None
        try:
            with open(path, errors="replace") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except FileNotFoundError:
            chunk = ""
        pending += chunk
        *lines, pending = pending.split("\n")
        yield from (line + "\n" for line in lines)
        if not running:
            if pending:
                yield pending
            return
        if not chunk:
            time.sleep(0.05)


def run_process(cmd: list[str], timeout: float, progress=None, env: dict | None = None,
                serial: Path | None = None) -> Outcome:
    """Run `cmd`, splitting its output into records and log lines as they arrive: its stdout,
    or the file `serial` (then the child is stopped once the kernel's exit record is out, and
    that record gives the exit status: Bochs has no isa-debug-exit).

    The child runs in its own session, so a Ctrl-C in the terminal reaches this job only: on
    SIGINT or SIGTERM (whoever sent it) the job stops the child and keeps what it printed."""
    out = Outcome()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if serial is None else subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if serial is None else subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1, cwd=REPO,
                            start_new_session=True, env=None if env is None else {**os.environ, **env})

    def stop_child():
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole session: cargo and its bench binary too
        except ProcessLookupError:
            pass

    def on_signal(signum, _frame):
        out.interrupted = out.interrupted or signum
        stop_child()

    timer = threading.Timer(timeout, lambda: (setattr(out, "timed_out", True), stop_child()))
    handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    timer.start()
    try:
        for raw in (proc.stdout if serial is None else follow(serial, proc)):
            take_line(out, raw.rstrip("\n").rstrip("\r"), t0, progress)
            if serial is not None and out.exit_record is not None:
                stop_child()
        out.status = proc.wait()
        if serial is not None and out.exit_record is not None:
            out.status = out.exit_record.get("qemu_status")
    finally:
        timer.cancel()
        for s, h in handlers.items():
            signal.signal(s, h)
    out.wall_s = time.monotonic() - t0
    return out


def take_line(out: Outcome, line: str, t0: float, progress=None) -> None:
    """File one line of output: a record, or log text (boot and memory-map objects are kept
    for the run record)."""
    rec = parse_line(line)
    if rec is None:
        out.log.append(line)
        if progress and line.startswith("# suite"):
            progress(line[2:])
        return
    # Serial noise can garble `type` into a list or an object: such a record is kept as one, and
    # its check (collect.checked, schema.validate) names the line and field.
    if isinstance(rec.get("type"), str) and rec["type"] in KERNEL_LOG_TYPES:
        if rec["type"] in ("boot", "memmap", "smp"):
            out.boot[rec["type"]] = {k: v for k, v in rec.items() if k != "type"}
        if rec["type"] == "exit":
            out.exit_record = rec
        out.log.append(line)
        return
    if rec.get("type") == "measurement" and out.first_result_s is None:
        out.first_result_s = time.monotonic() - t0
    out.records.append(rec)


def parse_line(line: str) -> dict | None:
    """A JSON object line, or None for log text (firmware noise, '# ' lines)."""
    i = line.find("{\"type\"")
    if i < 0:
        return None
    try:
        rec = json.loads(line[i:])
    except json.JSONDecodeError:
        return None
    return rec if isinstance(rec, dict) else None
