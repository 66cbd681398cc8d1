"""The report's decision from whole program lifetimes (results/traces, replayed by
`ptplab replay`): per class the smallest pool holding every program's peak, per candidate size
the programs and classes it holds and those it breaks (through which regions), what bump costs
against the bitmap, the TLB work real programs ask for.

A program's peak is its largest process's (each process has its own unmodifiable PTP). The
replays are cached in target/replay-cache, keyed by the traces' bytes and the host runner's,
so a report (and its tests) replay the set once."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from . import lab, replay
from .results import RESULTS

DIR = RESULTS / "traces"
CACHE = lab.REPO / "target" / "replay-cache"


def trace_dirs(root: Path = DIR) -> list[Path]:
    return sorted(p for p in root.glob("*") if (p / "strace.txt.gz").exists())


def rows(dirs: list[Path], pools: list[int]) -> list[dict]:
    """Every process of every trace (capture folders, or plain strace logs), replayed (cached)."""
    h = hashlib.sha256(json.dumps(pools).encode())
    h.update(lab.host_bin().read_bytes())
    for module in ("trace.py", "replay.py"):
        h.update((Path(__file__).parent / module).read_bytes())
    for d in dirs:
        h.update(d.name.encode())
        if not d.is_dir():  # a plain strace log
            h.update(d.read_bytes() if d.exists() else b"-")
            continue
        for name in ("strace.txt.gz", "layouts.json.gz", "meta.json"):
            f = d / name
            h.update(f.read_bytes() if f.exists() else b"-")
    cached = CACHE / f"{h.hexdigest()[:24]}.jsonl"
    if cached.exists():
        return [json.loads(line) for line in cached.read_text().splitlines()]
    out = []
    for d in dirs:
        out += replay.replay_trace(replay.load(d), pools)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in out))
    tmp.replace(cached)
    return out


def need(r: dict, size: str) -> int:
    """Pool pages a process needs at its peak: the bitmap's replay, or the model's where it ran
    past the largest pool; 2 MiB: the model's, pages where aligned."""
    if size == "2MiB":
        return r["peak_model"]["2MiB"]
    return r["peak_model"]["4KiB"] if r["beyond_largest_pool"] else r["peak"]["bitmap"]


def programs(rs: list[dict]) -> dict[str, dict]:
    """Per trace: class, its largest process for each page size, bump's and reservations' peaks."""
    out: dict[str, dict] = {}
    for r in rs:
        p = out.setdefault(r["trace"], {"class": r["class"] or "?", "4KiB": 0, "2MiB": 0, "bump": 0, "grow": 0,
                                        "top": None, "procs": 0, "over33": 0, "calls": 0, "pages": 0,
                                        "freed": 0, "reused": 0, "kept": 0})
        p["procs"] += 1
        if need(r, "4KiB") > p["4KiB"]:
            p["4KiB"], p["top"] = need(r, "4KiB"), r
        p["2MiB"] = max(p["2MiB"], need(r, "2MiB"))
        p["bump"] = max(p["bump"], r["peak_model"]["4KiB"] if r["beyond_largest_pool"] else r["peak"]["bump"])
        p["grow"] = max(p["grow"], r["grow_at_exit"] or 0, need(r, "4KiB"))
        f = r["forget"]
        p["over33"] += f["over"]["33"]
        p["calls"] += f["calls"]
        p["pages"] += f["pages"]
        p["freed"] += r["tables"]["freed"]
        p["reused"] += r["tables"]["reused"]
        p["kept"] += r["tables"]["kept_by_bump"]
    return out


def smallest(n: int, pools: list[int]) -> str:
    return next((str(p) for p in pools if n <= p), f"> {pools[-1]}")


def mib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.1f} MiB"


