"""Aggregation: any set of results files (RDTSC and criterion runs alike) read once and
validated; runs selected explicitly; machines side by side; a baseline against a candidate
with a stated noise rule. Native and emulated figures never meet in one comparison.

    python3 -m ptplab compare --baseline FILE... --candidate FILE... [--fail-on-regression 5%]
    python3 -m ptplab machines FILE...

The noise rule (RULE) reports, per benchmark and side, the MEAN of the runs' estimates with a
95 % confidence interval of that mean from Student's t with runs - 1 degrees of freedom,
computed exactly (t_quantile: the regularized incomplete beta function inverted by bisection,
standard library only). The interval belongs to the figure reported. Why the mean and not the
median: a distribution-free interval for the median from order statistics reaches 95 % only
from 6 runs on (median_coverage: 3 runs, their range covers 75 %; 5 runs 93.75 %; 6 runs
96.9 %), while the recorded sets (results/, `scripts/bench.sh --repeat 3`) have 3 runs; the
t interval of the mean needs 2. With fewer than MIN_RUNS runs on a side the verdict is "too
few runs for an interval", never "within noise", and it is not counted as a regression.
"""
from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

from . import lab, show, table
from .cli import BenchError, Parser
from .results import ResultsError
from .schema import estimate

MIN_RUNS = 2  # per side, for a t interval of the mean
TOO_FEW = "too few runs for an interval"

RULE = ("rule: per benchmark, the estimate of each run (median, or criterion's mean); a side's figure is the "
        "mean over its runs with a 95 % confidence interval of that mean (Student t, runs - 1 degrees of "
        f"freedom); an interval needs at least {MIN_RUNS} runs on a side, with fewer the verdict is "
        f"\"{TOO_FEW}\". The candidate moved when the ratio of the means is beyond the threshold AND the two "
        "intervals do not overlap; otherwise the difference is within the noise. Lower is better.")


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + aa * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p quantile of Student's t with df degrees of freedom, by bisection on t_cdf (to ~1e-12)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"t_quantile: p {p} must be in (0, 1) and df {df} positive")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def median_coverage(n: int, rank: int = 1) -> float:
    """How often [x_(rank), x_(n+1-rank)] of n runs covers the true median (any continuous
    distribution): 1 - 2 P(Binomial(n, 1/2) < rank). Why the rule is not the median: 6 runs
    are the fewest whose range covers 95 %."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(rank)) / 2 ** n


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
    """Where a run's figures come from: the CPU, and where/accel/execution; and the device when
    the run names one (a LAVA job), with its type and how it booted, so two servers with the
    same CPU stay two machines."""
    brand = (r.run.get("cpu") or {}).get("brand") or "unknown CPU"
    name = f"{brand.strip()} {r.run.get('where')}/{r.run.get('accel')}/{r.run.get('execution')}"
    device = r.run.get("device") or {}
    if device.get("hostname"):
        name += f" on {device['hostname']}"
        kind = ", ".join(str(device[k]) for k in ("device_type", "boot") if device.get(k))
        if kind:
            name += f" ({kind})"
    return name


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


def interval(values: list[float]) -> tuple[float, float, float] | tuple[float, None, None]:
    """RULE's figure: the mean over runs and a 95 % confidence interval of it (Student t,
    len - 1 df); fewer than MIN_RUNS values: (mean, None, None), no interval."""
    mean = statistics.fmean(values)
    if len(values) < MIN_RUNS:
        return mean, None, None
    half = t_quantile(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def moved(base: tuple, cand: tuple, threshold: float) -> tuple[float, str]:
    """RULE, for one benchmark: the ratio candidate / baseline of the means and its verdict
    (`REGRESSION`, `faster`, `within noise`, or TOO_FEW when a side has no interval); each side
    is interval()'s (mean, CI low, CI high)."""
    (bm, blo, bhi), (cm, clo, chi) = base, cand
    ratio = cm / bm if bm else float("inf")
    if None in (blo, bhi, clo, chi):
        return ratio, TOO_FEW
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


# What names a benchmark's row in compare and machines (the key of `estimates`).
KEY_HEADER = ["suite", "bench", "impl", "pool", "params"]


