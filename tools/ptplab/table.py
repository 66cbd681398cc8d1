"""Readable tables of a run's records, with the speed targets judged on it."""
from __future__ import annotations

from . import lab
from .schema import estimate



def run_header(run: dict) -> list[str]:
    cpu = run.get("cpu") or {}
    tsc = run.get("tsc_hz")
    timer = (run.get("timer") or {}).get("kind") or (
        "criterion" if (run.get("config") or {}).get("source") == "criterion" else "rdtsc")
    lines = [
        f"where={run.get('where')} accel={run.get('accel')} execution={run.get('execution')} timer={timer} "
        f"cpu={cpu.get('brand')!r} hypervisor={cpu.get('hypervisor')} "
        + (f"tsc={tsc / 1e9:.3f} GHz ({run.get('tsc_hz_source')})" if tsc else "tsc=unknown"),
        f"commit {str(run.get('git_commit'))[:12]}{' (dirty)' if run.get('git_dirty') else ''}, "
        f"schema {run.get('schema')}, config {run.get('config')}",
    ]
    if run.get("execution") == "emulated":
        lines.append("!! EMULATED: figures come from an emulator; privileged instructions (invlpg, CR3) are "
                     "emulated, so these timings say nothing about hardware.")
    if run.get("kvm_probe"):
        lines.append(run["kvm_probe"])
    return lines


def unit_text(unit: str | None = None, per: str | None = None) -> str:
    """What a figure is: TSC ticks (RDTSC harness) or ns (criterion), per op or per page."""
    what = {"ticks": "TSC ticks", "ns": "nanoseconds (criterion)"}.get(unit or "", unit or "TSC ticks or ns")
    return f"{what} per {per or 'op or page'}"


RATIO_NOTE = [
    "x map_to = x86_64 map_to's estimate / this row's (higher: this row is that many times faster);",
    "x limit  = this row's estimate / the memset store limit's (lower: closer to the limit, 1.0 = at it).",
    "estimate = the median (RDTSC) or criterion's mean estimate; ratios compare contenders of one run.",
    "The speed targets are judged on the paired ratios below where a run has them (contenders timed in",
    "interleaved rounds: the median of the rounds' ratios), else on these ratios of estimates.",
]


