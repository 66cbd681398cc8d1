"""Aggregation: any set of results files (RDTSC and criterion runs alike) read once and
validated; runs selected explicitly; machines side by side; a baseline against a candidate
with a stated noise rule. Native and emulated figures never meet in one comparison.

    python3 -m ptplab compare --baseline FILE... --candidate FILE... [--fail-on-regression 5%]
    python3 -m ptplab machines FILE...
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

from . import show, table
from .cli import BenchError, Parser
from .results import ResultsError

# Two-sided 95 % Student t quantiles by degrees of freedom (runs - 1); 1.96 beyond.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}

RULE = ("rule: per benchmark, the estimate of each run (median, or criterion's mean); a side's figure is the "
        "median over its runs with a 95 % confidence interval (Student t over the runs; one run: its value). "
        "The candidate moved when the ratio is beyond the threshold AND the two intervals do not overlap; "
        "otherwise the difference is within the noise. Lower is better.")


class AggregateError(Exception):
    pass


def read(paths: list[Path], lenient: bool = False) -> tuple[list[show.Run], list[str]]:
    """Runs from `paths`, and what was said about them (skipped lines, partial files). An
    invalid complete file is an error; lenient: skipped with a warning."""
    runs, notes = [], []
    for p in paths:
        skipped: list[str] | None = [] if lenient else None
        try:
            r = show.Run(p, skipped)
        except ResultsError as e:
            raise AggregateError(str(e))
        notes += skipped or []
        if r.partial:
            notes.append(f"{p}: partial (the run was cut short): figures as far as it got")
        elif r.problems:
            if not lenient:
                raise AggregateError(f"{p}: not a valid run: {r.problems[0]}")
            notes.append(f"{p}: not a valid run, left out: {r.problems[0]}")
            continue
        runs.append(r)
    return runs, notes


def machine(r: show.Run) -> str:
    """Where a run's figures come from: the CPU, and where/accel/execution."""
    brand = (r.run.get("cpu") or {}).get("brand") or "unknown CPU"
    return f"{brand.strip()} {r.run.get('where')}/{r.run.get('accel')}/{r.run.get('execution')}"


def select(runs: list[show.Run], commit: str | None = None, label: str | None = None) -> tuple[list[show.Run], list[str]]:
    """Explicit run selection: by commit or label (file name contains it) when given; by default
    the latest complete run per (machine, where, accel, suites). Returns the runs and what was left out."""
    kept, out = {}, []
    for r in sorted(runs, key=lambda r: r.key):
        if commit and not str(r.run.get("git_commit") or "").startswith(commit):
            out.append(f"{r.path.name}: commit {str(r.run.get('git_commit'))[:8]}, not {commit}")
            continue
        if label and label not in r.path.name:
            out.append(f"{r.path.name}: not labelled {label}")
            continue
        if r.partial:
            out.append(f"{r.path.name}: partial")
            continue
        suites = tuple((r.run.get("config") or {}).get("suites") or ())
        k = (machine(r), suites)
        if k in kept:
            out.append(f"{kept[k].path.name}: an older run of {machine(r)} (latest: {r.path.name})")
        kept[k] = r
    return list(kept.values()), out


def estimates(runs: list[show.Run]) -> dict[tuple, list[float]]:
    """Per benchmark key (suite, bench, impl, pool, params), each run's estimate."""
    return table.estimates([r.records for r in runs])


def interval(values: list[float]) -> tuple[float, float, float]:
    """Median over runs, and a 95 % confidence interval of the mean (one run: its value)."""
    med = statistics.median(values)
    if len(values) < 2:
        return med, med, med
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    mean = statistics.fmean(values)
    return med, mean - half, mean + half


def moved(base: tuple[float, float, float], cand: tuple[float, float, float],
          threshold: float) -> tuple[float, str]:
    """RULE, for one benchmark: the ratio candidate / baseline of the medians and its verdict
    (`REGRESSION`, `faster` or `within noise`); each side is (median, CI low, CI high)."""
    (bm, blo, bhi), (cm, clo, chi) = base, cand
    ratio = cm / bm if bm else float("inf")
    apart = clo > bhi or chi < blo
    if ratio > 1 + threshold and apart:
        return ratio, "REGRESSION"
    if ratio < 1 - threshold and apart:
        return ratio, "faster"
    return ratio, "within noise"


def execution(runs: list[show.Run]) -> str:
    kinds = {r.run.get("execution") for r in runs}
    if len(kinds) != 1:
        names = ", ".join(f"{r.path.name} ({r.run.get('execution')})" for r in runs)
        raise AggregateError(f"native and emulated runs cannot be compared: {names}")
    return kinds.pop()


