"""collect reads a LAVA job log as LAVA writes it: PyYAML's double-quoted emitter
(lava_common.log.dump), whose escapes JSON refuses. The committed real lava-run log is re-dumped
by LAVA's own writer after control characters and non-ASCII text are put into its target lines,
and every record comes back, from lava-run's stderr form and from a server's YAML-list form. Also:
a record whose `type` is not a string is named, not a traceback; the run record names the device
a LAVA job ran on, and `ptplab machines` keeps two devices apart."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ptplab import collect, lab, schema
from test_aggregate import make, ptplab

DATA = Path(__file__).resolve().parent / "data"
LOG = DATA / "lava-run-qemu-selftest.log"
SERIAL = DATA / "serial-tcg-alloc-quick.log"
# Debian's lava-dispatcher is installed for the system Python (scripts/test.sh's set-up).
LAVA_PYTHON = "/usr/bin/python3"
# What a flaky serial line or firmware can put on the console: a bell, other control characters,
# DEL, a Latin-1 letter, a no-break space, U+2028 (line separator), U+0085 (next line), and text
# beyond Latin-1. LAVA keeps them all (it drops ESC and CR only).
NOISE = "\x07\x01\x7f\xe9\xa0\u2028\u0085 caf\xe9 \u65e5\u672c "
# How LAVA's writer escapes them; JSON refuses every one but \u.
ESCAPES = ["\\a", "\\x01", "\\x7F", "\\xE9", "\\_", "\\L", "\\N", "\\u65E5"]


def lava_dump(entries: list[dict]) -> list[str]:
    """Each entry as LAVA's own writer (lava_common.log.dump) writes it, one line each."""
    script = "import json, sys\nfrom lava_common.log import dump\nfor line in sys.stdin:\n" \
             "    print(dump(json.loads(line)))\n"
    try:
        p = subprocess.run([LAVA_PYTHON, "-c", script], input="".join(json.dumps(e) + "\n" for e in entries),
                           capture_output=True, text=True, timeout=60)
    except OSError:
        pytest.skip(f"{LAVA_PYTHON} is not here to run LAVA's writer")
    if "No module named 'lava_common'" in p.stderr:
        pytest.skip("lava_common (Debian's lava-dispatcher) is not installed: scripts/test.sh's set-up installs it")
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def noisy_entries() -> list[dict]:
    """The committed log's entries with NOISE in its target lines: before the kernel's record on
    every other record line (the boot record's among them), after the text of every firmware line."""
    yaml = pytest.importorskip("yaml")
    entries = [yaml.safe_load(line) for line in LOG.read_text().splitlines()]
    n = 0
    for e in entries:
        if e["lvl"] != "target":
            continue
        if '{\\"type\\"' in e["msg"]:
            n += 1
            if n % 2 or '\\"boot\\"' in e["msg"]:
                e["msg"] = NOISE + e["msg"]
        else:
            e["msg"] += NOISE
    return entries


def collected(tmp_path: Path, log: Path, *more: str) -> list[dict]:
    """The records collect writes from `log`."""
    out = tmp_path / f"out-{log.name}"
    assert collect.main([str(log), "--accel", "tcg", "--out", str(out), *more]) == 0
    (f,) = out.glob("*.jsonl")
    return [json.loads(line) for line in f.read_text().splitlines()]


def same(records: list[dict]) -> list[dict]:
    """The records without the run record's fields that differ from one collect to the next."""
    per_run = ("run_id", "started_utc", "collected_from")
    return [{k: v for k, v in records[0].items() if k not in per_run}, *records[1:]]


def old_reader_keeps(line: str) -> bool:
    """Whether the regex-and-json.loads reader collect had before read this target line."""
    m = re.match(r'^(?:- )?\{"dt": "[^"]*", "lvl": "target", "msg": "((?:[^"\\]|\\.)*)"', line)
    try:
        return m is not None and isinstance(json.loads(f'"{m.group(1)}"'), str)
    except ValueError:
        return False


