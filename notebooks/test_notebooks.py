"""Notebooks are executed here, headless, on the recorded results."""
from pathlib import Path

HERE = Path(__file__).resolve().parent


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