def section(rs: list[dict], pools: list[int], standard: int) -> tuple[list[str], str, dict]:
    """The report's lifetime section, its recommendation sentence, and what the plot draws."""
    progs = programs(rs)
    classes: dict[str, list[str]] = defaultdict(list)
    for name, p in progs.items():
        classes[p["class"]].append(name)
    n_traces, n_procs = len(progs), len(rs)
    L = ["## Pool sizes from whole lifetimes", "",
         f"{n_traces} programs (`results/traces/`, `scripts/capture-traces.sh`), {n_procs} processes, each replayed "
         "from exec to exit through the algorithms crate (`python3 -m ptplab replay`): every range a process can "
         "touch mapped as soon as it can touch it (an unmodifiable PTP maps up front), PROT_NONE holding nothing, "
         "each process its own PTP. A program's peak is its largest process's. Every replayed layout at exit equals "
         "the captured final maps, and at every step the capacity model equals what the mapper holds "
         "(`tools/tests/test_trace.py`).", "",
         "| class | programs | largest peak, 4 KiB (program) | smallest pool, 4 KiB | largest peak, 2 MiB where aligned "
         "| smallest pool, 2 MiB |", "| --- | --- | --- | --- | --- | --- |"]
    for cls in sorted(classes):
        names = classes[cls]
        top = max(names, key=lambda n: progs[n]["4KiB"])
        k4, m2 = progs[top]["4KiB"], max(progs[n]["2MiB"] for n in names)
        L.append(f"| {cls} | {len(names)} | {k4:,} (`{top}`) | {smallest(k4, pools)} | {m2:,} | {smallest(m2, pools)} |")
    L += ["", "Per candidate size: the programs and classes whose every process's peak it holds, with 4 KiB pages, "
              "with 2 MiB pages where aligned, and with 4 KiB pages once every reservation (PROT_NONE in the final "
              "maps: a JVM heap up to -Xmx, thread guard areas, V8's cage) is made accessible.", "",
          "| pool pages | programs, 4 KiB / 2 MiB / reservations committed | classes, 4 KiB / 2 MiB | breaks it (4 KiB) |",
          "| --- | --- | --- | --- |"]
    held = {}
    for n in pools:
        ok4 = [k for k, p in progs.items() if p["4KiB"] <= n]
        ok2 = [k for k, p in progs.items() if p["2MiB"] <= n]
        okg = [k for k, p in progs.items() if p["grow"] <= n]
        c4 = [c for c, names in classes.items() if all(progs[k]["4KiB"] <= n for k in names)]
        c2 = [c for c, names in classes.items() if all(progs[k]["2MiB"] <= n for k in names)]
        held[n] = (len(ok4), len(ok2))
        broken = sorted((k for k in progs if k not in ok4), key=lambda k: -progs[k]["4KiB"])
        L.append(f"| {n}{' (standard)' if n == standard else ''} | {len(ok4)} / {len(ok2)} / {len(okg)} of {n_traces} "
                 f"| {len(c4)} / {len(c2)} of {len(classes)} | "
                 + (", ".join(f"`{k}` ({progs[k]['4KiB']:,})" for k in broken[:6]) + (" ..." if len(broken) > 6 else "")
                    or "-") + " |")
    L += ["", "What breaks the standard size, and through which regions (the largest accessible ranges at the "
              "process's peak), and what would hold it:", ""]
    for k in sorted((k for k in progs if progs[k]["4KiB"] > standard), key=lambda k: -progs[k]["4KiB"]):
        p = progs[k]
        regions = ", ".join(mib(x["bytes"]) for x in p["top"]["largest_at_peak"])
        fix = (f"2 MiB pages for its large regions bring it to {p['2MiB']:,} pages, which {smallest(p['2MiB'], pools)} "
               "holds" if p["2MiB"] <= pools[-1] else
               f"even with 2 MiB pages it needs {p['2MiB']:,} pages, more than the largest pool: such a process "
               "needs a modifiable PTP (mapping on demand), not an unmodifiable one")
        if p["2MiB"] <= standard:
            fix += f" (the standard {standard} included)"
        alone = (f"or a pool of {smallest(p['4KiB'], pools)} pages for that process alone" if p["4KiB"] <= pools[-1]
                 else f"no pool up to {pools[-1]} pages holds it with 4 KiB pages")
        L.append(f"- `{k}` ({p['class']}; process `{p['top']['program']}`): {p['4KiB']:,} pages with 4 KiB pages "
                 f"through {regions}; {fix}; {alone}.")
    bump = sorted(((k, p) for k, p in progs.items() if p["bump"] > p["4KiB"]), key=lambda kp: kp[1]["4KiB"] - kp[1]["bump"])
    freed = sum(p["freed"] for p in progs.values())
    reused = sum(p["reused"] for p in progs.values())
    kept = sum(p["kept"] for p in progs.values())
    L += ["", "### Bump against the bitmap over a lifetime", "",
          f"Over all {n_procs} processes the bitmap freed {freed:,} table pages when ranges were unmapped and handed "
          f"{reused:,} of them out again; bump, which frees none, ended holding {kept:,} pages of emptied tables. "
          + (f"Bump's peak is above the bitmap's in {len(bump)} program(s): "
             + ", ".join(f"`{k}` {p['bump']:,} against {p['4KiB']:,}" for k, p in bump[:6]) + "."
             if bump else "Bump's peak equals the bitmap's in every program: their processes unmap little before "
                          "they reach their peak.")]
    calls = sum(p["calls"] for p in progs.values())
    over = sum(p["over33"] for p in progs.values())
    pages = sum(p["pages"] for p in progs.values())
    busiest = max(progs.items(), key=lambda kp: kp[1]["over33"])
    L += ["", "### The TLB work real programs ask for", "",
          f"{calls:,} calls unmapped or re-protected pages ({pages:,} pages, {pages / max(calls, 1):.1f} per call); "
          f"{over:,} of them ({100 * over / max(calls, 1):.0f} %) asked for more than 33 pages, the usual ceiling above "
          f"which a flush of the whole TLB beats `invlpg` per page (the TLB suite measures the ceiling of each CPU). "
          f"Most of those: `{busiest[0]}` ({busiest[1]['over33']:,}).", ""]
    sentence = recommendation(progs, classes, held, pools, standard)
    plot = {c: [sum(progs[k]["4KiB"] <= n for k in names) / len(names) for n in pools] for c, names in classes.items()}
    return L, sentence, plot


