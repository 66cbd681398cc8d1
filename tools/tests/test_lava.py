"""LAVA: a job's log is a results source. The committed log is lava-run's own stderr (Debian's
lava-dispatcher 2023.01, its stock qemu device type rendered from lava-server's qemu.jinja2,
no_kvm, our selftest ISO `mode=selftest suites=alloc pools=64 quick=1`, a monitor turning the
check and skip records into test cases); a server's job log holds the same entries as a YAML list."""
import json
from pathlib import Path

from ptplab import collect, schema

DATA = Path(__file__).resolve().parent / "data"
LOG = DATA / "lava-run-qemu-selftest.log"


def _collect(tmp_path, log: Path) -> list[dict]:
    out = tmp_path / log.stem
    assert collect.main([str(log), "--accel", "tcg", "--out", str(out)]) == 0
    (f,) = out.glob("*.jsonl")
    return [json.loads(line) for line in f.read_text().splitlines()]


def test_a_lava_run_log_collects_into_a_valid_results_file(tmp_path):
    records = _collect(tmp_path, LOG)
    assert schema.validate(records) == []
    checks = [r for r in records if r["type"] == "check"]
    assert records[0]["type"] == "run" and records[-1]["type"] == "end" and records[-1]["status"] == "ok"
    assert len(checks) == 19 and all(c["ok"] for c in checks)
    # The log's own count: one LAVA test case per check or skip record the monitor saw.
    cases = [line for line in LOG.read_text().splitlines() if '"lvl": "results"' in line and '"ptp-lab"' in line]
    skips = [r for r in records if r["type"] == "skip"]
    assert len(cases) == len(checks) + len(skips)


def test_a_server_job_log_reads_as_the_same_records(tmp_path):
    server = tmp_path / "job.log"
    server.write_text("".join(f"- {line}\n" for line in LOG.read_text().splitlines()))
    strip = lambda rs: [r for r in rs if r["type"] != "run"]  # noqa: E731 (collected_from differs)
    assert strip(_collect(tmp_path, server)) == strip(_collect(tmp_path, LOG))


def test_the_escapes_of_a_target_line_undo_to_the_kernel_text():
    # The kernel printed {"detail":"a \"q\""}; LAVA escaped its quotes, then wrote the message as
    # a JSON string.
    kernel = '{"detail":"a \\"q\\""}'
    lava = kernel.replace('"', '\\"')
    line = json.dumps({"dt": "2026-12-03T07:58:13", "lvl": "target", "msg": lava})
    assert collect.lava_lines(line + "\n" + line.replace('"target"', '"debug"')) == [kernel]
    assert collect.lava_lines("not a lava log\n") is None


def test_lava_sh_local_runs_the_qemu_job_through_lava_run_and_collects_it(tmp_path):
    import os
    import shutil

    import pytest

    from ptplab import lab, lava
    if shutil.which("lava-run") is None or os.geteuid() != 0 or not lab.KERNEL.exists():
        pytest.skip("needs lava-run (lava-dispatcher), root and the built kernel")
    assert lava.main(["--local", "--selftest", "--suite", "alloc", "--pool-pages", "64", "--out", str(tmp_path)]) == 0
    (f,) = tmp_path.glob("*.jsonl")
    records = [json.loads(line) for line in f.read_text().splitlines()]
    assert schema.validate(records) == [] and records[-1]["status"] == "ok"
    log = Path(records[0]["collected_from"]).read_text()
    results = [line for line in log.splitlines() if '"lvl": "results"' in line]
    cases = [line for line in results if '"definition": "ptp-lab"' in line]
    checks = [r for r in records if r["type"] == "check"]
    skips = [r for r in records if r["type"] == "skip"]
    # Every check a passing LAVA test case, every skip a skipped one, and the job passed.
    assert len(cases) == len(checks) + len(skips) > 0
    assert sum('"result": "pass"' in c for c in cases) == len(checks)
    assert sum('"result": "skip"' in c for c in cases) == len(skips)
    assert any('"case": "job"' in line and '"result": "pass"' in line for line in results)
