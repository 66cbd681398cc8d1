"""The Debian packages a run needs, and how the set-up installs them without removing or
downgrading anything.

Each need (qemu, grub, ovmf, bochs) names the files a run uses and the packages that bring them.
A need is met when its files are there (any QEMU from 7.2 on is used as it is). Otherwise the
set-up plans one `apt-get install --no-remove` per need. QEMU's packages must all come from one
suite, so qemu-system-x86 comes from the suite the machine's QEMU packages already come from
(qemu-utils 10 from bookworm-backports cannot sit beside bookworm's qemu-system 7.2). When no QEMU
package is installed, the release's backports suite is used, because it has QEMU 10. A suite
missing from apt's sources is added from the entry that already serves the release: same
archive, same keyring, Debian's archive only.

Every apt-get waits at most a minute for a held dpkg lock (then the error names the holder) and
runs under a generous time limit, killed with its process group on expiry. The policy-rc.d the
set-up writes while daemons install carries a marker line with the writer's pid; it is removed
on every exit the set-up can catch (SIGTERM, SIGINT and SIGHUP included), and one left by a
set-up that was killed outright is removed at the next start. A policy-rc.d without our marker
is never touched.

The plan also runs as a simulation (`apt-get -s`) against another package state, such as a
fresh machine's dpkg status. The test of the set-up does exactly that. It is stdlib only, since
it runs before the virtual environment exists.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import limits

OVMF = Path("/usr/share/ovmf/OVMF.fd")
BOCHS_BIOS = Path("/usr/share/bochs/BIOS-bochs-latest")
BOCHS_SDL2 = Path("/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_sdl2_gui.so")
GRUB_PLATFORMS = {"BIOS": Path("/usr/lib/grub/i386-pc"), "UEFI": Path("/usr/lib/grub/x86_64-efi")}
# Where the set-up writes a suite it adds; the name says who wrote it.
ADDED_SOURCES = "ptplab-{suite}.sources"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True)
class Need:
    name: str
    packages: tuple[str, ...]
    files: tuple[str, ...]  # commands on PATH, or absolute paths
    # Installed packages whose suite this need's packages must come from (a name prefix).
    follows: str | None = None
    # Daemons among the packages, kept from starting at install (a test starts them bound to
    # the loopback address and stops them).
    daemons: bool = False


NEEDS = {n.name: n for n in [
    Need("qemu", ("qemu-system-x86",), ("qemu-system-x86_64",), follows="qemu-"),
    Need("grub", ("grub-pc-bin", "grub-efi-amd64-bin", "grub-common", "xorriso", "mtools"),
         ("grub-mkrescue", "xorriso", "mformat", *map(str, GRUB_PLATFORMS.values()))),
    Need("ovmf", ("ovmf",), (str(OVMF),)),
    Need("bochs", ("bochs", "bochs-sdl", "bochsbios", "vgabios"), ("bochs", str(BOCHS_BIOS), str(BOCHS_SDL2))),
    # LAVA's dispatcher (lava-run), its client, the TFTP server its tftp deploy checks for, and
    # socat, the serial console of a QEMU standing in for a lab machine. The dispatcher depends
    # on qemu-system-x86: from QEMU's suite, like ours.
    Need("lava", ("lava-dispatcher", "lavacli", "tftpd-hpa", "socat"), ("lava-run", "lavacli", "in.tftpd", "socat"),
         follows="qemu-", daemons=True),
    # LAVA's server (Django, gunicorn, its scheduler and the worker's lava-worker come with it),
    # from Debian's main suite: bookworm-backports' Django is one it was not packaged for.
    Need("lava-server", ("lava-server",), ("lava-server", "gunicorn3", "lava-worker"), daemons=True),
]}
# Debian's switch that keeps maintainer scripts from starting daemons (invoke-rc.d's policy);
# PTPLAB_POLICY_RC_D points it elsewhere (the tests of the set-up write theirs in a temporary
# folder, never in /usr/sbin).
POLICY_RC_D = Path(os.environ.get("PTPLAB_POLICY_RC_D") or "/usr/sbin/policy-rc.d")
# The marker of ours: who wrote it, and which process (its start time tells a reused pid apart).
POLICY_MARK = "# written by the PTP lab's set-up (tools/ptplab/packages.py), pid {pid} (started {start})"
POLICY_MARK_RE = re.compile(r"^# written by the PTP lab's set-up \(tools/ptplab/packages\.py\), "
                            r"pid (\d+)(?: \(started (\d+)\))?$", re.M)
# How long apt-get waits for a dpkg lock another process holds (DPkg::Lock::Timeout), and how
# long each apt-get may run in all (seconds, by its action; generous: a slow mirror, a big
# install), after which it is killed with its process group.
LOCK_TIMEOUT_S = 60
# What the set-up wrote before it marked the file with its pid (until e286242): ours, and stale
# wherever it is found (that version removed it on the way out, unless it was killed).
OLD_POLICY = "#!/bin/sh\n# The PTP lab's set-up: no daemon starts while it installs.\nexit 101\n"
APT_LIMITS_S = {"install": 20 * 60, "update": 5 * 60}
APT_LIMIT_OTHER_S = 2 * 60


class SetupError(Exception):
    """The set-up cannot go on; the message says which package and why."""


def present(need: Need) -> bool:
    return all(Path(f).exists() if f.startswith("/") else shutil.which(f) for f in need.files)


# ---- package state -----------------------------------------------------------------------


def stanzas(text: str) -> list[dict[str, str]]:
    """RFC 822 stanzas (dpkg's status, apt-cache show, indextargets) as ordered field -> value dicts."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        last = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and last:
                fields[last] += "\n" + line
            elif ":" in line:
                last, _, value = line.partition(":")
                fields[last] = value.strip()
        if fields:
            out.append(fields)
    return out


def package_stanzas(text: str) -> list[dict[str, str]]:
    return [s for s in stanzas(text) if "Package" in s]


def render_stanzas(items: list[dict[str, str]]) -> str:
    return "".join("".join(f"{k}: {v}\n" for k, v in s.items()) + "\n" for s in items)


def key(stanza: dict[str, str]) -> str:
    """dpkg-query's ${binary:Package}: name, with :arch for Multi-Arch: same packages."""
    name = stanza["Package"]
    if stanza.get("Multi-Arch") == "same":
        return f"{name}:{stanza.get('Architecture', '')}"
    return name


def installed(status_text: str) -> dict[str, str]:
    """Package name -> version of what a dpkg status file says is installed."""
    return {s["Package"]: s.get("Version", "") for s in package_stanzas(status_text)
            if s.get("Status", "").endswith(" installed")}


def codename() -> tuple[str, str]:
    """This Debian release's (codename, major version) from /etc/os-release."""
    info = {}
    for line in Path("/etc/os-release").read_text(errors="replace").splitlines():
        k, _, v = line.partition("=")
        info[k] = v.strip().strip('"')
    return info.get("VERSION_CODENAME", ""), info.get("VERSION_ID", "").split(".")[0]


def suite_of(version: str, release: tuple[str, str]) -> str | None:
    """The suite an installed version comes from, where its version says it (backports), else None."""
    m = re.search(r"~bpo(\d+)\+", version)
    if not m:
        return None
    name, major = release
    if m.group(1) != major:
        raise SetupError(f"version {version} is a backport for Debian {m.group(1)}, this is Debian {major} "
                         f"({name}): install qemu-system-x86 of the same version by hand")
    return f"{name}-backports"


# ---- apt ---------------------------------------------------------------------------------


@dataclass
class Apt:
    """apt-get and friends, on the live machine or (options, simulate) on another package state."""
    options: list[str] = field(default_factory=list)
    simulate: bool = False
    sources_dir: Path = Path("/etc/apt/sources.list.d")
    log: Path | None = None
    lock_timeout: int = LOCK_TIMEOUT_S

    def limit(self, args: tuple[str, ...]) -> int:
        """The time limit of one call: by its action (install, update, ...), the first word that is no option."""
        return APT_LIMITS_S.get(next((a for a in args if not a.startswith("-")), ""), APT_LIMIT_OTHER_S)

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # apt-get waits for a held lock at most lock_timeout s (apt's default is to fail at once).
        lock = ["-o", f"DPkg::Lock::Timeout={self.lock_timeout}"] if tool == "apt-get" else []
        cmd = [tool, *lock, *self.options, *args]
        what = " ".join([tool, *args])
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        limit = self.limit(args)
        try:
            with limits.exits_on_signals():
                out = limits.run(cmd, limit, what=what, capture_output=True, text=True, errors="replace", env=env,
                                 stdin=subprocess.DEVNULL)
        except limits.TimedOut as e:
            self.write_log(cmd, e.output + f"\n(timed out after {limit} s, killed)")
            tail = " | ".join(line for line in e.output.strip().splitlines()[-3:] if line.strip())
            raise SetupError(f"{e}{'; its last lines: ' + tail if tail else ''}"
                             f"{'; its output is in ' + str(self.log) if self.log else ''}") from None
        self.write_log(cmd, out.stdout + out.stderr)
        if check and out.returncode != 0:
            raise SetupError(f"{what} failed (exit {out.returncode}): {self.why(out.stdout + out.stderr)}")
        return out

    def write_log(self, cmd: list[str], text: str) -> None:
        if self.log is not None:
            with self.log.open("a") as f:
                f.write(f"$ {' '.join(cmd)}\n{text}\n")

    def why(self, text: str) -> str:
        """apt's last error; for a lock still held after the wait, apt's line naming its holder."""
        held = lock_held(text)
        if held:
            return (f"waited {self.lock_timeout} s for a lock another process holds: {held}"
                    + ("" if "held by process" in held else f" ({last_error(text)})"))
        return last_error(text)

    def targets(self) -> list[dict[str, str]]:
        """apt's index targets: one per suite and component of the sources, with their release facts."""
        return stanzas(self.run("apt-get", "indextargets").stdout)

    def status_file(self) -> Path:
        for i, opt in enumerate(self.options):
            if opt.startswith("Dir::State::status=") and i and self.options[i - 1] == "-o":
                return Path(opt.split("=", 1)[1])
        return Path("/var/lib/dpkg/status")


def last_error(text: str) -> str:
    errors = [line for line in text.splitlines() if line.startswith("E: ")]
    return errors[-1][3:] if errors else (text.strip().splitlines() or ["no output"])[-1]


def lock_held(text: str) -> str | None:
    """apt's 'Could not get lock FILE. It is held by process N (NAME)', if it gave up on a lock: its
    error line (no wait), or the last of its 'Waiting for cache lock: ...' lines (a wait that ran out)."""
    held = [m.group(1) for m in re.finditer(r"^(?:E: |Waiting for cache lock: )(Could not get lock \S+?\.?"
                                            r"(?: It is held by process \d+ \([^)]*\))?)(?:\.\.\.)?\s*$", text, re.M)]
    return held[-1] if held else None


INST = re.compile(r"^Inst (\S+) (?:\[([^\]]+)\] )?\((\S+) ")
REMV = re.compile(r"^Remv (\S+)(?: \[([^\]]+)\])?")


@dataclass(frozen=True)
class Change:
    """What one apt-get install would do: new and upgraded packages, removals, downgrades."""
    install: dict[str, tuple[str | None, str]]  # name -> (installed version or None, new version)
    remove: dict[str, str | None]

    @staticmethod
    def parse(text: str) -> Change:
        inst, remv = {}, {}
        for line in text.splitlines():
            if m := INST.match(line):
                inst[m.group(1)] = (m.group(2), m.group(3))
            elif m := REMV.match(line):
                remv[m.group(1)] = m.group(2)
        return Change(inst, remv)

    def downgrades(self) -> dict[str, tuple[str, str]]:
        return {p: (old, new) for p, (old, new) in self.install.items()
                if old is not None and version_lt(new, old)}


def version_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], timeout=60).returncode == 0


