"""`python3 -m ptplab replay TRACE... [--pool-pages LIST] [--json]`: each process of a lifetime
trace (what scripts/capture-traces.sh wrote: its folder or its files; or a plain strace -f log)
replayed through the algorithms crate by `ptp-host replay`, with bump and with the bitmap, for
every pool size: peak pool pages and the call at the peak, where each size runs out, tables
freed and reused against kept, the pages each call asks the TLB to forget, the mapper's ticks;
and whether the replayed layout at exit equals the captured final maps."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import lab, trace
from . import cli
from .cli import BenchError, Parser
from .table import grid



# One trace's replay takes seconds; a hung ptp-host is killed after this.
REPLAY_TIMEOUT_S = 600


class ReplayError(Exception):
    pass


@dataclass
class Trace:
    name: str
    meta: dict
    lines: list[str]
    layouts: dict | None


def _text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ReplayError(f"{path}: not a readable gzip file ({e})")
    return data.decode("utf-8", "replace")


def load(path: Path) -> Trace:
    """A capture folder, one of its files, or a plain strace log."""
    if not path.exists():
        raise ReplayError(f"{path}: no such file or folder")
    folder = path if path.is_dir() else path.parent
    if path.is_dir() or path.name in ("strace.txt.gz", "layouts.json.gz", "meta.json"):
        log = folder / "strace.txt.gz"
        if not log.exists():
            raise ReplayError(f"{folder}: no strace.txt.gz (a capture folder holds strace.txt.gz, layouts.json.gz, "
                              "meta.json)")
        meta, layouts = {}, None
        try:
            if (folder / "meta.json").exists():
                meta = json.loads((folder / "meta.json").read_text())
            if (folder / "layouts.json.gz").exists():
                layouts = json.loads(_text(folder / "layouts.json.gz"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ReplayError(f"{folder}: meta.json or layouts.json.gz is not JSON ({e})")
        if not isinstance(meta, dict) or (layouts is not None and not isinstance(layouts, dict)):
            raise ReplayError(f"{folder}: meta.json and layouts.json.gz must hold JSON objects")
        return Trace(meta.get("name", folder.name), meta, _text(log).splitlines(), layouts)
    return Trace(path.name, {}, _text(path).splitlines(), None)


def expand(paths: list[Path]) -> list[Path]:
    """A folder of capture folders (what capture-traces.sh --out DIR fills) stands for each of them."""
    out = []
    for p in paths:
        inner = sorted(q for q in p.glob("*") if (q / "strace.txt.gz").exists()) if p.is_dir() else []
        out += inner if inner and not (p / "strace.txt.gz").exists() else [p]
    return out


def replay_trace(t: Trace, pools: list[int]) -> list[dict]:
    """One object per address space of the trace."""
    try:
        lt = trace.lifetimes(trace.parse(t.lines), t.layouts, t.meta.get("program", ""))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ReplayError(f"{t.name}: its layouts do not have the capture's shape ({e!r})")
    if not lt.spaces:
        raise ReplayError(f"{t.name}: no exec in the log: nothing to replay (strace -f from the program's start)")
    try:
        p = subprocess.run([str(lab.host_bin()), "replay", lab.pool_word(pools)],
                           input=lt.replay_ops(), capture_output=True, text=True, timeout=REPLAY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ReplayError(f"{t.name}: ptp-host replay ran past {REPLAY_TIMEOUT_S} s (killed)") from None
    if p.returncode not in (0, 1):
        raise ReplayError(f"ptp-host replay: {p.stderr.strip() or f'exit {p.returncode}'}")
    out = []
    by_id = {sp.ident: sp for sp in lt.spaces}
    for line in p.stdout.splitlines():
        r = json.loads(line)
        sp = by_id[r["process"]]
        out.append({
            "trace": t.name, "class": t.meta.get("class"), "program": sp.program,
            "pid": int(r["process"].split(".")[0]), "space": r["process"],
            "final_matches": trace.final_matches(lt, sp.ident),
            "peak": {"bump": r["bump"]["peak"], "bitmap": r["bitmap"]["peak"]},
            "peak_call": {"bump": r["bump"]["peak_call"], "bitmap": r["bitmap"]["peak_call"]},
            # The capacity model's peak between calls: 2 MiB pages where aligned, and 4 KiB (the
            # figure where the lifetime needs more than the largest pool, which the replay stops at).
            "peak_model": {"4KiB": r["peak_4kib_model"], "2MiB": r["peak_2mib"]},
            "exhausted": {n: {"bump": r["bump"]["exhausted"][n], "bitmap": r["bitmap"]["exhausted"][n]}
                          for n in r["bitmap"]["exhausted"]},
            "beyond_largest_pool": r["bitmap"]["beyond_largest_pool"],
            "tables": {"freed": r["bitmap"]["tables_freed"], "reused": r["bitmap"]["tables_reused"],
                       "kept_by_bump": r["bump"]["tables_kept_empty"]},
            # Free after flush: the bitmap's tables waiting for the flush at most, and its peak
            # counting them, flushing after every `every` calls that change mapped pages.
            "waiting": {str(w["every"]): {"tables": w["peak_waiting"], "peak": w["peak_pool"]}
                        for w in r["bitmap"]["waiting"]},
            "forget": r["forget"], "flushes": sp.flush_counts(), "ticks": {"bump": r["bump"]["ticks"], "bitmap": r["bitmap"]["ticks"]},
            "model": r["model"], "ops": r["ops"],
            "failed": r["bitmap"]["failed"] or r["bump"]["failed"],
            "notes": sp.notes,
            "largest_at_peak": largest_at(sp.ops, r["bitmap"]["peak_call"]),
            "grow_at_exit": grow_at_exit(t.layouts, sp, lt),
        })
    return out


def largest_at(ops: list[str], call: int | None, k: int = 3) -> list[dict]:
    """The `k` largest accessible ranges after `call` (what a broken pool size breaks through)."""
    live = trace.Space("", "")
    if call is None:
        return []
    for op in ops:
        w = op.split()
        if w[0] == "forget":
            continue
        if int(w[3]) > call:
            break
        live.set(int(w[1], 16), int(w[2], 16), 3 if w[0] == "map" else None, 0)
    return [{"start": f"{s:x}", "bytes": e - s} for s, e in sorted(live.accessible(), key=lambda r: r[0] - r[1])[:k]]


def grow_at_exit(layouts: dict | None, sp: trace.Space, lt: trace.Lifetimes) -> int | None:
    """Pool pages (4 KiB) of the final maps with every reservation (PROT_NONE) made accessible;
    None where no final maps was captured."""
    from . import layouts as L
    if sp.ident not in lt.finals:
        return None
    pid = int(sp.ident.split(".")[0])
    ex = [x for x in (layouts or {}).get("exit", []) if x.get("pid") == pid]
    if not ex:
        return None
    user, _, _ = trace.layout_ranges(ex[-1]["ranges"])
    lay = L.Layout(sp.ident, [(s, e, "rw-p" if p else "---p") for s, e, p in user])
    return L.pool_pages(lay, reservations=True)["4KiB"]["predicted"]


def main(argv: list[str]) -> int:
    ap = Parser(prog="python3 -m ptplab replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("traces", nargs="+", metavar="TRACE")
    ap.add_argument("--pool-pages", default=None, help="pool sizes (default: 512 ... 65536)")
    ap.add_argument("--json", action="store_true", help="one JSON object per process")
    try:
        a = ap.parse_args(argv)
        pools = cli.pools(a.pool_pages) if a.pool_pages else lab.facts()["pool_pages"]["sweep"]
        rows = []
        for path in expand([Path(p) for p in a.traces]):
            rows += replay_trace(load(path), pools)
    except (BenchError, ReplayError, lab.LabError) as e:
        print(f"replay: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print("peak pool pages over each lifetime (4 KiB pages; 2 MiB where aligned), bump / bitmap; "
              "final: replayed layout at exit = captured final maps")
        every = [k for k in (rows[0]["waiting"] if rows else {})]
        print("waiting: table pages an unmap holds until its flush (free after flush), at most, with a flush "
              f"after every {' and every '.join(every)} call(s) that change mapped pages; bitmap+: its peak "
              "counting them")
        cells = [["trace", "space", "program", "ops", "bump", "bitmap", "2MiB", "freed", "kept", ">33",
                  *(f"waiting/{k}" for k in every), *(f"bitmap+/{k}" for k in every), "final"]]
        for r in rows:
            peak = r["peak"]
            if r["beyond_largest_pool"]:  # the replay stopped at the largest pool: at least that
                peak = {k: f">{v}" for k, v in peak.items()}
            cells.append([r["trace"], r["space"], r["program"], r["ops"], peak["bump"], peak["bitmap"],
                          r["peak_model"]["2MiB"], r["tables"]["freed"], r["tables"]["kept_by_bump"],
                          r["forget"]["over"]["33"], *(r["waiting"][k]["tables"] for k in every),
                          *(r["waiting"][k]["peak"] for k in every),
                          {True: "yes", False: "NO", None: "-"}[r["final_matches"]]])
        print("\n".join(grid(cells, set(range(3, 10 + 2 * len(every))))))
        blind = sorted({r["trace"] for r in rows if any("no exec layout" in n for n in r["notes"])})
        if blind:
            print(f"replayed without the exec layout (a plain strace log, or one the capture missed): "
                  f"{', '.join(blind)}: what the kernel mapped at exec (executable, interpreter, stack, vdso) is "
                  "missing from their figures, and no final maps are compared")
    bad = [r for r in rows if r["final_matches"] is False or r["model"]["mismatch"] or r["failed"]]
    for r in bad:
        why = ("its replayed layout at exit differs from the captured final maps" if r["final_matches"] is False
               else f"the capacity model disagreed with the mapper: {r['model']['mismatch']}" if r["model"]["mismatch"]
               else f"the mapper refused an operation: {r['failed']}")
        print(f"replay: {r['trace']}: process {r['space']} ({r['program']}): {why}", file=sys.stderr)
    return 1 if bad else 0


# The lifetimes the kernel replays on real page tables (the layouts suite), and their limits:
# every range maps to physical 0 there, so a range stays within the RAM every machine has.
KERNEL_TRACES = ("python3-hello", "gcc-compile", "sort-pipeline", "git-log")
KERNEL_RANGE_MAX = 16 << 20
KERNEL_OPS_MAX = 600


def kernel_blocks(folder: Path) -> str:
    """`# replay NAME` blocks for the kernel (lab/ptp-lab/src/suites/replay.rs): per trace of
    KERNEL_TRACES in `folder`, its process with the most operations whose ranges all fit the
    limits and whose final maps match; ranges in PML4 slot 0 (the kernel's identity map) moved
    to a free slot, which keeps their table count."""
    out = []
    for name in KERNEL_TRACES:
        if not (folder / name / "strace.txt.gz").exists():
            continue
        t = load(folder / name)
        lt = trace.lifetimes(trace.parse(t.lines), t.layouts, t.meta.get("program", ""))
        best = None
        for sp in lt.spaces:
            ops = [op.split() for op in sp.ops if not op.startswith("forget")]
            spans = [(int(w[1], 16), int(w[2], 16)) for w in ops]
            if (trace.final_matches(lt, sp.ident) and len(ops) <= KERNEL_OPS_MAX
                    and all(e - s <= KERNEL_RANGE_MAX for s, e in spans)
                    and (best is None or len(ops) > len(best[1]))):
                best = (sp, ops)
        if best is None:
            continue
        sp, ops = best
        finals = trace.merged(lt.exits[sp.ident])
        used = {s >> 39 for s, _ in finals} | {int(w[1], 16) >> 39 for w in ops}
        free = next(k for k in range(1, 256) if k not in used)
        move = lambda a: a + (free << 39) if a < 1 << 39 else a  # noqa: E731
        lines = [f"# replay {name}/{sp.ident}"]
        lines += [f"{'+' if w[0] == 'map' else '-'} {move(int(w[1], 16)):x} {move(int(w[2], 16)):x}" for w in ops]
        lines += [f"= {move(s):x} {move(e):x}" for s, e in sorted((move(s), move(e)) for s, e in finals)]
        out.append("\n".join(lines) + "\n")
    return "".join(out)
