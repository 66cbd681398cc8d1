"""The results files' schema. The current version is declared by the Rust record writer
(`ptp-host facts`, lab/ptp-lab/src/record.rs); versions 1 to 6 are the shapes of the files
recorded before it, frozen here so they stay readable (results are data: never rewritten).
Documented in results/README.md."""
from __future__ import annotations

from . import lab

# Added to the run record by the bench job (or collect), which alone knows them
# (results.complete_run_record), each with the schema version it is required from.
JOB_FIELDS = {"run_id": 1, "accel": 1, "git_commit": 1, "git_dirty": 1, "device": 7}
# What the job's `device` holds: null, or where a LAVA job ran (each part null where not known).
DEVICE = {"hostname": "string?", "device_type": "string?", "lava_job_id": "string?"}
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
# Schema 4: as 3 with the CPUs that came up (`run.cpus`), a fault's CPU and the kernel's `smp`
# record (recorded 2026-11-26 to 2026-12-02, before the churn record).
V4 = {**V3, "run": V3["run"] + ["cpus"], "fault": ["cpu"] + V3["fault"],
      "smp": ["source", "apic", "found", "left_out", "cpus"]}
# Schema 5: as 4 with the churn record (recorded 2026-12-02 to 2026-12-03, before `smp`
# counted online-capable CPUs apart).
V5 = {**V4, "churn": ["suite", "bench", "pool_pages", "allocator", "ops", "live_at_most", "sizes", "seed", "done",
                      "exhausted_at", "peak_used", "used_end", "fallbacks_4kib"]}
# Schema 6: as 5 with `smp.online_capable` (recorded from 2026-12-03, before the run record named
# its device; the record shapes are those of 7, which added a job field only).
V6 = {**V5, "smp": ["source", "apic", "found", "left_out", "online_capable", "cpus"]}
FROZEN = {1: V1, 2: V2, 3: V3, 4: V4, 5: V5, 6: V6}


def job_fields(schema: int) -> list[str]:
    """The fields the job adds to the run record in files of this schema version."""
    return [k for k, since in JOB_FIELDS.items() if schema >= since]


def version(records: list[dict]) -> int | None:
    run = records[0] if records and records[0].get("type") == "run" else {}
    return run.get("schema")


def required(schema: int) -> dict[str, list[str]]:
    """Fields each record type must have in files of this schema version."""
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise KeyError(schema)  # a garbled `schema` (a list, a string) is no version, and unhashable
    if schema in FROZEN:
        return FROZEN[schema]
    facts = lab.facts()
    if schema != facts["schema"]:
        raise KeyError(schema)
    return dict(facts["records"])


_KINDS = {"string": (str,), "integer": (int,), "number": (int, float), "bool": (bool,), "object": (dict,),
          "list": (list,)}


def kinds() -> dict[str, dict[str, str]]:
    """What JSON each field of each record type holds, as the Rust declaration says (`ptp-host
    facts`); the frozen versions' fields mean what the current ones of the same name do: no
    field has changed its kind since schema 1, which a test holds by reading every recorded file
    strictly (results/README.md, "How the tools check the older versions")."""
    return lab.facts()["record_kinds"]


def kind_problem(value, kind: str) -> str | None:
    """Why `value` is not of `kind` (`integer`, `string?`, ...), or None when it is."""
    base, nullable = kind.rstrip("?"), kind.endswith("?")
    if value is None:
        return None if nullable or base == "any" else "null"
    if base == "any":
        return None
    types = _KINDS.get(base, ())
    if isinstance(value, bool) and base != "bool":
        return "a bool"
    if base == "integer" and isinstance(value, float) and value.is_integer():
        return None  # 3e9 is an integer written as JSON may write it
    if not isinstance(value, types):
        return f"a {type(value).__name__.replace('dict', 'object').replace('str', 'string')}"
    return None


