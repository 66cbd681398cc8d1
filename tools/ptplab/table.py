"""Readable tables of a run's records, with the speed targets judged on it."""
from __future__ import annotations

from . import lab
from .schema import estimate

PEER = "x86_64-map_to"
LIMIT = "memset-limit"


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


def fmt(v, width: int, digits: int = 3) -> str:
    return f"{v:>{width}.{digits}f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"


def unit_text(unit: str | None = None, per: str | None = None) -> str:
    """What a figure is: TSC ticks (RDTSC harness) or ns (criterion), per op or per page."""
    what = {"ticks": "TSC ticks", "ns": "nanoseconds (criterion)"}.get(unit or "", unit or "TSC ticks or ns")
    return f"{what} per {per or 'op or page'}"


RATIO_NOTE = [
    "x map_to = x86_64 map_to's estimate / this row's (higher: this row is that many times faster);",
    "x limit  = this row's estimate / the memset store limit's (lower: closer to the limit, 1.0 = at it).",
    "estimate = the median (RDTSC) or criterion's mean estimate; ratios compare contenders of one run.",
]


def measurement_rows(records: list[dict], percentiles: bool = False) -> list[str]:
    ms = [r for r in records if r.get("type") == "measurement"]
    peers = {(m["bench"], m.get("pool_pages"), m["impl"]): m for m in ms}
    extra = f" {'p90':>10} {'p99':>10}" if percentiles else ""
    out = [f"{'suite':<6} {'bench':<27} {'pool':>6} {'impl':<22} {'unit/per':<10} {'n':>4} {'p50':>10} "
           f"{'mean':>10}{extra} {'x map_to':>9} {'x limit':>8}"]
    for m in ms:
        peer = peers.get((m["bench"], m.get("pool_pages"), PEER))
        limit = peers.get((m["bench"], m.get("pool_pages"), LIMIT))
        ours = estimate(m)
        # No ratio where none applies: the peer against itself, the limit against anything.
        applies = m["impl"] not in (PEER, LIMIT) and ours
        vs_peer = f"{estimate(peer) / ours:.1f}" if peer and applies else ""
        vs_limit = f"{ours / estimate(limit):.2f}" if limit and applies and estimate(limit) else ""
        unit = f"{m.get('unit')}/{m['per']}"
        n = m.get("n") if m.get("n") is not None else "-"
        more = f" {fmt(m.get('p90'), 10)} {fmt(m.get('p99'), 10)}" if percentiles else ""
        out.append(f"{m['suite']:<6} {m['bench']:<27} {m.get('pool_pages') or '':>6} {m['impl']:<22} {unit:<10} "
                   f"{n:>4} {fmt(m.get('p50'), 10)} {fmt(m.get('mean'), 10)}{more} {vs_peer:>9} {vs_limit:>8}")
    return out


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
        out.append((f"{name}, want {t['want']}", f"{t['ratio']:.2f}x", verdict))
    return out


def render(records: list[dict], percentiles: bool = False) -> str:
    run = next((r for r in records if r.get("type") == "run"), {})
    ms = [r for r in records if r.get("type") == "measurement"]
    units = {m.get("unit") for m in ms}
    pers = {m.get("per") for m in ms}
    figures = unit_text(next(iter(units)) if len(units) == 1 else None, next(iter(pers)) if len(pers) == 1 else None)
    lines = run_header(run) + ["", f"figures: {figures}", *RATIO_NOTE, ""]
    lines += measurement_rows(records, percentiles)
    checks = [r for r in records if r.get("type") == "check"]
    failed = [c for c in checks if not c.get("ok")]
    lines += ["", f"checks: {len(checks) - len(failed)} ok, {len(failed)} failed"]
    lines += [f"  FAILED {c.get('suite', 'boot')}/{c['name']} (pool {c.get('pool_pages')}): {c.get('detail')}"
              for c in failed]
    skips = [r for r in records if r.get("type") == "skip"]
    if skips:
        lines.append(f"skipped: {len(skips)}")
        lines += [f"  {s.get('suite')}/{s['bench']} (pool {s.get('pool_pages')}): {s['reason']}" for s in skips]
    for x in (r for r in records if r.get("type") == "crossover" and r.get("bench") == "tlb_shootdown"):
        lines.append(f"Shootdown crossover (one target CPU, IPI + its flush + refill, {x['unit']} per round): its "
                     f"full flush wins from N* = {x['n_star']} pages, so targets flush page by page up to "
                     f"{x['ceiling']}")
    for x in (r for r in records if r.get("type") == "crossover" and r.get("bench") != "tlb_shootdown"):
        fixed = ", ".join(f"{c}: {v['regret']:.0f}" for c, v in x["fixed_ceilings"].items())
        lines.append(f"TLB crossover ({x['page_size']}, {x['per_page']} vs {x['full']}, {x['unit']} per round): "
                     f"the full flush wins from N* = {x['n_star']} pages, so flush page by page up to "
                     f"{x['ceiling']}; fixed ceilings cost (summed extra per round) {fixed}; calibrated ceiling "
                     f"{x['calibrated_ceiling']} in {x['calibration_ticks']} ticks, at worst "
                     f"{x['calibrated_worst_excess']:.2f}x the best choice")
    t = target_rows(records) + job_targets(run)
    if t:
        lines.append("speed targets:")
        lines += [f"  {name:<100} {measured:>9}  {verdict}" for name, measured, verdict in t]
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
    lines = [f"run-to-run spread over {len(runs)} runs (estimates: medians, or criterion's means)",
             f"{'suite':<6} {'bench':<26} {'impl':<26} {'pool':>6} {'params':<28} {'median':>11} {'spread':>7}"]
    for (suite, bench, imp, pool, params), values in rows.items():
        med = statistics.median(values)
        lines.append(f"{suite:<6} {bench:<26} {imp:<26} {pool or '':>6} {params:<28} {med:>11.3f} "
                     f"{(max(values) - min(values)) / med:>6.1%}")
    return "\n".join(lines)


def json_key(params) -> str:
    """The parameters that tell measurements of one contender apart (pages, page size)."""
    if not isinstance(params, dict):
        return ""
    return " ".join(f"{k}={params[k]}" for k in ("pages", "page_size", "fill_pct") if k in params)