def test_every_record_comes_back_from_a_log_lava_dumped_with_control_characters_and_non_ascii(tmp_path, capsys):
    lines = lava_dump(noisy_entries())
    text = "\n".join(lines)
    for esc in ESCAPES:
        assert esc in text, esc
    # The old reader lost these lines: every target line with noise, the boot record's among them.
    targets = [ln for ln in lines if '"lvl": "target"' in ln]
    lost = [ln for ln in targets if not old_reader_keeps(ln)]
    assert len(lost) > len(targets) // 2 and any('\\\\\\"boot\\\\\\"' in ln for ln in lost), lost[:3]
    # lava-run's stderr, with other text between its lines (a warning, a blank line).
    stderr = tmp_path / "lava-run.log"
    stderr.write_text("\n".join(["/usr/lib/python3/dist-packages/x.py:1: DeprecationWarning: a warning first", ""]
                                + lines[:3] + ["WARNING: a warning on stderr", ""] + lines[3:]) + "\n")
    assert same(collected(tmp_path, stderr)) == same(collected(tmp_path, LOG))
    assert "left out" not in capsys.readouterr().err
    # The noise reaches the log beside the results file, as the machine printed it.
    (log,) = (tmp_path / f"out-{stderr.name}").glob("*.log")
    assert NOISE.strip() in log.read_text()


def test_a_server_job_log_of_the_same_entries_reads_as_the_same_records(tmp_path, capsys):
    # What lava-server stores and lavacli fetches: one YAML list, "- " before each line
    # (lava_common.log.sender).
    server = tmp_path / "job.log"
    server.write_text("".join(f"- {line}\n" for line in lava_dump(noisy_entries())))
    assert same(collected(tmp_path, server)) == same(collected(tmp_path, LOG))
    assert "left out" not in capsys.readouterr().err


def test_a_line_that_does_not_parse_is_named_and_costs_that_line_only(tmp_path, capsys):
    lines = LOG.read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if '"lvl": "target"' in ln and "SeaBIOS" in ln)
    garbled = ['{"dt": "x", "lvl": "target", "msg": "cut off', '{"dt": !!timestamp "no date", "lvl": "target"}',
               '{"dt": !!int "x", "lvl": "target", "msg": "a"}', "- - [target]",
               '{"dt": [[[[[[[[[[[[[[[[[[[[[[[[[[[", "lvl": "target"']
    f = tmp_path / "garbled.log"
    f.write_text("\n".join(lines[:i] + garbled + lines[i:]) + "\n")
    assert same(collected(tmp_path, f)) == same(collected(tmp_path, LOG))
    err = capsys.readouterr().err
    for n in range(i + 1, i + 1 + len(garbled)):
        assert f"collect: {f}:{n}: not a LAVA log entry (" in err, (n, err)
    assert err.count("left out") == len(garbled)
    # A record line garbled on the kernel's side is named by its line in the LAVA log.
    j = next(k for k, ln in enumerate(lines) if '\\\\\\"type\\\\\\":\\\\\\"check\\\\\\"' in ln)
    lines[j] = lines[j].replace('\\\\\\"ok\\\\\\":true', '\\\\\\"ok\\\\\\":\\\\\\"yes\\\\\\"')
    f.write_text("\n".join(lines) + "\n")
    assert collect.main([str(f), "--accel", "tcg", "--out", str(tmp_path / "strict")]) == 6
    assert f"{f}:{j + 1}: check: ok is a string, not bool" in capsys.readouterr().err


def test_without_pyyaml_a_lava_log_is_refused_naming_the_package_and_a_serial_log_still_reads(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ImportError
    assert collect.main([str(LOG), "--accel", "tcg", "--out", str(tmp_path / "lava")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"collect: error: {LOG}: a LAVA job log"), err
    assert "python3-yaml" in err[0] and "pyyaml" in err[0]
    assert not (tmp_path / "lava").exists()
    assert collect.main([str(SERIAL), "--accel", "tcg", "--out", str(tmp_path / "serial")]) == 0


@pytest.mark.parametrize("value, kind", [(["a"], "a list"), ({"a": 1}, "a object")])
def test_a_record_whose_type_is_not_a_string_is_named_not_a_traceback(tmp_path, capsys, value, kind):
    lines = SERIAL.read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith('{"type":"run"')) + 1
    f = tmp_path / "serial.log"
    f.write_text("\n".join(lines[:i] + [json.dumps({"type": value}), json.dumps({"type": ["b"], "x": 1})]
                           + lines[i:]) + "\n")
    assert collect.main([str(f), "--accel", "tcg", "--out", str(tmp_path / "strict")]) == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"collect: error: {f}:{i + 1}: type is {kind}, not string (--lenient leaves such lines out)"]
    assert collect.main([str(f), "--accel", "tcg", "--out", str(tmp_path / "lenient"), "--lenient"]) == 0
    err = capsys.readouterr().err
    assert f"{f}:{i + 1}: type is {kind}, not string, left out" in err
    assert f"{f}:{i + 2}: type is a list, not string, left out" in err


