"""The decision report: written from the committed layouts, the capacity model and a recorded
run; every pool size 512 ... 65536; recommendations that name their numbers and sources."""
import subprocess

import pytest
from ptplab import lab

REPO = lab.REPO


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
    # The decision comes from the lifetimes; the snapshots are said apart.
    assert "**Unmodifiable PTPs, from whole lifetimes: keep 4096**" in rec, rec
    assert "4096 -> 2048 would also break `node-48-workers`" in rec and "`results/traces`" in rec
    n = len(list((REPO / "results/layouts").glob("*.json")))
    assert f"**Snapshots alone ({n} layouts), 4096 -> " in rec and "; the lifetimes above decide**" in rec
    assert "| jvm | 3 | 4,413 (`java-xms8g`) | 8192 | 204 | 512 |" in text
    assert "- `asan-hello` (sanitizer; process `hello-asan`): 7,354,449 pages" in text
    assert "**The modifiable PTP," in rec and "`ptp-host pool-limits`" in rec
    assert "results/2026-" in text, "the costs name the run they come from"
    assert "## TLB flush, from your workloads" in text and "| **all** | " in text and "flush-sizes.svg" in text
    assert "programs flush, take ceiling " in rec
    assert p.stdout.startswith("## Recommendation"), "bench users see the summary"


def test_a_layout_without_linuxs_page_table_count_says_so_instead_of_printing_none():
    # The trace-* layouts (final maps of lifetime traces) recorded no VmPTE.
    from ptplab import report
    lay = [REPO / "results/layouts/trace-java-xms8g.json"]
    line = next(x for x in report.render(lay, [], None, None).splitlines() if x.startswith("The largest real layout"))
    assert "None" not in line and "Linux's own page-table pages for it (VmPTE) were not recorded" in line, line


