"""The results files: where they go, how a new one is named and written (never over another,
never half), how one is read back, and the run record's facts that only the host knows.
Documented in results/README.md."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import tempfile
from pathlib import Path

from . import schema
from .cli import BenchError, say
from .lab import REPO

RESULTS = REPO / "results"
# Where a run goes when its directory cannot take it at the end (the disk filled, it went away).
FALLBACK = Path(tempfile.gettempdir()) / "ptplab-results"


class ResultsError(Exception):
    """A results file that cannot be read; the message names the file (and line)."""


def source(p: Path) -> str:
    """A results file as the reader finds it: relative to the repository when it is in it."""
    p = p.resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def load(path: Path, skipped: list[str] | None = None) -> list[dict]:
    """The records of a results file, each checked against its declaration (schema.Checker:
    type, fields, what each holds). A line that is not a JSON object (malformed, cut off by a
    crash, serial noise) or a record that fails its check is an error naming file, line and
    field; with `skipped` (lenient) it is left out and said there instead. A file whose first
    record is not a readable run record is an error either way: nothing in it can be placed."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise ResultsError(f"cannot read {path}: {e.strerror}")
    records, check = [], None
    for i, line in enumerate(lines, 1):
        # Line by line, so a line of serial noise that is not UTF-8 costs that line only.
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            rec = None
        problems = ["not a JSON object"] if not isinstance(rec, dict) else []
        if not problems and check is None:
            if rec.get("type") != "run":
                raise ResultsError(f"{path}:{i}: the first record is not the run record")
            try:
                check = schema.Checker(rec.get("schema"))
            except ValueError as e:
                raise ResultsError(f"{path}:{i}: {e}")
        if not problems:
            problems = check.problems(rec, whole=False)
        if problems:
            first_run = not records and isinstance(rec, dict) and rec.get("type") == "run"
            if skipped is None or first_run:  # without its run record nothing can be placed
                raise ResultsError(f"{path}:{i}: {problems[0]}")
            skipped.append(f"{path}:{i}: {problems[0]}, skipped")
            continue
        records.append(rec)
    return records


def today() -> str:
    return f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "unknown"


def new_path(out_dir: Path, date: str, host: str, accel: str, partial: bool) -> Path:
    """A name nothing has used: results/<date>-<host>-<accel>[-N][.partial].jsonl. A number is
    taken by a complete or a partial run alike, so a partial file never shares its number
    with a complete one."""
    stem = f"{date}-{slug(host)}-{accel}"
    for n in range(1, 10_000):
        base = out_dir / (stem + ("" if n == 1 else f"-{n}"))
        taken = [base.with_name(base.name + s) for s in (".jsonl", ".partial.jsonl", ".log", ".partial.log")]
        if not any(p.exists() for p in taken):
            return base.with_name(base.name + (".partial.jsonl" if partial else ".jsonl"))
    raise BenchError(f"{out_dir}: too many results for {stem}")


def write_new(path: Path, records: list[dict], log: list[str]) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)
    if log:
        log_path = path.with_name(path.name.removesuffix(".jsonl") + ".log")
        tmp = log_path.with_name("." + log_path.name + ".tmp")
        tmp.write_text("\n".join(log) + "\n")
        os.replace(tmp, log_path)


def save(out_dir: Path, label: str, records: list[dict], log: list[str], partial: bool) -> Path:
    """Write the run as a new file in `out_dir`; if that fails now (the disk filled, the
    directory went away), in FALLBACK, saying so: a measured run is never lost."""
    try:
        path = new_path(out_dir, today(), socket.gethostname(), label, partial)
        write_new(path, records, log)
        return path
    except OSError as e:
        FALLBACK.mkdir(parents=True, exist_ok=True)
        path = new_path(FALLBACK, today(), socket.gethostname(), label, partial)
        write_new(path, records, log)
        say(f"bench: warning: could not write to {out_dir} ({e.strerror or e}); the run is saved in {path}")
        return path


def git_facts() -> tuple[str, bool]:
    """The commit of the tree measured, and whether it had uncommitted changes."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def complete_run_record(records: list[dict], boot: dict, accel: str, extra: dict) -> dict | None:
    """Add what only the host knows to the run record (schema.JOB_FIELDS and `extra`) and put it
    first (the kernel prints its boot self-checks before it); `boot` holds the kernel's boot and
    memory-map objects. `device` is null unless `extra` names one (collect from a LAVA job). None
    if the run never printed one."""
    run_rec = next((r for r in records if r.get("type") == "run"), None)
    if run_rec is None:
        return None
    commit, dirty = git_facts()
    now = dt.datetime.now(dt.timezone.utc)
    run_rec.update({
        "run_id": f"{now:%Y%m%dT%H%M%SZ}-{os.getpid()}", "accel": accel, "git_commit": commit,
        "git_dirty": dirty, "device": None, "host": socket.gethostname(),
        "started_utc": now.isoformat(timespec="seconds"), **extra,
    })
    if boot:
        run_rec["boot"] = boot
    records.remove(run_rec)
    records.insert(0, run_rec)
    return run_rec
