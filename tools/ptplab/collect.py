"""python3 -m ptplab collect LOG: a serial log captured elsewhere (bare metal, or a QEMU run made
by hand) turned into a results file, as the bench job would have written it."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from . import lavalog, results, schema, stream
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


def lava_entries(text: str, log: str = "the LAVA log") -> list[tuple[int, str]] | None:
    """The machine's output in a LAVA job log (lavalog), each line with its line in the log.
    None: not a LAVA log."""
    if not lavalog.is_lava_log(text):
        return None
    return lavalog.target_lines(lavalog.entries(text, log, levels=lavalog.TARGET))


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
    # Where a LAVA job ran (its wrapper knows them from the job and device dictionary it wrote):
    # the run record's `device`, which keeps two identical machines apart (`ptplab machines`).
    ap.add_argument("--device", metavar="NAME", help="the device's name (LAVA: its hostname)")
    ap.add_argument("--device-type", metavar="TYPE", help="the device's type (LAVA: its device type)")
    ap.add_argument("--lava-job-id", metavar="ID", help="the LAVA job that ran it")
    ap.add_argument("--boot", metavar="HOW", help="how the machine booted the kernel (grub-pxe-bios, ipxe-http-uefi, "
                    "grub-cdrom-bios, ...)")
    try:
        a = ap.parse_args(argv)
        try:
            text = Path(a.log).read_text(errors="replace")
        except OSError as e:
            raise BenchError(f"{a.log}: {e.strerror}")
        lava = lava_entries(text, a.log)
        out, at = stream.Outcome(), []
        for i, line in enumerate(text.splitlines(), 1) if lava is None else lava:
            n = len(out.records)
            stream.take_line(out, line.rstrip("\r"), time.monotonic())
            at += [i] * (len(out.records) - n)
        out.records = checked(out.records, at, a.log, a.lenient)
        named = (a.device, a.device_type, a.lava_job_id, a.boot)
        device = None if named == (None,) * 4 else dict(zip(schema.DEVICE, named))
        run_rec = results.complete_run_record(out.records, out.boot, a.accel,
                                              {"collected_from": str(a.log), "started_utc": None, "device": device})
        complete = out.end() is not None
        # The kernel can stop before its run record (a fault in the boot self-checks): with
        # --partial, what its boot record shows it printed is kept, as the bench job keeps it.
        if run_rec is None and not (a.partial and out.boot and not complete):
            raise BenchError(f"{a.log}: no run record: not the bench kernel's output, or cut before it")
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
