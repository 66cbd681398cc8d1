"""Aggregation (`ptplab compare`, `ptplab machines`): valid, malformed, truncated and partial
files; native and emulated never compared; a regression and a non-regression; two machines."""
import json
import subprocess

from ptplab import lab

from test_nothing_lost import ENV, PTPLAB, run_file


def make(path, p50, execution="native", brand="CPU A", partial=False, started="2026-11-24T10:00:00+00:00"):
    run_file(path, started, p50, partial=partial)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs[0].update(execution=execution, accel="kvm" if execution == "native" else "tcg", cpu={"brand": brand})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def ptplab(*argv):
    return subprocess.run(PTPLAB + [*map(str, argv)], env=ENV, capture_output=True, text=True)


def row(text, impl="lab-bump"):
    return next(line for line in text.splitlines() if f" {impl} " in line).split()


def test_a_regression_beyond_the_noise_fails_and_a_non_regression_passes(tmp_path):
    base = [make(tmp_path / f"b{i}.jsonl", v) for i, v in enumerate([10.0, 10.2, 9.9])]
    slow = [make(tmp_path / f"s{i}.jsonl", v) for i, v in enumerate([12.0, 12.1, 11.9])]
    same = [make(tmp_path / f"n{i}.jsonl", v) for i, v in enumerate([10.1, 9.8, 10.3])]
    p = ptplab("compare", "--baseline", *base, "--candidate", *slow, "--fail-on-regression", "5%")
    assert p.returncode == 1 and "1 regression(s) beyond 5.0%" in p.stderr, p.stdout + p.stderr
    assert row(p.stdout)[-2:] == ["1.196", "REGRESSION"] and "rule:" in p.stdout
    p = ptplab("compare", "--baseline", *base, "--candidate", *same, "--fail-on-regression", "5%")
    assert p.returncode == 0 and row(p.stdout)[-3:] == ["1.003", "within", "noise"], p.stdout
    # The ratio is of the means: 12.0 / 10.033 and 10.067 / 10.033.
    # Beyond the threshold but inside the noise (the runs scatter more than they moved): not a regression.
    wide = [make(tmp_path / f"w{i}.jsonl", v) for i, v in enumerate([6.0, 14.0, 13.5])]
    p = ptplab("compare", "--baseline", *base, "--candidate", *wide, "--fail-on-regression", "5%")
    assert p.returncode == 0 and row(p.stdout)[-2:] == ["within", "noise"] and row(p.stdout)[-3] == "1.113"


def test_native_and_emulated_are_never_compared(tmp_path):
    p = ptplab("compare", "--baseline", make(tmp_path / "n.jsonl", 1.0),
               "--candidate", make(tmp_path / "e.jsonl", 9.0, execution="emulated"))
    assert p.returncode == 2 and "native and emulated runs cannot be compared" in p.stderr, p.stderr
    assert "e.jsonl (emulated)" in p.stderr and "n.jsonl (native)" in p.stderr


def test_malformed_and_truncated_lines_name_file_and_line_and_lenient_skips_them(tmp_path):
    good = make(tmp_path / "good.jsonl", 1.0)
    cut = make(tmp_path / "cut.jsonl", 1.0)
    cut.write_text(cut.read_text()[:-20])  # the end record cut off mid-line
    bad = make(tmp_path / "bad.jsonl", 1.0)
    lines = bad.read_text().splitlines()
    bad.write_text("\n".join(lines[:1] + ["{not json"] + lines[1:]) + "\n")
    for f, line in ((cut, 4), (bad, 2)):
        p = ptplab("compare", "--baseline", good, "--candidate", f)
        assert p.returncode == 2 and f"{f}:{line}: not a JSON object" in p.stderr, p.stderr
    p = ptplab("compare", "--baseline", good, "--candidate", bad, "--lenient")
    assert p.returncode == 0 and f"{bad}:2: not a JSON object, skipped" in p.stderr, p.stderr
    p = ptplab("compare", "--baseline", good, "--candidate", cut, "--lenient")
    assert p.returncode == 2 and f"{cut}: not a valid run, left out" in p.stderr, p.stderr
    assert "the candidate has no valid run left to compare" in p.stderr


