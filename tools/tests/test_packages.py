"""The set-up's apt plan, simulated (apt-get -s) against a fresh machine's package state.

The state is dpkg's status file cut to the packages a fresh machine of our kind ships
(data/fresh-image-packages.tsv, a copy of the image's list). It is not the live status filtered:
a machine that has worked on this project holds packages the image lacks. The sources are the
live ones without what the set-up added, so adding a missing suite is part of the run. Every
need is installed in turn, each seeing what the previous ones installed.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ptplab import packages
from ptplab.packages import Apt, SetupError, Step

FRESH = Path(__file__).parent / "data/fresh-image-packages.tsv"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"),
                                reason="simulating apt's plan needs root and apt-get")


def fresh_status() -> str:
    """A dpkg status file holding exactly the fresh image's packages at its versions."""
    want = dict(line.split("\t")[:2] for line in FRESH.read_text().splitlines() if line and not line.startswith("#"))
    live = {packages.key(s): s for s in packages.package_stanzas(Path("/var/lib/dpkg/status").read_text(errors="replace"))}
    found, missing = [], []
    for name, version in want.items():
        s = live.get(name)
        if s is not None and s.get("Version") == version and s.get("Status", "").endswith(" installed"):
            found.append(s)
        else:
            missing.append((name, version))
    if missing:  # upgraded here since: the image's version from apt's lists
        shown = subprocess.run(["apt-cache", "show", *(f"{n.split(':')[0]}={v}" for n, v in missing)],
                               capture_output=True, text=True)
        got = {(packages.key(s), s.get("Version")): s for s in packages.package_stanzas(shown.stdout)}
        by_name = {packages.key(s).split(":")[0]: s for s in live.values()}
        for name, version in missing:
            s = got.get((name, version))
            if s is None:
                s = upgraded_here(name, version, live, by_name, found)
            if s is None:
                pytest.skip(f"{name} {version} of the fresh image is neither installed here nor in apt's lists")
            found.append({"Package": s["Package"], "Status": "install ok installed",
                          **{k: v for k, v in s.items() if k not in ("Package", "Status")}})
    return packages.render_stanzas(found)


def upgraded_here(name: str, version: str, live: dict, by_name: dict, found: list) -> dict | None:
    """A fresh-image package this machine upgraded since to a version whose predecessor apt no
    longer lists (installing LAVA's dispatcher took perl to a security update, linux-perf and
    linux-libc-dev to backports): a point update (same upstream version) as the installed stanza
    at the image's version, its own version in its relations too (perl's packages pin each
    other); another upstream version as installed, with the installed packages it depends on
    that the image lacks. Neither touches what the tests look at (qemu's plan); None if it is
    not installed."""
    s = live.get(name) or by_name.get(name.split(":")[0])
    if s is None:
        return None
    now = s["Version"]
    if now.rsplit("-", 1)[0] == version.rsplit("-", 1)[0]:
        return {k: v.replace(now, version) if k != "Package" else v for k, v in s.items()}
    names = {packages.key(x).split(":")[0] for x in found}
    for dep in (s.get("Depends", "") + "," + s.get("Pre-Depends", "")).split(","):
        dep = dep.split("|")[0].strip().split(" ")[0].split(":")[0]
        extra = by_name.get(dep)
        if dep and extra is not None and dep not in names:
            found.append(extra)
            names.add(dep)
    return s


@pytest.fixture(scope="module")
def apt_root(tmp_path_factory) -> Path:
    """The live sources less the set-up's own, and a copy of apt's lists (shared by the tests)."""
    root = tmp_path_factory.mktemp("apt")
    (root / "sources.list.d").mkdir()
    if Path("/etc/apt/sources.list").exists():
        shutil.copy("/etc/apt/sources.list", root / "sources.list")
    else:
        (root / "sources.list").write_text("")
    for f in Path("/etc/apt/sources.list.d").iterdir():
        if f.suffix in (".list", ".sources") and not f.name.startswith("ptplab-"):
            shutil.copy(f, root / "sources.list.d" / f.name)
    shutil.copytree("/var/lib/apt/lists", root / "lists", ignore=shutil.ignore_patterns("lock", "partial"))
    (root / "lists/partial").mkdir()
    (root / "status").write_text(fresh_status())
    return root


@pytest.fixture
def fresh(apt_root, tmp_path) -> Apt:
    """apt pointed at the fresh state: its own status and sources, the shared lists."""
    shutil.copytree(apt_root / "sources.list.d", tmp_path / "sources.list.d")
    shutil.copy(apt_root / "status", tmp_path / "status")
    (tmp_path / "cache").mkdir()
    (tmp_path / "extended_states").write_text("")
    opts = [f"Dir::State::status={tmp_path / 'status'}", f"Dir::Etc::SourceList={apt_root / 'sources.list'}",
            f"Dir::Etc::SourceParts={tmp_path / 'sources.list.d'}", f"Dir::State::Lists={apt_root / 'lists'}",
            f"Dir::Cache={tmp_path / 'cache'}", f"Dir::State::extended_states={tmp_path / 'extended_states'}",
            "APT::Sandbox::User=root"]
    return Apt(options=[w for o in opts for w in ("-o", o)], simulate=True,
               sources_dir=tmp_path / "sources.list.d", log=tmp_path / "apt.log")