def compare(base: list[show.Run], cand: list[show.Run], threshold: float) -> tuple[list[str], list[tuple]]:
    """Per benchmark both sides measured: ratio, and whether it moved beyond the noise. Returns
    the table's lines and the regressions."""
    for side, runs in (("baseline", base), ("candidate", cand)):
        if not runs:
            raise AggregateError(f"the {side} has no valid run left to compare")
    execution(base + cand)  # one kind of execution on both sides, or an error naming the files
    b, c = estimates(base), estimates(cand)
    lines = [RULE, f"threshold {threshold:.1%}; baseline {len(base)} run(s), candidate {len(cand)} run(s), "
                   f"{execution(base)}", "",
             f"{'suite':<6} {'bench':<26} {'impl':<24} {'pool':>6} {'params':<22} {'baseline':>11} {'candidate':>11} "
             f"{'ratio':>6}  verdict"]
    if len(base) < 2 or len(cand) < 2:
        lines.insert(2, "one run on a side: its noise is unknown, the threshold alone decides "
                        "(scripts/bench.sh --repeat K gives K runs)")
    regressions = []
    for k in sorted(set(b) & set(c), key=lambda k: tuple(map(str, k))):
        (bm, _, _), (cm, _, _) = bi, ci = interval(b[k]), interval(c[k])
        ratio, verdict = moved(bi, ci, threshold)
        if verdict == "REGRESSION":
            regressions.append((k, ratio))
        suite, name, impl, pool, params = k
        lines.append(f"{suite:<6} {name:<26} {impl:<24} {pool or '':>6} {params:<22} {bm:>11.3f} {cm:>11.3f} "
                     f"{ratio:>6.3f}  {verdict}")
    only = sorted(set(b) ^ set(c), key=lambda k: tuple(map(str, k)))
    if only:
        lines.append(f"\n{len(only)} benchmarks measured on one side only, not compared")
    return lines, regressions


def machines(runs: list[show.Run]) -> list[str]:
    """One column per machine (latest run of each), one table per execution kind."""
    lines = []
    for kind in sorted({r.run.get("execution") or "?" for r in runs}):
        group = [r for r in runs if (r.run.get("execution") or "?") == kind]
        cols = {machine(r): estimates([r]) for r in group}
        lines += [f"===== {kind} runs: one column per machine =====",
                  *[f"  #{i} {m} ({r.path.name})" for i, (m, r) in enumerate(zip(cols, group))], "",
                  f"{'suite':<6} {'bench':<26} {'impl':<24} {'pool':>6} {'params':<22}"
                  + "".join(f" {'#' + str(i):>11}" for i in range(len(cols)))]
        keys = sorted(set().union(*cols.values()), key=lambda k: tuple(map(str, k)))
        for k in keys:
            suite, name, impl, pool, params = k
            cells = [cols[m].get(k) for m in cols]
            lines.append(f"{suite:<6} {name:<26} {impl:<24} {pool or '':>6} {params:<22}"
                         + "".join(f" {v[0]:>11.3f}" if v else f" {'-':>11}" for v in cells))
        lines.append("")
    return lines


def percent(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / 100
    except ValueError:
        raise BenchError(f"--fail-on-regression: {text!r} is not a percentage (like 5%)")
    if not 0 <= value < 10:
        raise BenchError(f"--fail-on-regression: {text!r} is out of range (0% ... 1000%)")
    return value


def main(argv: list[str], command: str) -> int:
    ap = Parser(prog=f"python3 -m ptplab {command}", description=__doc__.split("\n\n")[0])
    if command == "compare":
        ap.add_argument("--baseline", nargs="+", required=True, metavar="FILE")
        ap.add_argument("--candidate", nargs="+", required=True, metavar="FILE")
        ap.add_argument("--threshold", default="5%", help="smallest change that counts (default 5%%)")
        ap.add_argument("--fail-on-regression", metavar="PCT",
                        help="exit 1 when a benchmark got slower by more than PCT beyond the noise")
    else:
        ap.add_argument("files", nargs="+", metavar="FILE")
        ap.add_argument("--commit", help="only runs of this commit (prefix)")
        ap.add_argument("--label", help="only files whose name contains this")
    ap.add_argument("--lenient", action="store_true", help="skip malformed lines and invalid files, with a warning")
    try:
        a = ap.parse_args(argv)
        if command == "compare":
            threshold = percent(a.fail_on_regression or a.threshold)
            base, n1 = read([Path(f) for f in a.baseline], a.lenient)
            cand, n2 = read([Path(f) for f in a.candidate], a.lenient)
            for n in n1 + n2:
                print(f"{command}: {n}", file=sys.stderr)
            lines, regressions = compare(base, cand, threshold)
            print("\n".join(lines))
            if a.fail_on_regression and regressions:
                print(f"{command}: {len(regressions)} regression(s) beyond {threshold:.1%} and the noise",
                      file=sys.stderr)
                return 1
            return 0
        runs, notes = read([Path(f) for f in a.files], a.lenient)
        runs, out = select(runs, a.commit, a.label)
        for n in notes + [f"left out: {o}" for o in out]:
            print(f"{command}: {n}", file=sys.stderr)
        if not runs:
            raise AggregateError("no run left to show")
        print("\n".join(machines(runs)))
        return 0
    except (AggregateError, BenchError) as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
