# %% [markdown]
# # How big should a PTP be, and what does each size cost?
#
# Reads every complete run in `results/` and, for each kind of run separately (where /
# accel / execution: native and emulated figures are never mixed), answers:
# 1. what building a modifiable PTP costs per pool size, and how many pool pages its
#    self-map takes (N/512 + 2, from the kernel's checks);
# 2. what mapping 1 GiB (4 KiB pages) and 64 GiB (2 MiB pages) costs per page, ours against
#    the x86_64 crate's map_to, per pool size;
# 3. how much of each pool those mappings use.
#
# Executed by `scripts/test.sh` (notebooks/test_notebooks.py), so it never goes stale.
# Run it yourself: `python3 notebooks/pool_size.py [results/*.jsonl]`.

# %%
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT / "tools"))
from ptplab import lab  # noqa: E402  (the lab's own capacity model, asked through ptp-host)


def tables_needed() -> dict[str, int]:
    """Pool pages each benchmark mapping takes (vystem_ptp::predict_tables, via `ptp-host capacity`)."""
    return {m["bench"]: m["tables"] for m in lab.capacity((lab.facts()["pool_pages"]["standard"],))["mappings"]}


def self_map_tables(pools: list[int]) -> dict[int, int]:
    """Pool pages the self-map of a modifiable PTP takes, built by the lab at each size."""
    return {int(n): t for n, t in lab.capacity(tuple(pools))["self_map_tables"].items()}


def load_runs(paths: list[Path]) -> dict[tuple, list[list[dict]]]:
    """Complete runs (ending in an end record), grouped by (where, accel, execution)."""
    groups: dict[tuple, list[list[dict]]] = defaultdict(list)
    for p in paths:
        if p.name.endswith(".partial.jsonl"):
            continue
        recs = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        if not recs or recs[0].get("type") != "run" or recs[-1].get("type") != "end":
            continue
        run = recs[0]
        if run.get("config", {}).get("source") == "criterion" or run.get("timer", {}).get("kind") == "criterion":
            continue  # criterion reports ns, not ticks; the README quotes those
        groups[(run.get("where"), run.get("accel"), run.get("execution"))].append(recs)
    return groups


def ptp_build_cost(runs: list[list[dict]]) -> dict[int, dict[str, float]]:
    """pool pages -> {modifiable, unmodifiable}: median ticks per build, best run."""
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for recs in runs:
        for r in recs:
            if r.get("type") == "measurement" and r.get("bench") == "ptp_build":
                cur = out[r["pool_pages"]].get(r["impl"])
                out[r["pool_pages"]][r["impl"]] = r["p50"] if cur is None else min(cur, r["p50"])
    return dict(out)


def map_cost(runs: list[list[dict]]) -> dict[tuple[str, int], dict[str, float]]:
    """(bench, pool pages) -> impl -> median ticks per page, best run."""
    out: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for recs in runs:
        for r in recs:
            if r.get("type") == "measurement" and r.get("bench") in tables_needed():
                key = (r["bench"], r["pool_pages"])
                cur = out[key].get(r["impl"])
                out[key][r["impl"]] = r["p50"] if cur is None else min(cur, r["p50"])
    return dict(out)


def pool_share(bench: str, pool_pages: int) -> float:
    """Fraction of a pool the mapping's tables take."""
    return tables_needed()[bench] / pool_pages


def report(groups: dict[tuple, list[list[dict]]]) -> str:
    lines = []
    for (where, accel, execution), runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        lines.append(f"== {where} / {accel} / {execution}: {len(runs)} run(s)")
        if execution == "emulated":
            lines.append("   (emulated: compare contenders within a row, never with native figures)")
        build = ptp_build_cost(runs)
        if build:
            lines.append("   PTP build, ticks (p50): pool pages, modifiable, unmodifiable, self-map table pages")
            self_map = self_map_tables(sorted(build))
            for n in sorted(build):
                b = build[n]
                lines.append(f"   {n:>6} {b.get('modifiable', float('nan')):>12.0f} "
                             f"{b.get('unmodifiable', float('nan')):>12.0f} {self_map[n]:>6}")
        mc = map_cost(runs)
        if mc:
            lines.append("   mapping, ticks per page (p50): bench, pool, map_range, map_to, ratio, pool share")
            for (bench, n), impls in sorted(mc.items()):
                ours, peer = impls.get("lab-map_range"), impls.get("x86_64-map_to")
                ratio = f"{peer / ours:.1f}x" if ours and peer else "-"
                lines.append(f"   {bench:<16} {n:>6} {ours or float('nan'):>9.3f} {peer or float('nan'):>9.3f} "
                             f"{ratio:>7} {pool_share(bench, n):>7.1%}")
    return "\n".join(lines) if lines else "no complete runs found"


# %%
if __name__ == "__main__":
    paths = [Path(a) for a in sys.argv[1:]] or sorted(RESULTS.glob("*.jsonl"))
    print(report(load_runs(paths)))