def test_bad_threshold_is_named(tmp_path):
    f = make(tmp_path / "a.jsonl", 1.0)
    p = ptplab("compare", "--baseline", f, "--candidate", f, "--fail-on-regression", "five")
    assert p.returncode == 2 and "--fail-on-regression: 'five' is not a percentage" in p.stderr


def test_two_machines_side_by_side_latest_per_machine_partial_said(tmp_path):
    a_old = make(tmp_path / "a1.jsonl", 5.0, brand="CPU A", started="2026-11-24T09:00:00+00:00")
    a_new = make(tmp_path / "a2.jsonl", 4.0, brand="CPU A", started="2026-11-24T11:00:00+00:00")
    b = make(tmp_path / "b.jsonl", 7.0, brand="CPU B")
    cut = make(tmp_path / "c.partial.jsonl", 1.0, brand="CPU C", partial=True)
    emu = make(tmp_path / "e.jsonl", 99.0, execution="emulated", brand="CPU A")
    p = ptplab("machines", a_old, a_new, b, cut, emu)
    assert p.returncode == 0, p.stderr
    native = p.stdout[p.stdout.index("===== native"):]
    assert "CPU A kernel/kvm/native (a2.jsonl)" in native and "CPU B kernel/kvm/native (b.jsonl)" in native
    assert row(native)[-2:] == ["4.000", "7.000"], native
    assert "99.000" not in native and "===== emulated" in p.stdout
    assert "left out: a1.jsonl: an older run of CPU A" in p.stderr and f"{cut}: partial" in p.stderr
    assert "left out: c.partial.jsonl: partial" in p.stderr


# Two-sided 95 % Student t quantiles (t_{0.975, df}), from published tables.
T975 = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 5: 2.570582, 10: 2.228139, 11: 2.200985,
        30: 2.042272, 100: 1.983972, 1000: 1.962339}


def test_student_t_quantiles_are_exact_at_every_degree_of_freedom():
    from ptplab import aggregate
    for df, t in T975.items():
        assert abs(aggregate.t_quantile(0.975, df) - t) < 1e-6, (df, aggregate.t_quantile(0.975, df), t)
    # other levels: one-sided 95 % at 1 and 10 df; the median of t is 0
    assert abs(aggregate.t_quantile(0.95, 1) - 6.313752) < 1e-6
    assert abs(aggregate.t_quantile(0.95, 10) - 1.812461) < 1e-6
    assert aggregate.t_quantile(0.5, 7) == 0.0


def test_twelve_runs_get_the_t_of_eleven_degrees_of_freedom_not_1_96():
    from ptplab import aggregate
    values = [10.0, 11.0] * 6  # stdev 0.5222, mean 10.5
    fig, lo, hi = aggregate.interval(values)
    half = 2.200985 * 0.5222329678670935 / 12 ** 0.5
    assert fig == 10.5 and abs((hi - lo) / 2 - half) < 1e-6, (fig, lo, hi)


def test_the_figure_is_the_mean_its_interval_belongs_to():
    from ptplab import aggregate
    fig, lo, hi = aggregate.interval([10.0, 10.0, 13.0])  # median 10, mean 11
    assert fig == 11.0 and lo < 11.0 < hi and abs((lo + hi) / 2 - 11.0) < 1e-12


def test_order_statistics_cover_the_median_only_from_six_runs():
    from ptplab import aggregate
    assert aggregate.median_coverage(3) == 0.75  # the range of 3 runs
    assert aggregate.median_coverage(5) == 0.9375
    assert aggregate.median_coverage(6) == 0.96875  # ranks 1 and 6
    assert aggregate.median_coverage(10, rank=2) == 1 - 2 * (1 + 10) / 2 ** 10


def test_one_run_on_a_side_says_too_few_runs_not_within_noise(tmp_path):
    base = [make(tmp_path / f"b{i}.jsonl", v) for i, v in enumerate([10.0, 10.2, 9.9])]
    one = make(tmp_path / "one.jsonl", 20.0)
    p = ptplab("compare", "--baseline", *base, "--candidate", one, "--fail-on-regression", "5%")
    assert row(p.stdout)[-6:] == ["too", "few", "runs", "for", "an", "interval"], p.stdout
    assert "REGRESSION" not in p.stdout and "within noise" not in row(p.stdout)
    # not a regression beyond the noise (the noise is unknown): the exit says so on stderr, exit 0
    assert p.returncode == 0 and "too few runs for an interval" in p.stderr, p.stderr


