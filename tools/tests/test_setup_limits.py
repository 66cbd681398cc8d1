"""The set-up's apt under limits, and its policy-rc.d: apt-get waits for a held dpkg lock at most a
minute and then names the holder; each apt-get runs under a time limit and is killed with its
process group past it; the policy-rc.d the set-up writes while daemons install carries a marker,
goes on every exit the set-up can catch, and a stale one of ours goes at the next start, while
anyone else's is never touched. No test here touches /usr/sbin/policy-rc.d or the machine's dpkg
lock: the policy file is a temporary one (PTPLAB_POLICY_RC_D), the lock that of a temporary dpkg
state."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ptplab import packages
from ptplab.packages import Apt, SetupError, Step

REPO = Path(__file__).resolve().parents[2]
LAVA = Step("lava", ("lava-dispatcher",), None)  # a need with daemons: the policy file is written


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if packages.process_start(pid) is None:
            return True
        time.sleep(0.05)
    return False


# ---- apt-get: a held lock, a time limit ----------------------------------------------------


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """apt-get and apt-cache on PATH that record their arguments; apt-get install sleeps
    $FAKE_SLEEP seconds in a child of its own, as dpkg runs under apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("apt-get", "apt-cache"):
        (bin_dir / tool).write_text(textwrap.dedent(f"""\
            #!/bin/sh
            echo "$*" >> {tmp_path / 'calls'}
            case " $* " in *" install "*)
                echo "Reading package lists..."
                sleep "${{FAKE_SLEEP:-0}}" & echo $! > {tmp_path / 'child'}; wait ;;
            esac
            """))
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path


def test_every_apt_get_waits_for_a_held_lock_at_most_a_minute(fake_apt):
    apt = Apt(options=["-o", "Dir::State::status=/x/status"])
    apt.run("apt-get", "update", "-qq")
    apt.run("apt-cache", "show", "qemu-system-x86")
    calls = (fake_apt / "calls").read_text().splitlines()
    # Ours first, so that a test's own -o DPkg::Lock::Timeout after it wins.
    assert calls == ["-o DPkg::Lock::Timeout=60 -o Dir::State::status=/x/status update -qq",
                     "-o Dir::State::status=/x/status show qemu-system-x86"]


def test_each_apt_call_has_a_generous_time_limit():
    apt = Apt()
    assert apt.limit(("install", "-y", "qemu-system-x86")) == apt.limit(("-s", "install", "-y")) == 20 * 60
    assert apt.limit(("update", "-qq")) == 5 * 60
    assert apt.limit(("indextargets",)) == apt.limit(("show", "ovmf=1")) == 2 * 60


def test_an_apt_get_past_its_limit_is_killed_with_its_process_group_and_named(fake_apt, monkeypatch):
    monkeypatch.setattr(packages, "APT_LIMITS_S", {"install": 1})
    monkeypatch.setenv("FAKE_SLEEP", "300")
    apt = Apt(log=fake_apt / "apt.log")
    t0 = time.monotonic()
    with pytest.raises(SetupError) as e:
        apt.run("apt-get", "install", "-y", "ovmf")
    assert time.monotonic() - t0 < 15
    assert str(e.value) == ("apt-get install -y ovmf timed out after 1 s (killed with its process group); its last "
                            f"lines: Reading package lists...; its output is in {fake_apt / 'apt.log'}")
    assert gone(int((fake_apt / "child").read_text()))  # what it ran (dpkg, say) went with it
    assert "timed out after 1 s" in (fake_apt / "apt.log").read_text()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"), reason="apt-get install needs root")
