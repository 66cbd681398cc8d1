"""A LAVA job's log, read. lava-run writes one entry `{"dt": ..., "lvl": ..., "msg": ...}` a line
on stderr (among whatever else reaches its stderr); a server's job log (what `lavacli jobs logs
--raw` fetches) is a YAML list of the same entries, one "- {" a line.

LAVA writes each entry with PyYAML's double-quoted emitter (lava_common.log.dump): control
characters, DEL, Latin-1 and other non-ASCII text become YAML escapes (\\a, \\x7F, \\xE9, \\_, \\N,
\\L, \\u65E5 ...) that only a YAML parser reads. Each line is parsed alone, so a garbled one costs
that line only, and is named on stderr. PyYAML is imported only when a LAVA log is read: a plain
serial log needs none, and bare-metal users run collect with the system Python."""
from __future__ import annotations

import re

from .cli import BenchError, say

_FIRST = re.compile(r'(?:- )?\{"dt": "[^"]*", "lvl": "')
# The machine's output; the rest (results aside) is LAVA's own talk.
TARGET = ("target", "feedback")


def _yaml(log: str):
    try:
        import yaml
    except ImportError:
        raise BenchError(f"{log}: a LAVA job log, which LAVA writes in YAML: reading it needs PyYAML "
                         "(Debian/Ubuntu: apt install python3-yaml; else pip install pyyaml)") from None
    return yaml, getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def is_lava_log(text: str) -> bool:
    """An entry among the first lines (lava-run's stderr may open with a Python warning)."""
    head = [ln for ln in text.split("\n", 200)[:200] if ln.strip()][:20]
    return any(_FIRST.match(ln) for ln in head)


def entries(text: str, log: str = "the LAVA log", levels: tuple[str, ...] | None = None) -> list[tuple[int, dict]]:
    """The log's entries (of `levels` only, when given: most of a log is LAVA's debug talk, not
    worth parsing), each with its line in the log."""
    yaml, loader = _yaml(log)
    out = []
    for i, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.startswith(("{", "- ")):
            continue  # not an entry: other text on lava-run's stderr (a warning), a blank line
        if levels is not None and not any(lvl in line for lvl in levels):
            continue
        try:
            entry = yaml.load(line[2:] if line.startswith("- ") else line, Loader=loader)
        except Exception as e:  # noqa: BLE001 (PyYAML's constructors raise what their conversions do
            # on a garbled tagged scalar: ValueError, TypeError ...; any of them: an unreadable line)
            say(f"collect: {log}:{i}: not a LAVA log entry ({getattr(e, 'problem', None) or type(e).__name__}), "
                "left out")
            continue
        if not isinstance(entry, dict):
            say(f"collect: {log}:{i}: not a LAVA log entry (a YAML {type(entry).__name__}, not a mapping), left out")
            continue
        if levels is None or entry.get("lvl") in levels:
            out.append((i, entry))
    return out


def target_lines(es: list[tuple[int, dict]]) -> list[tuple[int, str]]:
    """The machine's output (each `target` and `feedback` message that is a string), with its line.
    LAVA escaped the quotes of what it read once more (`\\"`): undone after parsing."""
    return [(i, e["msg"].replace('\\"', '"')) for i, e in es
            if e.get("lvl") in TARGET and isinstance(e.get("msg"), str)]


def dump(data: dict) -> str:
    """YAML in block style, as LAVA's results read (what scripts/lava.sh keeps beside a results file)."""
    yaml, _ = _yaml("LAVA's results")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
