"""Nothing lost, nothing half-done, tools that explain themselves: the bench job keeps every run
(interrupted, unwritable --out), checks every option before any set-up, installs without
removing, names partial files apart; every tool has --help; show and the table say what they
show."""
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptplab import bench, lab, results, stream

REPO = lab.REPO
ENV = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
PTPLAB = [sys.executable, "-m", "ptplab"]


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


RUN = json.dumps({"type": "run", "schema": 2})
MEASUREMENT = json.dumps({"type": "measurement", "suite": "alloc", "bench": "bump_alloc", "impl": "lab-bump",
                          "pool_pages": 64, "params": {}, "unit": "ticks", "per": "op", "ops_per_sample": 63, "n": 1,
                          "min": 1, "p50": 1, "p90": 1, "p99": 1, "max": 1, "mean": 1, "ci_low": None,
                          "ci_high": None, "overhead": 0})


def slow_guest(tmp_path: Path) -> Path:
    """A fake QEMU that prints a run record and one measurement, then hangs."""
    return script(tmp_path / "fake-qemu", 'if [ "$1" = --version ]; then echo "QEMU emulator version 0"; exit 0; fi\n'
                                          f"echo '{RUN}'\necho '# suite alloc pool_pages 64'\n"
                                          f"echo '{MEASUREMENT}'\nexec sleep 60\n")


@pytest.mark.parametrize("sig, to_group", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)])
def test_an_interrupted_run_keeps_what_it_measured(tmp_path, sig, to_group):
    kernel = tmp_path / "kernel"
    kernel.write_text("")
    out = tmp_path / "res"
    p = subprocess.Popen(PTPLAB + ["bench", "--accel", "tcg", "--qemu", str(slow_guest(tmp_path)), "--kernel",
                                   str(kernel), "--out", str(out)], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not list(tmp_path.glob("fake-qemu")):
        time.sleep(0.1)
    time.sleep(1.5)  # the guest has printed its measurement and hangs
    # A signal to the job alone, or Ctrl-C in a terminal (the whole process group).
    os.killpg(p.pid, sig) if to_group else p.send_signal(sig)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 128 + sig, err
    assert f"interrupted by {signal.Signals(sig).name}" in err and "Traceback" not in err, err
    files = list(out.glob("*.partial.jsonl"))
    assert len(files) == 1, err
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [r["type"] for r in records] == ["run", "measurement"]


def test_an_interrupt_during_the_kvm_probe_stops_the_job(tmp_path):
    if not (os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)):
        pytest.skip("no accessible /dev/kvm: the probe stops before booting")
    kernel = tmp_path / "kernel"
    kernel.write_text("")
    marker = tmp_path / "probe-started"
    q = script(tmp_path / "fake-qemu", f"touch {marker}\nexec sleep 60\n")
    p = subprocess.Popen(PTPLAB + ["bench", "--qemu", str(q), "--kernel", str(kernel), "--out", str(tmp_path / "r")],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 130 and "interrupted by SIGINT" in err and "Falling back" not in err, err
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir()), "nothing measured, nothing written"


def test_an_out_that_cannot_be_written_is_refused_before_anything_runs(tmp_path, capsys):
    marker = tmp_path / "guest-ran"
    q = script(tmp_path / "fake-qemu", f"touch {marker}\n")
    kernel = tmp_path / "kernel"
    kernel.write_text("")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out in (a_file, Path("/proc/ptplab-results")):
        rc = bench.main(["--accel", "tcg", "--qemu", str(q), "--kernel", str(kernel), "--out", str(out)])
        assert rc == 2
        err = capsys.readouterr().err
        assert f"--out: {out} cannot take a results file" in err and err.count("\n") == 1, err
    assert not marker.exists(), "nothing ran"


