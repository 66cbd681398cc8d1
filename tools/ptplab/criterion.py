"""Read criterion's estimates, judge the named speed targets, and record a run.

Criterion writes one directory per benchmark under target/criterion, each with
new/benchmark.json (ids, throughput) and new/estimates.json (nanoseconds per iteration).
The speed targets live here, in one table, so the README, the closing notes and the
bench job all quote the same definitions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Bench:
    group: str
    function: str
    param: str
    mean_ns: float
    lower_ns: float
    upper_ns: float
    elements: int | None

    @property
    def ns_per_element(self) -> float | None:
        return self.mean_ns / self.elements if self.elements else None


@dataclass(frozen=True)
class Target:
    """`slow` must take at least `min_ratio` times as long as `fast` (or at most `max_ratio`)."""

    name: str
    group: str
    slow: str
    fast: str
    min_ratio: float | None = None
    max_ratio: float | None = None


TARGETS = [
    Target("map_range >= 15x faster than x86_64 map_to (1 GiB, 4 KiB pages)",
           "map/1GiB_4KiB", slow="x86_64-map_to", fast="lab-map_range", min_ratio=15),
    Target("map_range >= 10x faster than x86_64 map_to (64 GiB, 2 MiB pages)",
           "map/64GiB_2MiB", slow="x86_64-map_to", fast="lab-map_range", min_ratio=10),
    Target("map_range within 2x of the write_bytes limit (4 KiB pages)",
           "map/1GiB_4KiB", slow="lab-map_range", fast="write_bytes-limit", max_ratio=2),
    Target("map_range within 2x of the write_bytes limit (2 MiB pages)",
           "map/64GiB_2MiB", slow="lab-map_range", fast="write_bytes-limit", max_ratio=2),
    Target("bitmap alloc >= 2x faster than bitmap-allocator (fill)",
           "alloc/fill", slow="bitmap-allocator", fast="lab-bitmap", min_ratio=2),
    Target("bitmap alloc >= 2x faster than bitmap-allocator (churn at 50 %)",
           "alloc/churn_at_50pct", slow="bitmap-allocator", fast="lab-bitmap", min_ratio=2),
    Target("bump within 1.2x of a bare counter (fill)",
           "alloc/fill", slow="lab-bump", fast="bare-counter", max_ratio=1.2),
]


class CriterionError(Exception):
    pass


def load(root: Path) -> list[Bench]:
    """Every benchmark's latest estimate under `root` (target/criterion)."""
    if not root.is_dir():
        raise CriterionError(f"no criterion results at {root} (run cargo bench first)")
    benches = []
    for meta_path in sorted(root.glob("**/new/benchmark.json")):
        meta = json.loads(meta_path.read_text())
        est = json.loads((meta_path.parent / "estimates.json").read_text())["mean"]
        tp = meta.get("throughput") or {}
        benches.append(Bench(
            group=meta["group_id"],
            function=meta.get("function_id") or "",
            param=meta.get("value_str") or "",
            mean_ns=est["point_estimate"],
            lower_ns=est["confidence_interval"]["lower_bound"],
            upper_ns=est["confidence_interval"]["upper_bound"],
            elements=tp.get("Elements") or tp.get("Bytes"),
        ))
    return benches


def find(benches: list[Bench], group: str, function: str) -> Bench | None:
    """The contender `function` in `group`: criterion's function id, or its parameter where
    the function names the operation (BenchmarkId::new("fill", contender))."""
    return next((b for b in benches if b.group == group and function in (b.function, b.param)), None)


@dataclass(frozen=True)
class Verdict:
    target: Target
    ratio: float | None  # slow / fast, None when a side was not measured

    @property
    def status(self) -> str:
        if self.ratio is None:
            return "NOT RUN"
        t = self.target
        ok = (t.min_ratio is None or self.ratio >= t.min_ratio) and (
            t.max_ratio is None or self.ratio <= t.max_ratio)
        return "MET" if ok else "MISSED"

    @property
    def want(self) -> str:
        t = self.target
        return f">= {t.min_ratio:g}x" if t.min_ratio is not None else f"<= {t.max_ratio:g}x"


