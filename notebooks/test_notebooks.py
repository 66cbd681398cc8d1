"""Notebooks are executed here, headless, on the recorded results. They are committed executed
too, so that where notebooks are rendered (GitHub, a file browser) a reader sees their tables and
plots: `python3 notebooks/test_notebooks.py` executes each in place."""
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BOOKS = ("pool_sizes.ipynb", "mapping.ipynb", "tlb.ipynb")


def run(name: str):
    """A notebook executed headless, as Jupyter would, on the committed results."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(HERE / name, as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    return book


def text(book) -> str:
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in book.cells if c.cell_type == "code" for o in c.get("outputs", []))


def execute(name: str):
    """A notebook's outputs, executed afresh; the committed file is not touched."""
    return text(run(name))


@pytest.mark.parametrize("name", BOOKS)
def test_each_notebook_is_committed_executed_with_its_plot(name):
    import nbformat

    book = nbformat.read(HERE / name, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"{name}: not executed (python3 notebooks/test_notebooks.py)"
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), f"{name}: no plot in its outputs"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{name}: committed with an error"


def test_pool_sizes_notebook_runs_and_shows_the_fit_table():
    out = execute("pool_sizes.ipynb")
    assert "fit_4KiB" in out and "largest_region_4KiB_GiB" in out and "Figure" in out, out[-2000:]


def test_mapping_notebook_runs_on_the_latest_native_host_run():
    out = execute("mapping.ipynb")
    assert "results/2026-" in out and "native" in out and "map_to / map_range" in out, out[-2000:]


def test_tlb_notebook_runs_and_says_where_its_run_came_from():
    out = execute("tlb.ipynb")
    assert "n_star" in out and ("emulated" in out or "native" in out) and "Figure" in out, out[-2000:]


if __name__ == "__main__":
    # Execute every notebook in place (what is committed), on the results as they are.
    import nbformat

    for name in sys.argv[1:] or BOOKS:
        nbformat.write(run(name), HERE / name)
        print(f"executed {HERE / name}")
