"""Capture a program's lifetime: strace's own `-f` output of its memory and process calls, and
the layout the kernel made at each exec and left at each exit, read from /proc/PID/maps while
strace holds the process there (`-e inject=...:delay_exit=` after execve, `delay_enter=` before
exit_group): a second tracer cannot attach, and no cooperation from the traced program is needed.

Written to DIR/NAME/: `strace.txt.gz` (string arguments and -y paths emptied: no file names,
paths or contents), `layouts.json.gz` (per exec and exit: pid, strace line, ranges as the
layouts keep them, with the kernel's own labels [stack] [heap] [vdso] [vvar] [vsyscall]), and
`meta.json` (command line, class, versions, what could not be read in time)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import limits


# The calls traced: what `strace -f -e trace=%memory,%process` gives users, plus SysV shared
# memory, which postgres attaches.
TRACE_SET = "%memory,%process,shmget,shmat,shmdt"
DELAY_US = 100_000
MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ([rwxsp-]{4})(?:\s+\S+){3}\s*(\S*)")
KERNEL_LABELS = {"[stack]", "[heap]", "[vdso]", "[vvar]", "[vsyscall]", "[vvar_vclock]"}
_PID = re.compile(r"^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)")
_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d+)\s+")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_FD_PATH = re.compile(r"(\d+)<[^<>]*>")


class CaptureError(Exception):
    pass


def strace_argv(raw: Path, user: str | None) -> list[str]:
    """The strace command line of a capture, before the traced command."""
    argv = ["strace", "-f", "-tt", "-o", str(raw), "-e", f"trace={TRACE_SET}",
            "-e", f"inject=execve,execveat:delay_exit={DELAY_US}",
            "-e", f"inject=exit_group:delay_enter={DELAY_US}"]
    if user:
        argv += ["-u", user]
    return argv + ["--"]


def read_maps(pid: int) -> list[list[str]] | None:
    """Ranges, permissions and the kernel's own labels only (no offsets, devices, paths)."""
    try:
        text = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    out = []
    for line in text.splitlines():
        m = MAPS_LINE.match(line)
        if m:
            label = m.group(4) if m.group(4) in KERNEL_LABELS else ""
            out.append([m.group(1), m.group(2), m.group(3)] + ([label] if label else []))
    return out


def _line_age(line: str, now: dt.datetime) -> float | None:
    """Seconds since the line's -tt stamp (today, local time), None if it has none."""
    m = _PID.match(line)
    rest = line[m.end():] if m else line
    t = _TIME.match(rest)
    if not t:
        return None
    h, mi, s, us = (int(x) for x in t.groups())
    stamp = now.replace(hour=h, minute=mi, second=s, microsecond=int(str(us).ljust(6, "0")[:6]))
    age = (now - stamp).total_seconds()
    if age < -43200:  # the stamp was before midnight
        age += 86400
    return max(age, 0.0)  # strace's clock may run a little ahead of ours


class Watcher(threading.Thread):
    """Follows strace's output file; at each successful exec and each exit_group entry (strace
    holds the process there for DELAY_US) it reads that process's maps."""

    def __init__(self, raw: Path):
        super().__init__(daemon=True)
        self.raw, self.stop = raw, threading.Event()
        self.execs: list[dict] = []
        self.exits: list[dict] = []
        self.late: list[dict] = []

    def _take(self, kind: str, pid: int, line_no: int, line: str) -> None:
        ranges = read_maps(pid)
        age = _line_age(line, dt.datetime.now())
        entry = {"pid": pid, "line": line_no}
        if ranges is None or (age is not None and age > DELAY_US / 1e6 * 0.8):
            self.late.append({**entry, "kind": kind, "age_s": age})
            return
        if kind == "exec":
            try:  # the program's name (comm), not its path
                entry["comm"] = Path(f"/proc/{pid}/comm").read_text().strip()[:15]
            except OSError:
                pass
        (self.execs if kind == "exec" else self.exits).append({**entry, "ranges": ranges})

    def run(self) -> None:
        while not self.raw.exists() and not self.stop.is_set():
            time.sleep(0.001)
        n, tail, seen_exit = 0, "", set()
        with open(self.raw, "r", errors="replace") as f:
            while True:
                chunk = f.read()
                if not chunk:
                    if self.stop.is_set():
                        break
                    if tail and n not in seen_exit and "exit_group(" in tail:
                        seen_exit.add(n)
                        m = _PID.match(tail)
                        if m:
                            self._take("exit", int(m.group(1) or m.group(2)), n, tail)
                    time.sleep(0.001)
                    continue
                tail += chunk
                *lines, tail = tail.split("\n")
                for line in lines:
                    m = _PID.match(line)
                    if m:
                        pid = int(m.group(1) or m.group(2))
                        if ("execve(" in line or "execveat(" in line or "execve resumed>" in line
                                or "execveat resumed>" in line) and re.search(r"\)\s+= 0\b", line):
                            self._take("exec", pid, n, line)
                        elif "exit_group(" in line and n not in seen_exit:
                            seen_exit.add(n)
                            self._take("exit", pid, n, line)
                    n += 1


