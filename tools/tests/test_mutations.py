"""Every reader answers any bytes with a result or a one-line error naming the file (and line and
field): mutated results files, serial logs and layouts (truncation, bit flips, junk lines, wrong
field types, invalid UTF-8) fed in-process to show, compare, machines, report, collect and
capacity, targets and replay (a lifetime trace's strace log, layouts or meta mutated), strictly and
with --lenient. Seeded: a failure names its seed and mutation."""
import contextlib
import gzip
import io
import json
import random
from pathlib import Path

import pytest
from ptplab import aggregate, collect, layouts, replay, report, show

REPO = Path(__file__).resolve().parents[2]
RUNS = [REPO / "results/2026-12-02-vm-none-9.jsonl", REPO / "results/2026-12-02-vm-tcg-2.jsonl"]
# A whole serial capture (records and log text, as COM1 carries them): `python3 -m ptplab boot
# mode=bench suites=alloc pools=512 quick=1` under QEMU 10 TCG.
LOGS = [REPO / "tools/tests/data/serial-tcg-alloc-quick.log", REPO / "tools/tests/data/lava-run-qemu-selftest.log"]
LAYOUTS = sorted((REPO / "results/layouts").glob("*.json"))[:2]
# A lifetime trace (scripts/capture-traces.sh): its three files, one of them mutated at a time.
TRACE = REPO / "results/traces/sort-pipeline"
JUNK = [b"garbage", b'{"type":', b"[1,2]", b"\xff\xfe", b"{}", b"null", b'{"type":"measurement"}', b"\x00" * 40]
VALUES = [[1], {"a": 1}, "x", 1.5, None, True, -1, ""]


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    op = rng.choice(["truncate", "flip", "junk", "type", "utf8", "drop"])
    if op == "truncate":
        return op, data[:rng.randrange(len(data))]
    if op == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return op, bytes(b)
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    if op == "junk":
        lines.insert(i, rng.choice(JUNK))
    elif op == "utf8":
        lines[i] += b"\xc3\x28"
    elif op == "drop":
        del lines[i]
    else:
        try:
            r = json.loads(lines[i])
        except ValueError:
            r = None
        if isinstance(r, dict) and r:
            r[rng.choice(list(r))] = rng.choice(VALUES)
            lines[i] = json.dumps(r).encode()
    return op, b"\n".join(lines)


def readers(f: Path, kind: str, out: Path, rng: random.Random):
    if kind == "log":
        col = ["--accel", "tcg", "--out", str(out / "col"), "--partial"]
        return [(collect.main, [str(f), *col]), (collect.main, [str(f), *col, "--lenient"])]
    if kind == "layout":
        return [(layouts.capacity, [str(f)]), (layouts.capacity, [str(f), "--json"])]
    if kind == "trace":
        return [(replay.main, [str(f)]), (replay.main, [str(f), "--json", "--pool-pages", "512,4096"])]
    other = str(RUNS[0])
    calls = [(show.main, [str(f)]), (lambda a: aggregate.main(a, "compare"), ["--baseline", str(f), "--candidate", other]),
             (lambda a: aggregate.main(a, "machines"), [str(f), other])]
    calls += [(show.main, [str(f), "--lenient"]),
              (lambda a: aggregate.main(a, "compare"), ["--baseline", str(f), "--candidate", other, "--lenient"]),
              (lambda a: aggregate.main(a, "machines"), [str(f), other, "--lenient"]),
              (lambda a: aggregate.main(a, "targets"), [str(f), other]),
              (lambda a: aggregate.main(a, "targets"), [str(f), other, "--lenient"])]
    # The report draws its plots (2 s): strictly or leniently, one of the two for each input.
    return calls + [(report.main, [str(f), "--out", str(out / "r")] + rng.choice([[], ["--lenient"]]))]
    return calls


def mutated_trace(rng: random.Random, folder: Path) -> tuple[Path, Path, str]:
    """A copy of TRACE with one file mutated; or its strace log alone, mutated (a plain log)."""
    folder.mkdir()
    files = {name: (TRACE / name).read_bytes() for name in ("strace.txt.gz", "layouts.json.gz", "meta.json")}
    name = rng.choice(list(files) + ["plain"])
    if name == "plain":
        op, data = mutate(rng, gzip.decompress(files["strace.txt.gz"]))
        (folder / "strace.log").write_bytes(data)
        return folder / "strace.log", TRACE / "strace.txt.gz", f"{op} (plain log)"
    data = gzip.decompress(files[name]) if name.endswith(".gz") else files[name]
    op, data = mutate(rng, data)
    files[name] = gzip.compress(data) if name.endswith(".gz") and rng.random() < 0.9 else data
    for k, v in files.items():
        (folder / k).write_bytes(v)
    return folder, TRACE / name, op


