"""The decision report's plots, PNG and SVG side by side. matplotlib comes from the project's
.venv (tools/requirements.txt); without it the report says so and has no plots."""
from __future__ import annotations

from pathlib import Path

from . import lab

GIB = 1 << 30


class NoPlots(Exception):
    """Why there are no plots (matplotlib missing)."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise NoPlots("matplotlib is not installed (scripts/report.sh and scripts/bench.sh install it into .venv)")
    matplotlib.use("Agg")  # files only: no display, no window
    import matplotlib.pyplot as plt
    return plt


Figure = tuple  # (caption, stem, matplotlib figure)


def save(out: Path, figs: list[Figure]) -> list[tuple[str, str]]:
    """Write each figure as STEM.png and STEM.svg in `out`; (caption, stem) per figure."""
    plt = _pyplot()
    for _, stem, fig in figs:
        for ext in ("png", "svg"):
            fig.savefig(out / f"{stem}.{ext}", dpi=110, bbox_inches="tight", metadata=_metadata(ext))
        plt.close(fig)
    return [(caption, stem) for caption, stem, _ in figs]


def _metadata(ext: str) -> dict:
    # No creation date in the files: the same data draws byte-identical plots.
    return {"svg": {"Date": None}, "png": {"Software": None}}[ext]


def capacity(pools: list[int], fit: dict[int, tuple[int, int]], n_layouts: int,
             limits: dict[int, dict]) -> list[Figure]:
    """Fit share of the real layouts and the largest region, against pool size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, label in enumerate(("4 KiB pages", "2 MiB pages where aligned")):
        ax.plot(pools, [100 * fit[n][i] / n_layouts for n in pools], marker="o", label=f"layouts that fit, {label}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("pool pages")
    ax.set_ylabel(f"% of {n_layouts} real layouts")
    ax.set_ylim(0, 105)
    ax.axvline(4096, color="grey", linestyle=":", label="standard (4096)")
    ax2 = ax.twinx()
    ax2.plot(pools, [limits[n]["largest_region_4KiB"] / GIB for n in pools], color="black", linestyle="--",
             label="largest region, 4 KiB pages (GiB)")
    ax2.set_yscale("log", base=2)
    ax2.set_ylabel("largest region, 4 KiB pages (GiB)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower right", fontsize=8)
    ax.set_title("Unmodifiable PTPs: what fits per pool size")
    return [("Capacity and fit share vs pool size", "capacity", fig)]


def costs(recs: list[dict], source: str) -> list[Figure]:
    """From one native run: ticks per op vs pool size per allocator; mapping and unmapping cost
    per page per method against the limits (what the bytes alone cost); under churn, the pool
    pages bump and the bitmap hold at most per pool size, and where bump ran out."""
    plt = _pyplot()
    drawn = []
    ms = [r for r in recs if r.get("type") == "measurement" and r.get("p50") is not None]
    alloc = sorted({(r["bench"], r["impl"]) for r in ms if r.get("suite") == "alloc"})
    if alloc:
        benches = sorted({b for b, _ in alloc})
        fig, axes = plt.subplots(1, len(benches), figsize=(3.2 * len(benches), 3.4), squeeze=False)
        for ax, bench in zip(axes[0], benches):
            for b, impl in alloc:
                if b != bench:
                    continue
                pts = sorted((r["pool_pages"], r["p50"]) for r in ms if r["bench"] == b and r["impl"] == impl)
                ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", label=impl)
            ax.set_xscale("log", base=2)
            ax.set_title(bench, fontsize=8)
            ax.set_xlabel("pool pages", fontsize=8)
            ax.tick_params(labelsize=7)
            # From 0, with room above the highest point: two close values must not look far apart.
            ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22))  # below: never over a point
        axes[0][0].set_ylabel("TSC ticks per op (median)")
        fig.suptitle(f"Allocators per pool size ({source})", fontsize=9)
        drawn.append(("Ticks per operation vs pool size, per allocator", "alloc", fig))
    for prefix, what, stem in (("map_", "Mapping", "map"), ("unmap_", "Unmapping", "unmap")):
        benches = sorted({r["bench"] for r in ms if r.get("suite") == "map" and r["bench"].startswith(prefix)})
        if not benches:
            continue
        pool = max(r["pool_pages"] for r in ms if r["bench"] in benches)
        impls = sorted({r["impl"] for r in ms if r["bench"] in benches})
        fig, ax = plt.subplots(figsize=(7, 3.8))
        width = 0.8 / len(impls)
        for i, impl in enumerate(impls):
            vals = [next((r["p50"] for r in ms if r["bench"] == b and r["impl"] == impl and r["pool_pages"] == pool),
                         0) for b in benches]
            ax.bar([j + i * width for j in range(len(benches))], vals, width, label=impl)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(benches))], benches, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("TSC ticks per page (median)")
        # Beside the bars, not over them.
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(f"{what} cost per page, pool {pool} ({source}); the limits: what the bytes alone cost",
                     fontsize=9)
        drawn.append((f"{what} cost per page per method, against the limits", stem, fig))
    runs = [r for r in recs if r.get("type") == "churn"]
    if runs:
        pools = sorted({r["pool_pages"] for r in runs})
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for alloc, marker in (("bump", "o"), ("bitmap", "s")):
            pts = sorted((r["pool_pages"], r["peak_used"]) for r in runs if r["allocator"] == alloc)
            ax.plot([p for p, _ in pts], [v for _, v in pts], marker=marker, label=f"{alloc}: pages in use at most")
        ax.plot(pools, pools, color="grey", linestyle=":", label="the pool (all its pages)")
        out = [(r["pool_pages"], r["peak_used"]) for r in runs if r.get("exhausted_at") is not None]
        if out:
            ax.scatter([p for p, _ in out], [v for _, v in out], marker="x", s=80, color="red", zorder=3,
                       label="ran out of pages")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("pool pages")
        ax.set_ylabel("pool pages in use at most")
        ax.legend(fontsize=7)
        ax.set_title(f"Churn: bump against bitmap ({source})", fontsize=9)
        drawn.append(("Churn: pool pages in use at most, bump against bitmap, per pool size", "churn", fig))
    return drawn


