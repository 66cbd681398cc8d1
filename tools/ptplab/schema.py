"""Schema version 1 of the lab's JSON Lines results (documented in results/README.md)."""
from __future__ import annotations

SCHEMA = 1

SUMMARY = ["n", "min", "p50", "p90", "p99", "max", "mean"]

REQUIRED = {
    "run": ["schema", "where", "execution", "cpu", "config", "run_id", "accel", "git_commit", "git_dirty"],
    "measurement": ["suite", "bench", "impl", "params", "unit", "per", "ops_per_sample"] + SUMMARY,
    "check": ["name", "ok", "detail"],
    "skip": ["bench", "reason"],
    "target": ["name", "want", "ratio", "met"],
    "fault": ["vector", "error_code", "rip", "cr2", "bench"],
    "panic": ["msg"],
    "error": ["kind", "msg"],
    "end": ["status"],
}

WHERE = {"kernel", "host"}
ACCEL = {"kvm", "tcg", "bare-metal", "none"}
EXECUTION = {"native", "emulated"}


def validate(records: list[dict]) -> list[str]:
    """Every problem found, as text naming the record (1-based) and field; [] when valid."""
    errors = []
    if not records or records[0].get("type") != "run":
        errors.append("record 1: the first record must be the run record")
    for i, r in enumerate(records, 1):
        t = r.get("type")
        if t not in REQUIRED:
            errors.append(f"record {i}: unknown type {t!r}")
            continue
        for k in REQUIRED[t]:
            if k not in r:
                errors.append(f"record {i} ({t}): missing {k!r}")
        if t == "run":
            if r.get("schema") != SCHEMA:
                errors.append(f"record {i} (run): schema {r.get('schema')!r}, expected {SCHEMA}")
            for k, allowed in (("where", WHERE), ("accel", ACCEL), ("execution", EXECUTION)):
                if k in r and r[k] not in allowed:
                    errors.append(f"record {i} (run): {k} {r[k]!r} not one of {sorted(allowed)}")
        if t == "measurement":
            if r.get("per") not in ("op", "page", "iter"):
                errors.append(f"record {i} (measurement): per {r.get('per')!r}")
            vals = [r.get(k) for k in ("min", "p50", "p90", "p99", "max")]
            if all(isinstance(v, (int, float)) for v in vals) and vals != sorted(vals):
                errors.append(f"record {i} (measurement): min <= p50 <= p90 <= p99 <= max does not hold: {vals}")
    if records and records[-1].get("type") != "end":
        errors.append(f"record {len(records)}: the last record must be the end record")
    return errors