def test_the_run_record_names_the_device_of_a_lava_job_and_null_without_one(tmp_path):
    named = collected(tmp_path, LOG, "--device", "qemu-01", "--device-type", "qemu", "--lava-job-id", "42",
                      "--boot", "grub-cdrom-bios")
    assert named[0]["device"] == {"hostname": "qemu-01", "device_type": "qemu", "lava_job_id": "42",
                                  "boot": "grub-cdrom-bios"}
    part = tmp_path / "part.log"
    part.write_text(LOG.read_text())
    some = collected(tmp_path, part, "--device", "qemu-01")
    assert some[0]["device"] == {"hostname": "qemu-01", "device_type": None, "lava_job_id": None, "boot": None}
    assert collected(tmp_path, SERIAL)[0]["device"] is None
    assert schema.validate(named) == [] and schema.validate(some) == []


def test_device_is_required_from_schema_7_and_older_files_read_without_it(tmp_path):
    assert schema.JOB_FIELDS["device"] == 7 <= lab.facts()["schema"]
    now = collected(tmp_path, LOG)
    assert now[0]["schema"] == 7 and now[0]["device"] is None and schema.validate(now) == []
    # Schema 6 (frozen as V6): the record shapes of 7, without `device`.
    old = [{k: v for k, v in now[0].items() if k != "device"} | {"schema": 6}, *now[1:]]
    assert schema.validate(old) == []
    # From 7 on the job must say it: null, or an object of strings.
    assert schema.validate([{k: v for k, v in now[0].items() if k != "device"}, *now[1:]]) == [
        "record 1 (run): missing 'device'"]
    assert schema.validate([{**now[0], "device": ["x"]}, *now[1:]]) == [
        "record 1 (run): device is a list, not object"]
    assert schema.validate([{**now[0], "device": {"hostname": 7}}, *now[1:]]) == [
        "record 1 (run): device.hostname is a int, not string?"]


def machines(tmp_path, devices):
    files = []
    for i, device in enumerate(devices):
        f = make(tmp_path / f"m{i}.jsonl", 5.0 + i, brand="Same CPU", started=f"2026-11-24T1{i}:00:00+00:00")
        recs = [json.loads(line) for line in f.read_text().splitlines()]
        recs[0]["device"] = device
        f.write_text("".join(json.dumps(r) + "\n" for r in recs))
        files.append(f)
    p = ptplab("machines", *files)
    assert p.returncode == 0, p.stderr
    return p


def test_machines_keeps_two_servers_with_the_same_cpu_apart_by_device(tmp_path):
    p = machines(tmp_path, [{"hostname": f"server-{i}", "device_type": "x86", "lava_job_id": str(i)}
                            for i in (1, 2)])
    assert "Same CPU kernel/kvm/native on server-1 (x86) (m0.jsonl)" in p.stdout, p.stdout
    assert "Same CPU kernel/kvm/native on server-2 (x86) (m1.jsonl)" in p.stdout, p.stdout
    row = next(line for line in p.stdout.splitlines() if " lab-bump " in line).split()
    assert row[-2:] == ["5.000", "6.000"] and "older run" not in p.stderr
    # How each booted, when the record says it.
    p = machines(tmp_path, [{"hostname": "s", "device_type": "base-grub", "lava_job_id": "1", "boot": b}
                            for b in ("grub-pxe-bios", "grub-pxe-uefi")])
    assert "on s (base-grub, grub-pxe-bios) (m0.jsonl)" in p.stdout, p.stdout
    assert "on s (base-grub, grub-pxe-uefi) (m1.jsonl)" in p.stdout, p.stdout
    # Without a device the two runs are one machine: the latest kept, as before.
    (tmp_path / "none").mkdir()
    p = machines(tmp_path / "none", [None, None])
    assert "#1" not in p.stdout and "Same CPU kernel/kvm/native (m1.jsonl)" in p.stdout, p.stdout
    assert "left out: m0.jsonl: an older run of Same CPU kernel/kvm/native" in p.stderr
