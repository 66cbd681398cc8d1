"""The bench kernel booted under QEMU/TCG (KVM cannot run ring-0 guests here), and the bench
job end to end. Needs the kernel and host runner built (scripts/test.sh builds them)."""
import json
import subprocess
from pathlib import Path

import pytest

from ptplab import bench, collect, lab, qemu, schema, stream

REPO = Path(__file__).resolve().parents[2]
KERNEL = lab.KERNEL
EXIT_OK, EXIT_FAIL, EXIT_USAGE = (lab.kernel_status(k) for k in ("success", "failure", "usage"))

pytestmark = pytest.mark.skipif(not KERNEL.exists(), reason=f"{KERNEL} not built (scripts/test.sh builds it)")


def boot(append: str, memory: int = 256, timeout: int = 60, cpu: str | None = None):
    cmd = ["timeout", str(timeout)] + qemu.qemu_args(qemu.QEMU, "tcg", memory,
                                                      ["-kernel", str(KERNEL), "-append", append], cpu=cpu)
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    records = [r for r in map(stream.parse_line, p.stdout.splitlines()) if r is not None]
    return p.returncode, records, p.stdout


@pytest.fixture
def selftest(kernel_selftest):
    return kernel_selftest


def test_selftest_passes_every_check(selftest):
    rc, files, records = selftest
    assert rc == 0 and len(files) == 1 and not files[0].name.endswith(".partial.jsonl")
    checks = [r for r in records if r["type"] == "check"]
    assert len(checks) >= 50
    assert [c for c in checks if not c["ok"]] == []
    names = {c["name"] for c in checks}
    for must in ["modifiable_alias_write_read", "modifiable_unmap_flush_then_fault", "self_map_aliases_pool",
                 "mapper_rebased_to_self_map", "no_self_map", "unmodifiable_unmap_flush_then_fault",
                 "x86_64_map_to_layout", "map_range_layout", "probe_unmapped_pf", "sse_state_preserved"]:
        assert must in names


def test_selftest_output_is_schema_valid_and_labelled(selftest):
    _, _, records = selftest
    assert schema.validate(records) == []
    run = records[0]
    assert (run["where"], run["accel"], run["execution"]) == ("kernel", "tcg", "emulated")
    assert run["cpu"]["hypervisor"] == "TCGTCGTCGTCG" and run["tsc_hz_source"] == "pit"
    assert "tsc_hz_source" not in run["cpu"], "each fact once: the chosen TSC source is the run's"
    assert run["config"] == {"mode": "selftest", "suites": lab.facts()["suites"], "pool_pages": [64, 1024],
                             "quick": False, "seed": 24301}
    assert run["qemu_args"][:4] == ["-accel", "tcg", "-cpu", "max"] and run["qemu_version"].startswith("QEMU")
    assert records[-1]["type"] == "end" and records[-1]["status"] == "ok"


def test_every_suite_entry_is_measured_or_skipped_with_a_reason(selftest):
    _, _, records = selftest
    for pool in (64, 1024):
        for b in lab.facts()["benches"]:
            done = [r for r in records if r.get("bench") == b["name"] and r.get("pool_pages") == pool
                    and r["type"] in ("measurement", "skip", "check")]
            assert done, f"{b['suite']}/{b['name']} pool {pool}: neither measured nor skipped"
            for s in (r for r in done if r["type"] == "skip"):
                assert s["reason"], f"{b['name']}: a skip needs a reason"
    host_only = {h["reason"] for h in lab.facts()["host_only"]}
    # Besides the host-only peers, the TLB suite (measured at one pool size, CPU features: its
    # own test) and the maps a small pool cannot hold, nothing is skipped.
    skips = {(r["bench"], r["pool_pages"]): r["reason"] for r in records
             if r["type"] == "skip" and r["reason"] not in host_only and r["suite"] not in ("tlb", "layouts")}
    too_small = {515: ("map_1GiB_4KiB", "unmap_1GiB_4KiB"), 66: ("map_64GiB_2MiB", "unmap_64GiB_2MiB")}
    assert skips == {(b, 64): f"pool of 64 pages is too small: the mapping needs {n}"
                     for n, benches in too_small.items() for b in benches}