class Checker:
    """The checks of one record against its declaration in one schema version: its type is
    known, its fields are there and hold what they are declared to, the values a tool relies
    on make sense."""

    def __init__(self, schema):
        try:
            self.shapes = required(schema)
        except KeyError:
            readable = ", ".join(map(str, [*FROZEN, lab.facts()["schema"]]))
            raise ValueError(f"schema {schema!r} is not one these tools read ({readable})") from None
        facts = lab.facts()
        self.schema = schema
        self.types = kinds()
        self.allowed = {"where": set(facts["where"]), "accel": ACCEL, "execution": set(facts["execution"])}

    # What a reader indexes in a record: without these it cannot place the record. The other
    # missing fields are the whole file's check (validate); every field present must hold what
    # it is declared to.
    NEEDED = {"measurement": ["suite", "bench", "impl"], "check": ["name"], "skip": ["bench"], "target": ["name"],
              "crossover": ["bench", "page_size", "per_page", "full", "sizes", "per_page_costs", "full_costs"]}

    def problems(self, r: dict, whole: bool = True) -> list[str]:
        """What is wrong with record `r`, each naming its type and field; [] when it is right.
        `whole` False: of the missing fields only those in NEEDED count (what readers index)."""
        t = r.get("type")
        if not isinstance(t, str):
            return [f"type is {kind_problem(t, 'string')}, not string"]
        if t not in self.shapes:
            return [f"unknown type {t!r}"]
        fields = self.shapes[t]
        if self.schema == 1 and t == "measurement" and r.get("source") == "criterion":
            fields = V1_CRITERION_MEASUREMENT
        if t == "run":
            fields = fields + job_fields(self.schema)
        declared = self.types.get(t, {})
        errors = []
        for k in fields:
            if k not in r:
                if whole or k in self.NEEDED.get(t, ()):
                    errors.append(f"{t}: missing {k!r}")
            elif k in declared and (why := kind_problem(r[k], declared[k])):
                errors.append(f"{t}: {k} is {why}, not {declared[k]}")
        if errors:
            return errors
        if t == "run":
            for k, ok in self.allowed.items():
                if k in r and (not isinstance(r[k], str) or r[k] not in ok):  # a list is unhashable
                    errors.append(f"run: {k} {r[k]!r} not one of {sorted(ok)}")
            if (device := r.get("device")) is not None:
                if not isinstance(device, dict):
                    errors.append(f"run: device is {kind_problem(device, 'object')}, not object")
                else:
                    errors += [f"run: device.{k} is {why}, not {kind}" for k, kind in DEVICE.items()
                               if (why := kind_problem(device.get(k), kind))]
        if t == "measurement":
            if (whole or "per" in r) and r.get("per") not in ("op", "page", "iter"):
                errors.append(f"measurement: per {r.get('per')!r}")
            vals = [r.get(k) for k in ("min", "p50", "p90", "p99", "max")]
            if all(isinstance(v, (int, float)) for v in vals) and vals != sorted(vals):
                errors.append(f"measurement: min <= p50 <= p90 <= p99 <= max does not hold: {vals}")
        return errors


def validate(records: list[dict]) -> list[str]:
    """Every problem found, as text naming the record (1-based) and field; [] when valid."""
    if not records or records[0].get("type") != "run":
        return ["record 1: the first record must be the run record"]
    try:
        check = Checker(version(records))
    except ValueError as e:
        return [f"record 1 (run): {e}"]
    errors = [f"record {i} ({p.split(':', 1)[0]}):{p.split(':', 1)[1]}" if ":" in p else f"record {i}: {p}"
              for i, r in enumerate(records, 1) for p in check.problems(r)]
    if records[-1].get("type") != "end":
        errors.append(f"record {len(records)}: the last record must be the end record")
    return errors


def estimate(m: dict) -> float | None:
    """The figure ratios compare: criterion's mean estimate where it has a confidence interval,
    else the median (as the Rust judge does: timing::Summary::estimate)."""
    if m.get("ci_low") is not None or m.get("source") == "criterion":
        return m.get("mean")
    return m.get("p50")
