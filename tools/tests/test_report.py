"""The decision report: written from the committed layouts, the capacity model and a recorded
run; every pool size 512 ... 65536; recommendations that name their numbers and sources."""
import subprocess

from ptplab import bench, lab

REPO = bench.REPO


def test_the_report_answers_4096_to_n_with_numbers_and_sources(tmp_path):
    p = subprocess.run([str(REPO / "scripts/report.sh"), "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "report.md").read_text()
    for section in ["## Unmodifiable PTPs", "## The modifiable PTP", "## Costs that change with N", "## Recommendation"]:
        assert section in text, section
    for n in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
        assert f"\n| {n}" in text, n
    # The model's own figure: 512 pool pages map at most 509 PTs' worth of 4 KiB pages.
    limits = lab.ask("pool-limits", "pools=512")["pools"][0]
    assert limits["largest_region_4KiB"] == 509 * 512 * 4096
    assert "| 512 | 2 MiB | 20 MiB / 200 MiB / 2000 MiB |" in text and "1018 MiB / 510 GiB" in text
    rec = text[text.index("## Recommendation"):]
    assert "**Unmodifiable PTPs, 4096 ->" in rec and "`results/layouts`" in rec
    assert "**The modifiable PTP," in rec and "`ptp-host pool-limits`" in rec
    assert "results/2026-" in text, "the costs name the run they come from"
    assert p.stdout.startswith("## Recommendation"), "bench users see the summary"


def test_no_layouts_is_a_clear_error(tmp_path):
    p = subprocess.run([str(REPO / "scripts/report.sh"), "--out", str(tmp_path), "--layouts", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and f"--layouts: no layouts in {tmp_path}" in p.stderr


def test_a_malformed_results_file_is_named_with_its_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "run", "where": "host"}\n{"type": "measurement", "p50": 1\n')
    p = subprocess.run([str(REPO / "scripts/report.sh"), str(bad), "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and f"{bad}:2: not a JSON object" in p.stderr, p.stderr


def test_costs_never_come_from_an_emulated_run(tmp_path):
    emulated = sorted((REPO / "results").glob("*-vm-tcg.jsonl"))[0]
    p = subprocess.run([str(REPO / "scripts/report.sh"), str(emulated), "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert f"{emulated}: an emulated run" in p.stderr and "native" in p.stderr


def test_the_report_draws_its_plots_as_png_and_svg(tmp_path):
    p = subprocess.run([str(REPO / "scripts/report.sh"), "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "report.md").read_text()
    for stem in ("capacity", "alloc", "map"):
        assert f"]({stem}.svg)" in text and f"[PNG]({stem}.png)" in text, stem
        assert (tmp_path / f"{stem}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), stem
        assert "<svg" in (tmp_path / f"{stem}.svg").read_text(), stem


def test_without_matplotlib_the_report_says_why_it_has_no_plots(tmp_path, monkeypatch):
    from ptplab import plots, report

    def missing():
        raise plots.NoPlots("matplotlib is not installed")
    monkeypatch.setattr(plots, "_pyplot", missing)
    assert report.main(["--out", str(tmp_path)]) == 0
    assert "No plots: matplotlib is not installed." in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob("*.png"))


def test_the_costs_sentence_is_computed_from_the_run_not_assumed(tmp_path):
    import json
    run = {"type": "run", "schema": 2, "where": "host", "accel": "none", "execution": "native", "tsc_hz": 1e9,
           "timer": {"kind": "rdtsc"}, "cpu": {"brand": "X"}, "git_commit": "c"}
    ms = [{"type": "measurement", "suite": "ptp", "bench": "ptp_build", "impl": "modifiable", "pool_pages": n,
           "p50": t, "params": {}} for n, t in ((4096, 1000.0), (65536, 20000.0))]
    f = tmp_path / "native.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [run, *ms, {"type": "end", "status": "ok"}]))
    p = subprocess.run([str(REPO / "scripts/report.sh"), str(f), "--out", str(tmp_path / "r")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "r/report.md").read_text()
    assert ("Building a modifiable PTP takes 1.0 µs at 4096 pages and 20.0 µs at 65536 (TSC 1.00 GHz)" in text), text
    assert "well under a microsecond" not in text