# ---- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One apt-get install: the need, its packages, the target release (-t) or None."""
    need: str
    packages: tuple[str, ...]
    release: str | None

    def args(self) -> list[str]:
        return ["install", "-y", "--no-install-recommends", "--no-remove",
                *(["-t", self.release] if self.release else []), *self.packages]

    def command(self) -> str:
        return " ".join(["apt-get", *self.args()])


def plan(needs: list[Need], status: dict[str, str], release: tuple[str, str]) -> list[Step]:
    """One install step per need, each from the suite its `follows` packages come from."""
    steps = []
    for need in needs:
        suite = None
        if need.follows:
            ours = {p: v for p, v in status.items() if p.startswith(need.follows)}
            suites = {suite_of(v, release) for v in ours.values()}
            # Nothing of QEMU installed: the release's backports suite has QEMU 10.
            suite = next(iter(suites)) if len(suites) == 1 else f"{release[0]}-backports"
            if len(suites) > 1:
                raise SetupError("the installed QEMU packages come from different suites ("
                                 + ", ".join(f"{p} {v}" for p, v in sorted(ours.items()))
                                 + "): install qemu-system-x86 of the same version by hand")
        steps.append(Step(need.name, need.packages, suite))
    return steps


def ensure_suite(apt: Apt, suite: str, release: tuple[str, str], say) -> bool:
    """Add `suite` to apt's sources from the Debian entry that serves the release; True when added."""
    targets = apt.targets()
    if any(t.get("Release") == suite for t in targets):
        return False
    base = [t for t in targets if t.get("Release") == release[0] and t.get("Origin") == "Debian"
            and t.get("Target-Of") == "deb"]
    if not base:
        raise SetupError(f"suite {suite} is not in apt's sources and no Debian entry for {release[0]} is "
                         f"there to add it from: add {suite} to apt's sources")
    uri = base[0]["Repo-URI"]
    components = sorted({t["Component"] for t in base if t.get("Component")}) or ["main"]
    keyring = signed_by(base[0].get("Sourcesentry", ""))
    path = apt.sources_dir / ADDED_SOURCES.format(suite=suite)
    path.write_text("# Added by the PTP lab's set-up (tools/ptplab/packages.py): the QEMU packages\n"
                    "# come from this suite, from the same archive and keyring as the release.\n"
                    f"Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: {' '.join(components)}\n"
                    + (f"Signed-By: {keyring}\n" if keyring else ""))
    say(f"setup: added Debian's {suite} to apt's sources ({path}: {uri}, the archive of {release[0]})")
    return True


