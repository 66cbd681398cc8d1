"""Schemas as data (issue 32): each version's record shapes are a file, results/schema/vN.json,
which the reader loads instead of a copy of its own; the current one is what `ptp-host schema`
writes, field order and kinds included."""
import json
import subprocess

from ptplab import lab, schema


def ordered(x):
    """JSON with its key order made part of what compares equal."""
    if isinstance(x, dict):
        return [(k, ordered(v)) for k, v in x.items()]
    return x


def test_the_current_schema_file_is_what_the_record_writer_declares():
    out = subprocess.run([str(lab.host_bin()), "schema"], capture_output=True, text=True, check=True).stdout
    written = json.loads(out)
    assert written["schema"] == lab.facts()["schema"]
    path = schema.SHAPES / f"v{written['schema']}.json"
    assert path.exists(), f"schema {written['schema']} has no file: target/release/ptp-host schema > {path}"
    assert ordered(json.loads(path.read_text())) == ordered(written), \
        f"{path} differs from `ptp-host schema`: a record changed without a SCHEMA bump"
    assert ordered(written["records"]) == ordered(lab.facts()["record_kinds"])


def test_every_version_from_1_to_the_current_one_has_its_file_and_nothing_else_is_read():
    assert schema.versions() == list(range(1, lab.facts()["schema"] + 1))
    for v in schema.versions():
        doc = schema.shapes(v)
        assert doc["schema"] == v and "run" in doc["records"] and "end" in doc["records"]
        assert all(isinstance(k, str) for fields in doc["records"].values() for k in fields.values())
    assert "criterion_measurement" in schema.shapes(1)


def test_a_version_without_a_file_is_refused_by_name():
    problems = schema.validate([{"type": "run", "schema": 99}, {"type": "end"}])
    assert problems[0].startswith("record 1 (run): schema 99 is not one these tools read (1, 2, 3")