INPUTS_PER_SEED = 12  # each about a second (a report draws its plots): the test budget is small


@pytest.mark.parametrize("seed", [1, 2])
def test_no_mutated_input_ends_in_a_traceback(tmp_path, seed):
    pytest.importorskip("matplotlib")
    rng = random.Random(seed)
    # A fixed number of inputs, the same ones every run: what is tried never depends on the
    # machine's speed (a time-bounded loop tried 12 on a quiet machine and fewer when loaded).
    for n in range(INPUTS_PER_SEED):
        kind = rng.choice(["run", "run", "log", "layout", "trace"])
        if kind == "trace":
            f, src, op = mutated_trace(rng, tmp_path / f"t{n}")
        else:
            src = rng.choice({"run": RUNS, "log": LOGS, "layout": LAYOUTS}[kind])
            op, data = mutate(rng, src.read_bytes())
            f = tmp_path / f"m{n}{src.suffix}"
            f.write_bytes(data)
        for fn, argv in readers(f, kind, tmp_path, rng):
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                try:
                    code = fn(argv)
                except SystemExit as e:
                    code = e.code
                except Exception as e:  # the defect this test exists for
                    pytest.fail(f"seed {seed}, input {n} ({op} of {src.name}): {fn} {argv}: {e!r}")
            if code not in (0, None):
                lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
                assert lines and "Traceback" not in err.getvalue(), (seed, n, op, argv)


def test_a_wrong_field_type_is_refused_naming_file_line_and_field(tmp_path, capsys):
    lines = RUNS[0].read_bytes().splitlines()
    i = next(k for k, ln in enumerate(lines) if b'"measurement"' in ln)
    r = json.loads(lines[i])
    r["impl"] = ["a", "list"]
    lines[i] = json.dumps(r).encode()
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b"\n".join(lines))
    assert show.main([str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}:{i + 1}" in err and "impl is a list, not string" in err, err
    assert show.main([str(f), "--lenient"]) == 0
    assert "skipped" in capsys.readouterr().err


def test_collect_refuses_a_garbled_record_line_naming_log_line_and_field(tmp_path, capsys):
    lines = LOGS[0].read_bytes().splitlines()
    i = next(k for k, ln in enumerate(lines) if b'{"type":"measurement"' in ln)
    r = json.loads(lines[i][lines[i].index(b"{"):])
    r["p50"] = "noise"
    lines[i] = json.dumps(r).encode()
    f = tmp_path / "serial.log"
    f.write_bytes(b"\n".join(lines))
    argv = [str(f), "--accel", "tcg", "--out", str(tmp_path / "out")]
    assert collect.main(argv) == 6
    err = capsys.readouterr().err
    assert f"{f}:{i + 1}: measurement: p50 is a string, not number" in err, err
    assert not (tmp_path / "out").exists()  # refused: nothing written
    assert collect.main(argv + ["--lenient"]) == 0
    assert "left out" in capsys.readouterr().err
    written = next((tmp_path / "out").glob("*.jsonl")).read_text().splitlines()
    ok = [json.loads(x) for x in LOGS[0].read_text().splitlines() if x.startswith('{"type":"measurement"')]
    assert sum('"measurement"' in x for x in written) == len(ok) - 1


def test_report_lenient_uses_a_file_with_a_junk_line_and_lists_the_line(tmp_path, capsys):
    lines = RUNS[0].read_bytes().splitlines()
    lines.insert(5, b"\xff junk")
    f = tmp_path / "junk.jsonl"
    f.write_bytes(b"\n".join(lines))
    out = tmp_path / "r"
    report.main([str(f), str(RUNS[1]), "--out", str(out)])
    text = (out / "report.md").read_text()
    assert f"{f}:6: not a JSON object" in text and "unreadable" in text  # strict: the file left out
    assert report.main([str(f), str(RUNS[1]), "--out", str(out), "--lenient"]) == 0
    text = (out / "report.md").read_text()
    assert f"`{f}:6: not a JSON object, skipped`" in text and "unreadable" not in text


def test_every_recorded_file_reads_strictly():
    """The frozen schemas take their fields' kinds from the current declaration (no field has
    changed its kind since schema 1): this holds it for every file recorded."""
    from ptplab import results
    files = sorted((REPO / "results").glob("*.jsonl"))
    assert len(files) >= 50
    for f in files:
        assert results.load(f)[0]["type"] == "run", f