def signed_by(entry: str) -> str | None:
    """The keyring of a sources entry ('FILE:LINE' from apt-get indextargets)."""
    name, _, line = entry.rpartition(":")
    try:
        text = Path(name).read_text(errors="replace")
    except OSError:
        text = ""
    if name.endswith(".sources"):
        m = re.search(r"^Signed-By:\s*(\S+)", text, re.M | re.I)
    else:
        lines = text.splitlines()
        n = int(line) - 1 if line.isdigit() else -1
        m = re.search(r"signed-by=([^\s\]]+)", lines[n]) if 0 <= n < len(lines) else None
    if m:
        return m.group(1)
    return str(DEBIAN_KEYRING) if DEBIAN_KEYRING.exists() else None


def conflicts(apt: Apt, change: Change, status_text: str) -> str:
    """Why apt would remove what it would: the Breaks/Conflicts between the two sides."""
    removed = {s["Package"]: s for s in package_stanzas(status_text) if s["Package"] in change.remove}
    shown = apt.run("apt-cache", "show", *(f"{p}={v}" for p, (_, v) in change.install.items()), check=False)
    incoming = {s["Package"]: s for s in package_stanzas(shown.stdout)}
    why = []
    for a, b, b_version in ([(r, i, change.install[i][1]) for r in removed.values() for i in incoming]
                            + [(i, r, removed[r].get("Version")) for i in incoming.values() for r in removed]):
        for rel in ("Breaks", "Conflicts"):
            for clause in a.get(rel, "").split(","):
                if re.match(rf"\s*{re.escape(b)}(\s|\(|:|$)", clause):
                    why.append(f"{a['Package']} {a.get('Version')} {rel} {clause.strip()}, "
                               f"and {b} {b_version} {'would be installed' if b in incoming else 'is installed'}")
    return "; ".join(dict.fromkeys(why)) or "apt gives no Breaks or Conflicts between them (see the log)"


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot, /proc/PID/stat), or None if it is gone
    (a zombie is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def remove_stale_policy(say) -> bool:
    """Remove a policy-rc.d of ours whose writer is no longer running (a set-up killed outright);
    True if one was removed. One without our marker, or whose writer runs, is left alone."""
    try:
        text = POLICY_RC_D.read_text(errors="replace")
    except OSError:
        return False
    if text.strip() == OLD_POLICY.strip():
        POLICY_RC_D.unlink(missing_ok=True)
        say(f"setup: removed {POLICY_RC_D}, left by a set-up of an earlier version of the lab that was stopped "
            "before it could remove it")
        return True
    m = POLICY_MARK_RE.search(text)
    if not m:
        return False  # someone else's
    pid, start = int(m.group(1)), m.group(2)
    now = process_start(pid)
    if now is not None and (start is None or now == start):
        return False  # another set-up at work right now
    POLICY_RC_D.unlink(missing_ok=True)
    say(f"setup: removed {POLICY_RC_D}, left by an earlier set-up (pid {pid}, no longer running) that was "
        "stopped before it could remove it")
    return True


def write_policy(say) -> bool:
    """Write our policy-rc.d (no daemon starts) unless one is there; True if we wrote it."""
    remove_stale_policy(say)
    try:
        fd = os.open(POLICY_RC_D, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
    except FileExistsError:
        return False  # someone else's (or another set-up's): it stays as it is
    with os.fdopen(fd, "w") as f:
        f.write("#!/bin/sh\n" + POLICY_MARK.format(pid=os.getpid(), start=process_start(os.getpid())) + "\n"
                "# No daemon starts while it installs; removed when it ends.\nexit 101\n")
    os.chmod(POLICY_RC_D, 0o755)
    return True


def remove_policy() -> None:
    """Remove our policy-rc.d (the one with our pid), with no signal let in half-way."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    try:
        m = POLICY_MARK_RE.search(POLICY_RC_D.read_text(errors="replace"))
        if m and int(m.group(1)) == os.getpid():
            POLICY_RC_D.unlink()
    except OSError:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def install(apt: Apt, step: Step, say) -> Change:
    """Run one step (or simulate it); refuse with the package and the conflict when apt would remove."""
    args = step.args()
    with limits.exits_on_signals():
        ours = not apt.simulate and NEEDS[step.need].daemons and write_policy(say)
        try:
            out = apt.run("apt-get", *(["-s"] if apt.simulate else []), *args, check=False)
        finally:
            if ours:
                remove_policy()
    change = Change.parse(out.stdout)
    if out.returncode == 0 and not change.remove and not change.downgrades():
        return change
    # Ask apt what it would have done without --no-remove, to name the package and the conflict.
    trial = Change.parse(apt.run("apt-get", "-s", *[a for a in args if a != "--no-remove"], check=False).stdout)
    status_text = apt.status_file().read_text(errors="replace")
    if trial.remove:
        gone = ", ".join(f"{p} {v or ''}".strip() for p, v in sorted(trial.remove.items()))
        raise SetupError(f"apt-get would have to remove {gone} to install {' '.join(step.packages)}"
                         f"{' from ' + step.release if step.release else ''}: {conflicts(apt, trial, status_text)}")
    down = change.downgrades() or trial.downgrades()
    if down:
        raise SetupError(f"apt-get would downgrade " + ", ".join(f"{p} {o} -> {n}" for p, (o, n) in down.items())
                         + f" to install {' '.join(step.packages)}")
    why = unmet(out.stdout + out.stderr)
    raise SetupError(f"apt-get could not install {' '.join(step.packages)}"
                     f"{' from ' + step.release if step.release else ''}: "
                     + (f"unmet dependencies: {why}" if why else apt.why(out.stdout + out.stderr)))


def unmet(text: str) -> str:
    """apt's own 'unmet dependencies' lines (' qemu-utils : Breaks: ...'), joined."""
    lines = text.splitlines()
    try:
        start = lines.index("The following packages have unmet dependencies:") + 1
    except ValueError:
        return ""
    out = []
    for line in lines[start:]:
        if not line.startswith(" "):
            break
        out.append(" ".join(line.split()))
    return "; ".join(out)


def record_installed(apt: Apt, change: Change) -> None:
    """Simulation only: write what a step installed into the status file, so the next step sees it."""
    if not change.install:
        return
    shown = apt.run("apt-cache", "show", *(f"{p}={v}" for p, (_, v) in change.install.items())).stdout
    new = {}
    for s in package_stanzas(shown):
        if s["Package"] in change.install and s["Package"] not in new:
            new[s["Package"]] = {"Package": s["Package"], "Status": "install ok installed",
                                 **{k: v for k, v in s.items() if k not in ("Package", "Status")}}
    path = apt.status_file()
    kept = [s for s in package_stanzas(path.read_text(errors="replace")) if s["Package"] not in new]
    path.write_text(render_stanzas(kept + list(new.values())))


def check_needs(needs: list[str]) -> None:
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise SetupError(f"unknown need {unknown[0]!r} (known: {', '.join(NEEDS)})")


def setup(needs: list[str], apt: Apt, say, release: tuple[str, str] | None = None) -> list[Change]:
    """Install what the needs lack; on the live machine only what is not there already."""
    check_needs(needs)
    if not apt.simulate:
        remove_stale_policy(say)
    status = installed(apt.status_file().read_text(errors="replace"))
    todo = [NEEDS[n] for n in dict.fromkeys(needs)
            if not (present(NEEDS[n]) if not apt.simulate else all(p in status for p in NEEDS[n].packages))]
    if not todo:
        return []
    if not apt.simulate and (os.geteuid() != 0 or not shutil.which("apt-get")):
        raise SetupError("install the Debian packages " + " ".join(p for n in todo for p in n.packages)
                         + " (or run this script as root)")
    release = release or codename()
    steps = plan(todo, status, release)
    for suite in dict.fromkeys(s.release for s in steps if s.release):
        ensure_suite(apt, suite, release, say)
    apt.run("apt-get", "update", "-qq")
    changes = []
    for step in steps:
        say(f"setup: installing {' '.join(step.packages)}{' from ' + step.release if step.release else ''} "
            f"({step.command()}{', simulated' if apt.simulate else ''}"
            f"{', log in ' + str(apt.log) if apt.log else ''})")
        changes.append(install(apt, step, say))
        if apt.simulate:
            record_installed(apt, changes[-1])
    return changes


def main(argv: list[str]) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python3 -m ptplab setup", allow_abbrev=False,
                                 description="install the Debian packages a run needs, removing and "
                                             "downgrading nothing")
    ap.add_argument("needs", nargs="*", help=f"what to set up: {', '.join(NEEDS)}")
    ap.add_argument("--log", type=Path, help="where apt's output goes (shown only when it fails)")
    ap.add_argument("--all", action="store_true", help="every need (what scripts/test.sh sets up)")
    ap.add_argument("--list", action="store_true", help="print each need and its packages")
    a = ap.parse_args(argv)
    if a.all:
        a.needs = list(NEEDS)
    if a.list:
        for n in NEEDS.values():
            print(f"{n.name}\t{' '.join(n.packages)}")
        return 0
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        check_needs(a.needs)
    except SetupError as e:
        say(f"setup: error: {e}")
        return 2
    try:
        setup(a.needs, Apt(log=a.log), say)
    except SetupError as e:
        say(f"setup: error: {e}")
        if a.log is not None and a.log.exists():
            say(f"setup: apt's output is in {a.log}")
        return 1
    return 0
