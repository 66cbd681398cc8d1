"""`scripts/lava-server.sh start|stop|status`: a LAVA server on this machine, bound to 127.0.0.1:
Debian's lava-server 2023.01 with the image's PostgreSQL 15, its web front (gunicorn) and
scheduler, a worker (lava-worker) with the lab's QEMU device, and a lavacli identity for it,
`ptplab-local`. No systemd runs here: each service is a process in a session of its own, its pid
and log in target/lava-server/run; `stop` ends them all and the database cluster it started.
Every wait is bounded; a service that does not come up is an error naming it and its log."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import lab, limits
from .cli import BenchError, say

RUN = lab.REPO / "target" / "lava-server" / "run"
STATE = RUN / "state.json"
IDENTITY = "ptplab-local"
USER = "ptplab"
WORKER = f"{socket.gethostname()}-ptplab-worker"
# The devices the worker runs: lava/devices/NAME.jinja2 under the server's name for it.
DEVICES = {"qemu-tcg": ("qemu", f"{socket.gethostname()}-qemu-tcg")}
DEVICES_DIR = Path("/etc/lava-server/dispatcher-config/devices")
PG_CLUSTER = ("15", "main")
# Debian's own python3 first: lava-server's scripts need its Django, not another python on PATH.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Seconds each step may take before it counts as failed (and is killed).
STEP_S, CONFIGURE_S, UP_S = 120, 600, 90


class ServerError(BenchError):
    pass


def run(cmd: list[str], seconds: float = STEP_S, what: str | None = None, check: bool = True,
        **kw) -> subprocess.CompletedProcess:
    """A set-up command under a limit, with Debian's PATH; its failure names it and its output."""
    env = {**os.environ, "PATH": SYSTEM_PATH, **kw.pop("env", {})}
    try:
        p = limits.run(cmd, seconds, what=what or " ".join(cmd), capture_output=True, text=True, errors="replace",
                       stdin=subprocess.DEVNULL, env=env, **kw)
    except limits.TimedOut as e:
        raise ServerError(str(e)) from None
    if check and p.returncode != 0:
        raise ServerError(f"{what or ' '.join(cmd)} failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-600:]}")
    return p


def manage(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["lava-server", "manage", *args], check=check)


