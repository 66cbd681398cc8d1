"""python3 -m ptplab collect LOG: a serial log captured elsewhere (bare metal, or a QEMU run made
by hand) turned into a results file, as the bench job would have written it."""
from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

from . import results, schema, stream
from .cli import BenchError, Exit, Parser, say


def checked(records: list[dict], at: list[int], log: str, lenient: bool) -> list[dict]:
    """The records that pass their check (schema.Checker of the run record's schema; `at` holds
    each one's line in the log). Serial noise can garble a record line into valid JSON that is
    not a valid record: strictly it is refused naming log, line and field, leniently left out."""
    run = next((r for r in records if r.get("type") == "run"), None)
    if run is None:
        return records  # nothing to check against: main says there is no run record
    try:
        check = schema.Checker(run.get("schema"))
    except ValueError as e:
        raise BenchError(f"{log}:{at[records.index(run)]}: {e}", code=Exit.SCHEMA)
    kept = []
    for rec, line in zip(records, at):
        if problems := check.problems(rec, whole=False):
            if not lenient:
                raise BenchError(f"{log}:{line}: {problems[0]} (--lenient leaves such lines out)",
                                 code=Exit.SCHEMA)
            say(f"collect: {log}:{line}: {problems[0]}, left out")
            continue
        kept.append(rec)
    return kept


# A LAVA job log line: lava-run writes one `{"dt": ..., "lvl": ..., "msg": ...}` a line on
# stderr; a server's job log (what lavacli fetches) is a YAML list of the same entries ("- {").
# Not always JSON (a YAML tag such as `! "1234"` may appear), hence a pattern, not json.loads.
_LAVA = re.compile(r'^(?:- )?\{"dt": "[^"]*", "lvl": "(?P<lvl>[a-z]+)", "msg": "(?P<msg>(?:[^"\\]|\\.)*)"')


def lava_lines(text: str) -> list[str] | None:
    """The machine's output in a LAVA job log (its `target` and `feedback` entries), unescaped:
    the message is a JSON string whose quotes LAVA escaped once more. None: not a LAVA log."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if not _LAVA.match(first):
        return None
    out = []
    for line in text.splitlines():
        m = _LAVA.match(line)
        if not m or m.group("lvl") not in ("target", "feedback"):
            continue
        try:
            msg = json.loads(f'"{m.group("msg")}"')
        except ValueError:
            continue
        out.append(msg.replace('\\"', '"'))
    return out


def main(argv: list[str]) -> int:
    """Turn a captured serial log (bare metal, or any QEMU run made by hand) into a results file."""
    ap = Parser(prog="python3 -m ptplab collect", description=main.__doc__)
    ap.add_argument("log", help="the serial output, as captured, or a LAVA job's log (lava-run's stderr, or a "
                    "server's job log as lavacli fetches it): its target lines are the serial output")
    ap.add_argument("--accel", required=True, choices=["bare-metal", "kvm", "tcg"], help="how it ran")
    ap.add_argument("--out", default=str(results.RESULTS))
    ap.add_argument("--partial", action="store_true",
                    help="keep a log cut before the end record, as a .partial.jsonl file (default: refuse it)")
    ap.add_argument("--lenient", action="store_true",
                    help="leave out record lines that fail their check, naming each (default: refuse the log)")
    try:
        a = ap.parse_args(argv)
        try:
            text = Path(a.log).read_text(errors="replace")
        except OSError as e:
            raise BenchError(f"{a.log}: {e.strerror}")
        lava = lava_lines(text)
        out, at = stream.Outcome(), []
        for i, line in enumerate(text.splitlines() if lava is None else lava, 1):
            n = len(out.records)
            stream.take_line(out, line.rstrip("\r"), time.monotonic())
            at += [i] * (len(out.records) - n)
        out.records = checked(out.records, at, a.log, a.lenient)
        run_rec = results.complete_run_record(out.records, out.boot, a.accel,
                                              {"collected_from": str(a.log), "started_utc": None})
        if run_rec is None:
            raise BenchError(f"{a.log}: no run record: not the bench kernel's output, or cut before it")
        complete = out.end() is not None
        if not complete and not a.partial:
            raise BenchError(f"{a.log}: no end record: the log was cut before the run ended (capture it again, or "
                             "--partial to keep what it has as a partial file)", code=Exit.CRASHED)
        problems = schema.validate(out.records) if complete else []
        Path(a.out).mkdir(parents=True, exist_ok=True)
        path = results.new_path(Path(a.out), results.today(), socket.gethostname(), a.accel, partial=not complete)
        results.write_new(path, out.records, out.log)
        say(f"collect: wrote {path}{'' if complete else ' (no end record: partial)'}")
        if problems:
            raise BenchError("schema problems: " + "; ".join(problems[:5]), code=Exit.SCHEMA)
        return Exit.OK if complete else Exit.CRASHED
    except BenchError as e:
        say(f"collect: error: {e}")
        return e.code
