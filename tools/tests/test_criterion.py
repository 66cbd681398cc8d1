import json
from pathlib import Path

import pytest

from ptplab import criterion as c


def fake(root: Path, group: str, function: str, param: str, mean: float, elements=None):
    d = root / group.replace("/", "_") / function / param / "new"
    d.mkdir(parents=True)
    meta = {"group_id": group, "function_id": function, "value_str": param,
            "throughput": {"Elements": elements} if elements else None}
    (d / "benchmark.json").write_text(json.dumps(meta))
    est = {"mean": {"point_estimate": mean, "confidence_interval": {"lower_bound": mean * 0.9, "upper_bound": mean * 1.1}}}
    (d / "estimates.json").write_text(json.dumps(est))


def test_load_reads_every_benchmark_and_its_throughput(tmp_path):
    fake(tmp_path, "map/1GiB_4KiB", "lab-map_range", "262144", 19_000.0, 262_144)
    fake(tmp_path, "alloc/fill", "lab-bump", "", 4_000.0)
    benches = c.load(tmp_path)
    assert [(b.group, b.function) for b in benches] == [("alloc/fill", "lab-bump"), ("map/1GiB_4KiB", "lab-map_range")]
    assert benches[1].ns_per_element == pytest.approx(19_000 / 262_144)
    assert benches[0].ns_per_element is None


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(c.CriterionError, match="no criterion results at"):
        c.load(tmp_path / "nope")


def test_targets_judge_ratios_both_ways(tmp_path):
    fake(tmp_path, "map/1GiB_4KiB", "x86_64-map_to", "1", 2_000_000.0)
    fake(tmp_path, "map/1GiB_4KiB", "lab-map_range", "1", 100_000.0)   # 20x: met
    fake(tmp_path, "map/1GiB_4KiB", "write_bytes-limit", "1", 40_000.0)  # 2.5x: missed
    fake(tmp_path, "alloc/fill", "lab-bump", "", 1_300.0)
    fake(tmp_path, "alloc/fill", "bare-counter", "", 1_000.0)           # 1.3x: missed
    verdicts = {v.target.name: v for v in c.judge(c.load(tmp_path))}
    fast = verdicts["map_range >= 15x faster than x86_64 map_to (1 GiB, 4 KiB pages)"]
    assert (round(fast.ratio, 2), fast.status) == (20.0, "MET")
    limit = verdicts["map_range within 2x of the write_bytes limit (4 KiB pages)"]
    assert (round(limit.ratio, 2), limit.status) == (2.5, "MISSED")
    assert verdicts["bump within 1.2x of a bare counter (fill)"].status == "MISSED"
    assert verdicts["map_range >= 10x faster than x86_64 map_to (64 GiB, 2 MiB pages)"].status == "NOT RUN"


def test_records_are_schema_one_and_per_element(tmp_path):
    fake(tmp_path, "map/64GiB_2MiB", "lab-map_range", "32768", 32_768.0, 32_768)
    benches = c.load(tmp_path)
    recs = c.records(benches, c.judge(benches), {"type": "run", "schema": 1})
    assert recs[0]["type"] == "run" and recs[-1] == {"type": "end", "status": "ok", "measurements": 1}
    m = recs[1]
    assert (m["type"], m["unit"], m["per"], m["mean"], m["impl"]) == ("measurement", "ns", "op", 1.0, "lab-map_range")
    text = c.render(benches, c.judge(benches))
    assert "map/64GiB_2MiB/lab-map_range/32768" in text and "NOT RUN" in text