def test_the_fresh_state_is_the_images():
    status = packages.installed(fresh_status())
    assert status["qemu-utils"] == "1:10.0.2+ds-2+deb13u1~bpo12+1"
    assert "qemu-system-x86" not in status and "bochs" not in status and "ovmf" not in status


def test_every_need_installs_on_a_fresh_machine_removing_and_downgrading_nothing(fresh):
    said = []
    changes = packages.setup(list(packages.NEEDS), fresh, said.append, release=("bookworm", "12"))
    assert [c.remove for c in changes] == [{}] * len(packages.NEEDS)
    assert [c.downgrades() for c in changes] == [{}] * len(packages.NEEDS)
    installed = {p: new for c in changes for p, (_, new) in c.install.items()}
    for need in packages.NEEDS.values():
        assert set(need.packages) <= set(installed), need
    # QEMU 10 from the suite qemu-utils comes from, with its firmware from there too.
    assert installed["qemu-system-x86"].startswith("1:10.") and "~bpo12" in installed["qemu-system-x86"]
    assert installed["qemu-system-common"] == installed["qemu-system-x86"]
    assert any("apt-get install -y --no-install-recommends --no-remove -t bookworm-backports qemu-system-x86" in s
               for s in said), said
    # The suite was missing from the fresh sources: added from Debian's entry for bookworm, and said.
    added = fresh.sources_dir / "ptplab-bookworm-backports.sources"
    assert "Suites: bookworm-backports" in added.read_text() and any(str(added) in s for s in said), said
    # One line per step, apt's own output in the log.
    assert all(s.startswith("setup: ") for s in said) and "Inst qemu-system-x86" in fresh.log.read_text()
    # Nothing already installed was upgraded either, but by LAVA's dispatcher (perl to its security
    # update, say): upgrades only, never a downgrade (asserted above).
    lava = list(packages.NEEDS).index("lava")
    assert not [p for i, c in enumerate(changes) if i != lava for p, (old, _) in c.install.items() if old is not None]
    assert {"lava-run", "in.tftpd"} <= set(packages.NEEDS["lava"].files)
    assert installed["lava-dispatcher"].startswith("2023.01")


@pytest.mark.parametrize("listed", [False, True], ids=["backports-unlisted", "backports-listed"])
def test_without_the_suite_qemu_7_2_is_refused_naming_the_package_and_the_conflict(fresh, listed):
    # The set-up before the fix: qemu-system-x86 from the default suite (7.2). With backports
    # unlisted (a fresh machine) apt wants qemu-utils removed; listed, it finds no solution.
    if listed:
        packages.ensure_suite(fresh, "bookworm-backports", ("bookworm", "12"), print)
    fresh.run("apt-get", "update", "-qq")
    with pytest.raises(SetupError) as e:
        packages.install(fresh, Step("qemu", ("qemu-system-x86",), None), print)
    msg = str(e.value)
    if listed:
        assert msg.startswith("apt-get could not install qemu-system-x86: unmet dependencies: qemu-utils : "
                              "Breaks: qemu-system-common (< 1:8.0"), msg
    else:
        assert msg.startswith("apt-get would have to remove qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1"), msg
        assert "qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1 Breaks qemu-system-common (<< 1:8.0" in msg, msg
    assert "1:7.2" in msg, msg


def test_unknown_needs_are_named(fresh):
    with pytest.raises(SetupError, match="unknown need 'qemu-7'"):
        packages.setup(["qemu-7"], fresh, print)


@pytest.mark.parametrize("version, suite", [("1:10.0.2+ds-2+deb13u1~bpo12+1", "bookworm-backports"),
                                            ("1:7.2+dfsg-7+deb12u18+b3", None)])
def test_the_suite_of_an_installed_version(version, suite):
    assert packages.suite_of(version, ("bookworm", "12")) == suite


def test_a_backport_for_another_release_is_refused_by_name():
    with pytest.raises(SetupError, match=r"1:9.2~bpo11\+1 is a backport for Debian 11, this is Debian 12"):
        packages.suite_of("1:9.2~bpo11+1", ("bookworm", "12"))


def test_qemu_follows_what_is_installed_and_else_takes_backports():
    qemu = [packages.NEEDS["qemu"]]
    assert packages.plan(qemu, {"qemu-utils": "1:7.2+dfsg-7+deb12u18+b3"}, ("bookworm", "12"))[0].release is None
    assert packages.plan(qemu, {}, ("bookworm", "12"))[0].release == "bookworm-backports"
    with pytest.raises(SetupError, match="different suites"):
        packages.plan(qemu, {"qemu-utils": "1:10.0.2+ds-2~bpo12+1", "qemu-block-extra": "1:7.2+dfsg-7"},
                      ("bookworm", "12"))


def test_ensure_is_silent_when_everything_is_there_and_names_an_unknown_need():
    # After scripts/test.sh's own set-up every need is present: the driver says nothing, runs no apt.
    missing = [n.name for n in packages.NEEDS.values() if not packages.present(n)]
    if missing:
        pytest.skip(f"not set up here: {', '.join(missing)} (scripts/test.sh installs them)")
    run = lambda *needs: subprocess.run(["bash", "-c", '. scripts/lib.sh; ensure "$@"', "ensure", *needs],
                                        cwd=REPO,
                                        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    p = run("--all")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    p = run("qemu", "qemu-7")
    assert p.returncode == 2 and p.stderr.startswith("setup: error: unknown need 'qemu-7'"), p.stderr