def test_a_run_that_cannot_be_written_at_the_end_is_saved_elsewhere(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(results, "FALLBACK", tmp_path / "fallback")
    outcome = stream.Outcome(records=[{"type": "run"}, {"type": "end"}], log=["serial"])
    gone = tmp_path / "gone"
    gone.write_text("")  # --out became a file after the check: writing under it fails
    path = results.save(gone, "tcg", outcome.records, outcome.log, partial=False)
    assert path.parent == tmp_path / "fallback" and path.read_text().count("\n") == 2
    assert f"could not write to {gone}" in capsys.readouterr().err and str(path)


@pytest.fixture
def fake_cargo(tmp_path):
    """A cargo that records its arguments (and PTP_LAB_ARGS) instead of building anything."""
    log = tmp_path / "cargo.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "cargo", f'echo "$* | PTP_LAB_ARGS=$PTP_LAB_ARGS" >> {log}\n')
    return {**ENV, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


@pytest.mark.parametrize("argv, message", [
    (["--pool-page", "4096"], "unknown option \"--pool-page\""),
    (["--pool-pages", "4096,4096"], "--pool-pages: pool size 4096 given twice"),
    (["--pool-pages", "0"], "--pool-pages: pool size 0 pages is outside"),
    (["--suite", "tbl"], "--suite: unknown suite 'tbl'"),
    (["--host", "--accel", "tcg"], "--accel tcg: the host runner (--host) does not take it"),
    (["--criterion", "--memory", "512"], "--memory 512: criterion (--criterion) does not take it"),
    (["--seed", "abc"], "--seed: \"abc\" is not a positive whole number"),
    (["--", "--noplot"], "need --criterion"),
])
def test_bench_sh_checks_every_option_before_any_set_up(argv, message, fake_cargo):
    env, log = fake_cargo
    p = subprocess.run([str(REPO / "scripts/bench.sh"), *argv], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 2 and p.stderr.count(message) == 1, p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    built = log.read_text().splitlines() if log.exists() else []
    assert all("--bin ptp-host" in b for b in built), "nothing but the host runner (the check) was built or installed"


def test_bench_sh_quick_criterion_hands_criterion_only_its_own_arguments(tmp_path, fake_cargo):
    env, log = fake_cargo
    p = subprocess.run([str(REPO / "scripts/bench.sh"), "--quick", "--criterion", "--suite", "alloc",
                        "--out", str(tmp_path / "res"), "--", "--noplot"], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    calls = log.read_text().splitlines()
    bench_call = next(c for c in calls if c.startswith("bench"))
    args, lab_args = bench_call.split(" | PTP_LAB_ARGS=")
    assert args.split(" -- ")[1] == "--noplot" and "--criterion" not in args and "--quick" not in args
    assert "quick=1" in lab_args and "suites=alloc" in lab_args
    assert p.returncode == 5  # the fake printed no records: a crashed run, kept as partial


def test_a_partial_run_never_shares_its_number_with_a_complete_one(tmp_path):
    first = results.new_path(tmp_path, "2026-11-24", "h", "tcg", partial=False)
    results.write_new(first, [{"type": "run"}], ["log"])
    partial = results.new_path(tmp_path, "2026-11-24", "h", "tcg", partial=True)
    assert partial.name == "2026-11-24-h-tcg-2.partial.jsonl"
    results.write_new(partial, [{"type": "run"}], ["log"])
    assert (tmp_path / "2026-11-24-h-tcg-2.partial.log").exists()
    assert results.new_path(tmp_path, "2026-11-24", "h", "tcg", partial=False).name == "2026-11-24-h-tcg-3.jsonl"


@pytest.mark.parametrize("argv", [["--help"], ["show", "--help"], ["iso", "--help"], ["collect", "--help"],
                                  ["bench", "--help"], ["facts", "--help"], ["boot", "--help"],
                                  ["compare", "--help"], ["machines", "--help"], ["report", "--help"],
                                  ["capacity", "--help"]])
def test_every_tool_explains_itself(argv, tmp_path):
    p = subprocess.run(PTPLAB + argv, env=ENV, cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0 and "usage:" in p.stdout, p.stderr
    assert not list(tmp_path.iterdir()), "no file named --help (or anything else) was written"


def test_bench_sh_help_lists_every_option():
    p = subprocess.run([str(REPO / "scripts/bench.sh"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for option in ["--accel", "--pool-pages", "--suite", "--quick", "--selftest", "--out", "--host", "--criterion",
                   "--timeout", "--memory", "--seed", "--report", "--layouts"]:
        assert option in p.stdout, option


def run_file(path: Path, started: str, p50: float, partial: bool = False) -> Path:
    """A valid schema-2 file: a run, ours and the limit, an end (none if `partial`)."""
    declared, kinds = lab.facts()["records"], lab.facts()["record_kinds"]
    # Each field a blank value of its declared kind (null where it may be null).
    empty = {"string": "", "integer": 0, "number": 0.0, "bool": False, "object": {}, "list": []}
    blank = {ty: {k: None if kinds[ty][k].endswith("?") else empty.get(kinds[ty][k]) for k in fields}
             for ty, fields in declared.items()}
    records = [{"type": "run", **blank["run"], "schema": 2, "where": "kernel", "accel": "tcg",
                "execution": "emulated", "started_utc": started, "config": {"pool_pages": [64]},
                "run_id": "r", "git_commit": "c", "git_dirty": False},
               {**json.loads(MEASUREMENT), "p50": p50, "mean": p50, "min": p50, "p90": p50, "p99": p50, "max": p50},
               {**json.loads(MEASUREMENT), "impl": "memset-limit", "p50": 2.0, "mean": 2.0, "min": 2.0, "p90": 2.0,
                "p99": 2.0, "max": 2.0}]
    if not partial:
        records.append({"type": "end", **blank["end"], "status": "ok"})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def show(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(PTPLAB + ["show", *map(str, argv)], env=ENV, capture_output=True, text=True)


def test_show_sorts_by_time_and_number_and_shows_one_the_latest_or_side_by_side(tmp_path):
    ten = run_file(tmp_path / "2026-11-24-h-tcg-10.jsonl", "2026-11-24T10:00:00+00:00", 4.0)
    two = run_file(tmp_path / "2026-11-24-h-tcg-2.jsonl", "2026-11-24T10:00:00+00:00", 8.0)
    cut = run_file(tmp_path / "2026-11-24-h-tcg-11.partial.jsonl", "2026-11-24T09:00:00+00:00", 9.0, partial=True)
    listing = show(ten, two, cut)
    head, *rows = listing.stdout.splitlines()[1:]
    assert head.split()[:2] == ["file", "state"], listing.stdout
    assert [line.split()[0] for line in rows] == [cut.name, two.name, ten.name], listing.stdout
    assert rows[0].split()[1] == "PARTIAL"
    latest = show("--latest", ten, two)
    assert latest.stdout.startswith(f"--- {ten}") and "TSC ticks per" in latest.stdout
    side = show("--compare", two, ten)
    row = next(line for line in side.stdout.splitlines() if "lab-bump" in line)
    assert row.split()[-3:] == ["8.000", "4.000", "0.50"], side.stdout
    one = show(cut)
    assert one.returncode == 0 and "PARTIAL: the run was cut short" in one.stdout
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr


def test_the_table_says_its_unit_and_directions_and_gives_no_ratio_where_none_applies(tmp_path):
    text = show(run_file(tmp_path / "r.jsonl", "t", 3.0), "--percentiles").stdout
    assert "figures: TSC ticks per op" in text and "lower: closer to the limit" in text
    assert "higher: this row is that many times faster" in text
    header = next(line for line in text.splitlines() if line.startswith("suite"))
    assert "p90" in header and "p99" in header
    ours = next(line for line in text.splitlines() if "lab-bump" in line)
    limit = next(line for line in text.splitlines() if "memset-limit" in line)
    assert ours.split()[-1] == "1.50"
    assert limit.split()[-1] == "2.000", "the limit row ends with its own figures, no ratio"


def test_ptp_host_refuses_a_non_utf8_argument_with_one_line():
    p = subprocess.run([str(lab.host_bin()).encode(), b"pools=\xff"], capture_output=True)
    assert p.returncode == lab.facts()["exit"]["host"]["usage"]
    assert p.stderr.decode().strip() == "ptp-host: argument \"pools=\\xFF\" is not UTF-8"


def property_cases() -> int:
    """Cases per proptest! block (with_cases) times the tests in it, over every test file."""
    total = 0
    for f in (REPO / "lab/vystem-ptp/tests").glob("*.rs"):
        for block in f.read_text().split("proptest! {")[1:]:
            body = block.split("\n}\n")[0]
            total += int(re.search(r"with_cases\((\d+)\)", body).group(1)) * body.count("#[test]")
    return total


def test_the_docs_quote_the_property_cases_the_tests_run():
    # README.md and docs/ (the figure lives in docs/using-the-crate.md): every statement must match.
    cases = property_cases()
    docs = "\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    stated = {int(n.replace(",", "")) for n in re.findall(r"runs? ([\d,]+) property cases", docs)}
    assert stated == {cases}, (stated, cases)


def test_a_run_records_the_source_it_started_from_not_what_the_tree_became(tmp_path, monkeypatch):
    # A long run (Bochs: an hour) outlives commits made meanwhile: the file must name the commit
    # and dirtiness the measured binaries were built from, as the run started.
    measured = []
    real = stream.run_process

    def run_then_commit(*a, **k):
        out = real(*a, **k)
        measured.append(True)  # from here on the tree is another commit, and dirty
        return out
    monkeypatch.setattr(stream, "run_process", run_then_commit)
    monkeypatch.setattr(results, "git_facts", lambda: ("beef-at-the-end", True) if measured else ("c0ffee-at-start", False))
    assert bench.main(["--host", "--selftest", "--suite", "alloc", "--pool-pages", "64", "--out", str(tmp_path),
                       "--report", str(tmp_path / "report")]) == 0
    run = json.loads(next(tmp_path.glob("*.jsonl")).read_text().splitlines()[0])
    assert (run["git_commit"], run["git_dirty"]) == ("c0ffee-at-start", False)