def test_in_kernel_measurements_have_every_summary_field(selftest):
    _, _, records = selftest
    m = next(r for r in records if r["type"] == "measurement" and r["impl"] == "x86_64-map_to"
             and r["bench"] == "map_1GiB_4KiB")
    assert (m["unit"], m["per"], m["ops_per_sample"], m["n"]) == ("ticks", "page", 262144, 1)
    assert m["min"] <= m["p50"] <= m["p90"] <= m["p99"] <= m["max"]


@pytest.mark.parametrize("append, kind, message", [
    ("suites=alloc,smp", "bad_cmdline", "unknown suite 'smp' (known: alloc, map, ptp, tlb, layouts, churn)"),
    ("pools=0", "bad_cmdline", "pool size 0 pages is outside 64..=65536"),
    ("pools=4096,lots", "bad_cmdline", "pools: 'lots' is not a number"),
    ("colour=red", "bad_cmdline", "unknown option 'colour'"),
    ("pools=65536", "pool_does_not_fit", "a pool of 65536 pages (256 MiB) plus a scratch page does not fit in free RAM"),
])
def test_bad_command_lines_are_refused_with_the_usage_exit(append, kind, message):
    rc, records, out = boot(append, memory=128)
    assert rc == EXIT_USAGE, out[-500:]
    err = [r for r in records if r["type"] == "error"]
    assert len(err) == 1 and err[0]["kind"] == kind and message in err[0]["msg"]
    assert not [r for r in records if r["type"] == "measurement"]


@pytest.mark.parametrize("append, vector, cr2", [("fault=pf", 14, "0x700000000000"), ("fault=gp", 13, None),
                                                 ("fault=ud", 6, None)])
def test_a_cpu_exception_is_reported_and_fails_the_run(append, vector, cr2):
    rc, records, out = boot(append + " suites=alloc pools=64")
    assert rc == EXIT_FAIL
    fault = [r for r in records if r["type"] == "fault"]
    assert len(fault) == 1, out[-800:]
    f = fault[0]
    assert f["vector"] == vector and f["rip"].startswith("0x") and f["error_code"].startswith("0x")
    assert f["bench"].startswith("fault_demo")
    if cr2:
        assert f["cr2"] == cr2


def test_bench_job_keeps_a_crashed_run_as_partial(tmp_path, capsys):
    rc = bench.main(["--accel", "tcg", "--quick", "--suite", "alloc", "--pool-pages", "64", "--out", str(tmp_path),
                     "--append-extra", "fault=pf"])
    err = capsys.readouterr().err
    assert rc == 5 and '"vector": 14' in err
    assert [p.name.endswith(".partial.jsonl") for p in tmp_path.glob("*.jsonl")] == [True]


def test_bench_job_reports_a_kernel_refusal_and_writes_nothing(tmp_path, capsys):
    # The kernel's own refusal (tested above by booting) as the bench job sees it.
    q = tmp_path / "fake-qemu"
    q.write_text('#!/bin/sh\necho \'{"type":"error","kind":"pool_does_not_fit","msg":"a pool of 65536 pages (256 MiB) '
                 'plus a scratch page does not fit in free RAM: the largest free region is 250 MiB"}\'\nexit 37\n')
    q.chmod(0o755)
    rc = bench.main(["--accel", "tcg", "--pool-pages", "65536", "--qemu", str(q), "--out", str(tmp_path / "res")])
    assert rc == 2
    assert "the kernel refused the run: a pool of 65536 pages (256 MiB)" in capsys.readouterr().err
    assert list((tmp_path / "res").iterdir()) == [], "nothing measured, nothing written"


def test_bench_sh_quick_under_tcg_writes_new_files_and_never_overwrites(tmp_path):
    cmd = [str(REPO / "scripts/bench.sh"), "--quick", "--accel", "tcg", "--suite", "map,ptp", "--pool-pages", "1024",
           "--out", str(tmp_path), "--report", str(tmp_path / "report")]
    for _ in range(2):
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
    files = sorted(f.name for f in tmp_path.glob("*.jsonl"))
    assert len(files) == 2 and files[0] != files[1]
    assert "x86_64-map_to" in p.stdout and "speed targets:" in p.stdout
    assert "suite map pool_pages 1024" in p.stderr, "progress per suite"
    # An emulated run gives no costs: the report takes them from the newest native host run in
    # results/ and lists this run among the files it left out, with why.
    assert "## Recommendation" in p.stdout
    text = (tmp_path / "report/report.md").read_text()
    # By its whole path as the report names it: results/ may hold a file of the same name.
    newest = str(max(tmp_path.glob("*.jsonl"), key=lambda f: f.stat().st_mtime).resolve())
    row = next(line for line in text.splitlines() if newest in line)
    assert "## Runs left out" in text and "an emulated run (tcg)" in row, row
    assert "report: left out" in p.stderr


