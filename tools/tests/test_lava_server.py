"""A real LAVA server on 127.0.0.1 (scripts/lava-server.sh): started with its PostgreSQL, a
worker and the lavacli identity ptplab-local; jobs submitted through it by scripts/lava.sh
--server, run by the worker, fetched and collected (a fault a failed case); stopped, nothing
left running."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ptplab import lab, lavaserver, schema

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


def test_the_server_runs_the_job_and_a_fault_job_and_lava_sh_collects_both(server, tmp_path):
    assert server["url"].startswith("http://127.0.0.1:")
    out = tmp_path / "out"
    p = sh(str(REPO / "scripts/lava.sh"), "--server", lavaserver.IDENTITY, "--selftest", "--suite", "alloc",
           "--pool-pages", "64", "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Complete; test cases: 20 pass, 0 fail, 5 skip" in p.stderr
    (f,) = out.glob("*.jsonl")
    records = [json.loads(line) for line in f.read_text().splitlines()]
    assert schema.validate(records) == [] and records[-1]["status"] == "ok"
    assert records[0]["device"]["device_type"] == "qemu" and records[0]["device"]["lava_job_id"]
    assert "vm" in p.stdout or "QEMU" in p.stdout  # the devices side by side (ptplab machines)
    fault = tmp_path / "fault"
    p = sh(str(REPO / "scripts/lava.sh"), "--server", lavaserver.IDENTITY, "--selftest", "--suite", "alloc",
           "--pool-pages", "64", "--append-extra", "fault=pf", "--out", str(fault))
    assert p.returncode != 0 and "failed: fault_pf_vector14_cpu0" in p.stderr, p.stderr[-3000:]
    assert list(fault.glob("*.jsonl")), "what the kernel printed is collected"


def test_stop_leaves_nothing_running(server):
    pids = dict(server["pids"])
    assert pids and all(lavaserver.alive(p) for p in pids.values())
    p = sh(str(REPO / "scripts/lava-server.sh"), "stop", limit=180)
    assert p.returncode == 0, p.stderr[-2000:]
    assert not [n for n, pid in pids.items() if lavaserver.alive(pid)]
    assert sh(str(REPO / "scripts/lava-server.sh"), "status").returncode == 3  # not running
    if server.get("pg_started"):
        assert not lavaserver.pg_running()
