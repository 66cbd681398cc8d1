"""The results files' schema. The current version is declared by the Rust record writer
(`ptp-host facts`, lab/ptp-lab/src/record.rs); versions 1 to 3 are the shapes of the files
recorded before it, frozen here so they stay readable (results are data: never rewritten).
Documented in results/README.md."""
from __future__ import annotations

from . import lab

# Added to the run record by the bench job, which alone knows them (results.complete_run_record).
JOB_FIELDS = ["run_id", "accel", "git_commit", "git_dirty"]
ACCEL = {"kvm", "tcg", "bochs", "bare-metal", "none"}

_V1_SUMMARY = ["n", "min", "p50", "p90", "p99", "max", "mean"]
V1 = {
    "run": ["schema", "where", "execution", "cpu", "config"],
    "measurement": ["suite", "bench", "impl", "params", "unit", "per", "ops_per_sample"] + _V1_SUMMARY,
    "check": ["name", "ok", "detail"],
    "skip": ["bench", "reason"],
    "target": ["name", "want", "ratio", "met"],
    "fault": ["vector", "error_code", "rip", "cr2", "bench"],
    "panic": ["msg"],
    "error": ["kind", "msg"],
    "end": ["status"],
}
# Schema-1 criterion measurements carried criterion's estimate only, no sample summary.
V1_CRITERION_MEASUREMENT = ["suite", "bench", "impl", "params", "unit", "per", "ops_per_sample", "mean", "ci_low",
                            "ci_high"]

# Schema 2: as 3 without the machine's load in `run` and `end` (recorded 2026-11-24/25).
V2 = {
    "run": ["schema", "where", "execution", "calibration_ticks_per_iter", "tsc_hz", "tsc_hz_source", "tsc_hz_pit",
            "cpu", "config", "timer", "fill_path"],
    "measurement": ["suite", "bench", "impl", "pool_pages", "params", "unit", "per", "ops_per_sample", "n", "min",
                    "p50", "p90", "p99", "max", "mean", "ci_low", "ci_high", "overhead"],
    "check": ["suite", "bench", "name", "pool_pages", "ok", "detail"],
    "skip": ["suite", "bench", "pool_pages", "reason"],
    "target": ["name", "bench", "ours", "other", "pool_pages", "ratio", "direction", "want", "met", "note"],
    "fault": ["vector", "name", "error_code", "rip", "cr2", "rsp", "bench"],
    "panic": ["msg", "location", "bench"],
    "error": ["kind", "msg"],
    "boot": ["protocol", "cmdline", "cmdline_truncated", "free_ram_bytes", "free_regions", "kernel_start",
             "kernel_end", "boot_info", "rsdp"],
    "memmap": ["truncated", "entries", "free", "free_truncated"],
    "selftest": ["passed", "failed"],
    "end": ["status", "measurements", "checks", "checks_failed", "skips", "targets_missed"],
    "exit": ["ok", "qemu_status", "boot_stack_used_bytes"],
    "crossover": ["suite", "bench", "pool_pages", "page_size", "per_page", "full", "unit", "sizes", "per_page_costs",
                  "full_costs", "n_star", "ceiling", "fixed_ceilings", "calibrated_ceiling", "calibration_ticks",
                  "calibrated_worst_excess"],
}
# Schema 3: as 2 with the machine's load in `run` and `end` (recorded 2026-11-25, before SMP).
V3 = {**V2, "run": V2["run"] + ["load"], "end": V2["end"] + ["load"]}
FROZEN = {1: V1, 2: V2, 3: V3}


def version(records: list[dict]) -> int | None:
    run = records[0] if records and records[0].get("type") == "run" else {}
    return run.get("schema")


def required(schema: int) -> dict[str, list[str]]:
    """Fields each record type must have in files of this schema version."""
    if schema in FROZEN:
        return FROZEN[schema]
    facts = lab.facts()
    if schema != facts["schema"]:
        raise KeyError(schema)
    return dict(facts["records"])


def validate(records: list[dict]) -> list[str]:
    """Every problem found, as text naming the record (1-based) and field; [] when valid."""
    errors = []
    if not records or records[0].get("type") != "run":
        return ["record 1: the first record must be the run record"]
    schema = version(records)
    try:
        shapes = required(schema)
    except KeyError:
        readable = ", ".join(map(str, [*FROZEN, lab.facts()["schema"]]))
        return [f"record 1 (run): schema {schema!r} is not one these tools read ({readable})"]
    facts = lab.facts()
    allowed = {"where": set(facts["where"]), "accel": ACCEL, "execution": set(facts["execution"])}
    for i, r in enumerate(records, 1):
        t = r.get("type")
        if t not in shapes:
            errors.append(f"record {i}: unknown type {t!r}")
            continue
        fields = shapes[t]
        if schema == 1 and t == "measurement" and r.get("source") == "criterion":
            fields = V1_CRITERION_MEASUREMENT
        if t == "run":
            fields = fields + JOB_FIELDS
        for k in fields:
            if k not in r:
                errors.append(f"record {i} ({t}): missing {k!r}")
        if t == "run":
            for k, ok in allowed.items():
                if k in r and r[k] not in ok:
                    errors.append(f"record {i} (run): {k} {r[k]!r} not one of {sorted(ok)}")
        if t == "measurement":
            if r.get("per") not in ("op", "page", "iter"):
                errors.append(f"record {i} (measurement): per {r.get('per')!r}")
            vals = [r.get(k) for k in ("min", "p50", "p90", "p99", "max")]
            if all(isinstance(v, (int, float)) for v in vals) and vals != sorted(vals):
                errors.append(f"record {i} (measurement): min <= p50 <= p90 <= p99 <= max does not hold: {vals}")
    if records[-1].get("type") != "end":
        errors.append(f"record {len(records)}: the last record must be the end record")
    return errors


def estimate(m: dict) -> float | None:
    """The figure ratios compare: criterion's mean estimate where it has a confidence interval,
    else the median (as the Rust judge does: timing::Summary::estimate)."""
    if m.get("ci_low") is not None or m.get("source") == "criterion":
        return m.get("mean")
    return m.get("p50")