def scrub(line: str) -> str:
    """No file names, paths or contents: string arguments emptied, -y paths dropped."""
    return _FD_PATH.sub(r"\1", _STRING.sub('""', line))


def versions(command: list[str]) -> dict:
    def first_line(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else None
        except (OSError, subprocess.SubprocessError):
            return None
    return {"strace": first_line(["strace", "-V"]), "kernel": os.uname().release,
            "program": version_of(command[0])}


def version_of(program: str) -> str | None:
    """The program's `--version` first line, where it has one (exit 0)."""
    if shutil.which(program) is None:
        return None
    try:
        p = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0] if p.returncode == 0 and text else None


def capture(name: str, command: list[str], out: Path, cls: str, user: str | None = None,
            timeout: float = 600, env: dict | None = None, cwd: Path | None = None,
            program: str | None = None) -> dict:
    """Trace `command` from exec to exit into out/name/; returns its meta."""
    if shutil.which("strace") is None:
        raise CaptureError("strace is not installed (apt-get install strace)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", name):
        raise CaptureError(f"trace name {name!r} is not letters, digits and ._+- (at most 64)")
    dest = out / name
    if dest.exists():
        raise CaptureError(f"{dest} exists: a recorded trace is never overwritten (pick another NAME)")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"ptplab-trace-{os.getpid()}-{name}"
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "strace.txt"
    w = Watcher(raw)
    w.start()
    started = time.monotonic()
    try:
        # In a session of its own, killed with its process group on expiry: strace killed alone
        # would leave its tracees running.
        p = limits.run(strace_argv(raw, user) + command, timeout, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, cwd=cwd, text=True,
                       errors="replace")
        status = p.returncode
        err = p.stderr.strip().splitlines()[-3:]
    except limits.TimedOut as e:
        status, err = None, [f"stopped after {timeout:.0f} s", *e.output.strip().splitlines()[-2:]]
    finally:
        time.sleep(0.05)
        w.stop.set()
        w.join(10)
    seconds = time.monotonic() - started
    if not raw.exists():
        shutil.rmtree(work, ignore_errors=True)
        raise CaptureError(f"strace wrote nothing for {' '.join(command)}: {'; '.join(err)}")
    dest.mkdir(parents=True)
    with open(raw, "r", errors="replace") as src, gzip.open(dest / "strace.txt.gz", "wt") as dst:
        for line in src:
            dst.write(scrub(line))
    with gzip.open(dest / "layouts.json.gz", "wt") as f:
        json.dump({"exec": w.execs, "exit": w.exits}, f)
    meta = {"name": name, "class": cls, "program": program or Path(command[0]).name, "command": command,
            "user": user, "exit_status": status, "seconds": round(seconds, 1),
            "captured_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "strace": " ".join(strace_argv(Path("FILE"), user)), "versions": versions(command),
            "layouts": {"exec": len(w.execs), "exit": len(w.exits), "late": len(w.late)}}
    (dest / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return meta
