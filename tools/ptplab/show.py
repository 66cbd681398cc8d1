"""Show recorded runs: a list (one line per run, sorted by time and number), one run's table, or
several runs side by side. Native and emulated figures are never put in one table."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from . import schema
from .cli import BenchError, Parser
from .results import RESULTS, ResultsError, load
from .table import grid, json_key, num, render, unit_text


def natural(name: str) -> list:
    """`...-tcg-10` after `...-tcg-2`; a name without a number is its first (1)."""
    stem = name.removesuffix(".jsonl").removesuffix(".partial")
    if not re.search(r"-\d+$", stem):
        stem += "-1"
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", stem)]


def pools_text(pools) -> str:
    return ",".join(map(str, pools)) if isinstance(pools, list) else str(pools if pools is not None else "-")


class Run:
    def __init__(self, path: Path, skipped: list[str] | None = None):
        self.path = path
        self.records = load(path, skipped)
        self.partial = path.name.endswith(".partial.jsonl")
        self.problems = schema.validate(self.records)
        self.run = self.records[0] if self.records and self.records[0].get("type") == "run" else {}

    @property
    def key(self) -> tuple:
        return (self.run.get("started_utc") or "", natural(self.path.name))

    @property
    def kind(self) -> tuple:
        return (self.run.get("where"), self.run.get("accel"), self.run.get("execution"))

    HEADER = ["file", "state", "where/accel/execution", "timer", "pools", "measurements", "commit"]

    def cells(self) -> list[str]:
        """Its row in the list of runs (HEADER)."""
        r, cfg = self.run, self.run.get("config") or {}
        timer = (r.get("timer") or {}).get("kind") or ("criterion" if cfg.get("source") == "criterion" else "rdtsc")
        n = sum(x.get("type") == "measurement" for x in self.records)
        state = "PARTIAL" if self.partial else ("ok" if not self.problems else "INVALID")
        return [self.path.name, state, f"{r.get('where')}/{r.get('accel')}/{r.get('execution')}", str(timer),
                pools_text(cfg.get("pool_pages")), str(n), str(r.get("git_commit"))[:8]]


def compare(runs: list[Run]) -> str:
    """One row per (suite, bench, impl, pool, params), one column per run: the estimate each
    measured (a sweep's rows apart by their parameters)."""
    rows: dict[tuple, dict[int, dict]] = {}
    for i, r in enumerate(runs):
        for m in (x for x in r.records if x.get("type") == "measurement"):
            key = (m["suite"], m["bench"], m["impl"], m.get("pool_pages"), json_key(m.get("params")))
            rows.setdefault(key, {})[i] = m
    lines = grid([["#", "run"], *([f"#{i}", f"{r.path.name} ({r.run.get('where')}/{r.run.get('accel')}, schema "
                                             f"{r.run.get('schema')})"] for i, r in enumerate(runs))])
    lines.append("estimate per op or page: criterion's mean (ns), else the median (TSC ticks); ratio = last / first")
    cells_rows = [["suite", "bench", "impl", "pool", "params", "unit"] + [f"#{i}" for i in range(len(runs))] + ["ratio"]]
    for (suite, bench_name, imp, pool, params), cells in sorted(rows.items(), key=lambda kv: tuple(map(str, kv[0]))):
        vals = [schema.estimate(cells[i]) if i in cells else None for i in range(len(runs))]
        unit = next(c.get("unit", "") for c in cells.values())
        ratio = f"{vals[-1] / vals[0]:.2f}" if vals[0] and vals[-1] else ""
        cells_rows.append([suite, bench_name, imp, pool or "", params, unit] + [num(v) for v in vals] + [ratio])
    right = {3} | set(range(6, 7 + len(runs)))
    return "\n".join(lines + [""] + grid(cells_rows, right))


def main(argv: list[str]) -> int:
    ap = Parser(prog="python3 -m ptplab show",
                      description="Show recorded runs. Without FILE: every file in results/. One run (a single "
                                  "FILE, or --latest) is shown as its table; several are listed, or put side by "
                                  "side with --compare. Native and emulated runs are never mixed in one table.")
    ap.add_argument("files", nargs="*", metavar="FILE", help="results files (default: results/*.jsonl)")
    ap.add_argument("--latest", action="store_true", help="the newest run of the files (after --where/--accel)")
    ap.add_argument("--compare", action="store_true", help="the runs side by side, one column each")
    ap.add_argument("--where", choices=["kernel", "host"], help="only runs made there")
    ap.add_argument("--accel", help="only runs with this accel (kvm, tcg, bare-metal, none)")
    ap.add_argument("--percentiles", action="store_true", help="add p90 and p99 to a run's table")
    ap.add_argument("--lenient", action="store_true",
                    help="skip malformed lines and records that fail their check, with a warning")
    try:
        a = ap.parse_args(argv)
        paths = [Path(f) for f in a.files] or sorted(RESULTS.glob("*.jsonl"))
        if not paths:
            raise ResultsError("no results files")
        skipped: list[str] | None = [] if a.lenient else None
        runs = sorted((Run(p, skipped) for p in paths), key=lambda r: r.key)
        for note in skipped or []:
            print(f"show: warning: {note}", file=sys.stderr)
    except (ResultsError, BenchError) as e:
        print(f"show: error: {e}", file=sys.stderr)
        return 2
    runs = [r for r in runs if (a.where is None or r.run.get("where") == a.where)
            and (a.accel is None or r.run.get("accel") == a.accel)]
    if not runs:
        print("show: no run matches", file=sys.stderr)
        return 1
    bad = [r for r in runs if r.problems and not r.partial]
    for r in bad:
        print(f"show: {r.path}: not a valid run: {r.problems[0]}", file=sys.stderr)
    if a.latest:
        runs = runs[-1:]
    if len(runs) == 1:
        r = runs[0]
        print(f"--- {r.path}" + (" (PARTIAL: the run was cut short; figures as far as it got)" if r.partial else ""))
        print(render(r.records, percentiles=a.percentiles))
    elif a.compare:
        kinds = {}
        for r in runs:
            kinds.setdefault(r.run.get("execution"), []).append(r)
        for execution, group in kinds.items():
            print(f"===== {execution} runs =====")
            print(compare(group))
            print()
    else:
        print(f"{len(runs)} runs, oldest first ({unit_text()}); one run: show FILE or --latest; "
              "side by side: --compare FILE...")
        print("\n".join(grid([Run.HEADER, *(r.cells() for r in runs)], {5})))
    return 1 if bad else 0
