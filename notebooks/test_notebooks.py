"""Notebooks are executed here, on the recorded results and on a small fixed fixture."""
import json
import runpy
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
nb = runpy.run_path(str(HERE / "pool_size.py"))


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def run(where, execution):
    return {"type": "run", "schema": 1, "where": where, "accel": "tcg" if execution == "emulated" else "kvm",
            "execution": execution, "config": {}}


def m(bench, impl, pool, p50):
    return {"type": "measurement", "bench": bench, "impl": impl, "pool_pages": pool, "p50": p50}


def test_figures_from_a_fixture_and_never_mixed(tmp_path):
    write(tmp_path / "a.jsonl", [run("kernel", "native"), m("map_1GiB_4KiB", "lab-map_range", 1024, 0.5),
                                 m("map_1GiB_4KiB", "x86_64-map_to", 1024, 20.0),
                                 m("ptp_build", "modifiable", 4096, 3000.0), {"type": "end"}])
    write(tmp_path / "b.jsonl", [run("kernel", "native"), m("map_1GiB_4KiB", "lab-map_range", 1024, 0.4),
                                 {"type": "end"}])
    write(tmp_path / "c.jsonl", [run("kernel", "emulated"), m("map_1GiB_4KiB", "lab-map_range", 1024, 50.0),
                                 {"type": "end"}])
    write(tmp_path / "d.partial.jsonl", [run("kernel", "native"), m("map_1GiB_4KiB", "lab-map_range", 1024, 0.01)])
    groups = nb["load_runs"](sorted(tmp_path.glob("*.jsonl")))
    assert set(groups) == {("kernel", "kvm", "native"), ("kernel", "tcg", "emulated")}
    native = groups[("kernel", "kvm", "native")]
    assert nb["map_cost"](native) == {("map_1GiB_4KiB", 1024): {"lab-map_range": 0.4, "x86_64-map_to": 20.0}}
    assert nb["ptp_build_cost"](native) == {4096: {"modifiable": 3000.0}}
    assert nb["pool_share"]("map_1GiB_4KiB", 1024) == 515 / 1024
    text = nb["report"](groups)
    assert "50.0x" in text and "50.3%" in text and "(emulated: compare contenders within a row" in text
    assert text.index("kvm / native") != text.index("tcg / emulated")


def test_runs_on_the_recorded_results():
    p = subprocess.run([sys.executable, str(HERE / "pool_size.py")], capture_output=True, text=True, check=True)
    assert "==" in p.stdout and "mapping, ticks per page" in p.stdout, p.stdout


def execute(name: str):
    """Run a notebook headless, as Jupyter would, on the committed results; the committed file is
    not touched (outputs stay out of git)."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(HERE / name, as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in book.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_pool_sizes_notebook_runs_and_shows_the_fit_table():
    out = execute("pool_sizes.ipynb")
    assert "fit_4KiB" in out and "largest_region_4KiB_GiB" in out and "Figure" in out, out[-2000:]


def test_mapping_notebook_runs_on_the_latest_native_host_run():
    out = execute("mapping.ipynb")
    assert "results/2026-" in out and "native" in out and "map_to / map_range" in out, out[-2000:]


def test_tlb_notebook_runs_and_says_where_its_run_came_from():
    out = execute("tlb.ipynb")
    assert "n_star" in out and ("emulated" in out or "native" in out) and "Figure" in out, out[-2000:]