def test_no_layouts_is_a_clear_error(tmp_path):
    p = subprocess.run([str(REPO / "scripts/report.sh"), "--out", str(tmp_path), "--layouts", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and f"--layouts: no layouts in {tmp_path}" in p.stderr


def test_a_malformed_results_file_is_named_with_its_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    run = (REPO / "results/2026-12-02-vm-none-9.jsonl").read_text().splitlines()[0]
    bad.write_text(run + '\n{"type": "measurement", "p50": 1\n')
    p = subprocess.run([str(REPO / "scripts/report.sh"), str(bad), "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and f"{bad}:2: not a JSON object" in p.stderr, p.stderr


def test_costs_never_come_from_an_emulated_run_and_nothing_usable_fails_naming_each_file(tmp_path):
    emulated = sorted((REPO / "results").glob("*-vm-tcg.jsonl"))[0]
    p = subprocess.run([str(REPO / "scripts/report.sh"), str(emulated), "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert "report: error: no usable run among the files" in p.stderr, p.stderr
    assert f"{emulated}: an emulated run (tcg): costs need a native host run" in p.stderr, p.stderr


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


def native_run(path, builds, brand="X", commit="c", started="2026-11-25T00:00:00+00:00", load=None, schema=3):
    """A native host run file measuring ptp_build at {pool: ticks}."""
    import json
    run = {"type": "run", "schema": schema, "where": "host", "accel": "none", "execution": "native", "tsc_hz": 1e9,
           "timer": {"kind": "rdtsc"}, "cpu": {"brand": brand}, "git_commit": commit, "git_dirty": False,
           "config": {"pool_pages": sorted(builds)}, "started_utc": started}
    end = {"type": "end", "status": "ok"}
    if load is not None:
        run["load"], end["load"] = load
    ms = [{"type": "measurement", "suite": "ptp", "bench": "ptp_build", "impl": "modifiable", "pool_pages": n,
           "p50": t, "params": {}} for n, t in builds.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in [run, *ms, end]))
    return path


def costs_section(text):
    return text[text.index("## Costs that change with N"):text.index("### Noise")]


def test_several_runs_give_medians_with_intervals_and_a_noise_verdict_per_size(tmp_path):
    from ptplab import report
    lo = {"avg_1m": 0.25, "avg_5m": 0.2, "avg_15m": 0.1, "runnable": 1}
    hi = {"avg_1m": 3.5, "avg_5m": 1.0, "avg_15m": 0.5, "runnable": 4}
    # 1024 is 2 % off 4096 (within the noise), 65536 twice as slow, far beyond it.
    files = [native_run(tmp_path / f"r{i}.jsonl", {1024: 1020.0 + i, 4096: 1000.0 + i, 65536: 2000.0 + i},
                        started=f"2026-11-25T00:0{i}:00+00:00", load=(lo, hi)) for i in range(3)]
    runs = [(f, report.read_run(f)) for f in files]
    text = report.render(sorted((REPO / "results/layouts").glob("*.json"))[:2], runs)
    costs = costs_section(text)
    assert "mean over 3 runs" in costs and "median over" not in costs
    assert "| 1024 | 1,021.0 [1,018.5, 1,023.5] | 1.02x, within noise |" in costs, costs
    assert "| 4096 | 1,001.0 [998.5, 1,003.5] | - |" in costs, costs
    assert "| 65536 | 2,001.0 [1,998.5, 2,003.5] | 2.00x, beyond noise |" in costs, costs
    noise = text[text.index("### Noise"):]
    assert f"| `{files[0]}` | X | 0.25 (1 min), 1 runnable | 3.50 (1 min), 4 runnable |" in noise, noise


def test_a_size_measured_by_one_run_of_three_has_too_few_runs_for_an_interval(tmp_path):
    from ptplab import report
    # 4096 in all three runs (skewed: median 1000, mean 1010), 65536 in the first only
    files = [native_run(tmp_path / f"r{i}.jsonl", {4096: t, **({65536: 2000.0} if i == 0 else {})},
                        started=f"2026-11-25T00:0{i}:00+00:00") for i, t in enumerate([1000.0, 1000.0, 1030.0])]
    runs = [(f, report.read_run(f)) for f in files]
    costs = costs_section(report.render(sorted((REPO / "results/layouts").glob("*.json"))[:2], runs))
    assert "| 4096 | 1,010.0 [" in costs, costs
    assert "| 65536 | 2,000.0 (one run) | 1.98x, too few runs for an interval |" in costs, costs
    assert "beyond noise" not in costs


def test_one_run_gives_ratios_without_a_verdict_and_an_old_file_says_its_load_is_unknown(tmp_path):
    from ptplab import report
    f = native_run(tmp_path / "one.jsonl", {4096: 1000.0, 65536: 2000.0}, schema=2)
    text = report.render(sorted((REPO / "results/layouts").glob("*.json"))[:2], [(f, report.read_run(f))])
    costs = costs_section(text)
    assert "One run says nothing about the noise" in costs and "| 65536 | 2,000.0 | 2.00x |" in costs, costs
    assert "noise |" not in costs
    assert "| not recorded | not recorded |" in text


def test_the_costs_come_from_one_machine_the_newest_unless_told(tmp_path):
    a = native_run(tmp_path / "a.jsonl", {4096: 1.0}, brand="AMD EPYC", started="2026-11-25T00:01:00+00:00")
    b = native_run(tmp_path / "b.jsonl", {4096: 1.0}, brand="Intel Xeon", started="2026-11-25T00:02:00+00:00")
    report = [str(REPO / "scripts/report.sh"), str(a), str(b)]
    p = subprocess.run([*report, "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "r/report.md").read_text()
    assert f"costs per pool size from 1 run(s): `{b}`" in text
    assert f"| `{a}` | another machine (AMD EPYC): the costs come from one machine, Intel Xeon, the newest" in text
    p = subprocess.run([*report, "--out", str(tmp_path / "r"), "--machine", "epyc"], capture_output=True, text=True)
    assert p.returncode == 0 and f"costs per pool size from 1 run(s): `{a}`" in (tmp_path / "r/report.md").read_text()
    p = subprocess.run([*report, "--out", str(tmp_path / "r"), "--machine", "M1"], capture_output=True, text=True)
    assert p.returncode == 2 and "--machine 'M1': no native host run of such a machine among the files " \
        "(machines: AMD EPYC, Intel Xeon)" in p.stderr, p.stderr


def test_a_mixed_set_gives_each_section_the_runs_it_can_use_and_lists_the_rest(tmp_path):
    """What a user types first: every file in results/, emulated, partial and broken ones among them."""
    import json
    t = lambda m: f"2026-11-25T00:{m:02d}:00+00:00"  # noqa: E731
    rep = [native_run(tmp_path / f"rep{i}.jsonl", {4096: 1.0}, commit="new", started=t(10 + i)) for i in range(2)]
    old = native_run(tmp_path / "older-commit.jsonl", {4096: 1.0}, commit="old", started=t(1))
    kernel = tmp_path / "kernel-tcg.jsonl"
    recs = tlb_records("emulated")
    kernel.write_text("".join(json.dumps(r) + "\n" for r in recs))
    emulated = sorted((REPO / "results").glob("*-vm-tcg.jsonl"))[0]
    cut = tmp_path / "cut.partial.jsonl"
    cut.write_text(rep[0].read_text().rsplit("\n", 2)[0] + "\n")
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b"\xff\xfe not json\n")
    files = [*rep, old, kernel, emulated, cut, junk]
    p = subprocess.run([str(REPO / "scripts/report.sh"), *map(str, files)], capture_output=True, text=True,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = REPO / "target/report/report.md"  # the default --out
    assert f"report: wrote {out}" in p.stderr and "left out 4 of 7 files" in p.stderr, p.stderr
    text = out.read_text()
    assert f"costs per pool size from 2 run(s): `{rep[0]}`, `{rep[1]}`" in text
    assert f"From `{kernel}` (kernel, tcg, emulated" in text and "**Emulated run**" in text
    left = text[text.index("## Runs left out"):]
    assert f"| `{old}` | an older run of the same machine at another commit or sweep" in left, left
    assert f"| `{emulated.relative_to(REPO)}` | an emulated run (tcg): costs need a native host run" in left, left
    assert f"| `{cut}` | a partial run (no end record)" in left, left
    assert f"| `{junk}` | unreadable: " in left, left
    assert not any(f"`{f}`" in left for f in (*rep, kernel))


def test_by_default_the_newest_run_comes_with_its_repeats_and_nothing_else(tmp_path):
    from ptplab import report
    t = lambda m: f"2026-11-25T00:{m:02d}:00+00:00"  # noqa: E731
    rep = [native_run(tmp_path / f"rep{i}.jsonl", {4096: 1.0}, commit="new", started=t(10 + i)) for i in range(3)]
    native_run(tmp_path / "older-commit.jsonl", {4096: 1.0}, commit="old", started=t(1))
    native_run(tmp_path / "other-cpu.jsonl", {4096: 1.0}, brand="Y", commit="new", started=t(5))
    native_run(tmp_path / "other-sweep.jsonl", {4096: 1.0, 512: 1.0}, commit="new", started=t(6))
    (tmp_path / "cut.partial.jsonl").write_text(rep[0].read_text().rsplit("\n", 2)[0] + "\n")
    sel = report.select(sorted(tmp_path.glob("*.jsonl")))
    assert [p for p, _ in sel.costs] == rep and sel.tlb is None
    assert sorted(p.name for p, _ in sel.left_out) == ["cut.partial.jsonl", "older-commit.jsonl", "other-cpu.jsonl",
                                                       "other-sweep.jsonl"]


def tlb_records(execution):
    run = {"type": "run", "schema": 4, "where": "kernel", "accel": "tcg" if execution == "emulated" else "kvm",
           "execution": execution, "cpu": {"brand": "X"}, "tsc_hz": 2e9, "git_commit": "abcdef123"}
    cross = {"type": "crossover", "suite": "tlb", "bench": "tlb_crossover", "pool_pages": 4096, "page_size": "4KiB", "per_page": "invlpg-refill",
             "full": "cr3-reload-refill", "unit": "ticks", "sizes": [1, 2], "per_page_costs": [1.0, 9.0],
             "full_costs": [5.0, 5.0], "n_star": 2, "ceiling": 1, "calibrated_ceiling": 1,
             "calibration_ticks": 1234, "calibrated_worst_excess": 1.0,
             "fixed_ceilings": {"32": {"regret": 4.0}, "33": {"regret": 4.0}, "64": {"regret": 4.0}}}
    shoot = {**cross, "bench": "tlb_shootdown", "per_page": "ipi-invlpg-refill", "full": "ipi-cr3-reload-refill"}
    ipi = [{"type": "measurement", "suite": "shootdown", "bench": "tlb_shootdown", "impl": "ipi", "p50": 2000.0 * k + p,
            "params": {"targets": k, "pages": p}} for k in (1, 2) for p in (1, 8, 32, 64, "full") if p != "full"]
    skip = {"type": "skip", "bench": "tlb_shootdown_invlpgb", "reason": "CPU lacks INVLPGB/TLBSYNC"}
    return [run, cross, shoot, *ipi, skip, {"type": "end"}]


def test_the_tlb_section_states_the_policy_and_the_shootdown_and_says_when_it_is_emulated(tmp_path):
    from ptplab import report
    lay = sorted((REPO / "results/layouts").glob("*.json"))[:2]
    text = report.render(lay, [], None, (tmp_path / "k.jsonl", tlb_records("emulated")))
    tlb = text[text.index("## TLB flush policy"):text.index("## Recommendation")]
    assert "**Emulated run**" in tlb and "(kernel, tcg, emulated, X, commit abcdef12)" in tlb
    assert "| invlpg-refill vs cr3-reload-refill | 4KiB | 2 | 1 | 1 | 4 |" in tlb
    assert "| ipi-invlpg-refill vs ipi-cr3-reload-refill (on another CPU, by IPI) | 4KiB | 2 |" in tlb
    assert "| 1 | 2,001 (1.0) | 2,008 (1.0) | 2,032 (1.0) | 2,064 (1.0) | - |" in tlb, tlb
    assert "| 2 | 4,001 (2.0) |" in tlb and "INVLPGB broadcast: not measured here (CPU lacks INVLPGB/TLBSYNC)." in tlb
    rec = text[text.index("## Recommendation"):]
    assert "**TLB flush**: on X (emulated), flush page by page up to 1 pages of 4 KiB" in rec
    assert "Emulated: calibrate on your CPU before adopting a number." in rec
    native = report.render(lay, [], None, (tmp_path / "k.jsonl", tlb_records("native")))
    assert "**Emulated run**" not in native and "calibrate on your CPU" not in native
    assert "## TLB flush policy" not in report.render(lay, [], None, None)


def test_the_workload_section_costs_each_class_on_the_run_and_the_recommendation_takes_its_ceiling(tmp_path):
    from ptplab import flushes, lifetimes, report
    recs = tlb_records("emulated")
    # One page: per page 1,000 against 5,000; two pages: full 5,000 against 9,000; above the
    # largest measured size (2) a full flush at 5,000. The best ceiling is 1, Linux's 33 pays
    # 9,000 for every two-page flush.
    for r in recs[1:3]:
        r.update(per_page_costs=[1000.0, 9000.0], full_costs=[5000.0, 5000.0])
    lay = sorted((REPO / "results/layouts").glob("*.json"))[:2]
    traces = lifetimes.trace_dirs()
    text = report.render(lay, [], None, (tmp_path / "k.jsonl", recs), traces)
    sec = text[text.index("## TLB flush, from your workloads"):text.index("## Recommendation")]
    rows = lifetimes.rows(traces, lab.facts()["pool_pages"]["sweep"])
    h = flushes.classes(rows)["all"]["flushes"]["4KiB"]
    n, one, two = sum(h.values()), h["1"], h["2"]
    best = (one * 1000 + (n - one) * 5000) / n
    linux = (one * 1000 + two * 9000 + (n - one - two) * 5000) / n
    assert (f"| **all** | {n:,} | {100 * one / n:.1f} % | {flushes.share(h, 1, 33):.1f} % | "
            f"{flushes.share(h, 513, None):.1f} % | 1 | {best:,.0f} | +{linux - best:,.0f} "
            f"({100 * (linux / best - 1):.1f} %) | +0 (0.0 %) |") in sec, sec
    assert "X (emulated, tcg; `" in sec and "emulated, so these costs show the method" in sec
    assert "56.92 %" in sec and "Shootdowns, the flushes made while the process had more than one thread" in sec
    rec = text[text.index("## Recommendation"):]
    assert (f"Weighted by what {len(traces)} programs flush, take ceiling 1: it costs least ({best:,.0f} ticks per "
            f"flush); Linux's 33 costs +{100 * (linux / best - 1):.1f} %") in rec, rec
    assert "## TLB flush, from your workloads" not in report.render(lay, [], None, (tmp_path / "k.jsonl", recs))
    # A run without the local crossover: the section says why it is not costed, nothing else.
    only_ipi = [r for r in recs if r.get("bench") != "tlb_crossover"]
    text = report.render(lay, [], None, (tmp_path / "k.jsonl", only_ipi), traces)
    assert f"Not costed: {tmp_path / 'k.jsonl'}: no 4 KiB crossover record" in text and "take ceiling" not in text


def test_the_tlb_section_prefers_a_native_run_to_a_newer_emulated_one(tmp_path):
    import json
    from ptplab import report
    for name, execution, started in (("native", "native", "2026-01-01"), ("emulated", "emulated", "2026-02-01")):
        recs = tlb_records(execution)
        recs[0]["started_utc"] = started
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert report.select(sorted(tmp_path.glob("*.jsonl"))).tlb[0].name == "native.jsonl"
    (tmp_path / "native.jsonl").unlink()
    assert report.select(sorted(tmp_path.glob("*.jsonl"))).tlb[0].name == "emulated.jsonl"


def test_a_zero_ceiling_reads_as_always_reloading_and_every_crossover_gets_its_own_plot(tmp_path):
    from ptplab import report
    recs = tlb_records("emulated")
    recs[1]["calibrated_ceiling"] = 0
    other = {**recs[1], "bench": "tlb_invpcid", "per_page": "invpcid-0-refill", "full": "invpcid-1-refill"}
    recs.insert(2, other)
    lay = sorted((REPO / "results/layouts").glob("*.json"))[:2]
    text = report.render(lay, [], tmp_path, (tmp_path / "k.jsonl", recs))
    assert "on X (emulated), always reload CR3 (a full flush was cheaper at every size)" in text
    stems = sorted(p.stem for p in tmp_path.glob("tlb-*.svg"))
    assert stems == ["tlb-4KiB-invlpg-refill-vs-cr3-reload-refill", "tlb-4KiB-invpcid-0-refill-vs-invpcid-1-refill",
                     "tlb-4KiB-ipi-invlpg-refill-vs-ipi-cr3-reload-refill"], stems


def _crossover(ceiling, n_star):
    return {"type": "crossover", "bench": "tlb_crossover", "page_size": "4KiB", "unit": "ticks",
            "per_page": "invlpg-refill", "full": "cr3-reload-refill", "sizes": [1, 2, 4, 8, 4096],
            "per_page_costs": [10.0, 20.0, 40.0, 80.0, 40960.0], "full_costs": [5.0, 8.0, 12.0, 20.0, 9000.0],
            "n_star": n_star, "calibrated_ceiling": ceiling}


def test_the_tlb_plot_spans_the_sizes_measured_whatever_the_ceiling():
    # A ceiling of 0 once drew the x axis from 2^-39 (reports/2026-11-25-3's tlb plot).
    pytest.importorskip("matplotlib")
    from ptplab import plots
    for ceiling, n_star in [(0, 1), (4, 8), (None, None)]:
        (_, _, fig), = plots.crossover(_crossover(ceiling, n_star), "r.jsonl", "emulated")
        lo, hi = fig.axes[0].get_xlim()
        assert 0.5 <= lo < 1 and 4096 < hi <= 8192, (ceiling, lo, hi)
        labels = fig.axes[0].get_legend_handles_labels()[1]
        if ceiling == 0:
            assert any("ceiling = 0" in t for t in labels), labels
        elif ceiling:
            assert f"calibrated ceiling = {ceiling}" in labels


def test_the_allocator_plot_starts_at_zero_so_close_values_look_close():
    pytest.importorskip("matplotlib")
    from ptplab import plots
    recs = [{"type": "measurement", "suite": "alloc", "bench": "bump_alloc", "impl": i, "pool_pages": 4096,
             "p50": v} for i, v in [("lab-bump", 1.341), ("bare-counter", 1.346)]]
    (_, _, fig), = plots.costs(recs, "r.jsonl")
    lo, hi = fig.axes[0].get_ylim()
    assert lo == 0 and 1.346 < hi < 1.6


def _churn(pool, alloc, done, ops, peak, out=None):
    return {"type": "churn", "suite": "churn", "bench": "churn_mixed", "pool_pages": pool, "allocator": alloc,
            "ops": ops, "live_at_most": pool // 16, "sizes": 9, "seed": 1, "done": done, "exhausted_at": out,
            "peak_used": peak, "used_end": peak, "fallbacks_4kib": 0}


def test_churn_plot_marks_where_bump_ran_out_and_the_sentence_names_the_operation(tmp_path):
    pytest.importorskip("matplotlib")
    import json
    from ptplab import plots, report
    churn = [_churn(512, "bump", 570, 1024, 511, 570), _churn(512, "bitmap", 1024, 1024, 101),
             _churn(4096, "bump", 8192, 8192, 3000), _churn(4096, "bitmap", 8192, 8192, 660)]
    ticks = [{"type": "measurement", "suite": "churn", "bench": "churn_mixed", "impl": i, "pool_pages": 4096,
              "p50": v, "params": {"ops": 8192}} for i, v in [("lab-bump", 700.0), ("lab-bitmap", 1200.0)]]
    (caption, stem, fig), = plots.costs(churn, "r.jsonl")
    assert stem == "churn"
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "ran out of pages" in labels
    marks = [c for c in ax.collections if len(c.get_offsets())]
    assert [tuple(p) for p in marks[0].get_offsets()] == [(512, 511)], "one cross, where bump ran out"
    f = native_run(tmp_path / "n.jsonl", {4096: 5.0}, schema=5)
    lines = f.read_text().splitlines()
    f.write_text("\n".join([lines[0], *lines[1:-1], *map(json.dumps, churn + ticks), lines[-1]]) + "\n")
    text, sentence = report.churn_section([(f, report.read_run(f))])
    assert "| 512 | 1,024 | 570, 570 | 511 | 1,024 | 101 |" in "\n".join(text), text
    assert "| 4096 | 8,192 | 8,192, - | 3,000 | 8,192 | 660 | 0 | 700 / 1,200 | 1,200 |" in "\n".join(text), text
    assert sentence.startswith("- **Allocators under churn, at 4096 pages**: both played all 8,192 operations"), sentence
    only_512 = [(f, [r for r in report.read_run(f) if r.get("pool_pages") != 4096])]
    assert "bump ran out at operation 570 of 1,024" in report.churn_section(only_512)[1]


def _row(trace, cls, peak, bump=None, two=None, beyond=False, model=None, grow=None):
    return {"trace": trace, "class": cls, "program": trace, "peak": {"bitmap": peak, "bump": bump or peak},
            "peak_model": {"4KiB": model or peak, "2MiB": two or peak}, "beyond_largest_pool": beyond,
            "grow_at_exit": grow, "largest_at_peak": [{"start": "0", "bytes": 3 << 30}],
            "forget": {"calls": 4, "pages": 100, "over": {"1": 3, "33": 1, "512": 0}},
            "tables": {"freed": 5, "reused": 2, "kept_by_bump": 3}}


def test_the_lifetime_decision_follows_from_the_peaks():
    from ptplab import lifetimes
    rows = [_row("a", "shell", 10), _row("b", "shell", 700, bump=900), _row("c", "db", 3000, two=40),
            _row("c", "db", 20), _row("d", "db", 100, beyond=True, model=9_000_000, two=20_000)]
    L, sentence, plot = lifetimes.section(rows, [512, 1024, 2048, 4096], 4096)
    text = "\n".join(L)
    assert "| db | 2 | 9,000,000 (`d`) | > 4096 | 20,000 | > 4096 |" in text
    assert "| shell | 2 | 700 (`b`) | 1024 | 700 | 1024 |" in text
    assert "| 2048 | 2 / 3 / 2 of 4 | 1 / 1 of 2 | `d` (9,000,000), `c` (3,000) |" in text
    assert "`b` 900 against 700" in text, "bump's peak beside the bitmap's"
    assert sentence.startswith("- **Unmodifiable PTPs, from whole lifetimes: keep 4096**")
    assert "4096 -> 2048 would also break `c` (3,000)" in sentence and "`d` needs 9,000,000 pages" in sentence
    assert plot == {"shell": [0.5, 1, 1, 1], "db": [0, 0, 0, 0.5]}


def test_the_targets_section_judges_on_paired_ratios_and_shows_a_fault_as_one(tmp_path):
    import json
    from ptplab import report
    pairs = [(1.05, 1.04, 1.06, False), (1.07, 1.06, 1.08, False), (0.80, 0.78, 0.85, True)]
    files = []
    for i, (median, low, high, fault) in enumerate(pairs):
        f = native_run(tmp_path / f"p{i}.jsonl", {4096: 1000.0}, started=f"2026-12-07T00:0{i}:00+00:00", schema=8)
        recs = [json.loads(line) for line in f.read_text().splitlines()]
        recs[1:1] = [{"type": "measurement", "suite": "alloc", "bench": "bump_alloc", "impl": impl, "pool_pages": 4096,
                      "p50": p50, "params": {}} for impl, p50 in (("lab-bump", 2.0), ("bare-counter", 1.0))]
        recs.insert(-1, {"type": "ratio", "suite": "alloc", "bench": "bump_alloc", "pool_pages": 4096,
                         "ours": "lab-bump", "other": "bare-counter", "reference": "limit", "rounds": 100,
                         "median": median, "ci_low": low, "ci_high": high, "method": "m", "fault": fault})
        f.write_text("".join(json.dumps(r) + "\n" for r in recs))
        files.append(f)
    lay = sorted((REPO / "results/layouts").glob("*.json"))[:2]
    text = report.render(lay, [(f, report.read_run(f)) for f in files[:2]])
    section = text[text.index("## Speed targets"):]
    # The estimates say 2.00x (missed); the paired ratios 1.05 and 1.07: met on their mean.
    assert ("| bump allocation within 1.2x of a bare counter | 4096 | 2 | 1.050-1.070x | 1.019 | 0 | "
            "1.060x paired (2 of 2 runs) | <= 1.2x | met |") in section, section
    faulty = report.render(lay, [(f, report.read_run(f)) for f in files])
    row = next(x for x in faulty.splitlines() if x.startswith("| bump allocation within 1.2x"))
    assert row.endswith("| MEASUREMENT FAULT in 1 run(s): not judged |") and "| 1 |" in row, row
