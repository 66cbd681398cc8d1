"""A real LAVA server on 127.0.0.1 (scripts/lava-server.sh): started with its PostgreSQL, a
worker with the lab's devices (QEMU and the network-boot stand-ins) and the lavacli identity
ptplab-local; jobs submitted through it by scripts/lava.sh --server to the devices in service,
run by the worker, fetched and collected (a fault on a stand-in a failed case, a job cancelled
on the server named and kept); stopped, nothing left running. The whole matrix (every device) is
a documented run (docs/fleet.md), beyond this test's budget."""
import json
import os
import subprocess
import time

import pytest
import yaml

from ptplab import lab, lavadevice, lavaserver, limits, schema

REPO = lab.REPO


def sh(*args: str, limit: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL,
                          cwd=REPO)


@pytest.fixture(scope="module")
def server():
    if os.geteuid() != 0:
        pytest.skip("the server's set-up runs as root")
    p = sh(str(REPO / "scripts/lava-server.sh"), "start")
    assert p.returncode == 0, p.stderr[-3000:]
    try:
        yield lavaserver.state()
    finally:
        p = sh(str(REPO / "scripts/lava-server.sh"), "stop", limit=180)
        assert p.returncode == 0, p.stderr[-2000:]


def lavacli(*args: str) -> str:
    p = sh("lavacli", "-i", lavaserver.IDENTITY, *args, limit=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def in_service(*names: str) -> None:
    """Only these of the lab's devices in service (the others in maintenance): what a job matrix
    is submitted to."""
    for name in lavadevice.DEVICES:
        lavacli("devices", "update", "--health", "GOOD" if name in names else "MAINTENANCE",
                lavadevice.device_name(name))


def lava_sh(*args: str, out) -> list:
    return [str(REPO / "scripts/lava.sh"), "--server", lavaserver.IDENTITY, "--selftest", "--suite", "alloc",
            "--pool-pages", "64", *args, "--out", str(out)]


def test_the_server_has_the_labs_devices_tagged_with_their_names(server):
    listed = {d["hostname"]: d for d in yaml.safe_load(lavacli("devices", "list", "--yaml"))}
    for name, device in lavadevice.DEVICES.items():
        host = lavadevice.device_name(name)
        assert listed[host]["type"] == device.device_type
        assert name in yaml.safe_load(lavacli("devices", "show", host, "--yaml"))["tags"] or device.firmware is None


def test_the_server_runs_the_job_and_a_fault_job_on_a_stand_in_and_lava_sh_collects_both(server, tmp_path):
    assert server["url"].startswith("http://127.0.0.1:")
    in_service("qemu-tcg")
    out = tmp_path / "out"
    p = sh(*lava_sh(out=out))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "result pass; test cases: 20 pass, 0 fail, 5 skip" in p.stderr, p.stderr[-3000:]
    assert "is Maintenance: no job for it" in p.stderr
    (f,) = out.glob("*.jsonl")
    records = [json.loads(line) for line in f.read_text().splitlines()]
    assert schema.validate(records) == [] and records[-1]["status"] == "ok"
    assert records[0]["device"]["device_type"] == "qemu" and records[0]["device"]["lava_job_id"]
    assert "vm" in p.stdout or "QEMU" in p.stdout  # the devices side by side (ptplab machines)
    # The fault on a stand-in booted by GRUB over PXE: the job's tag sends it there.
    in_service("grub-pxe-bios")
    fault = tmp_path / "fault"
    p = sh(*lava_sh("--append-extra", "fault=pf", out=fault))
    assert p.returncode != 0 and "failed: fault_pf_vector14_cpu0" in p.stderr, p.stderr[-3000:]
    (f,) = fault.glob("*.partial.jsonl")  # the fault comes before the run record: what it printed, kept
    assert f.stat().st_size > 0
    kept = yaml.safe_load(f.with_name(f.name.replace(".jsonl", ".lava-results.yaml")).read_text())
    assert kept["boot"] == "grub-pxe-bios" and kept["device"] == lavadevice.device_name("grub-pxe-bios")
    assert "left out of the table" in p.stderr


def test_a_job_cancelled_on_the_server_is_named_and_what_it_printed_kept(server, tmp_path):
    in_service("qemu-tcg")
    out = tmp_path / "out"
    # A kernel that waits forever (until the job's test timeout): the cancel lands while it runs.
    run = subprocess.Popen(lava_sh("--append-extra", "fault=hang", "--timeout", "120", out=out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                           stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.poll() is None:
            running = yaml.safe_load(lavacli("jobs", "list", "--state", "RUNNING", "--yaml")) or []
            if running:
                lavacli("jobs", "cancel", str(running[0]["id"]))
                break
            time.sleep(1)
        _, err = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 4, err[-3000:]  # the kernel never printed its last line
    assert ": cancelled on the server" in err and "result fail (Canceled error: The job was canceled)" in err, err[-3000:]


def test_a_job_ended_by_an_infrastructure_error_is_named(server, tmp_path):
    # A lab's power switch that fails: the stand-in's power-on script is gone.
    in_service("grub-pxe-uefi")
    script = lavaserver.RUN / "devices" / "grub-pxe-uefi" / "power-on.sh"
    script.rename(script.with_suffix(".away"))
    try:
        p = sh(*lava_sh(out=tmp_path / "out"))
    finally:
        script.with_suffix(".away").rename(script)
    assert p.returncode == 5, p.stderr[-3000:]  # LAVA failed the job before the machine printed anything
    assert "result fail (Infrastructure error:" in p.stderr, p.stderr[-3000:]
    assert "LAVA ended it before the machine printed anything" in p.stderr


def test_stop_leaves_nothing_running(server):
    in_service(*lavadevice.DEVICES)
    pids = dict(server["pids"])
    assert pids and all(lavaserver.alive(p) for p in pids.values())
    p = sh(str(REPO / "scripts/lava-server.sh"), "stop", limit=180)
    assert p.returncode == 0, p.stderr[-2000:]
    assert not [n for n, pgid in pids.items() if limits.group_alive(pgid)]  # nor anything they started
    assert sh(str(REPO / "scripts/lava-server.sh"), "status").returncode == 3  # not running
    if server.get("pg_started"):
        assert not lavaserver.pg_running()