def key_cells(k: tuple) -> list[str]:
    suite, name, impl, pool, params = k
    return [str(suite), str(name), str(impl), str(pool or ""), str(params)]


def compare(base: list[show.Run], cand: list[show.Run], threshold: float) -> tuple[list[str], list[tuple], list]:
    """Per benchmark both sides measured: ratio, and whether it moved beyond the noise. Returns
    the table's lines, the regressions, and the benchmarks with too few runs for an interval."""
    for side, runs in (("baseline", base), ("candidate", cand)):
        if not runs:
            raise AggregateError(f"the {side} has no valid run left to compare")
    execution(base + cand)  # one kind of execution on both sides, or an error naming the files
    b, c = estimates(base), estimates(cand)
    lines = [RULE, f"threshold {threshold:.1%}; baseline {len(base)} run(s), candidate {len(cand)} run(s), "
                   f"{execution(base)}", ""]
    if len(base) < MIN_RUNS or len(cand) < MIN_RUNS:
        lines.insert(2, f"fewer than {MIN_RUNS} runs on a side: its noise is unknown, no verdict beyond "
                        f"\"{TOO_FEW}\" (scripts/bench.sh --repeat K gives K runs)")
    rows = [[*KEY_HEADER, "baseline", "candidate", "ratio", "verdict"]]
    regressions, too_few = [], []
    for k in sorted(set(b) & set(c), key=lambda k: tuple(map(str, k))):
        (bm, _, _), (cm, _, _) = bi, ci = interval(b[k]), interval(c[k])
        ratio, verdict = moved(bi, ci, threshold)
        if verdict == "REGRESSION":
            regressions.append((k, ratio))
        elif verdict == TOO_FEW:
            too_few.append(k)
        rows.append([*key_cells(k), f"{bm:.3f}", f"{cm:.3f}", f"{ratio:.3f}", verdict])
    lines += table.grid(rows, {3, 5, 6, 7})
    only = sorted(set(b) ^ set(c), key=lambda k: tuple(map(str, k)))
    if only:
        lines.append(f"\n{len(only)} benchmarks measured on one side only, not compared")
    return lines, regressions, too_few


def machines(runs: list[show.Run]) -> list[str]:
    """One column per machine (latest run of each), one table per execution kind."""
    lines = []
    for kind in sorted({r.run.get("execution") or "?" for r in runs}):
        group = [r for r in runs if (r.run.get("execution") or "?") == kind]
        cols = {machine(r): estimates([r]) for r in group}
        lines += [f"===== {kind} runs: one column per machine =====",
                  *[f"  #{i} {m} ({r.path.name})" for i, (m, r) in enumerate(zip(cols, group))], ""]
        rows = [[*KEY_HEADER, *(f"#{i}" for i in range(len(cols)))]]
        for k in sorted(set().union(*cols.values()), key=lambda k: tuple(map(str, k))):
            rows.append([*key_cells(k), *(f"{v[0]:.3f}" if v else "-" for v in (cols[m].get(k) for m in cols))])
        lines += table.grid(rows, {3} | set(range(5, 5 + len(cols))))
        lines.append("")
    return lines


def paired(records: list[dict], bench: str, ours: str, other: str, pool) -> dict | None:
    """The run's paired ratio of `ours` to `other` (a `ratio` record: schema 8 on, contenders
    timed in interleaved rounds), or None."""
    return next((r for r in records if r.get("type") == "ratio" and r.get("bench") == bench
                 and r.get("ours") == ours and r.get("other") == other and r.get("pool_pages") == pool), None)


PAIRED_RULE = ("judged on paired ratios where the runs have them (each run: the median of its per-round ratios, "
               "contenders timed in interleaved rounds, with a 95 % interval from order statistics); over the "
               "runs, the mean of the runs' ratios, their spread max/min beside it. Runs without them (criterion, "
               "files before schema 8): the ratio of the means of the estimates. A run in which ours beat a limit "
               "it cannot beat, beyond its interval, is a measurement fault: the target is not judged on it.")


