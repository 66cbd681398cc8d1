import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptplab import bench, lab  # noqa: E402

POOLS = "64,1024"


def _run(tmp_path_factory, *args) -> tuple[int, list[dict]]:
    out = tmp_path_factory.mktemp("results")
    rc = bench.main(["--selftest", "--pool-pages", POOLS, "--out", str(out), *args])
    files = list(out.glob("*.jsonl"))
    return rc, files, [json.loads(line) for line in files[0].read_text().splitlines()] if files else []


@pytest.fixture(scope="session")
def kernel_selftest(tmp_path_factory):
    """One selftest run of the bench kernel under TCG through the bench job: all suites, a pool too
    small for some maps, two CPUs (the shootdown). (rc, files, records)"""
    if not lab.KERNEL.exists():
        pytest.skip(f"{lab.KERNEL} not built (scripts/test.sh builds it)")
    return _run(tmp_path_factory, "--accel", "tcg", "--cpus", "2")


@pytest.fixture(scope="session")
def host_selftest(tmp_path_factory):
    """The same table in the host runner."""
    return _run(tmp_path_factory, "--host")


@pytest.fixture(scope="session")
def criterion_selftest(tmp_path_factory):
    """The same table under criterion (a few samples each, no plots)."""
    return _run(tmp_path_factory, "--criterion", "--", "--noplot")