def test_the_rule_line_names_the_figure_the_interval_and_the_minimum_runs(tmp_path):
    base = [make(tmp_path / f"b{i}.jsonl", v) for i, v in enumerate([10.0, 10.0, 13.0])]
    p = ptplab("compare", "--baseline", *base, "--candidate", *base)
    assert p.returncode == 0, p.stderr
    rule = next(line for line in p.stdout.splitlines() if line.startswith("rule:"))
    assert "mean over its runs" in rule and "Student t" in rule and "at least 2 runs" in rule, rule
    assert row(p.stdout)[-5] == "11.000", p.stdout  # the mean, not the median (10)


def host_run(path, bump, bare=1.0):
    run_file(path, "2026-11-24T10:00:00+00:00", bump)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs[0].update(where="host", accel="none", execution="native")
    recs[2].update(impl="bare-counter", **{k: bare for k in ("min", "p50", "p90", "p99", "max", "mean")})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_targets_are_judged_on_the_ratio_of_the_means_over_the_repeats(tmp_path):
    one, two = host_run(tmp_path / "a.jsonl", 1.1), host_run(tmp_path / "b.jsonl", 1.4)
    out = ptplab("targets", one, two)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("bump allocation within 1.2x"))
    # Each run 1.10x and 1.40x; the means 1.25 / 1.0: missed, though one run alone met it.
    assert line.split()[-12:] == ["2", "1.100-1.400x", "1.273", "0", "1.250x", "ratio", "of", "the", "means", "<=",
                                  "1.2x", "MISSED"], line
    assert "1 target(s) missed over 2 run(s)" in out.stderr
    alone = next(x for x in ptplab("targets", one).stdout.splitlines() if x.startswith("bump allocation"))
    assert alone.split()[-1] == "met"
    assert "in-kernel" not in out.stdout, "kernel targets are not judged on host runs"
    emulated = make(tmp_path / "e.jsonl", 1.0, execution="emulated")
    mixed = ptplab("targets", one, emulated)
    assert mixed.returncode == 2 and "native and emulated" in mixed.stderr


def paired_run(path, bump, median, low, high, fault=False):
    """A schema-8 host run whose bump and bare counter were timed in rounds: their estimates,
    and the paired ratio the targets are judged on."""
    host_run(path, bump)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs[0].update(schema=8, device=None)
    kinds = lab.facts()["record_kinds"]["ratio"]
    ratio = {"type": "ratio", **{k: None for k in kinds}, "suite": "alloc", "bench": "bump_alloc", "pool_pages": 64,
             "ours": "lab-bump", "other": "bare-counter", "reference": "limit", "rounds": 100, "median": median,
             "ci_low": low, "ci_high": high, "method": "m", "fault": fault}
    recs.insert(3, ratio)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_targets_are_judged_on_the_paired_ratios_and_never_on_a_fault(tmp_path):
    # Estimates 1.1 and 1.4 (their means: missed), paired 1.10 and 1.20: met on the paired mean 1.15.
    one = paired_run(tmp_path / "a.jsonl", 1.1, 1.10, 1.08, 1.12)
    two = paired_run(tmp_path / "b.jsonl", 1.4, 1.20, 1.18, 1.22)
    out = ptplab("targets", one, two)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("bump allocation within 1.2x"))
    assert line.split()[-13:] == ["2", "1.100-1.200x", "1.091", "0", "1.150x", "paired", "(2", "of", "2", "runs)",
                                  "<=", "1.2x", "met"], line
    assert "paired ratios where the runs have them" in out.stdout
    # Faster than the limit beyond its interval: a measurement fault, not a figure met.
    bad = paired_run(tmp_path / "c.jsonl", 0.8, 0.80, 0.78, 0.90, fault=True)
    out = ptplab("targets", one, bad)
    line = next(x for x in out.stdout.splitlines() if x.startswith("bump allocation within 1.2x"))
    assert line.endswith("MEASUREMENT FAULT in 1 run(s): not judged"), line
    cells = line.split()
    assert cells[cells.index("1.375") + 1] == "1", f"one run below 1.0 against its limit: {line}"
    assert "0 target(s) missed" in out.stderr
    shown = subprocess.run(PTPLAB + ["show", str(bad)], env=ENV, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "FAULT: faster than its limit" in shown.stdout, shown.stdout