def recommendation(progs: dict, classes: dict, held: dict, pools: list[int], standard: int) -> str:
    """The decision for unmodifiable PTPs, as a consequence of the figures: the smallest size that
    holds every program the standard holds, what a size up or down changes, and what holds the
    rest."""
    n = len(progs)
    keep = next(p for p in pools if held[p][0] >= held[standard][0])
    verdict = "keep 4096" if keep == standard else f"4096 -> {keep}"
    below = max((p for p in pools if p < keep), default=None)
    above = min((p for p in pools if p > standard), default=None)
    at = lambda size: sorted((k for k in progs if progs[k]["4KiB"] > size), key=lambda k: -progs[k]["4KiB"])  # noqa
    names = lambda ks: ", ".join(f"`{k}` ({progs[k]['4KiB']:,})" for k in ks)  # noqa: E731
    parts = [f"- **Unmodifiable PTPs, from whole lifetimes: {verdict}** ({n} programs, {len(classes)} classes, "
             f"`results/traces`): at {keep} pages {held[keep][0]} of {n} programs keep every process within the "
             f"pool at its peak with 4 KiB pages, {held[keep][1]} with 2 MiB pages where aligned"]
    if below is not None:
        parts.append(f"; {keep} -> {below} would also break {names([k for k in at(below) if k not in at(keep)])}")
    if above is not None:
        gained = [k for k in at(keep) if k not in at(above)]
        if gained:
            by_2m = [k for k in gained if progs[k]["2MiB"] <= keep]
            parts.append(f"; {keep} -> {above} would hold {names(gained)} too"
                         + (f", which 2 MiB pages for their large regions hold at {keep} already"
                            if len(by_2m) == len(gained) else ""))
    never = [k for k in progs if progs[k]["4KiB"] > pools[-1]]
    for k in never:
        p = progs[k]
        parts.append(f"; `{k}` needs {p['4KiB']:,} pages with 4 KiB pages ({p['2MiB']:,} with 2 MiB): "
                     + (f"only 2 MiB pages and {smallest(p['2MiB'], pools)} pages hold it" if p["2MiB"] <= pools[-1]
                        else "no pool holds it") + ", or a modifiable PTP that maps on demand")
    parts.append(". Assumptions: every accessible range mapped up front, PROT_NONE holding nothing; the sample is "
                 "this machine's programs (bring your own: `scripts/capture-traces.sh NAME -- COMMAND`).")
    return "".join(parts)
