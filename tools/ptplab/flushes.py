"""`python3 -m ptplab flushes TRACE... [--costs FILE] [--json]`: the TLB flushes real programs
ask for, from lifetime traces (folders as `replay` takes them), per process and per class: how
many pages each flush changes (4 KiB pages; and 2 MiB pages where aligned), and how many were
made while the process had more than one thread (a shootdown on SMP). With `--costs` (a results
file with the TLB suite of one CPU): per class, the expected cost per flush of every ceiling on
that CPU, the ceiling that costs least, and what Linux's 33 and the CPU-only calibrated ceiling
cost against it; the same for shootdowns where the file has IPI round trips."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from . import lab, lifetimes, replay, results
from .cli import BenchError, Parser
from .table import grid

# What the address-space model counts as a flush, and what a syscall trace cannot show.
COUNTED = ("a flush is one call that changes mapped pages, of the pages it changes: munmap, mprotect, "
           "madvise that drops pages (DONTNEED, FREE, REMOVE), mremap, MAP_FIXED over mapped pages, brk that "
           "shrinks, shmdt; none where the call changes no mapped page")
NOT_SEEN = ("what a syscall trace cannot see: page reclaim and swap, copy-on-write faults (and fork's "
            "write-protection of the parent), NUMA and compaction migration, the flush at exit, and which pages a "
            "program ever touched (the model maps whole ranges, so a flush counts every page of its range)")
LINUX = 33
# The ceilings the text shows a class's expected cost at (the JSON has every one that changes it).
SHOWN = (0, 1, 2, 4, 8, 16, 32, LINUX, 64, 128, 256, 512)
# The 2014 measurement behind Linux's 33 (linux-mm, "[RFC][PATCH 6/6] x86: mm: set TLB flush
# tunable to sane value", 18 February 2014): flush_tlb_mm_range() calls during a kernel compile.
KERNEL_COMPILE_2014 = {"one_page": 56.92, "what": "flush_tlb_mm_range() calls during a kernel compile (2014), "
                                                  "every cause: munmap, mprotect, madvise, COW, reclaim, migration"}
BUCKETS = ((1, 1), (2, 4), (5, 16), (17, 33), (34, 64), (65, 512), (513, None))


class FlushesError(Exception):
    pass


def add(into: dict[str, int], hist: dict[str, int]) -> None:
    for k, v in hist.items():
        into[k] = into.get(k, 0) + v


def merge(rows: list[dict]) -> dict:
    """The flush counts of several processes, summed."""
    out = {"4KiB": {}, "2MiB": {}, "threaded": {"4KiB": {}, "2MiB": {}}, "threads": {}}
    for r in rows:
        f = r["flushes"]
        add(out["4KiB"], f["4KiB"])
        add(out["2MiB"], f["2MiB"])
        add(out["threaded"]["4KiB"], f["threaded"]["4KiB"])
        add(out["threaded"]["2MiB"], f["threaded"]["2MiB"])
        add(out["threads"], f["threads"])
    for h in (out["4KiB"], out["2MiB"], out["threaded"]["4KiB"], out["threaded"]["2MiB"], out["threads"]):
        items = sorted(h.items(), key=lambda kv: int(kv[0]))
        h.clear()
        h.update(items)
    return out


def total(hist: dict[str, int]) -> int:
    return sum(hist.values())


def share(hist: dict[str, int], lo: int, hi: int | None) -> float:
    n = total(hist)
    return 100 * sum(v for k, v in hist.items() if int(k) >= lo and (hi is None or int(k) <= hi)) / n if n else 0.0


def median(hist: dict[str, int]) -> int | None:
    n, seen = total(hist), 0
    for k, v in sorted(hist.items(), key=lambda kv: int(kv[0])):
        seen += v
        if 2 * seen >= n:
            return int(k)
    return None


def classes(rows: list[dict]) -> dict[str, dict]:
    """Per class (and "all"): its programs, processes, and flushes summed."""
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["class"] or "unclassified"].append(r)
    out = {c: {"programs": len({r["trace"] for r in rs}), "processes": len(rs), "flushes": merge(rs)}
           for c, rs in sorted(by.items())}
    out["all"] = {"programs": len({r["trace"] for r in rows}), "processes": len(rows), "flushes": merge(rows)}
    return out


def tlb_file(path: Path) -> dict:
    """One CPU's flush + refill rounds from a results file: the 4 KiB crossover of local flushes,
    and of shootdowns by IPI where the run had a second CPU."""
    try:
        recs = results.load(path)
    except results.ResultsError as e:
        raise FlushesError(f"--costs: {e}")
    return cpu_of(path, recs)


def cpu_of(path: Path, recs: list[dict]) -> dict:
    """The CPU's rounds from the records of the results file at `path`."""
    pick = lambda role: next((r for r in recs if r.get("type") == "crossover" and r.get("page_size") == "4KiB"  # noqa
                              and r.get("bench") == lab.bench(role)), None)
    local = pick("crossover")
    if local is None:
        raise FlushesError(f"{path}: no 4 KiB crossover record (a kernel run with the tlb suite has one: "
                           "scripts/bench.sh --suite tlb)")
    r0 = recs[0]
    return {"source": results.source(path), "cpu": (r0.get("cpu") or {}).get("brand"),
            "execution": r0.get("execution"), "accel": r0.get("accel"), "local": local,
            "shootdown": pick("shootdown")}


