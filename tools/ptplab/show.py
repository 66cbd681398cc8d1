"""Show recorded runs. Files are grouped by (where, accel, execution) and each group is shown
apart: native and emulated figures are never put in one table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from . import schema
from .table import render


def load(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise SystemExit(f"show: cannot read {path}: {e.strerror}")
    records = []
    for i, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise SystemExit(f"show: {path}:{i}: not a JSON object")
    return records


def group_key(records: list[dict]) -> tuple:
    run = records[0] if records and records[0].get("type") == "run" else {}
    return (run.get("where"), run.get("accel"), run.get("execution"))


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python3 -m ptplab show FILE...", file=sys.stderr)
        return 2
    groups: dict[tuple, list[tuple[Path, list[dict]]]] = {}
    bad = 0
    for name in argv:
        path = Path(name)
        recs = load(path)
        problems = schema.validate(recs)
        if problems:
            print(f"{path}: not a complete run: {problems[0]}", file=sys.stderr)
            bad += 1
            continue
        groups.setdefault(group_key(recs), []).append((path, recs))
    for (where, accel, execution), runs in groups.items():
        print(f"===== {where} / {accel} / {execution} ({len(runs)} run{'s' if len(runs) > 1 else ''}) =====")
        for path, recs in runs:
            print(f"--- {path}")
            print(render(recs))
            print()
    return 1 if bad else 0
