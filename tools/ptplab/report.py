"""The decision report: should the standard pool size (4096 pages) change, and what changes at N?

Markdown, from three sources, each named where it is used:
- the real layouts in results/layouts (which processes fit, with 4 KiB and with 2 MiB pages);
- the lab's capacity model (`ptp-host pool-limits`: the largest region a pool maps, the kernel
  mappings it holds beside its self-map);
- recorded runs (what building a PTP and the bitmap cost per pool size): the latest complete
  native host run that measured them and its repeats (same machine, commit and sweep:
  `scripts/bench.sh --host --repeat K`), unless files are given. Several runs give the mean of
  the runs' medians with its 95 % confidence interval (Student t), and each difference from 4096
  is judged by aggregate's noise rule (aggregate.RULE: at least aggregate.MIN_RUNS runs, or "too
  few runs for an interval").
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import aggregate, flushes, lab, layouts, lifetimes, plots, replay, results
from .cli import BenchError, Parser
from .results import RESULTS, ResultsError, load

STANDARD = 4096
# The costs that change with N: (bench, impl, column heading).
# (benchmark role, contender role, column heading): names by role, from lab/ptp-lab/src/suites/roles.rs.
COST_ROLES = [("pool_build", "modifiable_ptp", "build a modifiable PTP"),
              ("bitmap_init", "bitmap", "bitmap from the bootloader's counter"),
              ("bitmap_alloc_full", "bitmap", "bitmap alloc at 95 %")]


def costs() -> list[tuple[str, str, str]]:
    """The costs that change with N as (bench, impl, heading)."""
    return [(lab.bench(b), lab.contender(c), heading) for b, c, heading in COST_ROLES]
THRESHOLD = 0.05  # the smallest change from 4096 the report calls a difference
KIB = 1024


def mib(pages: int) -> str:
    return f"{pages * lab.PAGE / 2**20:g} MiB"


def size(nbytes: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= scale:
            v = nbytes / scale
            return f"{v:.0f} {unit}" if v >= 100 else f"{v:.3g} {unit}"
    return f"{nbytes} B"


def layout_needs(paths: list[Path]) -> list[tuple[str, int, int, int | None]]:
    """(name, pool pages with 4 KiB, with 2 MiB, Linux's VmPTE pages) per layout."""
    out = []
    for p in paths:
        lay = layouts.read(p)
        f = layouts.pool_pages(lay)
        pte = None if lay.vm_pte_kib is None else lay.vm_pte_kib * KIB // lab.PAGE
        out.append((lay.name, f["4KiB"]["predicted"], f["2MiB"]["predicted"], pte))
    return out


def usable(recs: list[dict]) -> bool:
    """A complete, native host run (RDTSC) that measured PTP builds: what the costs come from."""
    run = recs[0] if recs else {}
    if (run.get("type") != "run" or run.get("where") != "host" or run.get("execution") != "native"
            or recs[-1].get("type") != "end" or (run.get("timer") or {}).get("kind") != "rdtsc"):
        return False
    return any(r.get("bench") == lab.bench("pool_build") and r.get("type") == "measurement" for r in recs)


def same_set(r: dict) -> tuple:
    """What repeats of one run share: machine, commit, configuration, where and how it ran."""
    return ((r.get("cpu") or {}).get("brand"), r.get("git_commit"), r.get("git_dirty"), r.get("config"),
            r.get("where"), r.get("execution"), (r.get("timer") or {}).get("kind"))


def brand(recs: list[dict]) -> str:
    return str((recs[0].get("cpu") or {}).get("brand") or "unknown CPU").strip()


def has_tlb(recs: list[dict]) -> bool:
    return any(r.get("type") == "crossover" for r in recs)


@dataclass
class Selection:
    """Which runs each section of the report takes, and every file it left out with the reason."""
    costs: list[tuple[Path, list[dict]]] = field(default_factory=list)
    tlb: tuple[Path, list[dict]] | None = None
    left_out: list[tuple[Path, str]] = field(default_factory=list)
    # Lines of the files used or left out that --lenient skipped (file:line: why).
    skipped: list[str] = field(default_factory=list)


def select(paths: list[Path], machine: str | None = None, tlb_file: Path | None = None,
           lenient: bool = False) -> Selection:
    """Each section takes the runs it can use: the costs the newest native host run of one machine
    (the newest machine, or `machine`, a part of its CPU brand) and its repeats; the TLB section
    the newest kernel run with crossover records, native preferred (or `tlb_file`). Every other
    file is left out with the reason (a file with a malformed line among them, unless `lenient`,
    which skips such lines and lists them). Fails (BenchError) only when nothing is usable."""
    sel = Selection()
    runs = []

    def read(p: Path) -> list[dict]:
        return read_run(p, sel.skipped if lenient else None)

    for p in dict.fromkeys(paths):
        try:
            recs = read(p)
        except (ResultsError, OSError) as e:
            sel.left_out.append((p, f"unreadable: {e}"))
            continue
        if not recs or recs[0].get("type") != "run":
            sel.left_out.append((p, "does not start with a run record"))
        elif p.name.endswith(".partial.jsonl") or recs[-1].get("type") != "end":
            sel.left_out.append((p, "a partial run (no end record): its figures may be cut short"))
        else:
            runs.append((p, recs))
    native = [(p, recs) for p, recs in runs if usable(recs)]
    if machine is not None:
        mine = [(p, recs) for p, recs in native if machine.lower() in brand(recs).lower()]
        if not mine:
            brands = sorted({brand(recs) for _, recs in native})
            raise BenchError(f"--machine {machine!r}: no native host run of such a machine among the files "
                             f"(machines: {', '.join(brands) or 'none'})")
        native = mine
    if native:
        newest = max(native, key=lambda x: x[1][0].get("started_utc", ""))
        sel.costs = sorted([x for x in native if same_set(x[1][0]) == same_set(newest[1][0])],
                           key=lambda x: x[1][0].get("started_utc", ""))
    if tlb_file is not None:
        recs = read(tlb_file)
        if not has_tlb(recs):
            raise BenchError(f"--tlb {tlb_file}: no crossover records (a kernel run with the tlb suite has them)")
        sel.tlb = (tlb_file, recs)
    else:
        tlbs = [x for x in runs if has_tlb(x[1])]
        pick = [x for x in tlbs if x[1][0].get("execution") == "native"] or tlbs
        sel.tlb = max(pick, key=lambda x: x[1][0].get("started_utc", ""), default=None)
    used = {p for p, _ in sel.costs} | ({sel.tlb[0]} if sel.tlb else set())
    chosen = sel.costs[-1][1] if sel.costs else None
    for p, recs in runs:
        if p not in used:
            sel.left_out.append((p, why_left_out(recs, chosen, sel.tlb, machine)))
    if not sel.costs and sel.tlb is None:
        raise BenchError("no usable run among the files (the costs need a complete native host run, "
                         "scripts/bench.sh --host; the TLB section a kernel run with the tlb suite): "
                         + "; ".join(f"{p}: {why}" for p, why in sel.left_out))
    return sel


def why_left_out(recs: list[dict], chosen: list[dict] | None, tlb, machine: str | None) -> str:
    r0 = recs[0]
    if usable(recs) and chosen is not None:
        if brand(recs) != brand(chosen):
            return (f"another machine ({brand(recs)}): the costs come from one machine, "
                    f"{brand(chosen)}{'' if machine else ', the newest'}; --machine picks another")
        return "an older run of the same machine at another commit or sweep: the costs are the newest run's and its repeats'"
    if has_tlb(recs):
        return f"an older or emulated TLB run: the TLB section is from {source(tlb[0])}"
    if r0.get("execution") != "native":
        return (f"an emulated run ({r0.get('accel')}): costs need a native host run, and it has no crossover "
                "records for the TLB section")
    if r0.get("where") != "host":
        return "a native kernel run without the tlb suite: the costs come from host runs (simulated memory, RDTSC)"
    return "a native host run that did not measure PTP builds with RDTSC (criterion, or another suite)"


def interval(runs: list[tuple[Path, list[dict]]], bench: str, impl: str, pool: int):
    """(mean, CI low, CI high) over the runs that measured it (aggregate.interval; CI None with
    fewer than aggregate.MIN_RUNS), or None when none did."""
    vals = [v for _, recs in runs if (v := cost(recs, bench, impl, pool)) is not None]
    return aggregate.interval(vals) if vals else None


def load_text(load: dict | None) -> str:
    if not load:
        return "not recorded"
    return f"{load['avg_1m']:.2f} (1 min), {load['runnable']} runnable"


_read: dict[tuple, tuple[list[dict], list[str]]] = {}


def read_run(p: Path, skipped: list[str] | None = None) -> list[dict]:
    """A results file's records (results.load: with `skipped`, lenient, and the lines it skipped
    added there), read once per version of the file: a report asks several questions of the
    same files (the costs, their repeats, the TLB run)."""
    st = p.stat()
    key = (p.resolve(), st.st_mtime_ns, st.st_size, skipped is not None)
    if key not in _read:
        lines: list[str] | None = [] if skipped is not None else None
        _read[key] = (load(p, lines), lines or [])
    recs, lines = _read[key]
    if skipped is not None:
        skipped += lines
    return recs


source = results.source


def cost(records: list[dict], bench: str, impl: str, pool: int) -> float | None:
    return next((r["p50"] for r in records if r.get("type") == "measurement" and r["bench"] == bench
                 and r["impl"] == impl and r.get("pool_pages") == pool), None)


UNMAP_ROLES = [("unmap_4KiB", "1 GiB of 4 KiB pages"), ("unmap_2MiB", "64 GiB of 2 MiB pages"),
               ("unmap_1GiB", "64 GiB of 1 GiB pages")]
# The unmap suite's contenders, as its table shows them, by role.
UNMAP_IMPLS = ["unmap_bitmap", "unmap_bump", "peer_unmap", "read_clear_limit", "store_limit"]


def churn_section(runs: list[tuple[Path, list[dict]]]) -> tuple[list[str], str]:
    """Unmapping per page, and the churn: how far bump and the bitmap get through a changing
    mapping set per pool size, and what each operation costs. The figures are the newest run's
    (churn records are deterministic: the seed), the costs means over the runs."""
    path, recs = runs[-1]
    unmaps = [(lab.bench(role), what) for role, what in UNMAP_ROLES]
    impls = [lab.contender(role) for role in UNMAP_IMPLS]
    L: list[str] = []
    pool = STANDARD if any(r.get("pool_pages") == STANDARD for r in recs) else None
    got = {(b, i): interval(runs, b, i, pool) for b, _ in unmaps for i in impls} if pool else {}
    if any(v is not None for v in got.values()):
        L += ["## Unmapping, and bump against bitmap under churn", "",
              f"Unmapping per page at {pool} pages, TSC ticks (mean over {len(runs)} run(s) of each run's median): "
              "ours with the bitmap (emptied tables freed) and with bump (tables stay), the x86_64 crate's per-page "
              "`unmap` loop and `clean_up`, and two limits: every entry read and cleared (what an unmap must do to "
              "count its pages and tell leaves from tables; with huge pages, after reading them all first) and a "
              "memset of the entries.", "",
              "| region | " + " | ".join(impls) + " |", "| --- |" + " --- |" * len(impls)]
        for bench, what in unmaps:
            cells = [f"{got[(bench, i)][0]:,.3f}" if got.get((bench, i)) else "-" for i in impls]
            if any(c != "-" for c in cells):
                L.append(f"| {what} | " + " | ".join(cells) + " |")
        L += [""]
    churn = [r for r in recs if r.get("type") == "churn"]
    if not churn:
        return L, ""
    if not L:
        L += ["## Unmapping, and bump against bitmap under churn", ""]
    first = churn[0]
    L += [f"Churn (`{source(path)}`): a mapping set that changes, {first['sizes']} region sizes drawn from the "
          "recorded layouts, at scattered addresses (half the new regions take a freed slot again), at most a "
          "sixteenth of the pool's pages in regions live at once, twice the pool's pages in operations "
          "(`lab/ptp-lab/src/churn.rs`). Bump never frees: where it runs out, the bitmap goes on. Ticks per "
          "operation over the operations both completed, and the bitmap over all it did.", "",
          "| pool pages | operations | bump: done, ran out at | bump: pages in use at most | bitmap: done "
          "| bitmap: pages in use at most | 4 KiB fallbacks (bump) | ticks per op, bump / bitmap (both) "
          "| bitmap, all |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    ms = [r for r in recs if r.get("type") == "measurement" and r.get("bench") == lab.bench("churn")]
    sentence_at = None
    for n in sorted({r["pool_pages"] for r in churn}):
        by = {r["allocator"]: r for r in churn if r["pool_pages"] == n}
        bump, bitmap = by.get("bump"), by.get("bitmap")
        if not bump or not bitmap:
            continue
        common = min(bump["done"], bitmap["done"])
        tick = lambda impl, ops: next((m["p50"] for m in ms if m["pool_pages"] == n and m["impl"] == impl  # noqa: E731
                                       and (m.get("params") or {}).get("ops") == ops), None)
        fmt = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
        out = "-" if bump["exhausted_at"] is None else f"{bump['exhausted_at']:,}"
        L.append(f"| {n} | {bump['ops']:,} | {bump['done']:,}, {out} | {bump['peak_used']:,} | {bitmap['done']:,} "
                 f"| {bitmap['peak_used']:,} | {bump['fallbacks_4kib']} | {fmt(tick(lab.contender('bump'), common))} / "
                 f"{fmt(tick(lab.contender('bitmap'), common))} | {fmt(tick(lab.contender('bitmap'), bitmap['done']))} |")
        if n == STANDARD or sentence_at is None:
            sentence_at = (n, bump, bitmap, tick(lab.contender("bump"), common), tick(lab.contender("bitmap"), common))
    L += [""]
    if sentence_at is None:
        return L, ""
    n, bump, bitmap, tb, tm = sentence_at
    if bump["exhausted_at"] is not None:
        fate = (f"bump ran out at operation {bump['exhausted_at']:,} of {bump['ops']:,} while the bitmap played all "
                f"of them holding at most {bitmap['peak_used']:,} pages")
    else:
        fate = (f"both played all {bump['ops']:,} operations, bump holding {bump['peak_used']:,} pages at most and "
                f"the bitmap {bitmap['peak_used']:,}")
    cost = f"; per operation bump {tb:,.0f} ticks, the bitmap {tm:,.0f}" if tb and tm else ""
    return L, (f"- **Allocators under churn, at {n} pages**: {fate}{cost}. Bump where nothing is unmapped (a "
               f"bootloader, an unmodifiable PTP built once), the bitmap wherever mappings come and go. "
               f"(`{source(path)}`)")


def targets_section(runs: list[tuple[Path, list[dict]]]) -> list[str]:
    """The speed targets over the runs the report's costs come from, judged on their paired
    ratios (`aggregate.judged`): a measurement fault is shown as one, never as met."""
    native = runs[-1][1][0].get("execution") == "native"
    rows, missed = aggregate.judged([recs for _, recs in runs], {recs[0].get("where") for _, recs in runs}, native)
    if len(rows) < 2:
        return []
    L = ["## Speed targets", "", aggregate.PAIRED_RULE, "",
         "| " + " | ".join(rows[0]) + " |", "| --- |" + " --- |" * (len(rows[0]) - 1)]
    L += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return L + ["", f"{missed} missed over {len(runs)} run(s).", ""]


def tlb_section(tlb: tuple[Path, list[dict]]) -> tuple[list[str], str]:
    """The TLB flush policy from one kernel run: the crossover per pair of strategies, the
    shootdown round trips, and the recommendation's sentence."""
    path, recs = tlb
    r0 = recs[0]
    src = f"`{source(path)}` ({r0.get('where')}, {r0.get('accel')}, {r0.get('execution')}, "
    src += f"{(r0.get('cpu') or {}).get('brand')}, commit {str(r0.get('git_commit'))[:8]})"
    emulated = r0.get("execution") != "native"
    L = ["## TLB flush policy", "", f"From {src}."]
    if emulated:
        L += ["", "**Emulated run**: privileged instructions are emulated, so these figures show how the policy is "
                  "decided, not what your hardware pays. On your machine: `scripts/bench.sh --suite tlb --cpus N` "
                  "with KVM or on bare metal gives your CPU's N* and ceiling."]
    L += ["", "| flush (per page vs all) | page size | N* (all wins from) | ceiling (page by page up to) "
              "| calibrated ceiling | Linux's 33: extra ticks over the best, summed |",
          "| --- | --- | --- | --- | --- | --- |"]
    cross = [r for r in recs if r.get("type") == "crossover"]
    for x in cross:
        where = " (on another CPU, by IPI)" if x.get("bench") == lab.bench("shootdown") else ""
        regret33 = (x.get("fixed_ceilings") or {}).get("33", {}).get("regret")
        L.append(f"| {x['per_page']} vs {x['full']}{where} | {x['page_size']} | {x['n_star']} | {x['ceiling']} | "
                 f"{x['calibrated_ceiling']} | {'-' if regret33 is None else f'{regret33:,.0f}'} |")
    ipi = [r for r in recs if r.get("type") == "measurement" and r.get("bench") == lab.bench("shootdown")
           and r.get("impl") == lab.contender("shootdown_ipi")]
    if ipi:
        hz = r0.get("tsc_hz")
        pages = ["1", "8", "32", "64", "full"]
        L += ["", f"Shootdown round trip by IPI (send, each target flushes by the policy, every acknowledgement "
                  f"seen), median TSC ticks{f' (µs at {hz / 1e9:.2f} GHz)' if hz else ''}:", "",
              "| target CPUs | " + " | ".join(f"{p} pages" if p != "full" else "all" for p in pages) + " |",
              "| --- |" + " --- |" * len(pages)]
        for k in sorted({r["params"]["targets"] for r in ipi}):
            cells = []
            for p in pages:
                m = next((r for r in ipi if r["params"]["targets"] == k and str(r["params"]["pages"]) == p), None)
                cells.append("-" if m is None else f"{m['p50']:,.0f}" + (f" ({m['p50'] / hz * 1e6:.1f})" if hz else ""))
            L.append(f"| {k} | " + " | ".join(cells) + " |")
    skip = next((r for r in recs if r.get("type") == "skip" and r.get("bench") == lab.bench("shootdown_invlpgb")), None)
    if skip:
        L += ["", f"INVLPGB broadcast: not measured here ({skip['reason']})."]
    L += [""]
    own = next((x for x in cross if x.get("bench") == lab.bench("crossover") and x.get("page_size") == "4KiB"), None)
    sentence = ""
    if own:
        rule = (f"flush page by page up to {own['calibrated_ceiling']} pages of 4 KiB, then reload CR3"
                if own["calibrated_ceiling"] > 0 else "always reload CR3 (a full flush was cheaper at every size)")
        sentence = (f"- **TLB flush**: on {(r0.get('cpu') or {}).get('brand')} ({r0.get('execution')}), {rule} "
                    f"(`vystem_ptp::flush::calibrate` measured it in {own['calibration_ticks']:,} ticks; Linux's "
                    f"fixed 33 costs {own['fixed_ceilings'].get('33', {}).get('regret', 0):,.0f} ticks over the best "
                    f"choice, summed over the sizes measured). ({source(path)})")
        if emulated:
            sentence += " Emulated: calibrate on your CPU before adopting a number."
    return L, sentence


def render(layout_paths: list[Path], runs: list[tuple[Path, list[dict]]], out: Path | None = None,
           tlb: tuple[Path, list[dict]] | None = None, traces: list[Path] | None = None) -> str:
    """The report; its costs from `runs` (native host runs of one machine; [] for none), its TLB
    section from `tlb` (a kernel run with the tlb suite; None: no section)."""
    sweep = lab.facts()["pool_pages"]["sweep"]  # the pool sizes the report judges
    run = runs[-1] if runs else None
    needs = layout_needs(layout_paths)
    limits = {p["pool_pages"]: p for p in lab.ask("pool-limits", lab.pool_word(sweep))["pools"]}
    n_layouts = len(needs)
    fit = {n: (sum(k4 <= n for _, k4, _, _ in needs), sum(m2 <= n for _, _, m2, _ in needs)) for n in sweep}
    L = []
    L += ["# Page-table pool size: what the standard 4096 buys, and what changes at N", ""]
    L += ["Sources:",
          f"- {n_layouts} real process layouts, `results/layouts/` (`scripts/capture-layouts.sh`): each mapped up front "
          "as an unmodifiable PTP must (every range it can touch), pool pages from the lab's capacity model, "
          "checked against mapping it for real;",
          "- the capacity model for everything else (`ptp-host pool-limits`, `vystem_ptp::capacity`);"]
    if traces:
        L.append(f"- {len(traces)} whole program lifetimes, `results/traces/` (`scripts/capture-traces.sh`), replayed "
                 "through the algorithms crate;")
    if run:
        r0 = run[1][0]
        files = ", ".join(f"`{source(p)}`" for p, _ in runs)
        L.append(f"- costs per pool size from {len(runs)} run(s): {files} ({r0.get('where')}, {r0.get('execution')}, "
                 f"{(r0.get('cpu') or {}).get('brand')}, commit {str(r0.get('git_commit'))[:8]}, TSC ticks).")
    L += [""]

    L += ["## Unmodifiable PTPs (userland processes)", "",
          "| pool pages | per PTP | 10 / 100 / 1000 processes | real layouts that fit, 4 KiB / 2 MiB pages "
          "| largest region, 4 KiB / 2 MiB pages |", "| --- | --- | --- | --- | --- |"]
    for n in sweep:
        lim = limits[n]
        L.append(f"| {n}{' (standard)' if n == STANDARD else ''} | {mib(n)} | {mib(10 * n)} / {mib(100 * n)} / "
                 f"{mib(1000 * n)} | {fit[n][0]} / {fit[n][1]} of {n_layouts} | {size(lim['largest_region_4KiB'])} / "
                 f"{size(lim['largest_region_2MiB'])} |")
    biggest = max(needs, key=lambda x: x[1])
    linux = (f"Linux, which maps on demand, used {biggest[3]} page-table pages for it" if biggest[3] is not None else
             "Linux's own page-table pages for it (VmPTE) were not recorded: its capture kept the final maps only")
    L += ["", f"The largest real layout, `{biggest[0]}`, needs {biggest[1]} pool pages with 4 KiB pages and "
              f"{biggest[2]} with 2 MiB pages; {linux}.", ""]

    L += ["## The modifiable PTP (the kernel's)", "",
          "Beside its self-map; `yes` where the mapping fits the pool (tables counted with the self-map and the root).", "",
          "| pool pages | self-map | 1 / 4 / 16 / 64 GiB, 4 KiB pages | 1 / 4 / 16 / 64 GiB, 2 MiB pages "
          "| direct map 4 / 64 / 512 GiB, 2 MiB | direct map 4 / 64 / 512 GiB, 1 GiB |",
          "| --- | --- | --- | --- | --- | --- |"]
    yn = {True: "yes", False: "no"}
    for n in sweep:
        m = limits[n]["mappings"]
        cell = lambda keys: " / ".join(yn[m[k]["fits"]] for k in keys)  # noqa: E731
        L.append(f"| {n} | {limits[n]['self_map_tables']} | {cell([f'{g}GiB-4KiB' for g in (1, 4, 16, 64)])} | "
                 f"{cell([f'{g}GiB-2MiB' for g in (1, 4, 16, 64)])} | "
                 f"{cell([f'{g}GiB-direct-2MiB' for g in (4, 64, 512)])} | "
                 f"{cell([f'{g}GiB-direct-1GiB' for g in (4, 64, 512)])} |")
    L += [""]

    if run:
        pools = sorted({r["pool_pages"] for _, recs in runs for r in recs
                        if r.get("bench") == lab.bench("pool_build") and r.get("type") == "measurement"})
        several = len(runs) > 1
        L += ["## Costs that change with N", "",
              (f"TSC ticks: the mean over {len(runs)} runs of each run's median, its 95 % confidence interval in brackets, and each "
               f"size against {STANDARD}: the ratio, and whether it is beyond the noise. "
               + "The rule, per benchmark: " + aggregate.RULE.split("rule: per benchmark, ", 1)[1]
               .replace("The candidate", "A size")
               + f" Threshold {THRESHOLD:.0%}.") if several else
              ("TSC ticks, the medians of one run. One run says nothing about the noise: the ratios to "
               f"{STANDARD} have no verdict (`scripts/bench.sh --host --repeat K` gives K runs)."), "",
              "| pool pages | " + " | ".join(f"{h} | vs {STANDARD}" for _, _, h in costs()) + " |",
              "| --- |" + " --- | --- |" * len(COST_ROLES)]
        for n in pools:
            cells = []
            for bench, impl, _ in costs():
                here, std = interval(runs, bench, impl, n), interval(runs, bench, impl, STANDARD)
                if here is None:
                    cells += ["-", "-"]
                    continue
                cells.append(f"{here[0]:,.1f}" + (f" [{here[1]:,.1f}, {here[2]:,.1f}]" if several and here[1] is not None
                                                  else " (one run)" if several else ""))
                if std is None or n == STANDARD:
                    cells.append("-")
                    continue
                ratio, verdict = aggregate.moved(std, here, THRESHOLD)
                word = verdict if verdict in ("within noise", aggregate.TOO_FEW) else "beyond noise"
                cells.append(f"{ratio:.2f}x" + (f", {word}" if several else ""))
            L.append(f"| {n} | " + " | ".join(cells) + " |")
        hz = run[1][0].get("tsc_hz")
        builds = {n: interval(runs, lab.bench("pool_build"), lab.contender("modifiable_ptp"), n) for n in pools}
        big = max((n for n in pools if builds[n] is not None), default=None)
        if hz and builds.get(STANDARD) is not None and big is not None:
            us = lambda t: t / hz * 1e6  # noqa: E731
            L += ["", f"Building a modifiable PTP takes {us(builds[STANDARD][0]):.1f} µs at {STANDARD} pages and "
                      f"{us(builds[big][0]):.1f} µs at {big} (TSC {hz / 1e9:.2f} GHz): once per PTP, against the "
                      "memory above, which each PTP holds for its life."]
        L += ["", "### Noise: the machine's load around each run", "",
              "The 1-minute load average and the tasks runnable when the run started and ended (`/proc/loadavg`; "
              "schema-2 files did not record it). A load near or above the CPU count means the run shared its CPUs.",
              "", "| run | CPU | at start | at end |", "| --- | --- | --- | --- |"]
        for p, recs in runs:
            L.append(f"| `{source(p)}` | {(recs[0].get('cpu') or {}).get('brand')} | {load_text(recs[0].get('load'))} "
                     f"| {load_text(recs[-1].get('load'))} |")
        L += [""]

    life_rows = lifetimes.rows(traces, sweep) if traces else []
    life_text, life_sentence, life_plot = (lifetimes.section(life_rows, sweep, STANDARD)
                                           if traces else ([], "", None))
    L += life_text

    churn_text, churn_sentence = churn_section(runs) if run else ([], "")
    L += churn_text
    L += targets_section(runs) if run else []

    tlb_text, tlb_sentence = tlb_section(tlb) if tlb else ([], "")
    L += tlb_text
    flush_text, flush_sentence, flush_plot = (flushes.section(life_rows, tlb[0], tlb[1]) if traces and tlb
                                              else ([], "", None))
    L += flush_text
    if tlb_sentence and flush_sentence:
        # The ceiling to take is the one weighted by what programs flush: said before the source.
        head, _, src = tlb_sentence.rpartition(f" ({source(tlb[0])})")
        tlb_sentence = head + flush_sentence + f" ({source(tlb[0])})" + src

    if out is not None:
        L += ["## Plots", ""]
        try:
            figs = plots.capacity(sweep, fit, n_layouts, limits)
            if life_plot:
                figs += plots.lifetimes(sweep, life_plot, len(traces))
            if run:
                figs += plots.costs(run[1], source(run[0]))
            if flush_plot:
                figs += plots.flush_sizes(flush_plot["hists"], flush_plot["ceilings"], flush_plot["cpu"])
            if tlb:
                figs += [f for r in tlb[1] if r.get("type") == "crossover"
                         for f in plots.crossover(r, source(tlb[0]), tlb[1][0].get("execution"))]
            figs = plots.save(out, figs)
            L += [f"![{caption}]({stem}.svg) ({caption}; [PNG]({stem}.png))" for caption, stem in figs]
            if run:
                L += ["", f"Costs: medians of the newest run named above (`{source(run[0])}`); its spread is in "
                          "its file, the spread across runs in the table above."]
        except plots.NoPlots as e:
            L.append(f"No plots: {e}.")
        L += [""]

    L += ["## Recommendation", ""]
    all_4k = next((n for n in sweep if fit[n][0] == n_layouts), None)
    all_2m = next((n for n in sweep if fit[n][1] == n_layouts), None)
    std = limits[STANDARD]
    if life_sentence:
        L.append(life_sentence)
    if all_4k is not None:
        saved = (STANDARD - all_4k) * lab.PAGE * 1000
        verb = "shrinks" if all_4k < STANDARD else "grows"
        label = (f"Snapshots alone ({n_layouts} layouts), 4096 -> {all_4k}; the lifetimes above decide"
                 if life_sentence else f"Unmodifiable PTPs, 4096 -> {all_4k}")
        L.append(f"- **{label}**: every one of the {n_layouts} real layouts still fits "
                 f"with 4 KiB pages (at {STANDARD}: {fit[STANDARD][0]}); each PTP {verb} from {mib(STANDARD)} to "
                 f"{mib(all_4k)} ({size(abs(saved))} {'less' if saved > 0 else 'more'} for 1000 processes), and the "
                 f"largest region one can map goes from {size(std['largest_region_4KiB'])} to "
                 f"{size(limits[all_4k]['largest_region_4KiB'])} with 4 KiB pages. With 2 MiB pages where aligned, "
                 f"{all_2m} pages already hold every layout. (`results/layouts`, `ptp-host pool-limits`)")
    kernel = next((n for n in sweep if limits[n]["mappings"]["64GiB-direct-2MiB"]["fits"]
                   and limits[n]["mappings"]["4GiB-4KiB"]["fits"]), None)
    if kernel is not None:
        change = "keep 4096" if kernel == STANDARD else f"4096 -> {kernel}"
        holds_16 = next((n for n in sweep if limits[n]["mappings"]["16GiB-4KiB"]["fits"]), None)
        L.append(f"- **The modifiable PTP, {change}**: {kernel} is the smallest pool that holds a direct map of 64 GiB "
                 f"of RAM with 2 MiB pages and 4 GiB of 4 KiB mappings beside its self-map "
                 f"({limits[kernel]['self_map_tables']} pages); at {STANDARD}, 16 GiB of 4 KiB mappings "
                 f"{'fit' if std['mappings']['16GiB-4KiB']['fits'] else 'do not fit'} "
                 f"({holds_16} pages hold them). "
                 "(`ptp-host pool-limits`)")
    if churn_sentence:
        L.append(churn_sentence)
    if tlb_sentence:
        L.append(tlb_sentence)
    L += ["", "These say what fits; what a kernel maps is its own: give it its layouts "
              "(`python3 -m ptplab capacity LAYOUT...`, a hand-written `START END` per line) before changing the standard."]
    return "\n".join(L) + "\n"


def left_out_section(left_out: list[tuple[Path, str]], skipped: list[str] = ()) -> list[str]:
    if not left_out and not skipped:
        return []
    L = ["## Runs left out", ""]
    if left_out:
        L += ["Files among the inputs that no section used, and why:", "", "| file | why |", "| --- | --- |"]
        L += [f"| `{source(p)}` | {why.replace('|', '/')} |" for p, why in left_out]
        L += [""]
    if skipped:
        L += ["Lines that `--lenient` skipped (not JSON records, or records that fail their check):", ""]
        L += [f"- `{line}`" for line in dict.fromkeys(skipped)] + [""]
    return L


def main(argv: list[str]) -> int:
    ap = Parser(prog="scripts/report.sh", description="Write the decision report (Markdown): pool sizes 512 ... 65536, "
                "from the real layouts, the capacity model and recorded runs.",
                epilog="Each section takes the runs it can use and the report lists the files it left out, with "
                       "the reason; it fails only when no file is usable.")
    ap.add_argument("results", nargs="*", help="results files (default: every file in results/): the costs come "
                    "from the newest native host run of one machine and its repeats, the TLB section from the "
                    "newest kernel run with the tlb suite, native preferred")
    ap.add_argument("--out", default=str(lab.REPORT_DIR), help=f"directory for report.md (default: "
                    f"{source(lab.REPORT_DIR)})")
    ap.add_argument("--machine", metavar="BRAND", help="the costs from this machine (a part of its CPU brand) "
                    "instead of the newest")
    ap.add_argument("--layouts", default=str(layouts.DIR))
    ap.add_argument("--traces", default=str(lifetimes.DIR), help="lifetime traces (default: results/traces; an "
                    "empty folder leaves the lifetime section out)")
    ap.add_argument("--tlb", metavar="FILE", help="the kernel run for the TLB section")
    ap.add_argument("--lenient", action="store_true", help="skip malformed lines of a file (listed in the "
                    "report) instead of leaving the whole file out")
    try:
        a = ap.parse_args(argv)
        paths = sorted(Path(a.layouts).glob("*.json"))
        if not paths:
            raise BenchError(f"--layouts: no layouts in {a.layouts} (scripts/capture-layouts.sh records them)")
        files = [Path(f) for f in a.results] or sorted(RESULTS.glob("*.jsonl"))
        sel = select(files, a.machine, Path(a.tlb) if a.tlb else None, a.lenient)
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        text = render(paths, sel.costs, out, sel.tlb, lifetimes.trace_dirs(Path(a.traces)))
        tail = left_out_section(sel.left_out, sel.skipped)
        text += "\n" + "\n".join(tail) if tail else ""
        (out / "report.md").write_text(text)
    except (BenchError, ResultsError, layouts.LayoutError, OSError, replay.ReplayError, lab.LabError) as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    recommendation = text[text.index("## Recommendation"):text.index("## Runs left out")
                          if tail else len(text)]
    print(recommendation.strip())
    if sel.left_out:
        print(f"report: left out {len(sel.left_out)} of {len(files)} files (listed in report.md, with why)",
              file=sys.stderr)
    if sel.skipped:
        print(f"report: --lenient skipped {len(sel.skipped)} lines (listed in report.md), the first "
              f"{sel.skipped[0]}", file=sys.stderr)
    print(f"report: wrote {out / 'report.md'}", file=sys.stderr)
    return 0