def ask(cross: dict, work: dict[str, list]) -> dict:
    """ptp-host's answer (vystem_ptp::flush::calibrate_for) for each workload on `cross`'s rounds."""
    question = {"costs": [list(t) for t in zip(cross["sizes"], cross["per_page_costs"], cross["full_costs"])],
                "ceilings": sorted({*SHOWN, cross["calibrated_ceiling"]}), "workloads": work}
    return lab.ask("flush-costs", stdin=json.dumps(question)) | {"calibrated": cross["calibrated_ceiling"],
                                                                   "strategies": [cross["per_page"], cross["full"]]}


def pairs(hist: dict[str, int]) -> list[list[int]]:
    return [[int(pages), n] for pages, n in hist.items()]


def costs(cpu: dict, per_class: dict[str, dict]) -> dict:
    """Per class: its flushes costed on the CPU's local rounds, and its flushes made while
    multi-threaded on the CPU's shootdown rounds (None where the file has none)."""
    return {"local": ask(cpu["local"], {c: pairs(v["flushes"]["4KiB"]) for c, v in per_class.items()}),
            "shootdown": ask(cpu["shootdown"], {c: pairs(v["flushes"]["threaded"]["4KiB"])
                                                for c, v in per_class.items()}) if cpu["shootdown"] else None}


def label(cpu: dict) -> str:
    emu = cpu["execution"] != "native"
    return (f"{cpu['cpu']} ({cpu['execution']}{', ' + cpu['accel'] if cpu.get('accel') else ''}; "
            f"`{cpu['source']}`)" + (": emulated, so these costs show the method, not what your hardware pays"
                                     if emu else ""))


def ceiling_rows(answer: dict, classes_: list[str]) -> list[list]:
    """Per class: flushes, the best ceiling, and what 33 and the calibrated ceiling cost over it."""
    cal = answer["calibrated"]
    out = [["class", "flushes", "best ceiling", "per flush at best", f"Linux's {LINUX}: per flush, extra",
            f"calibrated ({cal}): per flush, extra"]]
    for c in classes_:
        w = answer["workloads"][c]
        if not w["best"]:
            out.append([c, w["flushes"], "-", "-", "-", "-"])
            continue
        b = w["best"]
        span = f"{b['ceiling']}" + (f" (to {b['same_up_to']})" if b["same_up_to"] > b["ceiling"] else "")
        extra = lambda n: f"{w['at'][str(n)]:,.0f}, +{100 * (w['at'][str(n)] / b['cost'] - 1):.1f} %"  # noqa: E731
        out.append([c, f"{w['flushes']:,}", span, f"{b['cost']:,.0f}", extra(LINUX), extra(cal)])
    return out