def judge(benches: list[Bench], targets: list[Target] = TARGETS) -> list[Verdict]:
    out = []
    for t in targets:
        slow, fast = find(benches, t.group, t.slow), find(benches, t.group, t.fast)
        ratio = slow.mean_ns / fast.mean_ns if slow and fast and fast.mean_ns > 0 else None
        out.append(Verdict(t, ratio))
    return out


def render(benches: list[Bench], verdicts: list[Verdict]) -> str:
    lines = [f"{'benchmark':<58} {'mean':>12} {'per element':>12}"]
    for b in benches:
        per = f"{b.ns_per_element:.3f} ns" if b.ns_per_element is not None else "-"
        lines.append(f"{b.group + '/' + b.function + '/' + b.param:<58} {fmt_ns(b.mean_ns):>12} {per:>12}")
    lines.append("")
    lines.append(f"{'speed target':<72} {'wanted':>8} {'measured':>9}  verdict")
    for v in verdicts:
        measured = f"{v.ratio:.2f}x" if v.ratio is not None else "-"
        lines.append(f"{v.target.name:<72} {v.want:>8} {measured:>9}  {v.status}")
    return "\n".join(lines)


def fmt_ns(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


def records(benches: list[Bench], verdicts: list[Verdict], run: dict) -> list[dict]:
    """Schema-1 records for a criterion run (results/README.md): run, measurements, checks, end."""
    out = [run]
    for b in benches:
        suite = b.group.split("/")[0]
        out.append({
            "type": "measurement", "suite": suite, "bench": b.group, "impl": b.function,
            "pool_pages": None, "params": {"param": b.param}, "unit": "ns",
            "per": "op" if b.elements else "iter", "ops_per_sample": b.elements or 1,
            "mean": b.mean_ns / (b.elements or 1), "ci_low": b.lower_ns / (b.elements or 1),
            "ci_high": b.upper_ns / (b.elements or 1), "source": "criterion",
        })
    for v in verdicts:
        if v.ratio is not None:
            out.append({"type": "target", "name": v.target.name, "want": v.want,
                        "ratio": round(v.ratio, 3), "met": v.status == "MET"})
    out.append({"type": "end", "status": "ok", "measurements": len(benches)})
    return out


def main(argv: list[str]) -> int:
    """Print criterion's figures and the speed targets; record them as a new results file."""
    import argparse
    import datetime as dt
    import os
    import socket
    import sys

    from . import bench

    ap = argparse.ArgumentParser(prog="ptplab criterion")
    ap.add_argument("--dir", default="target/criterion")
    ap.add_argument("--out", default="results")
    a = ap.parse_args(argv)
    try:
        benches = load(Path(a.dir))
    except CriterionError as e:
        print(f"criterion: error: {e}", file=sys.stderr)
        return 2
    verdicts = judge(benches)
    print(render(benches, verdicts))
    commit, dirty = bench.git_facts()
    now = dt.datetime.now(dt.timezone.utc)
    brand = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    run = {"type": "run", "schema": 1, "where": "host", "accel": "none", "execution": "native",
           "cpu": {"brand": brand}, "config": {"source": "criterion", "dir": a.dir},
           "run_id": f"{now:%Y%m%dT%H%M%SZ}-{os.getpid()}", "git_commit": commit, "git_dirty": dirty,
           "host": socket.gethostname(), "started_utc": now.isoformat(timespec="seconds")}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = bench.new_path(out, f"{now:%Y-%m-%d}", socket.gethostname(), "criterion", partial=False)
    bench.write_new(path, records(benches, verdicts, run), [])
    print(f"criterion: wrote {path}", file=sys.stderr)
    return 0
