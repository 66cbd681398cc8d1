"""One definition of every benchmark, record and limit: the three ways of measuring run the same
table under the same names, and the Python tools use what the Rust side declares."""
import os
import subprocess
import sys

import pytest

from ptplab import bench, cli, lab, qemu, schema
from ptplab.cli import BenchError
from ptplab.plan import plan_from_args

REPO = lab.REPO


def measured(records):
    return {(r["suite"], r["bench"], r["impl"]) for r in records if r["type"] == "measurement"}


def benches(records):
    return {(r["suite"], r["bench"]) for r in records if r["type"] in ("measurement", "check", "skip")
            and r.get("suite") != lab.facts()["boot_suite"]}


def test_kernel_host_and_criterion_run_the_same_benchmarks_under_the_same_names(
        kernel_selftest, host_selftest, criterion_selftest):
    runs = {"kernel": kernel_selftest, "host": host_selftest, "criterion": criterion_selftest}
    for name, (rc, files, records) in runs.items():
        assert rc == 0 and len(files) == 1, name
        assert schema.validate(records) == [], name
    kernel, host, crit = (runs[k][2] for k in ("kernel", "host", "criterion"))
    table = {(b["suite"], b["name"]) for b in lab.facts()["benches"]}
    assert benches(kernel) == benches(host) == benches(crit) == table
    assert measured(host) == measured(crit)
    host_only = {h["contender"] for h in lab.facts()["host_only"]}
    # What only ring 0 can run, as the host's own skip records say.
    ring0 = {r["bench"] for r in host if r["type"] == "skip" and "needs ring 0" in r["reason"]}
    in_kernel = {m for m in measured(kernel) if m[1] not in ring0}
    assert {m for m in measured(host) if m[2] not in host_only} == in_kernel
    assert {m[2] for m in measured(host) - in_kernel} == host_only
    # Each file says which timer measured it, and in what unit.
    assert {r["unit"] for r in crit if r["type"] == "measurement"} == {"ns"}
    assert {r["unit"] for r in kernel + host if r["type"] == "measurement"} == {"ticks"}
    assert (crit[0]["timer"]["kind"], host[0]["timer"]["kind"]) == ("criterion", "rdtsc")


def test_criterion_records_carry_samples_estimate_and_interval(criterion_selftest):
    _, _, records = criterion_selftest
    # The clock's own cost per timed batch is measured and subtracted, as the RDTSC harness does.
    assert records[0]["timer"]["overhead_ns"] > 0
    ms = [r for r in records if r["type"] == "measurement"]
    assert ms
    for m in ms:
        assert m["n"] >= 10 and m["ci_low"] <= m["mean"] <= m["ci_high"], m
        assert m["min"] <= m["p50"] <= m["max"] and m["overhead"] is None


def test_every_record_has_exactly_the_fields_rust_declares(kernel_selftest, host_selftest):
    declared = lab.facts()["records"]
    for _, _, records in (kernel_selftest, host_selftest):
        for r in records:
            fields = [k for k in r if k != "type"]
            if r["type"] == "run":
                fields = fields[:len(declared["run"])]  # then what the bench job adds
            assert fields == declared[r["type"]], r


def test_targets_name_benchmarks_and_contenders_that_exist(host_selftest):
    _, _, records = host_selftest
    names = measured(records)
    for t in lab.facts()["targets"]:
        for contender in (t["ours"], t["other"]):
            assert any(m[1] == t["bench"] and m[2] == contender for m in names), t
    judged = {r["name"] for r in records if r["type"] == "target"}
    host_targets = {t["name"] for t in lab.facts()["targets"] if t["on"] == "host"}
    assert judged == host_targets


@pytest.mark.parametrize("words, rust_says", [
    ("pools=0", "pool size 0 pages is outside {min}..={max}"),
    ("suites=alloc,smp", "unknown suite 'smp' (known: {suites})"),
])
def test_python_checks_the_limits_and_names_rust_declares(words, rust_says):
    f = lab.facts()
    p = subprocess.run([str(lab.host_bin()), words], capture_output=True, text=True)
    expected = rust_says.format(min=f["pool_pages"]["min"], max=f["pool_pages"]["max"],
                                suites=", ".join(f["suites"]))
    assert p.returncode == f["exit"]["host"]["usage"] and p.stderr.strip() == f"ptp-host: {expected}"
    # The bench job refuses the same values, with the same bounds and names, before running anything.
    limits = f["pool_pages"]
    with pytest.raises(BenchError, match=f"outside {limits['min']}..={limits['max']}"):
        cli.pools(str(limits["min"] - 1))
    assert cli.pools(f"{limits['min']},{limits['max']}") == [limits["min"], limits["max"]]
    with pytest.raises(BenchError, match=f"at most {limits['max_pools']}"):
        cli.pools(",".join(str(limits["min"] + i) for i in range(limits["max_pools"] + 1)))
    with pytest.raises(BenchError, match="known: " + ", ".join(f["suites"])):
        plan_from_args(["--suite", "smp"])
    assert plan_from_args([]).suites == f["suites"]
    assert plan_from_args([]).pools == [limits["standard"]]
    assert plan_from_args([]).seed == f["default_seed"]


def test_qemu_command_line_uses_the_kernels_exit_port():
    f = lab.facts()
    cmd = qemu.qemu_args("qemu", "tcg", 256, ["-cdrom", "x.iso"])
    assert f"isa-debug-exit,iobase={f['exit']['debug_exit_port']:#x},iosize=0x04" in cmd
    statuses = [f["exit"]["kernel"][k]["qemu_status"] for k in ("success", "failure", "usage")]
    assert statuses == [(f["exit"]["kernel"][k]["port_value"] << 1) | 1 for k in ("success", "failure", "usage")]


def test_the_algorithms_crate_depends_on_x86_64_alone():
    def deps(pkg):
        out = subprocess.run(["cargo", "tree", "-p", pkg, "-e", "normal", "--prefix", "none"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}
    assert deps("vystem-ptp") - {"vystem-ptp"} == deps("x86_64")


def test_show_reads_every_recorded_file():
    files = sorted(str(p) for p in (REPO / "results").glob("*.jsonl"))
    p = subprocess.run([sys.executable, "-m", "ptplab", "show", *files], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO / "tools")})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "not a valid run" not in p.stderr
    listed = [line for line in p.stdout.splitlines() if line.startswith("2026-")]
    # A recorded run cut short (kept as .partial.jsonl) is listed as such; every other one is valid.
    assert len(listed) == len(files), p.stdout
    for line in listed:
        assert (" PARTIAL " if ".partial." in line.split()[0] else " ok ") in line, line
    assert any("criterion" in line for line in listed)


def test_host_and_criterion_runs_record_the_load_at_start_and_end_and_the_kernel_none(
        kernel_selftest, host_selftest, criterion_selftest):
    for _, _, records in (host_selftest, criterion_selftest):
        for r in (records[0], records[-1]):
            load = r["load"]
            assert set(load) == {"avg_1m", "avg_5m", "avg_15m", "runnable"}, r
            assert load["avg_1m"] >= 0 and load["runnable"] >= 1, r
    kernel = kernel_selftest[2]
    assert kernel[0]["load"] is None and kernel[-1]["type"] == "end" and kernel[-1]["load"] is None
