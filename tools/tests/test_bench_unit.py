"""The bench job's own logic, without booting anything."""
import json
import os
import stat

import pytest

from ptplab import bench, lab, qemu, results, schema, stream
from ptplab.cli import BenchError
from ptplab.plan import plan_from_args


@pytest.mark.parametrize("argv, message", [
    (["--suite", "alloc,smp"], "unknown suite 'smp'"),
    (["--pool-pages", "0"], "--pool-pages: pool size 0 pages is outside 64..=65536"),
    (["--pool-pages", "4096,abc"], "--pool-pages: pools: 'abc' is not a number"),
    (["--pool-pages", "-5"], "--pool-pages: pools: '-5' is not a number"),
    (["--pool-pages", "65536", "--memory", "128"], "a pool of 65536 pages (256 MiB) does not fit in the guest's 128 MiB"),
    (["--accel", "xen"], "--accel: \"xen\" is not one of auto, kvm, tcg, bochs"),
    (["--timeout", "0"], "--timeout: \"0\" is not a positive whole number"),
    (["--frobnicate"], "unknown option \"--frobnicate\" (scripts/bench.sh --help lists them)"),
    (["--pool-pages", "64 mode=selftest"], "--pool-pages: \"64 mode=selftest\" has a space"),
])
def test_bad_input_is_one_line_naming_the_value(argv, message, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1, err


def test_defaults_fit_the_pools_in_guest_ram():
    p = plan_from_args(["--pool-pages", "1024,65536", "--quick"])
    assert p.pools == [1024, 65536] and p.memory >= 256 + 256 and p.timeout == 120
    suites = ",".join(lab.facts()["suites"])
    assert p.cmdline() == f"mode=bench suites={suites} pools=1024,65536 quick=1 seed=24301"


def test_missing_qemu_names_the_package(tmp_path, capsys):
    rc = bench.main(["--qemu", "definitely-not-a-qemu", "--out", str(tmp_path)])
    assert rc == 2
    assert "definitely-not-a-qemu not found: install the Debian package qemu-system-x86" in capsys.readouterr().err


def test_result_names_never_reuse_a_file(tmp_path):
    first = results.new_path(tmp_path, "2026-11-24", "my host", "tcg", partial=False)
    assert first.name == "2026-11-24-my-host-tcg.jsonl"
    results.write_new(first, [{"type": "run"}], ["log line"])
    second = results.new_path(tmp_path, "2026-11-24", "my host", "tcg", partial=False)
    assert second.name == "2026-11-24-my-host-tcg-2.jsonl"
    partial = results.new_path(tmp_path, "2026-11-24", "my host", "tcg", partial=True)
    assert partial.name == "2026-11-24-my-host-tcg-2.partial.jsonl", "never the number of a complete run"
    assert first.with_suffix(".log").read_text() == "log line\n"
    assert not list(tmp_path.glob(".*.tmp")), "temporary files are renamed away"


def test_serial_lines_split_into_records_and_log():
    assert stream.parse_line("Booting from ROM..{\"type\":\"check\",\"ok\":true}") == {"type": "check", "ok": True}
    assert stream.parse_line("# bench-kernel 0.1.0") is None
    assert stream.parse_line("{\"type\":\"check\", broken") is None
    assert stream.parse_line("SeaBIOS (version 1.16)") is None


def fake_qemu(tmp_path, body: str):
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_a_hung_guest_is_a_timeout_with_the_last_lines_and_a_partial_file(tmp_path, capsys):
    kernel = tmp_path / "kernel"
    kernel.write_text("")
    q = fake_qemu(tmp_path, 'echo "# suite alloc pool_pages 64"\necho \'{"type":"run","schema":1}\'\n'
                            'echo "last words"\nexec sleep 30\n')
    rc = bench.main(["--accel", "tcg", "--timeout", "2", "--qemu", str(q), "--kernel", str(kernel),
                     "--out", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert rc == 4
    assert "timeout: no end record after 2 s" in err and "last words" in err
    partial = list((tmp_path / "res").glob("*.partial.jsonl"))
    assert len(partial) == 1 and json.loads(partial[0].read_text().splitlines()[0])["type"] == "run"


def test_kvm_probe_failure_is_detected_quickly_and_explained(tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_text("")
    q = fake_qemu(tmp_path, 'echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2\nexit 134\n')
    plan = plan_from_args(["--qemu", str(q), "--kernel", str(kernel)])
    if not (os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)):
        pytest.skip("no accessible /dev/kvm: the probe stops before booting")
    ok, why = qemu.probe_kvm(plan.qemu, plan.kernel, plan.cpus)
    assert not ok
    assert "QEMU status 134" in why and "MSR 0x10a" in why


def test_schema_catches_missing_fields_and_disorder():
    good = [{"type": "run", "schema": 1, "where": "kernel", "execution": "emulated", "cpu": {}, "config": {},
             "run_id": "x", "accel": "tcg", "git_commit": "c", "git_dirty": False},
            {"type": "end", "status": "ok"}]
    assert schema.validate(good) == []
    bad = [dict(good[0], accel="warp"), {"type": "measurement", "suite": "map"}]
    problems = schema.validate(bad)
    assert "record 1 (run): accel 'warp' not one of" in problems[0]
    assert any("record 2 (measurement): missing 'bench'" in p for p in problems)
    assert problems[-1] == "record 2: the last record must be the end record"


def test_kvm_probe_turns_a_paused_guest_into_a_quick_verdict(tmp_path, monkeypatch):
    # Here KVM emulates ring 0, fails on the first SSE instruction and QEMU hangs paused.
    if not (os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)):
        pytest.skip("no accessible /dev/kvm: the probe stops before booting")
    kernel = tmp_path / "kernel"
    kernel.write_text("")
    q = fake_qemu(tmp_path, 'echo "KVM internal error. Suberror: 1"\nexec sleep 30\n')
    monkeypatch.setattr(qemu, "PROBE_TIMEOUT_S", 1)
    plan = plan_from_args(["--qemu", str(q), "--kernel", str(kernel)])
    ok, why = qemu.probe_kvm(plan.qemu, plan.kernel, plan.cpus)
    assert not ok
    assert why == "the probe boot hung (no result within 1 s): KVM internal error. Suberror: 1"


def test_the_spread_of_repeated_runs_is_per_contender_and_size():
    from ptplab.table import spread

    def run(p50):
        return [{"type": "measurement", "suite": "tlb", "bench": "tlb_invlpg", "impl": "invlpg-refill",
                 "pool_pages": 64, "params": {"pages": 4, "page_size": "4KiB"}, "p50": p50}]
    text = spread([run(10.0), run(12.0), run(11.0)])
    row = next(line for line in text.splitlines() if "invlpg-refill" in line)
    assert "pages=4 page_size=4KiB" in row and row.split()[-2:] == ["11.000", "18.2%"]
