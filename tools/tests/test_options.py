"""One home for a run's options (issue 32): the options table in Rust (lab/ptp-lab/src/options.rs),
one check of the arguments (`ptp-host plan`) whatever the way in, and every listing of the
options (--help, docs/running.md) made from the table."""
import json
import os
import subprocess
import sys

import pytest

from ptplab import bench, cli, lab, plan

REPO = lab.REPO
ENV = {**os.environ, "PYTHONPATH": str(REPO / "tools")}


def test_docs_running_md_shows_the_options_table():
    assert cli.options_table() in (REPO / "docs/running.md").read_text(), \
        "docs/running.md differs from `python3 -m ptplab options`: paste its output"


@pytest.mark.parametrize("door", ["bench", "lava"])
def test_each_doors_help_lists_exactly_the_options_it_takes(door):
    facts = lab.facts()
    at_door = {r["name"] for r in facts["runners"] if r["door"] == door}
    want = {o["flag"] for o in facts["options"] if not o["hidden"] and at_door & set(o["on"])}
    p = subprocess.run([str(REPO / f"scripts/{door}.sh"), "--help"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert p.returncode == 0, p.stderr
    listed = {w.rstrip(",") for w in p.stdout.split() if w.startswith("--") and w.rstrip(",") != "--help"}
    assert listed & {o["flag"] for o in facts["options"]} == want


def rust_says(door, argv):
    """The one line `ptp-host plan` refuses `argv` with."""
    p = subprocess.run([str(lab.host_bin()), "plan", door, *argv], capture_output=True, text=True)
    assert p.returncode == lab.facts()["exit"]["host"]["usage"] and p.stderr.count("\n") == 1, p.stderr
    return p.stderr.strip()


@pytest.mark.parametrize("argv", [["--pool-pages", "0"], ["--suite", "smp"], ["--seed", "x"], ["--bogus"],
                                  ["--host", "--memory", "64"]])
def test_the_bench_job_refuses_with_the_plans_own_line(argv, tmp_path, capsys):
    assert bench.main([*argv, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"bench: error: {rust_says('bench', argv)}\n"


def test_bad_input_gets_the_same_message_whatever_the_way_in(tmp_path):
    argv = ["--pool-pages", "64,0"]
    line = rust_says("bench", argv)
    ways = {"bench": [str(REPO / "scripts/bench.sh"), *argv, "--out", str(tmp_path)],
            "lava": [str(REPO / "scripts/lava.sh"), "--local", *argv, "--out", str(tmp_path)],
            "job": [sys.executable, "-m", "ptplab", "bench", *argv, "--out", str(tmp_path)]}
    for way, cmd in ways.items():
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, cwd=REPO,
                           env=ENV)
        assert p.returncode == 2 and p.stderr.strip().endswith(f"error: {line}"), (way, p.stderr)
        assert p.stderr.count("\n") == 1, (way, p.stderr)


def test_the_plan_is_the_canonical_config_and_command_line(tmp_path):
    made = cli.checked_plan("bench", ["--host", "--pool-pages", "4096,64", "--suite", "map,alloc", "--quick",
                                      "--out", str(tmp_path)])
    assert made["runner"] == "host" and made["needs"] == []
    assert made["config"] == {"mode": "bench", "suites": ["alloc", "map"], "pool_pages": [4096, 64], "quick": True,
                              "seed": lab.facts()["default_seed"]}
    assert made["cmdline"] == f"mode=bench suites=alloc,map pools=4096,64 quick=1 seed={lab.facts()['default_seed']}"
    assert "memory" not in made["options"] and "cpus" not in made["options"], "not options of a host run"
    # The kernel and the host runner read these words with the same parser: the run record's
    # config is the plan's.
    p = subprocess.run([str(lab.host_bin()), *made["cmdline"].split()], capture_output=True, text=True,
                       timeout=300)
    run = json.loads(p.stdout.splitlines()[0])
    assert run["config"] == made["config"]


def test_bench_sh_checks_once_and_hands_its_plan_to_the_run(tmp_path, monkeypatch):
    handed = tmp_path / "plan.json"
    monkeypatch.setenv(plan.PLAN_ENV, str(handed))
    argv = ["--host", "--quick", "--out", str(tmp_path)]
    made = plan.checked(["--validate", *argv])
    plan.hand_over(made, ["--validate", *argv])
    assert json.loads(handed.read_text())["args"] == argv
    # The run with the same arguments takes the plan as made (and uses it up) ...
    monkeypatch.setattr(plan, "checked_plan", lambda *a: pytest.fail("checked twice"))
    run = plan.checked(argv)
    assert run["cmdline"] == made["cmdline"] and not handed.exists()
    assert made["options"]["validate"] and not run["options"]["validate"], "the run runs"
    # ... one with other arguments is checked anew.
    plan.hand_over(made, ["--validate", *argv])
    monkeypatch.setattr(plan, "checked_plan", lambda door, a: {"checked": a})
    assert plan.checked(["--host", "--out", str(tmp_path)]) == {"checked": ["--host", "--out", str(tmp_path)]}
