"""The results files' schema: each version's record shapes are a file, results/schema/vN.json,
written by the Rust record writer (`ptp-host schema`, lab/ptp-lab/src/record.rs) while it was
current and kept after, so every recorded file stays readable (results are data: never
rewritten). What the job adds to the run record is declared here. Documented in
results/README.md."""
from __future__ import annotations

import functools
import json
from pathlib import Path

from . import lab

# Added to the run record by the bench job (or collect), which alone knows them
# (results.complete_run_record), each with the schema version it is required from.
JOB_FIELDS = {"run_id": 1, "accel": 1, "git_commit": 1, "git_dirty": 1, "device": 7}
# What the job's `device` holds: null, or where a LAVA job ran and how it booted the kernel
# (each part null where not known; `boot` since the network boots, absent before: null).
DEVICE = {"hostname": "string?", "device_type": "string?", "lava_job_id": "string?", "boot": "string?"}
ACCEL = {"kvm", "tcg", "bochs", "bare-metal", "none"}

# Each version's record shapes, one file each: written by `ptp-host schema` when the version was
# current, and kept as data after (results are never rewritten). Read here, never restated.
SHAPES = Path(__file__).resolve().parents[2] / "results" / "schema"


@functools.lru_cache(maxsize=None)
def shapes(schema: int) -> dict:
    """results/schema/v{schema}.json: per record type, its fields in order with their kinds."""
    path = SHAPES / f"v{schema}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyError(schema) from None


def versions() -> list[int]:
    """Every schema version these tools read."""
    return sorted(int(p.stem[1:]) for p in SHAPES.glob("v*.json") if p.stem[1:].isdigit())


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
    return {t: list(fields) for t, fields in shapes(schema)["records"].items()}


_KINDS = {"string": (str,), "integer": (int,), "number": (int, float), "bool": (bool,), "object": (dict,),
          "list": (list,)}


def kinds(schema: int) -> dict[str, dict[str, str]]:
    """What JSON each field of each record type holds in this version (its file; the current
    one's is what the Rust declaration says, a test holds them equal). No field has changed its
    kind since schema 1, which a test holds by reading every recorded file strictly
    (results/README.md, "How the tools check the older versions")."""
    return shapes(schema)["records"]


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
            readable = ", ".join(map(str, versions()))
            raise ValueError(f"schema {schema!r} is not one these tools read ({readable})") from None
        facts = lab.facts()
        self.schema = schema
        self.types = kinds(schema)
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
            fields = list(shapes(1)["criterion_measurement"])  # schema 1's criterion estimate, no summary
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