def crossover(rec: dict, source: str, execution: str) -> list[Figure]:
    """One `crossover` record: per-page flush + refill against the full flush + refill, vs the
    number of pages changed, with N* (where the full flush starts to win) and the calibrated
    ceiling marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(rec["sizes"], rec["per_page_costs"], marker="o", label=rec["per_page"])
    ax.plot(rec["sizes"], rec["full_costs"], marker="s", label=rec["full"])
    # A log axis has no 0: a ceiling of 0 (full flush at every size) is said in the legend, and
    # the axis spans the sizes measured, not whatever a marker would stretch it to.
    sizes = [n for n in rec["sizes"] if n > 0]
    if rec.get("n_star") is not None and rec["n_star"] > 0:
        ax.axvline(rec["n_star"], color="red", linestyle=":", label=f"N* = {rec['n_star']}")
    ceiling = rec.get("calibrated_ceiling")
    if ceiling is not None and ceiling > 0:
        ax.axvline(ceiling, color="grey", linestyle="--", label=f"calibrated ceiling = {ceiling}")
    elif ceiling == 0:
        ax.plot([], [], color="grey", linestyle="--", label="calibrated ceiling = 0: full flush at every size")
    ax.set_xscale("log", base=2)
    if sizes:
        ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
    ax.set_yscale("log")
    ax.set_xlabel(f"pages changed ({rec['page_size']})")
    ax.set_ylabel(f"{rec['unit']} for all of them (median)")
    ax.legend(fontsize=7)
    where = "by IPI on another CPU, " if rec["bench"] == lab.bench("shootdown") else ""
    ax.set_title(f"Flush + refill {where}{rec['page_size']} pages ({source}, {execution})", fontsize=9)
    # One file per pair of strategies (a run has several per page size: invlpg, INVPCID, IPI).
    stem = f"tlb-{rec['page_size']}-{rec['per_page']}-vs-{rec['full']}"
    return [(f"Flush + refill vs N, {where}{rec['page_size']}: {rec['per_page']} vs {rec['full']}", stem, fig)]


def lifetimes(pools: list[int], held: dict[str, list[float]], n_programs: int) -> list[Figure]:
    """Per class, the share of its programs whose every process's peak fits, against pool size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for cls in sorted(held):
        ax.plot(pools, [100 * x for x in held[cls]], marker="o", label=cls)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("pool pages")
    ax.set_ylabel("% of the class's programs held at peak")
    ax.set_ylim(0, 105)
    ax.axvline(4096, color="grey", linestyle=":", label="standard (4096)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"Peak over whole lifetimes, 4 KiB pages ({n_programs} programs, results/traces)", fontsize=9)
    return [("programs held at peak per class against pool size (lifetimes, 4 KiB pages)", "lifetimes", fig)]


def flush_sizes(per_class: dict[str, dict[str, int]], ceilings: dict[str, int], cpu: str) -> list[Figure]:
    """Per class, the share of its flushes changing at most N pages (4 KiB), against N; the
    ceilings compared drawn across."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for cls in sorted(per_class):
        hist = sorted((int(k), v) for k, v in per_class[cls].items())
        n = sum(v for _, v in hist)
        if not n:
            continue
        xs, ys, seen = [], [], 0
        for pages, v in hist:
            seen += v
            xs.append(pages)
            ys.append(100 * seen / n)
        ax.step(xs, ys, where="post", label=f"{cls} ({n:,})", linewidth=2 if cls == "all" else 1)
    for (name, c), style in zip(ceilings.items(), (":", "--", "-.")):
        if c > 0:
            ax.axvline(c, color="grey", linestyle=style, label=f"{name} ({c})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("pages a flush changes (4 KiB)")
    ax.set_ylabel("% of the class's flushes, at most that many pages")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"Flush sizes over whole lifetimes (results/traces); ceilings on {cpu}", fontsize=8)
    return [("flush sizes per class, cumulative, with the ceilings compared", "flush-sizes", fig)]
