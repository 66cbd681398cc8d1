"""Readable tables of a run's records, and the speed targets judged on them."""
from __future__ import annotations

PEER = "x86_64-map_to"
LIMIT = "memset-limit"


def run_header(run: dict) -> list[str]:
    cpu = run.get("cpu", {})
    tsc = run.get("tsc_hz")
    lines = [
        f"where={run.get('where')} accel={run.get('accel')} execution={run.get('execution')} "
        f"cpu={cpu.get('brand')!r} hypervisor={cpu.get('hypervisor')} "
        f"tsc={tsc / 1e9:.3f} GHz ({run.get('tsc_hz_source')})" if tsc else
        f"where={run.get('where')} accel={run.get('accel')} execution={run.get('execution')} tsc=unknown",
        f"commit {str(run.get('git_commit'))[:12]}{' (dirty)' if run.get('git_dirty') else ''}, "
        f"config {run.get('config')}",
    ]
    if run.get("execution") == "emulated":
        lines.append("!! EMULATED: figures come from an emulator (TCG); privileged instructions (invlpg, CR3) are "
                     "emulated, so these timings say nothing about hardware.")
    if run.get("kvm_probe"):
        lines.append(run["kvm_probe"])
    return lines


def measurement_rows(records: list[dict]) -> list[str]:
    ms = [r for r in records if r.get("type") == "measurement"]
    peers = {(m["bench"], m.get("pool_pages"), m["impl"]): m for m in ms}
    out = [f"{'suite':<6} {'bench':<27} {'pool':>6} {'impl':<20} {'per':<4} {'n':>4} {'p50':>10} {'mean':>10} "
           f"{'x vs map_to':>11} {'x memset':>9}"]
    for m in ms:
        peer = peers.get((m["bench"], m.get("pool_pages"), PEER))
        limit = peers.get((m["bench"], m.get("pool_pages"), LIMIT))
        vs_peer = f"{peer['p50'] / m['p50']:.1f}" if peer and m["impl"] != PEER and m["p50"] else ""
        vs_limit = f"{m['p50'] / limit['p50']:.2f}" if limit and m["impl"] != LIMIT and limit["p50"] else ""
        unit = "ticks" if m.get("unit") == "ticks" else m.get("unit", "")
        out.append(f"{m['suite']:<6} {m['bench']:<27} {m.get('pool_pages') or '':>6} {m['impl']:<20} "
                   f"{m['per']:<4} {m['n']:>4} {m['p50']:>10.3f} {m['mean']:>10.3f} {vs_peer:>11} {vs_limit:>9}"
                   + ("" if unit == "ticks" else f" {unit}"))
    return out


def targets(records: list[dict]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for the bench kernel's named speed targets."""
    run = next((r for r in records if r.get("type") == "run"), {})
    emulated = run.get("execution") == "emulated"
    out = []
    first = run.get("first_result_s")
    if first is not None and run.get("where") == "kernel":
        out.append(("boot to first result <= 1 s", f"{first:.2f} s", "MET" if first <= 1 else "MISSED"))
    cfg = run.get("config", {})
    if run.get("accel") == "tcg" and cfg.get("quick") and cfg.get("mode") == "bench" and run.get("wall_s"):
        w = run["wall_s"]
        out.append(("default --quick run under TCG <= 60 s", f"{w:.1f} s", "MET" if w <= 60 else "MISSED"))
    ms = [r for r in records if r.get("type") == "measurement"]
    for m in ms:
        if m["impl"] != "lab-map_range" or run.get("where") != "kernel" or m["bench"] == "map_64GiB_1GiB":
            continue
        peer = next((p for p in ms if p["bench"] == m["bench"] and p.get("pool_pages") == m.get("pool_pages")
                     and p["impl"] == PEER), None)
        if not peer or not m["p50"]:
            continue
        ratio = peer["p50"] / m["p50"]
        verdict = ("not judged: emulated" if emulated else ("MET" if ratio >= 10 else "MISSED"))
        out.append((f"in-kernel map_range >= 10x x86_64 map_to ({m['bench']}, pool {m.get('pool_pages')})",
                    f"{ratio:.1f}x", verdict))
    return out


def render(records: list[dict]) -> str:
    run = next((r for r in records if r.get("type") == "run"), {})
    lines = run_header(run) + [""] + measurement_rows(records)
    checks = [r for r in records if r.get("type") == "check"]
    failed = [c for c in checks if not c.get("ok")]
    lines += ["", f"checks: {len(checks) - len(failed)} ok, {len(failed)} failed"]
    lines += [f"  FAILED {c.get('suite', 'boot')}/{c['name']} (pool {c.get('pool_pages')}): {c.get('detail')}"
              for c in failed]
    skips = [r for r in records if r.get("type") == "skip"]
    if skips:
        lines.append(f"skipped: {len(skips)}")
        lines += [f"  {s.get('suite')}/{s['bench']} (pool {s.get('pool_pages')}): {s['reason']}" for s in skips]
    t = targets(records)
    if t:
        lines.append("speed targets:")
        lines += [f"  {name:<70} {measured:>9}  {verdict}" for name, measured, verdict in t]
    return "\n".join(lines)
