"""Where the criterion driver writes (its estimates and criterion's own HTML report), and that the
bench job says so: CRITERION_HOME first, else criterion/ in the target directory the driver was
built into, which is where CARGO_TARGET_DIR (or --target-dir) puts it."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ptplab import bench, lab, runners
from ptplab.plan import plan_from_args

REPO = lab.REPO
WORDS = "mode=selftest pools=64 suites=alloc"


@pytest.fixture(scope="module")
def driver():
    """The built criterion driver (cargo bench --no-run builds it or finds it built)."""
    p = subprocess.run(["cargo", "bench", "--quiet", "-p", "ptp-lab", "--features", "std", "--bench", "lab",
                        "--no-run", "--message-format=json"], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    exes = [m["executable"] for m in map(json.loads, p.stdout.splitlines())
            if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "lab"]
    assert len(exes) == 1, exes
    return Path(exes[0])


def run_in(target: Path, driver: Path, *args, env=None) -> dict:
    """The driver as cargo would place it under the target directory `target`; its run record."""
    deps = target / "release" / "deps"
    deps.mkdir(parents=True)
    exe = deps / driver.name
    shutil.copy2(driver, exe)
    env = {**{k: v for k, v in os.environ.items() if k != "CRITERION_HOME"}, "PTP_LAB_ARGS": WORDS, **(env or {})}
    p = subprocess.run([str(exe), "--bench", *args], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.splitlines()[0])


def test_criterion_writes_into_the_target_directory_it_was_built_into_with_its_html_report(tmp_path, driver):
    target = tmp_path / "elsewhere"
    run = run_in(target, driver, "alloc/bump_alloc/")  # one group's plots: the whole table's take a minute
    assert run["timer"]["dir"] == str(target / "criterion")
    assert (target / "criterion" / "report" / "index.html").is_file()


def test_criterion_home_comes_first(tmp_path, driver):
    home = tmp_path / "home"
    run = run_in(tmp_path / "t", driver, "--noplot", env={"CRITERION_HOME": str(home)})
    assert run["timer"]["dir"] == str(home)
    assert any(home.rglob("estimates.json")) and not (tmp_path / "t" / "criterion").exists()


@pytest.mark.parametrize("args, says", [
    ([], "bench: criterion's HTML report: /t/criterion/report/index.html"),
    (["--noplot"], "bench: criterion's estimates in /t/criterion (no HTML report: --noplot)"),
])
def test_the_job_says_where_criterions_report_is(args, says):
    start = runners.start_criterion(plan_from_args(["--criterion", "--", *args]))
    assert start.after({"type": "run", "timer": {"kind": "criterion", "dir": "/t/criterion"}}) == says