def grid(rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    """The one table layout of the tools: the first row is the header, each column as wide as
    its widest cell, the columns in `right` right-aligned (numbers), the others left-aligned."""
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return [" ".join(f"{str(c):>{w}}" if i in right else f"{str(c):<{w}}" for i, (c, w) in enumerate(zip(r, widths)))
            .rstrip() for r in rows]


def num(v, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def varying(ms: list[dict]) -> dict[int, str]:
    """Per measurement (by id), the parameters that vary within its benchmark (a sweep's N, page
    size...), as `k=v`: what tells its rows apart."""
    by_bench: dict[tuple, list[dict]] = {}
    for m in ms:
        by_bench.setdefault((m.get("suite"), m.get("bench")), []).append(m)
    out = {}
    for group in by_bench.values():
        params = [m.get("params") if isinstance(m.get("params"), dict) else {} for m in group]
        keys = [k for k in dict.fromkeys(k for p in params for k in p)
                if k != "measures" and len({repr(p[k]) for p in params if k in p}) > 1]
        for m, p in zip(group, params):
            out[id(m)] = " ".join(f"{k}={p[k]}" for k in keys if k in p)
    return out


def measurement_rows(records: list[dict], percentiles: bool = False) -> list[str]:
    ms = [r for r in records if r.get("type") == "measurement"]
    # One peer and one limit per benchmark and pool (the map suite's); swept rows have none.
    peers = {(m["bench"], m.get("pool_pages"), m["impl"]): m for m in ms}
    PEER, LIMIT = lab.contender("peer_map"), lab.contender("store_limit")
    swept = varying(ms)
    head = ["suite", "bench", "pool", "impl", "params", "unit/per", "n", "p50", "mean"]
    head += ["p90", "p99"] if percentiles else []
    rows = [head + ["x map_to", "x limit"]]
    for m in ms:
        key = (m["bench"], m.get("pool_pages"))
        peer, limit = peers.get(key + (PEER,)), peers.get(key + (LIMIT,))
        ours = estimate(m)
        # No ratio where none applies: the peer against itself, the limit against anything.
        applies = m["impl"] not in (PEER, LIMIT) and ours
        vs_peer = f"{estimate(peer) / ours:.1f}" if peer and applies else ""
        vs_limit = f"{ours / estimate(limit):.2f}" if limit and applies and estimate(limit) else ""
        row = [m["suite"], m["bench"], m.get("pool_pages") or "", m["impl"], swept.get(id(m), ""),
               f"{m.get('unit')}/{m['per']}", m.get("n") if m.get("n") is not None else "-",
               num(m.get("p50")), num(m.get("mean"))]
        row += [num(m.get("p90")), num(m.get("p99"))] if percentiles else []
        rows.append(row + [vs_peer, vs_limit])
    right = {2, 6, 7, 8} | ({9, 10, 11, 12} if percentiles else {9, 10})
    return grid(rows, right)


def job_targets(run: dict) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for the targets on whole bench-kernel runs, which the bench
    job times (declared in lab/ptp-lab/src/target.rs)."""
    if run.get("where") != "kernel":
        return []
    cfg = run.get("config") or {}
    out = []
    for t in lab.facts()["job_targets"]:
        value = run.get(t["field"])
        if value is None or (t["accels"] and run.get("accel") not in t["accels"]) or any(
                want is not None and got != want for want, got in ((t["quick"], cfg.get("quick")),
                                                                   (t["mode"], cfg.get("mode")))):
            continue
        out.append((t["name"], f"{value:.2f} s", "MET" if value <= t["at_most_s"] else "MISSED"))
    return out


def target_rows(records: list[dict]) -> list[tuple[str, str, str]]:
    out = []
    for t in (r for r in records if r.get("type") == "target"):
        verdict = {True: "MET", False: "MISSED", None: t.get("note") or "not judged"}[t.get("met")]
        name = t["name"] + (f" (pool {t['pool_pages']})" if t.get("pool_pages") else "")
        paired = f" [{t['ci_low']:.2f}-{t['ci_high']:.2f}], paired" if t.get("rounds") else ""
        out.append((f"{name}, want {t['want']}", f"{t['ratio']:.2f}x{paired}", verdict))
    return out


def ratio_rows(records: list[dict]) -> list[str]:
    """The paired ratios of a run (schema 8 on): each contender against its benchmark's peer or
    limit, from the rounds in which both were timed; a fault where a limit was beaten."""
    rs = [r for r in records if r.get("type") == "ratio"]
    if not rs:
        return []
    rows = [["bench", "pool", "ours", "other", "ref", "rounds", "ours/other", "95 % interval", ""]]
    for r in rs:
        rows.append([r["bench"], r.get("pool_pages") or "", r["ours"], r["other"], r["reference"], r["rounds"],
                     f"{r['median']:.3f}", f"{r['ci_low']:.3f}-{r['ci_high']:.3f}",
                     "FAULT: faster than its limit" if r.get("fault") else ""])
    return ["", f"paired ratios ({rs[0]['method']}):"] + grid(rows, {1, 5, 6})


def render(records: list[dict], percentiles: bool = False) -> str:
    run = next((r for r in records if r.get("type") == "run"), {})
    ms = [r for r in records if r.get("type") == "measurement"]
    units = {m.get("unit") for m in ms}
    pers = {m.get("per") for m in ms}
    figures = unit_text(next(iter(units)) if len(units) == 1 else None, next(iter(pers)) if len(pers) == 1 else None)
    lines = run_header(run) + ["", f"figures: {figures}", *RATIO_NOTE, ""]
    lines += measurement_rows(records, percentiles)
    lines += ratio_rows(records)
    checks = [r for r in records if r.get("type") == "check"]
    failed = [c for c in checks if not c.get("ok")]
    lines += ["", f"checks: {len(checks) - len(failed)} ok, {len(failed)} failed"]
    lines += [f"  FAILED {c.get('suite', 'boot')}/{c['name']} (pool {c.get('pool_pages')}): {c.get('detail')}"
              for c in failed]
    skips = [r for r in records if r.get("type") == "skip"]
    if skips:
        lines.append(f"skipped: {len(skips)}")
        lines += [f"  {s.get('suite')}/{s['bench']} (pool {s.get('pool_pages')}): {s['reason']}" for s in skips]
    for x in (r for r in records if r.get("type") == "crossover" and r.get("bench") == lab.bench("shootdown")):
        lines.append(f"Shootdown crossover (one target CPU, IPI + its flush + refill, {x['unit']} per round): its "
                     f"full flush wins from N* = {x['n_star']} pages, so targets flush page by page up to "
                     f"{x['ceiling']}")
    for x in (r for r in records if r.get("type") == "crossover" and r.get("bench") != lab.bench("shootdown")):
        fixed = ", ".join(f"{c}: {v['regret']:.0f}" for c, v in x["fixed_ceilings"].items())
        lines.append(f"TLB crossover ({x['page_size']}, {x['per_page']} vs {x['full']}, {x['unit']} per round): "
                     f"the full flush wins from N* = {x['n_star']} pages, so flush page by page up to "
                     f"{x['ceiling']}; fixed ceilings cost (summed extra per round) {fixed}; calibrated ceiling "
                     f"{x['calibrated_ceiling']} in {x['calibration_ticks']} ticks, at worst "
                     f"{x['calibrated_worst_excess']:.2f}x the best choice")
    t = target_rows(records) + job_targets(run)
    if t:
        lines.append("speed targets:")
        lines += ["  " + x for x in grid([["target", "measured", "verdict"], *map(list, t)], {1})]
    return "\n".join(lines)


def estimates(runs: list[list[dict]]) -> dict[tuple, list[float]]:
    """Per benchmark key (suite, bench, impl, pool, params), each run's estimate."""
    rows: dict[tuple, list[float]] = {}
    for records in runs:
        for m in (r for r in records if r.get("type") == "measurement"):
            value = estimate(m)
            if value is not None:
                rows.setdefault((m["suite"], m["bench"], m["impl"], m.get("pool_pages"), json_key(m.get("params"))),
                                []).append(value)
    return rows


def spread(runs: list[list[dict]]) -> str:
    """Run-to-run spread of each measurement's estimate over repeated runs of one plan: the
    median of the runs, and (max - min) / median."""
    import statistics
    rows = {k: [v for v in values if v] for k, values in estimates(runs).items()}
    rows = {k: values for k, values in rows.items() if values}
    grid_rows = [["suite", "bench", "impl", "pool", "params", "median", "spread"]]
    for (suite, bench, imp, pool, params), values in rows.items():
        med = statistics.median(values)
        grid_rows.append([suite, bench, imp, pool or "", params, f"{med:.3f}", f"{(max(values) - min(values)) / med:.1%}"])
    return "\n".join([f"run-to-run spread over {len(runs)} runs (estimates: medians, or criterion's means)"]
                     + grid(grid_rows, {3, 5, 6}))


def json_key(params) -> str:
    """The parameters that tell measurements of one contender apart (pages, page size, targets...):
    all of them but `measures`, which only describes."""
    if not isinstance(params, dict):
        return ""
    return " ".join(f"{k}={v}" for k, v in params.items() if k != "measures")
