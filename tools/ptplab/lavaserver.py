"""`scripts/lava-server.sh start|stop|status`: a LAVA server on this machine, bound to 127.0.0.1:
Debian's lava-server 2023.01 with the image's PostgreSQL 15, its web front (gunicorn) and
scheduler, a worker (lava-worker) with the lab's devices (lava/devices: the qemu type and the
four network-boot stand-ins, each tagged with its name), an HTTP server of the worker's TFTP
directory (what iPXE sanboots), and a lavacli identity for it, `ptplab-local`. No systemd runs
here: each service is a process in a session of its own, under a time limit (LIFETIME_S), its
pid and log in target/lava-server/run; `stop` ends them all and the database cluster it
started. Every wait is bounded; a service that does not come up is an error naming it and its
log."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import lab, limits
from .cli import BenchError, say
from .lavadevice import DEVICES, GUEST_HOST_IP, Standin, device_name, grub_netdir, tftp_directory

RUN = lab.REPO / "target" / "lava-server" / "run"
STATE = RUN / "state.json"
IDENTITY = "ptplab-local"
USER = "ptplab"
WORKER = f"{socket.gethostname()}-ptplab-worker"
# Where the server reads device dictionaries, the lab's device-type templates they extend
# (lava/devices/x86-*.jinja2), and its worker's dispatcher configuration.
DEVICES_DIR = Path("/etc/lava-server/dispatcher-config/devices")
DEVICE_TYPES_DIR = Path("/etc/lava-server/dispatcher-config/device-types")
DISPATCHERS_DIR = Path("/etc/lava-server/dispatcher.d")
SETTINGS = Path("/etc/lava-server/settings.d/50-ptplab-events.yaml")
EVENTS_IPC = Path("/tmp/ptplab-lava.events")
# Seconds between the worker's calls to the server (LAVA's default, 20, delays each job's start).
PING_S = 2
# The worker runs one job at a time: each stand-in is an emulator, and this machine runs one.
JOB_LIMIT = 1
# A server left running stops by itself after this long (scripts/lava-server.sh start again);
# a stand-in's QEMU, after this long (a job's power-off stops it before).
LIFETIME_S, STANDIN_S = 6 * 3600, 2 * 3600
PG_CLUSTER = ("15", "main")
# Debian's own python3 first: lava-server's scripts need its Django, not another python on PATH.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Seconds each step may take before it counts as failed (and is killed).
STEP_S, CONFIGURE_S, UP_S, STOP_S = 120, 600, 90, 20


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
    return bool(pid) and limits.alive(pid)


def spawn(name: str, cmd: list[str], st: dict) -> None:
    """A service in a session of its own under the server's time limit, its output in
    RUN/NAME.log, its pid (timeout's, leader of its process group) kept in the state."""
    log = open(RUN / f"{name}.log", "ab")
    cmd = ["timeout", "-k", "10", str(LIFETIME_S), *cmd]
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


def events(st: dict) -> None:
    """The server's event stream, on 127.0.0.1: without it the scheduler looks at the queue every
    20 s; with it a job is scheduled when it is submitted (lava-publisher; settings.d)."""
    st["events"] = {"url": f"tcp://127.0.0.1:{limits.free_port()}", "web": limits.free_port()}
    SETTINGS.parent.mkdir(parents=True, exist_ok=True)
    SETTINGS.write_text("# The PTP lab's loopback server (tools/ptplab/lavaserver.py): events on 127.0.0.1 only\n"
                        f"EVENT_NOTIFICATION: true\nEVENT_SOCKET: \"{st['events']['url']}\"\n"
                        f"INTERNAL_EVENT_SOCKET: \"ipc://{EVENTS_IPC}\"\n")


def devices(st: dict) -> None:
    """The worker's devices, each of lava/devices/NAME.jinja2 under this machine's name for it and
    tagged NAME; a stand-in's power and serial commands are scripts in RUN/devices/NAME (its
    serial port chosen now). The worker's guests reach this machine as GUEST_HOST_IP (the
    address in the jobs' boot commands), and an HTTP server of the TFTP directory serves iPXE."""
    tftp = tftp_directory()
    grub_netdir(tftp)
    for d in (DEVICES_DIR, DEVICE_TYPES_DIR, DISPATCHERS_DIR / WORKER):
        d.mkdir(parents=True, exist_ok=True)
    (DISPATCHERS_DIR / WORKER / "dispatcher.yaml").write_text(f"dispatcher_ip: {GUEST_HOST_IP}\n")
    for real in sorted((lab.REPO / "lava" / "devices").glob("x86-*.jinja2")):  # what the stand-ins extend
        shutil.copyfile(real, DEVICE_TYPES_DIR / real.name)
    for name, device in DEVICES.items():
        text = (lab.REPO / "lava" / "devices" / f"{name}.jinja2").read_text()
        if device.firmware is not None:
            work = RUN / "devices" / name
            work.mkdir(parents=True, exist_ok=True)
            words = Standin(device, work, tftp, STANDIN_S).write()
            text = "".join(f"{{% set {k} = {json.dumps(v)} %}}\n" for k, v in words.items()) + text
        hostname = device_name(name)
        (DEVICES_DIR / f"{hostname}.jinja2").write_text(text)
        if manage("device-types", "details", device.device_type, check=False).returncode != 0:
            manage("device-types", "add", device.device_type)
        if manage("devices", "details", hostname, check=False).returncode != 0:
            manage("devices", "add", "--device-type", device.device_type, "--worker", WORKER, hostname)
    st["http_port"] = limits.free_port()
    spawn("http", [sys.executable, "-m", "ptplab.httpd", str(tftp), str(st["http_port"])], st)


def http_port(identity: str) -> int | None:
    """The port of the loopback server's HTTP server, when `identity` is its, and it runs."""
    st = state()
    return st.get("http_port") if identity == IDENTITY and alive(st.get("pids", {}).get("http")) else None


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
    events(st)
    port = limits.free_port()
    url = f"http://127.0.0.1:{port}/"
    st.update(url=url, port=port)
    spawn("web", ["gunicorn3", "lava_server.wsgi", "--worker-class", "eventlet", "--bind", f"127.0.0.1:{port}",
                  "-u", "lavaserver", "-g", "lavaserver"], st)
    # As the web front's user: its socket is what the web front (and the scheduler) write to.
    spawn("publisher", ["lava-server", "manage", "lava-publisher", "--host", "127.0.0.1", "--port",
                        str(st["events"]["web"]), "-u", "lavaserver", "-g", "lavaserver"], st)
    spawn("scheduler", ["lava-server", "manage", "lava-scheduler", "--event-url", st["events"]["url"]], st)
    wait_http(url + "api/v0.2/", UP_S, st)
    # The worker, its devices, and lavacli's identity.
    details = manage("workers", "details", WORKER, check=False)
    if details.returncode != 0:
        token = manage("workers", "add", WORKER, "--description", "the PTP lab's loopback worker").stdout
    else:
        token = details.stdout
    token = next(line.split(":", 1)[1].strip() for line in token.splitlines() if line.lower().startswith("token"))
    devices(st)
    spawn("worker", ["lava-worker", "--url", url, "--token", token, "--name", WORKER, "--log-file",
                     str(RUN / "worker-own.log"), "--ping-interval", str(PING_S)], st)
    if manage("users", "details", USER, check=False).returncode != 0:
        manage("users", "add", USER, "--staff", "--superuser")
    secret = secrets.token_hex(32)
    manage("tokens", "add", "--user", USER, "--secret", secret, "--description", "lavacli identity ptplab-local")
    run(["lavacli", "identities", "add", "--uri", f"{url}RPC2", "--username", USER, "--token", secret, IDENTITY],
        what="lavacli identities add")
    run(["lavacli", "-i", IDENTITY, "workers", "update", WORKER, "--job-limit", str(JOB_LIMIT)],
        what="lavacli workers update --job-limit")
    for name in DEVICES:  # the tag a job asks for: which of the lab's devices it is
        tags = run(["lavacli", "-i", IDENTITY, "devices", "tags", "list", device_name(name)]).stdout
        if name not in tags.split():
            run(["lavacli", "-i", IDENTITY, "devices", "tags", "add", device_name(name), name])
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
    say(f"lava-server: running at {url} (web, scheduler, worker {WORKER}, HTTP of {tftp_directory()} on port "
        f"{st['http_port']}; lavacli identity {IDENTITY}); devices: {', '.join(map(device_name, DEVICES))}; "
        f"logs in {RUN}; it stops by itself after {LIFETIME_S // 3600} h")
    return 0


def stop() -> int:
    """SIGTERM to every service's process group, SIGKILL to what of them runs 20 s later."""
    st = state()
    groups = dict(st.get("pids", {}))  # each service leads its own group (a session of its own)
    for pgid in groups.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_S
    while time.monotonic() < deadline and any(limits.group_alive(g) for g in groups.values()):
        time.sleep(0.2)
    left = [name for name, pgid in groups.items() if limits.group_alive(pgid)]
    for name in left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(groups[name], signal.SIGKILL)
    if st.get("pg_started") and pg_running():
        run(["pg_ctlcluster", *PG_CLUSTER, "stop"], what="stopping PostgreSQL")
    SETTINGS.unlink(missing_ok=True)  # the event stream's settings name ports nothing listens on now
    if STATE.exists():
        STATE.unlink()
    say("lava-server: stopped" + (f" (killed after {STOP_S} s: {', '.join(left)})" if left else ""))
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
    except BenchError as e:  # ServerError, and a stand-in's GRUB directory that could not be made
        say(f"lava-server: error: {e}")
        return 1