def section(rows: list[dict], path: Path, recs: list[dict]) -> tuple[list[str], str, dict | None]:
    """The report's "TLB flush, from your workloads": per class the distribution, the best
    ceiling on the CPU of the TLB run at `path` (its records `recs`), and what Linux's 33 and the CPU-only
    calibrated ceiling cost over it; the recommendation's sentence; what the plot draws."""
    per_class = classes(rows)
    try:
        cpu = cpu_of(path, recs)
        answer = costs(cpu, per_class)
    except (FlushesError, lab.LabError) as e:
        return ["## TLB flush, from your workloads", "", f"Not costed: {e}.", ""], "", None
    local, shot = answer["local"], answer["shootdown"]
    cal = local["calibrated"]
    L = ["## TLB flush, from your workloads", "",
         f"The flushes of {per_class['all']['programs']} programs' whole lifetimes (`results/traces`, "
         f"`python3 -m ptplab flushes`): {COUNTED}. Not counted, {NOT_SEEN}. Costed on {label(cpu)}, "
         f"per flush, flush + refill in TSC ticks ({local['rule']}; `vystem_ptp::flush::calibrate_for`).", "",
         f"| class | flushes | 1 page | <= {LINUX} | > 512 | best ceiling | per flush at best "
         f"| Linux's {LINUX}: extra | calibrated on the CPU alone ({cal}): extra |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c, v in per_class.items():
        h, w = v["flushes"]["4KiB"], local["workloads"][c]
        if not w["best"]:
            L.append(f"| {c} | 0 | - | - | - | - | - | - | - |")
            continue
        b = w["best"]
        extra = lambda n: f"+{w['at'][str(n)] - b['cost']:,.0f} ({100 * (w['at'][str(n)] / b['cost'] - 1):.1f} %)"  # noqa
        span = f"{b['ceiling']}" + (f" (to {b['same_up_to']})" if b["same_up_to"] > b["ceiling"] else "")
        L.append(f"| {'**all**' if c == 'all' else c} | {w['flushes']:,} | {share(h, 1, 1):.1f} % "
                 f"| {share(h, 1, LINUX):.1f} % | {share(h, 513, None):.1f} % | {span} | {b['cost']:,.0f} "
                 f"| {extra(LINUX)} | {extra(cal)} |")
    build = per_class.get("build")
    if build:
        L += ["", f"Against the source of Linux's 33: {share(build['flushes']['4KiB'], 1, 1):.2f} % of the build "
                  f"class's flushes change one page, where the 2014 kernel compile measured "
                  f"{KERNEL_COMPILE_2014['one_page']} %. They count different things: ours, the calls a syscall trace "
                  f"shows, each flushing every page of its range; 2014's, {KERNEL_COMPILE_2014['what']}."]
    if shot:
        L += ["", f"Shootdowns, the flushes made while the process had more than one thread, costed on the run's IPI "
                  f"rounds ({' / '.join(shot['strategies'])}):", "",
              "| class | threaded flushes | best ceiling | per flush at best | Linux's 33: extra "
              f"| calibrated ({shot['calibrated']}): extra |", "| --- | --- | --- | --- | --- | --- |"]
        for row in ceiling_rows(shot, list(per_class))[1:]:
            L.append("| " + " | ".join(str(x) for x in row) + " |")
    else:
        L += ["", "Shootdowns: the TLB run had one CPU, so no IPI rounds (`scripts/bench.sh --suite tlb --cpus 2`)."]
    L += ["", "Your programs and CPU: `scripts/capture-traces.sh NAME -- COMMAND`, `scripts/bench.sh --suite tlb`, "
              "then `python3 -m ptplab flushes TRACES... --costs RESULTS.jsonl`.", ""]
    a = local["workloads"]["all"]
    sentence = ""
    if a["best"]:
        b = a["best"]
        pct = lambda n: f"+{100 * (a['at'][str(n)] / b['cost'] - 1):.1f} %"  # noqa: E731
        same = f"; any up to {b['same_up_to']} the same" if b["same_up_to"] > b["ceiling"] else ""
        sentence = (f" Weighted by what {per_class['all']['programs']} programs flush, take ceiling {b['ceiling']}: "
                    f"it costs least ({b['cost']:,.0f} ticks per flush{same}); Linux's 33 costs "
                    f"{pct(LINUX)} and the CPU-only calibration ({cal}) {pct(cal)} on these workloads; per class: "
                    + ", ".join(f"{c} {local['workloads'][c]['best']['ceiling']}" for c in per_class
                                if c != "all" and local["workloads"][c]["best"]) + ".")
    plot = {"hists": {c: v["flushes"]["4KiB"] for c, v in per_class.items()},
            "ceilings": {"best for all": a["best"]["ceiling"] if a["best"] else 0, "Linux": LINUX,
                         "calibrated": cal}, "cpu": f"{cpu['cpu']} ({cpu['execution']})"}
    return L, sentence, plot


def curve_rows(answer: dict, classes_: list[str]) -> list[list]:
    """Per class, the expected cost per flush at each of SHOWN (up to the largest ceiling)."""
    shown = [c for c in SHOWN if c <= answer["largest_ceiling"]]
    out = [["class", *map(str, shown)]]
    for c in classes_:
        at = answer["workloads"][c].get("at") or {}
        out.append([c, *(f"{at[str(n)]:,.0f}" if at.get(str(n)) is not None else "-" for n in shown)])
    return out


def main(argv: list[str]) -> int:
    ap = Parser(prog="python3 -m ptplab flushes", description=__doc__.split("\n\n")[0])
    ap.add_argument("traces", nargs="+", metavar="TRACE")
    ap.add_argument("--costs", metavar="FILE", help="a results file with the TLB suite of one CPU")
    ap.add_argument("--json", action="store_true", help="JSON Lines: each process, each class, each class's costs")
    try:
        a = ap.parse_args(argv)
        paths = replay.expand([Path(p) for p in a.traces])
        for p in paths:
            if not p.exists():
                raise FlushesError(f"{p}: no such file or folder")
        rows = lifetimes.rows(paths, lab.facts()["pool_pages"]["sweep"])
        per_class = classes(rows)
        cpu = tlb_file(Path(a.costs)) if a.costs else None
        answer = costs(cpu, per_class) if cpu else None
    except (BenchError, FlushesError, replay.ReplayError, lab.LabError) as e:
        print(f"flushes: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        for r in rows:
            print(json.dumps({"type": "process", "trace": r["trace"], "class": r["class"], "space": r["space"],
                              "program": r["program"], "flushes": r["flushes"]}))
        for c, v in per_class.items():
            print(json.dumps({"type": "class", "class": c, **v}))
        if answer:
            for c in per_class:
                print(json.dumps({"type": "ceiling", "class": c, "cpu": cpu["cpu"], "execution": cpu["execution"],
                                  "source": cpu["source"], "rule": answer["local"]["rule"],
                                  **{k: None if a is None else {"calibrated": a["calibrated"],
                                                                "strategies": a["strategies"], **a["workloads"][c]}
                                     for k, a in answer.items()}}))
        return 0
    print(f"Flushes per process and class, from the replay's address-space model: {COUNTED}.")
    print(f"Not in these counts, {NOT_SEEN}.\n")
    cells = [["trace", "space", "program", "flushes", "1 page", "<= 33", "> 512", "largest", "2 MiB: 1",
              "threaded", "threads (most)"]]
    for r in rows:
        f = r["flushes"]
        n = total(f["4KiB"])
        if not n:
            continue
        cells.append([r["trace"], r["space"], r["program"], n, f"{share(f['4KiB'], 1, 1):.0f} %",
                      f"{share(f['4KiB'], 1, LINUX):.0f} %", f"{share(f['4KiB'], 513, None):.0f} %",
                      max(map(int, f["4KiB"])), f"{share(f['2MiB'], 1, 1):.0f} %", total(f["threaded"]["4KiB"]),
                      max(map(int, f["threads"]), default="-")])
    quiet = sum(1 for r in rows if not total(r["flushes"]["4KiB"]))
    print("\n".join(grid(cells, set(range(3, 11)))))
    print(f"({quiet} of {len(rows)} processes made no flush; '2 MiB: 1': flushes of one invalidation with 2 MiB "
          "pages where aligned; threaded: flushes while more than one thread shared the address space)\n")
    cells = [["class", "programs", "processes", "flushes", *(f"{lo}" if lo == hi else f"{lo}-{hi}" if hi else f">{lo - 1}"
                                                           for lo, hi in BUCKETS), "median", "threaded"]]
    for c, v in per_class.items():
        h = v["flushes"]["4KiB"]
        cells.append([c, v["programs"], v["processes"], total(h), *(f"{share(h, lo, hi):.1f} %" for lo, hi in BUCKETS),
                      median(h) or "-", f"{100 * total(v['flushes']['threaded']['4KiB']) / max(total(h), 1):.0f} %"])
    print("Per class, the share of flushes by pages changed (4 KiB pages):")
    print("\n".join(grid(cells, set(range(1, 13)))))
    build = per_class.get("build")
    if build:
        print(f"\nbuild: {share(build['flushes']['4KiB'], 1, 1):.2f} % of flushes change one page (these traces: "
              f"calls a syscall trace shows); 2014 kernel compile: {KERNEL_COMPILE_2014['one_page']} % "
              f"({KERNEL_COMPILE_2014['what']})")
    if answer:
        local, shot = answer["local"], answer["shootdown"]
        print(f"\nExpected cost per flush (TSC ticks, flush + refill) on {label(cpu)}. Rule: {local['rule']}. "
              f"Ceilings from 0 to {local['largest_ceiling']}; 'to N': every ceiling up to N costs the same.")
        print("\n".join(grid(ceiling_rows(local, list(per_class)), {1})))
        print("\nExpected cost per flush at each ceiling (TSC ticks; a ceiling costs what the size flushed at or "
              "below it costs):")
        print("\n".join(grid(curve_rows(local, list(per_class)), set(range(1, len(SHOWN) + 1)))))
        if shot:
            print(f"\nShootdowns (the flushes made while multi-threaded), costed on the same run's IPI rounds "
                  f"({' / '.join(shot['strategies'])}: the IPI, the target's flush + refill, every acknowledgement; "
                  f"ceilings from 0 to {shot['largest_ceiling']}):")
            print("\n".join(grid(ceiling_rows(shot, list(per_class)), {1})))
            print("\n".join(grid(curve_rows(shot, list(per_class)), set(range(1, len(SHOWN) + 1)))))
        else:
            print("\nShootdowns: the file has no IPI rounds (one CPU came up; scripts/bench.sh --suite tlb --cpus 2 "
                  "measures them).")
    return 0