def state() -> dict:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def spawn(name: str, cmd: list[str], st: dict) -> None:
    """A service in a session of its own, its output in RUN/NAME.log, its pid kept in the state."""
    log = open(RUN / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PATH": SYSTEM_PATH}, cwd="/")
    log.close()
    st.setdefault("pids", {})[name] = proc.pid
    STATE.write_text(json.dumps(st))


def pg_running() -> bool:
    p = run(["pg_lsclusters", "--no-header"], check=False)
    return any(line.split()[:2] == list(PG_CLUSTER) and "online" in line for line in p.stdout.splitlines())


def wait_http(url: str, seconds: float, st: dict) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if not alive(st.get("pids", {}).get("web")):
            break
        time.sleep(0.5)
    raise ServerError(f"the server's web front did not answer {url} within {seconds:.0f} s (its log: {RUN / 'web.log'})")



def start() -> int:
    if os.geteuid() != 0:
        raise ServerError("the server's set-up runs as root (it starts PostgreSQL and writes /etc/lava-server)")
    for tool in ("lava-server", "gunicorn3", "lava-worker", "lavacli", "pg_ctlcluster"):
        if shutil.which(tool, path=SYSTEM_PATH) is None:
            raise ServerError(f"{tool} is not installed (scripts/lava-server.sh installs it: ptplab setup lava-server)")
    RUN.mkdir(parents=True, exist_ok=True)
    st = state()
    if any(alive(p) for p in st.get("pids", {}).values()):
        say(f"lava-server: already running at {st.get('url')}")
        return 0
    st = {"pids": {}}
    if not pg_running():
        run(["pg_ctlcluster", *PG_CLUSTER, "start"], what="starting PostgreSQL")
        st["pg_started"] = True
    STATE.write_text(json.dumps(st))
    # The database, its user and every migration: lava-server's own configuration, once.
    db = run(["runuser", "-u", "postgres", "--", "psql", "-Atc", "select 1 from pg_database where datname='lavaserver'"],
             what="asking PostgreSQL for the lavaserver database")
    if db.stdout.strip() != "1":
        run(["dpkg-reconfigure", "-f", "noninteractive", "lava-server"], CONFIGURE_S,
            what="dpkg-reconfigure lava-server (database, migrations)")
    port = limits.free_port()
    url = f"http://127.0.0.1:{port}/"
    st.update(url=url, port=port)
    spawn("web", ["gunicorn3", "lava_server.wsgi", "--worker-class", "eventlet", "--bind", f"127.0.0.1:{port}",
                  "-u", "lavaserver", "-g", "lavaserver"], st)
    spawn("scheduler", ["lava-server", "manage", "lava-scheduler"], st)
    wait_http(url + "api/v0.2/", UP_S, st)
    # The worker, its devices, and lavacli's identity.
    details = manage("workers", "details", WORKER, check=False)
    if details.returncode != 0:
        token = manage("workers", "add", WORKER, "--description", "the PTP lab's loopback worker").stdout
    else:
        token = details.stdout
    token = next(line.split(":", 1)[1].strip() for line in token.splitlines() if line.lower().startswith("token"))
    DEVICES_DIR.mkdir(parents=True, exist_ok=True)
    for name, (dtype, hostname) in DEVICES.items():
        if manage("device-types", "details", dtype, check=False).returncode != 0:
            manage("device-types", "add", dtype)
        (DEVICES_DIR / f"{hostname}.jinja2").write_text((lab.REPO / "lava" / "devices" / f"{name}.jinja2").read_text())
        if manage("devices", "details", hostname, check=False).returncode != 0:
            manage("devices", "add", "--device-type", dtype, "--worker", WORKER, hostname)
    spawn("worker", ["lava-worker", "--url", url, "--token", token, "--name", WORKER, "--log-file",
                     str(RUN / "worker-own.log")], st)
    if manage("users", "details", USER, check=False).returncode != 0:
        manage("users", "add", USER, "--staff", "--superuser")
    secret = secrets.token_hex(32)
    manage("tokens", "add", "--user", USER, "--secret", secret, "--description", "lavacli identity ptplab-local")
    run(["lavacli", "identities", "add", "--uri", f"{url}RPC2", "--username", USER, "--token", secret, IDENTITY],
        what="lavacli identities add")
    STATE.write_text(json.dumps(st))
    deadline = time.monotonic() + UP_S
    while time.monotonic() < deadline:  # until the worker is online
        if "online" in manage("workers", "details", WORKER).stdout.lower().split("state")[1].split("\n")[0]:
            break
        if not alive(st["pids"]["worker"]):
            raise ServerError(f"lava-worker ended (its log: {RUN / 'worker.log'})")
        time.sleep(1)
    else:
        raise ServerError(f"the worker {WORKER} did not come online within {UP_S} s (its log: {RUN / 'worker.log'})")
    say(f"lava-server: running at {url} (web, scheduler, worker {WORKER}; lavacli identity {IDENTITY}); "
        f"devices: {', '.join(h for _, h in DEVICES.values())}; logs in {RUN}")
    return 0


def stop() -> int:
    st = state()
    left = []
    for name, pid in reversed(list(st.get("pids", {}).items())):
        if alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
    deadline = time.monotonic() + 20
    for name, pid in st.get("pids", {}).items():
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            left.append(name)
    if st.get("pg_started") and pg_running():
        run(["pg_ctlcluster", *PG_CLUSTER, "stop"], what="stopping PostgreSQL")
    if STATE.exists():
        STATE.unlink()
    say("lava-server: stopped" + (f" (killed after 20 s: {', '.join(left)})" if left else ""))
    return 0


def status() -> int:
    st = state()
    pids = st.get("pids", {})
    up = {n: alive(p) for n, p in pids.items()}
    if not up:
        say("lava-server: not running")
        return 3
    say(f"lava-server: {st.get('url')}: " + ", ".join(f"{n} {'up' if u else 'DOWN'}" for n, u in up.items()))
    return 0 if all(up.values()) else 1


def main(argv: list[str]) -> int:
    cmds = {"start": start, "stop": stop, "status": status}
    if len(argv) != 1 or argv[0] not in cmds:
        say("usage: scripts/lava-server.sh start|stop|status")
        return 2
    try:
        return cmds[argv[0]]()
    except ServerError as e:
        say(f"lava-server: error: {e}")
        return 1