def judged(runs: list[list[dict]], places: set, native: bool) -> tuple[list[list[str]], int]:
    """Every speed target (`ptp-host facts`) over runs of one kind (each a run's records), per
    pool size: the rows of its table and how many were missed. Kernel targets on native runs
    only (PAIRED_RULE says how)."""
    rows = [["target", "pool", "runs", "each run", "spread", "below 1.0", "judged on", "want", "verdict"]]
    missed = 0
    for t in lab.facts()["targets"]:
        if t["on"] not in places:
            continue  # a kernel target on host runs, or the other way
        op, x = t["want"].split()
        want = float(x.rstrip("x"))
        faster = op == ">="
        pools = sorted({m.get("pool_pages") for recs in runs for m in recs if m.get("type") == "measurement"
                        and m.get("bench") == t["bench"] and m.get("impl") == t["ours"]}, key=str)
        for pool in pools:
            def first(recs, impl):
                return next((estimate(m) for m in recs if m.get("type") == "measurement"
                             and m.get("bench") == t["bench"] and m.get("impl") == impl
                             and m.get("pool_pages") == pool), None)
            pairs = [p for recs in runs if (p := paired(recs, t["bench"], t["ours"], t["other"], pool))]
            if pairs:
                each = [1 / p["median"] if faster else p["median"] for p in pairs]
                value, how = statistics.fmean(each), f"paired ({len(pairs)} of {len(runs)} runs)"
                faults = sum(bool(p.get("fault")) for p in pairs)
            else:
                est = [(o, q) for recs in runs if (o := first(recs, t["ours"])) and (q := first(recs, t["other"]))]
                if not est:
                    continue
                ratio = (lambda o, q: q / o) if faster else (lambda o, q: o / q)
                each = [ratio(o, q) for o, q in est]
                value = ratio(statistics.fmean(o for o, _ in est), statistics.fmean(q for _, q in est))
                how, faults = "ratio of the means", 0
            if t["on"] == "kernel" and not native:
                verdict = "not judged (emulated)"
            elif faults:
                verdict = f"MEASUREMENT FAULT in {faults} run(s): not judged"
            else:
                ok = value >= want if faster else value <= want
                missed += not ok
                verdict = "met" if ok else "MISSED"
            # Against a limit ("within"), a run below 1.0 beat what it cannot beat.
            below = "-" if faster else str(sum(r < 1.0 for r in each))
            rows.append([t["name"], str(pool), str(len(each)), f"{min(each):.3f}-{max(each):.3f}x",
                         f"{max(each) / min(each):.3f}", below, f"{value:.3f}x {how}", t["want"], verdict])
    return rows, missed


def targets(runs: list[show.Run]) -> tuple[list[str], int]:
    """The target table judged over runs of one kind ([`judged`]). Returns the lines and how
    many were missed."""
    execution(runs)  # native and emulated never judged together
    native = runs[0].run.get("execution") == "native"
    rows, missed = judged([r.records for r in runs], {r.run.get("where") for r in runs}, native)
    return [PAIRED_RULE, ""] + table.grid(rows, {1, 2, 4, 5}), missed


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
            lines, regressions, too_few = compare(base, cand, threshold)
            print("\n".join(lines))
            if too_few:
                print(f"{command}: {len(too_few)} benchmark(s) with {TOO_FEW} (fewer than {MIN_RUNS} runs on a "
                      "side): not judged, not counted as regressions", file=sys.stderr)
            if a.fail_on_regression and regressions:
                print(f"{command}: {len(regressions)} regression(s) beyond {threshold:.1%} and the noise",
                      file=sys.stderr)
                return 1
            return 0
        runs, notes = read([Path(f) for f in a.files], a.lenient)
        # Targets take every run given (the repeats); machines the latest per machine.
        runs, out = select(runs, a.commit, a.label) if command == "machines" else (runs, [])
        for n in notes + [f"left out: {o}" for o in out]:
            print(f"{command}: {n}", file=sys.stderr)
        if not runs:
            raise AggregateError("no run left to show")
        if command == "targets":
            lines, missed = targets(runs)
            print("\n".join(lines))
            print(f"{command}: {missed} target(s) missed over {len(runs)} run(s)", file=sys.stderr)
            return 0
        print("\n".join(machines(runs)))
        return 0
    except (AggregateError, BenchError) as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
