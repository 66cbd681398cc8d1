"""Limits on what the tools start: a command run under a time limit and killed with its whole
process group when it expires, a process stopped with all it started (stop_tree), and the check
that a run left no process behind.

A run (scripts/test.sh) exports PTPLAB_RUN_TAG, a value of its own; every process it starts
inherits it, setsid'd ones and daemons forked by them included. At the end,
`python3 -m ptplab.limits survivors TAG` finds the processes still holding the tag, names them,
kills them and fails. Standard library only: it runs with the system Python too.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

TAG_VAR = "PTPLAB_RUN_TAG"


class TimedOut(Exception):
    """A command ran past its limit and was killed with its process group."""

    def __init__(self, what: str, seconds: float, output: str = ""):
        super().__init__(f"{what} timed out after {seconds:g} s (killed with its process group)")
        self.what, self.seconds, self.output = what, seconds, output


def group_alive(pgid: int) -> bool:
    """Does a process of group `pgid` still run? (Its zombies do not: they have ended.)"""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False


def kill_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM to the process group, then SIGKILL to whatever of it still runs after `grace` s."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(cmd: list[str], timeout: float, what: str | None = None, grace: float = 5.0,
        **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, **kwargs) in a session of its own, under `timeout` seconds: on expiry
    (or any exception while waiting, such as a Ctrl-C) its whole process group is killed, not only
    `cmd` (grub-mkrescue's xorriso, strace's tracees, dpkg under apt-get); expiry raises TimedOut
    naming `what` (default: the command) with what it printed so far."""
    what = what or " ".join(map(str, cmd))
    stdin_text = kwargs.pop("input", None)
    if stdin_text is not None:
        kwargs.setdefault("stdin", subprocess.PIPE)
    if kwargs.pop("capture_output", False):
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
    check = kwargs.pop("check", False)
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(stdin_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, grace)
        out, err = proc.communicate()
        text = "".join(x if isinstance(x, str) else x.decode(errors="replace") for x in (out, err) if x)
        raise TimedOut(what, timeout, text) from None
    except BaseException:
        kill_group(proc.pid, grace)
        proc.wait()
        raise
    p = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check:
        p.check_returncode()
    return p


@contextlib.contextmanager
def exits_on_signals():
    """Inside, SIGTERM and SIGHUP raise SystemExit(128 + signal) and SIGINT KeyboardInterrupt, so
    that `finally` blocks run (a process group to kill, a policy-rc.d to remove) on a kill the
    process can catch; a signal ignored here (nohup) stays ignored. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        if signal.getsignal(sig) not in (signal.SIG_IGN, None):  # None: set outside Python, kept
            old[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# ---- what a run left behind --------------------------------------------------------------


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    if not text:
        try:
            text = "[" + Path(f"/proc/{pid}/comm").read_text().strip() + "]"
        except OSError:
            text = "?"
    return text if len(text) <= 200 else text[:197] + "..."


def alive(pid: int) -> bool:
    """Running, not a zombie (a zombie is dead; only its parent's wait is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ancestors(pid: int) -> set[int]:
    """pid and the processes above it (the check itself and the run that called it)."""
    out = set()
    while pid and pid not in out:
        out.add(pid)
        pid = (_stat(pid) or (0, 0))[0]  # its parent
    return out


def tagged(tag: str, exclude: set[int] = frozenset()) -> list[int]:
    """The live processes whose environment holds PTPLAB_RUN_TAG=tag, but those in `exclude`."""
    entry = f"{TAG_VAR}={tag}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) not in exclude and entry in _environ(int(d.name)) and alive(int(d.name)):
            found.append(int(d.name))
    return sorted(found)


def survivors(tag: str, exclude: set[int] = frozenset(), grace: float = 5.0, say=print) -> list[int]:
    """Name every process of the run still alive (its pid and command line), kill it (SIGTERM,
    SIGKILL after `grace` s), and return their pids. The check itself and its ancestors are no
    survivors."""
    if not tag:
        raise ValueError(f"no run tag: {TAG_VAR} is empty")
    skip = set(exclude) | ancestors(os.getpid())
    found = tagged(tag, skip)
    for pid in found:
        say(f"  left behind: pid {pid}: {_cmdline(pid)}")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in tagged(tag, skip):
            if pid in found:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline and any(alive(p) for p in found):
            time.sleep(0.05)
    return found


# ---- a process and all it started ----------------------------------------------------------
# For a process that starts children in sessions of their own, which a process group does not
# hold (lava-run's QEMU, started by pexpect with setsid; once lava-run is gone it is nobody's
# child). Descendants are found by /proc's parent links, each known by pid and start time, so a
# pid the system reused is never killed.

Proc = tuple[int, int]  # pid, start time (clock ticks since boot, /proc/PID/stat field 22)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and ')'
    return int(fields[1]), int(fields[19])


def descendants(pid: int) -> set[Proc]:
    """Every live process below `pid` (not `pid` itself)."""
    children: dict[int, list[Proc]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[0], []).append((int(entry), st[1]))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child[0])
    return out


def _same(p: Proc) -> bool:
    st = _stat(p[0])
    return st is not None and st[1] == p[1] and alive(p[0])


def stop_tree(proc: subprocess.Popen, grace: float) -> list[Proc]:
    """Stop `proc` and all it started: SIGTERM to `proc` (so it can stop its own children, as
    lava-run cancels its job and stops its QEMU), up to `grace` seconds for it to end, then
    SIGKILL to every descendant seen meanwhile that is still alive, and to `proc`. Returns what
    had to be killed."""
    seen = descendants(proc.pid)
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is None:
            seen |= descendants(proc.pid)  # what it starts while stopping
        elif not any(_same(p) for p in seen):
            return []
        time.sleep(0.1)
    killed = [p for p in seen if _same(p)]
    for pid, _ in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        killed.append((proc.pid, 0))
        proc.kill()
    proc.wait()
    return killed


def main(argv: list[str]) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python3 -m ptplab.limits", allow_abbrev=False,
                                 description="survivors: the processes a run started that are still alive (their "
                                             f"environment holds {TAG_VAR}=TAG): named, killed, exit 1; none: exit 0")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("survivors", help="name and kill the run's processes still alive")
    s.add_argument("tag", nargs="?", default=os.environ.get(TAG_VAR, ""),
                   help=f"the run's tag (default: ${TAG_VAR})")
    s.add_argument("--except", dest="exclude", type=int, action="append", default=[], metavar="PID",
                   help="a process that is no survivor (the script running the check); repeatable")
    a = ap.parse_args(argv)
    if not a.tag:
        print(f"survivors: error: no tag given and {TAG_VAR} is not set", file=sys.stderr)
        return 2
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    found = survivors(a.tag, set(a.exclude), say=say)
    if found:
        say(f"survivors: error: {len(found)} process{'es' if len(found) > 1 else ''} the run started "
            f"{'were' if len(found) > 1 else 'was'} still alive (named above, now killed)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (a stand-in's serial port, the loopback server)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
