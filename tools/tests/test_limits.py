"""Nothing the tests or scripts start can hang the run: every test under a time limit (pytest-timeout,
pytest.ini), commands killed with their process group past theirs (ptplab.limits.run), .venv's
pip bounded, QEMU's QMP monitor read with a timeout, and the check that scripts/test.sh left no
process behind (ptplab.limits survivors)."""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from ptplab import limits

REPO = Path(__file__).resolve().parents[2]


def gone(pid: int, within: float = 10.0) -> bool:
    """The process ended (a zombie has ended) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not limits.alive(pid):
            return True
        time.sleep(0.05)
    return False


# ---- the per-test limit ------------------------------------------------------------------


def test_every_test_runs_under_a_limit_of_at_most_ten_minutes(request):
    assert request.config.pluginmanager.hasplugin("timeout"), "pytest-timeout is not active (tools/requirements.txt)"
    assert request.config.inipath == REPO / "pytest.ini"
    assert 0 < float(request.config.getini("timeout")) <= 600
    # thread: a hang anywhere (a C call, a wait that swallows signals) ends the run; see pytest.ini.
    assert request.config.getini("timeout_method") == "thread"


def test_a_hung_test_is_stopped_by_the_projects_configuration(tmp_path):
    # The project's own pytest.ini, its limit cut to 2 s, on a test that waits for a child forever.
    (tmp_path / "test_hang.py").write_text(
        "import subprocess\n\ndef test_hang():\n    subprocess.run(['sleep', '300'])\n")
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "pytest", "-c", str(REPO / "pytest.ini"), "--rootdir", str(tmp_path),
                          "-o", "timeout=2", "-p", "no:cacheprovider", str(tmp_path / "test_hang.py")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=120)
    finally:
        # The thread method ends pytest, not the children of the hung test: its sleep goes here.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert time.monotonic() - t0 < 60
    assert p.returncode != 0
    # The banner, and the stack of the hung test: what it was waiting for.
    assert "+++ Timeout +++" in out, out
    assert "test_hang.py\", line 4, in test_hang" in out and "os.waitpid" in out, out


def test_a_test_that_needs_longer_says_so_with_a_reason():
    """Each timeout mark in the tests is followed on the line before or after by a comment saying why."""
    for path in sorted((REPO / "tools/tests").glob("test_*.py")) + sorted((REPO / "notebooks").glob("test_*.py")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*(@pytest\.mark\.timeout\(|pytestmark\b.*\bpytest\.mark\.timeout\()", line):
                near = [line] + lines[max(i - 2, 0):i] + lines[i + 1:i + 2]
                assert any("#" in x for x in near), f"{path.name}:{i + 1}: a timeout mark without a reason comment"


# ---- a command under a limit -------------------------------------------------------------


def test_a_command_past_its_limit_is_killed_with_its_process_group(tmp_path):
    pidfile = tmp_path / "grandchild"
    script = f"sleep 300 & echo $! > {pidfile}; echo started; wait"
    t0 = time.monotonic()
    with pytest.raises(limits.TimedOut) as e:
        limits.run(["bash", "-c", script], 1, what="the sleeper", capture_output=True, text=True)
    assert time.monotonic() - t0 < 15
    assert str(e.value) == "the sleeper timed out after 1 s (killed with its process group)"
    assert e.value.output.strip() == "started"
    assert gone(int(pidfile.read_text()))


def test_a_command_within_its_limit_runs_as_subprocess_run_would():
    p = limits.run(["sh", "-c", "read x; echo got $x; exit 3"], 30, input="it\n", capture_output=True, text=True)
    assert (p.returncode, p.stdout) == (3, "got it\n")


# ---- .venv: pip under a limit --------------------------------------------------------------


FAKE_PYTHON = """#!/bin/sh
# Stands in for python3 and .venv/bin/python: records each call, makes the venv, pip sleeps
# $FAKE_PIP_SLEEP seconds.
echo "$*" >> "$FAKE_CALLS"
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi
if [ "$1 $2" = "-m pip" ]; then echo "Collecting pytest"; sleep "${FAKE_PIP_SLEEP:-0}"; exit 0; fi
exit 0
"""


def venv_run(tmp_path, pip_sleep: int, limit: str | None):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "tools").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "scripts/lib.sh").write_text((REPO / "scripts/lib.sh").read_text())
    (tmp_path / "tools/requirements.txt").write_text("pytest==8.3.3\n")
    fake = tmp_path / "bin/python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "FAKE_CALLS": str(tmp_path / "calls"),
           "FAKE_PIP_SLEEP": str(pip_sleep), "TMPDIR": str(tmp_path)}
    if limit is not None:
        env["PTPLAB_VENV_TIMEOUT"] = limit
    t0 = time.monotonic()
    p = subprocess.run(["bash", "-c", ". scripts/lib.sh; ensure_venv"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    return p, time.monotonic() - t0, (tmp_path / "calls").read_text()


def test_pip_waits_at_most_a_minute_per_connection_and_retries_twice(tmp_path):
    p, _, calls = venv_run(tmp_path, 0, None)
    assert p.returncode == 0, p.stderr
    pip = next(line for line in calls.splitlines() if line.startswith("-m pip install"))
    assert " --timeout 60 --retries 2 " in f" {pip} ", pip
    assert (tmp_path / ".venv/requirements.txt").exists()


def test_a_venv_set_up_past_its_limit_is_stopped_and_says_it_timed_out(tmp_path):
    p, seconds, _ = venv_run(tmp_path, 300, "2")
    assert seconds < 30
    assert p.returncode != 0
    assert "setup: error: setting up .venv timed out after 2 s" in p.stderr, p.stderr
    assert "Collecting pytest" in p.stderr  # what it printed so far
    assert not (tmp_path / ".venv/requirements.txt").exists()


def test_the_venv_limit_is_ten_minutes_by_default():
    text = (REPO / "scripts/lib.sh").read_text()
    assert "local limit=${PTPLAB_VENV_TIMEOUT:-600}" in text and 'bounded "$limit" sh -c' in text
    assert 'timeout -k 10 "$limit" "$@" &' in text


def test_a_ctrl_c_in_the_terminal_reaches_a_bounded_command():
    # timeout(1) runs its command in a process group of its own, out of the terminal's reach;
    # `bounded` passes the script's INT on. In a terminal of its own, bash runs a 60 s sleep.
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execvp("bash", ["bash", "-c", '. scripts/lib.sh; bounded 60 sleep 50; echo "rc=$?"'])
    try:
        time.sleep(1)
        t0 = time.monotonic()
        os.write(fd, b"\x03")
        out = b""
        while time.monotonic() - t0 < 30:
            try:
                chunk = os.read(fd, 1000)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert time.monotonic() - t0 < 10, out
        assert b"rc=143" in out, out
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# ---- QEMU's QMP monitor ---------------------------------------------------------------------


@pytest.fixture
def silent_monitor(tmp_path):
    """A Unix socket that accepts a connection and then says nothing, or only the greeting."""
    path = tmp_path / "qmp.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    held, stop = [], threading.Event()
    greet = {"on": False}

    def serve():
        conn, _ = server.accept()
        held.append(conn)
        if greet["on"]:
            conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        stop.wait(30)

    t = threading.Thread(target=serve, daemon=True)
    yield path, greet, t
    stop.set()
    for c in held:
        c.close()
    server.close()


def test_a_monitor_that_never_greets_is_an_error_naming_the_greeting(silent_monitor):
    from ptplab import machine
    path, _, t = silent_monitor
    t.start()
    t0 = time.monotonic()
    with pytest.raises(machine.MachineError) as e:
        machine.Qmp(path, timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert str(e.value) == f"QMP: no its greeting from QEMU's monitor ({path}) within 0.5 s"


def test_a_command_the_monitor_never_answers_is_an_error_naming_the_command(silent_monitor):
    from ptplab import machine
    path, greet, t = silent_monitor
    greet["on"] = True
    t.start()
    with machine.Qmp(path, timeout=0.5) as qmp:
        with pytest.raises(machine.MachineError) as e:
            qmp("screendump", filename="x.ppm")
    assert str(e.value) == f"QMP: no reply to screendump from QEMU's monitor ({path}) within 0.5 s"


def test_a_monitor_that_is_not_there_is_named(tmp_path):
    from ptplab import machine
    with pytest.raises(machine.MachineError, match=r"could not connect to QEMU's monitor at .*nothing\.sock"):
        machine.Qmp(tmp_path / "nothing.sock", timeout=0.5)


# ---- no process left behind -----------------------------------------------------------------


def survivors_cmd(tag: str) -> list[str]:
    return [sys.executable, "-m", "ptplab.limits", "survivors", tag]


def test_a_process_the_run_left_behind_is_named_killed_and_fails_the_check():
    tag = f"test-{uuid.uuid4().hex}"
    env = {**os.environ, limits.TAG_VAR: tag}
    # setsid -f: a session of its own and no parent of ours, as a daemon a test forgot would be.
    subprocess.run(["setsid", "-f", "sleep", "60"], env=env, check=True, timeout=30)
    pids = limits.tagged(tag)
    assert len(pids) == 1
    try:
        p = subprocess.run(survivors_cmd(tag), env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p.stderr
        assert f"left behind: pid {pids[0]}: sleep 60" in p.stderr, p.stderr
        assert "1 process the run started was still alive" in p.stderr
        assert gone(pids[0])
    finally:
        for pid in pids:
            if limits.alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_with_no_process_left_behind_the_check_passes():
    tag = f"test-{uuid.uuid4().hex}"
    # The check runs with the tag itself (as scripts/test.sh's last step does): it is no survivor.
    p = subprocess.run(survivors_cmd(tag), env={**os.environ, limits.TAG_VAR: tag}, capture_output=True, text=True,
                       timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_the_script_running_the_check_is_no_survivor():
    tag = f"test-{uuid.uuid4().hex}"
    p = subprocess.run(["bash", "-c", f'"$0" -m ptplab.limits survivors --except $$ {tag}; echo "rc=$?"',
                        sys.executable], env={**os.environ, limits.TAG_VAR: tag}, capture_output=True, text=True,
                       timeout=60)
    assert p.stdout == "rc=0\n", p.stderr


@pytest.mark.parametrize("body, status", [("true", 0), ("setsid sleep 60 &", 1), ("setsid sleep 60 &\nexit 7", 7),
                                          ("false", 1)])
def test_a_run_ends_with_nothing_it_started_alive_whatever_its_status(tmp_path, body, status):
    # scripts/test.sh's EXIT trap (lib.sh finish_run), in a script of the same making.
    script = tmp_path / "run.sh"
    script.write_text(f"set -euo pipefail\ncd {REPO}\n. scripts/lib.sh\nexport PYTHONPATH={REPO}/tools\n"
                      f"export PTPLAB_RUN_TAG=t-{os.getpid()}-{status}-$RANDOM\ntrap finish_run EXIT\n"
                      f"step work\n{body}\n")
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == status, p.stdout + p.stderr
    assert "== no process left behind" in p.stdout
    left = [ln for ln in p.stderr.splitlines() if "left behind: pid" in ln]
    assert bool(left) == ("sleep" in body) and all("sleep 60" in ln for ln in left)
    for ln in left:
        pid = int(ln.split("pid ")[1].split(":")[0])
        assert not limits.alive(pid)
    text = (REPO / "scripts/test.sh").read_text()
    assert "export PTPLAB_RUN_TAG=" in text and "trap finish_run EXIT" in text


# ---- commands of the tools under limits ---------------------------------------------------


@pytest.fixture
def stuck_grub_mkrescue(tmp_path, monkeypatch):
    """A grub-mkrescue on PATH that starts a child (as it starts xorriso) and waits forever."""
    fake = tmp_path / "bin/grub-mkrescue"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho 'grub-mkrescue: starting xorriso' >&2\nsleep 300 & echo $! > {tmp_path / 'child'}\n"
                    "wait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    return tmp_path


def test_a_grub_mkrescue_that_hangs_is_killed_with_what_it_started(stuck_grub_mkrescue, monkeypatch):
    from ptplab import iso
    if not all(p.is_dir() for p in iso.GRUB_PLATFORMS.values()):
        pytest.skip("GRUB's modules are not installed (scripts/test.sh installs them)")
    monkeypatch.setattr(iso, "MKRESCUE_TIMEOUT_S", 1)
    kernel = stuck_grub_mkrescue / "kernel"
    kernel.write_bytes(b"\0")
    t0 = time.monotonic()
    with pytest.raises(iso.IsoError) as e:
        iso.make_iso(kernel, "mode=selftest", stuck_grub_mkrescue / "out.iso")
    assert time.monotonic() - t0 < 15
    assert str(e.value).startswith("grub-mkrescue -d /usr/lib/grub/i386-pc -o ")
    assert str(e.value).endswith(" timed out after 1 s (killed with its process group): grub-mkrescue: starting xorriso")
    assert gone(int((stuck_grub_mkrescue / "child").read_text()))


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
def test_a_capture_past_its_limit_stops_strace_and_every_traced_process(tmp_path):
    from ptplab import capture
    pidfile = tmp_path / "child"
    t0 = time.monotonic()
    meta = capture.capture("hang", ["bash", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], tmp_path / "out", "test",
                           timeout=2)
    assert time.monotonic() - t0 < 30
    assert meta["exit_status"] is None
    assert gone(int(pidfile.read_text()))  # strace killed alone would have left its tracees running
