"""The tables a person reads: swept rows carry the parameter that tells them apart, columns fit
their widest cell, and runs side by side keep a sweep's rows apart."""
from pathlib import Path

from ptplab import show, table


def m(impl, params, p50, bench="tlb_invlpg", suite="tlb"):
    return {"type": "measurement", "suite": suite, "bench": bench, "impl": impl, "pool_pages": 4096,
            "params": params, "unit": "ticks", "per": "page", "n": 512, "p50": p50, "mean": p50}


SWEEP = [m("invlpg", {"measures": "flush alone"}, 900.0)] + [
    m("invlpg-refill", {"measures": "flush + refill", "pages": n, "page_size": "4KiB", "global": False}, 1000.0 + n)
    for n in (1, 2, 4096)]


def test_a_swept_row_shows_the_parameter_that_varies_and_not_the_constant_ones():
    rows = table.measurement_rows(SWEEP)
    assert "params" in rows[0]
    for n in (1, 2, 4096):
        assert sum(f"pages={n} " in r or r.rstrip().endswith(f"pages={n}") for r in rows) == 1, rows
    assert not any("global=" in r or "measures=" in r for r in rows)


def test_columns_are_as_wide_as_their_widest_cell():
    rows = table.grid([["a", "n"], ["long-name", "1"], ["b", "12345"]], right={1})
    assert rows == ["a             n", "long-name     1", "b         12345"]
    assert len({len(r) for r in rows}) == 1


def test_runs_side_by_side_keep_a_sweeps_rows_apart(tmp_path):
    runs = []
    for i in range(2):
        r = show.Run.__new__(show.Run)
        r.path, r.run, r.records = Path(f"r{i}.jsonl"), {"where": "kernel", "accel": "tcg", "schema": 4}, SWEEP
        runs.append(r)
    text = show.compare(runs)
    assert text.count("invlpg-refill") == 3, text


def test_table_grid_is_the_one_fixed_width_layout_of_the_tools():
    """Columns padded by hand (an f-string width such as :<26) drift apart from each other: every
    table of the tools goes through table.grid, the one place that pads."""
    import re
    pkg = Path(__file__).resolve().parents[1] / "ptplab"
    padded = [f"{p.name}:{i}" for p in sorted(pkg.glob("*.py")) if p.name != "table.py"
              for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\{[^{}]*:[<>^]\d", line)]
    assert padded == [], padded