def test_a_held_dpkg_lock_is_waited_for_then_its_holder_named(tmp_path):
    # A dpkg state of its own (apt locks the lock-frontend beside Dir::State::status), and a
    # process holding its lock as another apt-get would, for a few seconds at most.
    shutil.copy("/var/lib/dpkg/status", tmp_path / "status")
    (tmp_path / "cache/archives/partial").mkdir(parents=True)
    (tmp_path / "extended_states").write_text("")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""\
        import fcntl, os, sys, time
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(10)
        """), str(tmp_path / "lock-frontend")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        opts = [f"Dir::State::status={tmp_path / 'status'}", f"Dir::Cache={tmp_path / 'cache'}",
                f"Dir::State::extended_states={tmp_path / 'extended_states'}", "Dir::Bin::dpkg=/bin/false"]
        apt = Apt(options=[w for o in opts for w in ("-o", o)], lock_timeout=1)
        t0 = time.monotonic()
        with pytest.raises(SetupError) as e:
            apt.run("apt-get", "install", "-y", "--no-install-recommends", "--no-remove")
        assert time.monotonic() - t0 < 8  # it waited its 1 s, not the holder's 10
        assert str(e.value) == (
            "apt-get install -y --no-install-recommends --no-remove failed (exit 100): waited 1 s for a lock "
            f"another process holds: Could not get lock {tmp_path / 'lock-frontend'}. It is held by process "
            f"{holder.pid} ({Path(sys.executable).name[:15]})"), str(e.value)
    finally:
        holder.kill()
        holder.wait()


def test_the_holder_is_named_from_either_form_apt_gives():
    waited = ("Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 "
              "(apt-get)...\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another "
              "process using it?\n")
    at_once = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)\nE: Unable\n"
    for text in (waited, at_once):
        assert packages.lock_held(text) == ("Could not get lock /var/lib/dpkg/lock-frontend. It is held by process "
                                            "1234 (apt-get)")
    assert packages.lock_held("E: Unable to locate package x\n") is None


# ---- policy-rc.d ----------------------------------------------------------------------------


class Recording:
    """apt as install() uses it, recording the policy file each apt-get saw."""
    simulate = False

    def __init__(self, policy: Path):
        self.policy, self.seen = policy, []

    def run(self, tool, *args, check=True):
        self.seen.append(self.policy.read_text() if self.policy.exists() else None)
        return subprocess.CompletedProcess([tool, *args], 0, "", "")


@pytest.fixture
def policy(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "policy-rc.d"
    monkeypatch.setattr(packages, "POLICY_RC_D", path)
    return path


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def marked(pid: int, start: str | int = 1) -> str:
    return f"#!/bin/sh\n{packages.POLICY_MARK.format(pid=pid, start=start)}\nexit 101\n"


def test_install_writes_a_marked_policy_rc_d_and_removes_it(policy):
    apt = Recording(policy)
    packages.install(apt, LAVA, print)
    [seen] = apt.seen
    assert seen.startswith("#!/bin/sh\n") and "exit 101" in seen
    assert (f"# written by the PTP lab's set-up (tools/ptplab/packages.py), pid {os.getpid()} "
            f"(started {packages.process_start(os.getpid())})") in seen.splitlines()
    assert not policy.exists()


def test_a_stale_policy_rc_d_of_ours_is_removed_at_the_next_start(policy):
    pid = dead_pid()
    policy.write_text(marked(pid))
    said = []
    assert packages.setup([], Apt(), said.append) == []
    assert not policy.exists()
    assert said == [f"setup: removed {policy}, left by an earlier set-up (pid {pid}, no longer running) that was "
                    "stopped before it could remove it"]


def test_a_stale_one_is_removed_before_install_decides_whether_one_is_there(policy):
    policy.write_text(marked(dead_pid()))
    apt = Recording(policy)
    packages.install(apt, LAVA, print)
    assert f"pid {os.getpid()} " in apt.seen[0]  # ours replaced the stale one while apt ran
    assert not policy.exists()


def test_the_unmarked_one_an_earlier_version_of_the_set_up_wrote_is_stale(policy):
    # What e286242 wrote (no pid): left by a set-up killed before its `finally`; never live now.
    policy.write_text("#!/bin/sh\n# The PTP lab's set-up: no daemon starts while it installs.\nexit 101\n")
    said = []
    assert packages.remove_stale_policy(said.append) and not policy.exists()
    assert "an earlier version of the lab" in said[0]
    policy.write_text("#!/bin/sh\n# The PTP lab's set-up: no daemon starts while it installs.\nexit 0\n")
    assert not packages.remove_stale_policy(print) and policy.exists()  # not ours word for word: kept


def test_ours_whose_pid_now_runs_another_program_is_stale(policy):
    # The pid was reused: the start time in the marker is not that of the process now running.
    policy.write_text(marked(os.getpid(), start=1))
    assert packages.remove_stale_policy(print) and not policy.exists()


def test_a_policy_rc_d_of_a_set_up_still_running_is_left_alone(policy):
    other = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while packages.process_start(other.pid) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        text = marked(other.pid, packages.process_start(other.pid))
        policy.write_text(text)
        apt = Recording(policy)
        packages.install(apt, LAVA, print)
        assert apt.seen == [text] and policy.read_text() == text
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("text", ["#!/bin/sh\nexit 101\n",
                                  "#!/bin/sh\n# the PTP lab's set-up, pid 1\nexit 0\n"])
def test_anyone_elses_policy_rc_d_is_never_touched(policy, text):
    policy.write_text(text)
    policy.chmod(0o700)
    apt = Recording(policy)
    packages.install(apt, LAVA, print)
    packages.setup([], Apt(), print)
    assert apt.seen == [text]
    assert policy.read_text() == text and policy.stat().st_mode & 0o777 == 0o700


CHILD = """\
import subprocess, sys, time
sys.path.insert(0, {tools!r})
from ptplab import packages

class Waiting:
    simulate = False
    def run(self, tool, *args, check=True):
        print("installing", flush=True)
        time.sleep(60)
        return subprocess.CompletedProcess([tool, *args], 0, "", "")

packages.install(Waiting(), packages.Step("lava", ("lava-dispatcher",), None), print)
"""


def start_set_up(tmp_path) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / "policy-rc.d"
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(tools=str(REPO / "tools"))],
                            env={**os.environ, "PTPLAB_POLICY_RC_D": str(path)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "installing\n", proc.stderr.read()
    assert f"pid {proc.pid} " in path.read_text()
    return proc, path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_set_up_stopped_by_a_signal_leaves_no_policy_rc_d(tmp_path, sig):
    proc, path = start_set_up(tmp_path)
    try:
        proc.send_signal(sig)
        proc.wait(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 0
    assert not path.exists()


def test_a_set_up_killed_outright_leaves_one_that_the_next_start_removes(tmp_path, monkeypatch):
    proc, path = start_set_up(tmp_path)
    proc.kill()
    proc.wait()
    assert path.exists()  # SIGKILL cannot be caught
    monkeypatch.setattr(packages, "POLICY_RC_D", path)
    said = []
    packages.setup([], Apt(), said.append)
    assert not path.exists() and said and f"pid {proc.pid}" in said[0]


def test_the_policy_path_is_the_system_one_unless_told():
    p = subprocess.run([sys.executable, "-c", "from ptplab import packages; print(packages.POLICY_RC_D)"],
                       env={k: v for k, v in os.environ.items() if k != "PTPLAB_POLICY_RC_D"}
                       | {"PYTHONPATH": str(REPO / "tools")}, capture_output=True, text=True, timeout=60)
    assert p.stdout == "/usr/sbin/policy-rc.d\n", p.stderr