def test_bench_sh_bad_input_exits_non_zero_naming_the_value(tmp_path):
    p = subprocess.run([str(REPO / "scripts/bench.sh"), "--suite", "smp", "--out", str(tmp_path)],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert p.returncode == 2 and "unknown suite 'smp'" in p.stderr


def test_host_runner_uses_the_same_schema(tmp_path):
    if not lab.HOST_BIN.exists():
        pytest.skip("host runner not built")
    rc = bench.main(["--host", "--selftest", "--pool-pages", "64,1024", "--out", str(tmp_path)])
    assert rc == 0
    records = [json.loads(line) for line in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    assert schema.validate(records) == []
    assert (records[0]["where"], records[0]["accel"]) == ("host", "none")
    ring0 = [r for r in records if r["type"] == "skip" and r["bench"].endswith("_in_cr3")]
    assert len(ring0) == 4 and all("needs ring 0" in r["reason"] for r in ring0)


def test_grub_boots_the_kernel_through_multiboot2(tmp_path):
    from ptplab.iso import make_iso
    iso = make_iso(KERNEL, "mode=selftest suites=alloc,ptp pools=64", tmp_path / "bench.iso")
    cmd = ["timeout", "120"] + qemu.qemu_args(qemu.QEMU, "tcg", 256, ["-cdrom", str(iso)])
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    records = [r for r in map(stream.parse_line, p.stdout.splitlines()) if r is not None]
    assert p.returncode == EXIT_OK, p.stdout[-1500:]
    boot = next(r for r in records if r["type"] == "boot")
    assert (boot["protocol"], boot["cmdline"]) == ("multiboot2", "mode=selftest suites=alloc,ptp pools=64")
    assert boot["free_ram_bytes"] > 200 << 20
    checks = [r for r in records if r["type"] == "check"]
    assert checks and all(c["ok"] for c in checks)
    assert any(c["name"] == "modifiable_unmap_flush_then_fault" for c in checks)


def test_iso_refuses_a_command_line_grub_would_interpret(tmp_path):
    from ptplab.iso import IsoError, make_iso
    with pytest.raises(IsoError, match=r"kernel command line 'pools=64; reboot' has characters"):
        make_iso(KERNEL, "pools=64; reboot", tmp_path / "x.iso")


def test_collect_turns_a_captured_serial_log_into_a_labelled_results_file(tmp_path):
    rc, records, stdout = boot("mode=selftest suites=alloc pools=64")
    assert rc == EXIT_OK
    log = tmp_path / "serial.log"
    log.write_text(stdout)
    assert collect.main([str(log), "--accel", "bare-metal", "--out", str(tmp_path / "res")]) == 0
    recs = [json.loads(line) for line in next((tmp_path / "res").glob("*-bare-metal.jsonl")).read_text().splitlines()]
    assert schema.validate(recs) == []
    assert recs[0]["accel"] == "bare-metal" and recs[0]["boot"]["boot"]["protocol"] == "pvh"
    # A log cut before the end is refused, or kept as partial when asked; one without a run
    # record is refused.
    log.write_text(stdout[: stdout.index('"type":"end"')])
    assert collect.main([str(log), "--accel", "bare-metal", "--out", str(tmp_path / "res")]) == 5
    assert len(list((tmp_path / "res").glob("*.partial.jsonl"))) == 0
    assert collect.main([str(log), "--accel", "bare-metal", "--out", str(tmp_path / "res"), "--partial"]) == 5
    assert len(list((tmp_path / "res").glob("*.partial.jsonl"))) == 1
    log.write_text("SeaBIOS\n")
    assert collect.main([str(log), "--accel", "bare-metal", "--out", str(tmp_path / "res")]) == 2


def test_without_a_hypervisor_bit_the_human_lines_say_what_the_record_says():
    # Bochs sets no hypervisor bit, and neither does TCG told not to: still emulated.
    rc, records, out = boot("mode=selftest suites=alloc pools=64", cpu="max,hypervisor=off")
    assert rc == EXIT_OK, out[-800:]
    run = next(r for r in records if r["type"] == "run")
    assert run["cpu"]["hypervisor"] is None and run["execution"] == "emulated"
    human = [line for line in out.splitlines() if line.startswith("# ")]
    assert not any("bare metal" in line for line in human), human
    assert any(line.startswith("# kernel run, emulated:") for line in human), human


def test_the_tlb_suite_under_tcg_measures_and_checks_every_strategy_the_cpu_has(selftest):
    _, _, records = selftest
    tlb = [r for r in records if r.get("suite") == "tlb"]
    checks = {r["name"]: r for r in tlb if r["type"] == "check"}
    for name in ["new_frame_seen_after_flush", "crossover_stated"]:
        assert name in checks and checks[name]["ok"], name
    measured = {(r["bench"], r["impl"]) for r in tlb if r["type"] == "measurement"}
    for bench, imp in [("tlb_invlpg", "invlpg"), ("tlb_invlpg", "invlpg-refill"), ("tlb_invlpg", "invlpg-collateral"),
                       ("tlb_cr3_reload", "cr3-reload-refill"), ("tlb_pge_toggle", "pge-toggle-refill")]:
        assert (bench, imp) in measured, (bench, imp)
    skips = {r["bench"]: r["reason"] for r in tlb if r["type"] == "skip" and r["pool_pages"] == 64}
    # What the guest's CPUID lacks is skipped, saying so, and nothing else (never one QEMU
    # version's CPU model); INVLPGB is on no CPU here; Linux's costs are the host's.
    cpu = records[0]["cpu"]
    lacks = {"tlb_pcid_switch": not cpu["pcid"], "tlb_invpcid": not cpu["invpcid"]}
    assert set(skips) == {b for b, lacking in lacks.items() if lacking} | {
        "tlb_invlpgb", "tlb_shootdown_invlpgb", "tlb_linux_round_trips", "tlb_linux_refill"}
    assert all(w in skips[b] for b, w in [("tlb_pcid_switch", "PCID"), ("tlb_invpcid", "INVPCID"),
                                          ("tlb_invlpgb", "INVLPGB")] if b in skips), skips
    # TLB costs do not depend on the pool: measured once, at the first pool size.
    assert all(r["pool_pages"] == 64 for r in tlb if r["type"] == "measurement")
    x = next(r for r in tlb if r["type"] == "crossover")
    assert x["sizes"] == [2 ** k for k in range(13)] and set(x["fixed_ceilings"]) == {"32", "33", "64"}
    assert {(c["page_size"], c["per_page"]) for c in tlb if c["type"] == "crossover"} == {
        ("4KiB", "invlpg-refill"), ("2MiB", "invlpg-refill-2MiB"), ("4KiB", "ipi-invlpg-refill")}
    assert x["calibrated_worst_excess"] >= 1.0 and x["calibration_ticks"] > 0


def test_a_kernel_that_waits_forever_ends_within_bench_sh_timeout_with_what_it_printed(tmp_path):
    # A real QEMU whose guest never ends (fault=hang: interrupts off, hlt), through the front
    # door: the run stops at --timeout, says so with the last serial lines, keeps a partial file.
    p = subprocess.run([str(REPO / "scripts/bench.sh"), "--accel", "tcg", "--selftest", "--suite", "alloc",
                        "--pool-pages", "64", "--timeout", "8", "--append-extra", "fault=hang", "--out",
                        str(tmp_path / "res"), "--report", str(tmp_path / "report")],
                       capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL, cwd=REPO)
    assert p.returncode == 4, p.stderr[-2000:]
    assert "timeout: no end record after 8 s" in p.stderr and "fault=hang: waiting forever" in p.stderr
    (partial,) = (tmp_path / "res").glob("*.partial.jsonl")
    assert any(json.loads(line)["type"] == "check" for line in partial.read_text().splitlines())
