"""Real address-space layouts, and what a page-table pool needs to map them.

Three formats are read (results/layouts/README.md):
- a captured layout (JSON, `python3 -m ptplab layouts capture`): ranges and permissions of a
  running process, plus the page-table memory Linux really uses for it (VmPTE); no file names,
  paths or contents;
- a `/proc/<pid>/maps` file as it is;
- a hand-written layout: one range per line, `START END [PERMS]` in hex, `#` comments.

Ranges without any permission (`---p`: reservations, guard areas) are left out: a PTP maps what
a process can touch. The pool pages come from the lab's one capacity model (`ptp-host layout`,
vystem_ptp::capacity), which also maps each layout for real on simulated memory.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import lab, trace
from . import cli
from .cli import BenchError, Parser
from .lab import PAGE
from .results import RESULTS
from .table import grid

# The top of the user half: above it (`[vsyscall]`, the kernel) no user page table maps.
USER_TOP = 1 << 47
# The captured layouts (results/layouts/README.md): what the bench job and the report read.
DIR = RESULTS / "layouts"
MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+)\s+([rwxsp-]{4})(\s|$)")
HAND_LINE = re.compile(r"^(?:0x)?([0-9a-fA-F]+)\s+(?:0x)?([0-9a-fA-F]+)(?:\s+([rwxsp-]{4}))?\s*$")


class LayoutError(Exception):
    pass


@dataclass
class Layout:
    name: str
    ranges: list[tuple[int, int, str]]  # [start, end), perms
    vm_pte_kib: int | None = None

    def mapped(self) -> list[tuple[int, int]]:
        """The ranges a PTP maps: those of the user half with some permission."""
        return [(s, e) for s, e, p in self.ranges if p[:3] != "---" and e <= USER_TOP]

    def reserved(self) -> list[tuple[int, int]]:
        """Reservations (no permission: PROT_NONE), which a process may make accessible later."""
        return [(s, e) for s, e, p in self.ranges if p[:3] == "---" and e <= USER_TOP]

    def reserved_bytes(self) -> int:
        return sum(e - s for s, e in self.reserved())

    def kernel_half(self) -> list[tuple[int, int]]:
        """Ranges above the user half (`[vsyscall]`): no user page table holds them."""
        return [(s, e) for s, e, _ in self.ranges if e > USER_TOP]


def read(path: Path) -> Layout:
    """A layout from any of the three formats; an error names the file and line (and field)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LayoutError(f"{path}: {e.strerror}")
    if data.lstrip().startswith(b"{"):
        return _captured(path, data)
    ranges = []
    for i, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8").split("#", 1)[0].strip()
        except UnicodeDecodeError:
            raise LayoutError(f"{path}:{i}: not UTF-8 text")
        if not line:
            continue
        m = MAPS_LINE.match(line) or HAND_LINE.match(line)
        if not m:
            raise LayoutError(f"{path}:{i}: {line!r} is neither a /proc/<pid>/maps line nor START END [PERMS]")
        s, e = int(m.group(1), 16), int(m.group(2), 16)
        if s >= e or s % PAGE or e % PAGE:
            raise LayoutError(f"{path}:{i}: {line!r}: START < END, both 4 KiB aligned")
        ranges.append((s, e, m.group(3) or "rw-p"))
    return Layout(path.stem, ranges)


def _captured(path: Path, data: bytes) -> Layout:
    """A layout captured by `ptplab layouts` (JSON), every field checked."""
    try:
        d = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise LayoutError(f"{path}: not a captured layout (not JSON: {e})")
    if not isinstance(d, dict):
        raise LayoutError(f"{path}: not a captured layout (not a JSON object)")
    program, variant, pte = d.get("program", path.stem), d.get("variant", ""), d.get("vm_pte_kib")
    if not isinstance(program, str) or not isinstance(variant, str):
        raise LayoutError(f"{path}: program and variant must be strings")
    if pte is not None and (isinstance(pte, bool) or not isinstance(pte, int) or pte < 0):
        raise LayoutError(f"{path}: vm_pte_kib {pte!r} is not a count of KiB")
    if not isinstance(d.get("ranges"), list):
        raise LayoutError(f"{path}: ranges must be a list of [START, END, PERMS]")
    ranges = []
    for i, r in enumerate(d["ranges"]):
        try:
            s, e, perms = r
            s, e = int(s, 16), int(e, 16)
            if not isinstance(perms, str) or s >= e or s % PAGE or e % PAGE:
                raise ValueError
        except (ValueError, TypeError):
            raise LayoutError(f"{path}: ranges[{i}] {r!r} is not [START, END, PERMS] (hex, START < END, "
                              "4 KiB aligned)")
        ranges.append((s, e, perms))
    return Layout(program + "/" + variant, ranges, pte)


def pool_pages(layout: Layout, reservations: bool = False) -> dict:
    """{"4KiB": {"predicted", "mapped"}, "2MiB": {...}, "ranges", "bytes"} from the lab; with
    `reservations`, as if every reservation had become accessible too."""
    ranges = layout.mapped() + (layout.reserved() if reservations else [])
    lines = "".join(f"{s:x} {e:x}\n" for s, e in trace.merged(ranges))
    return lab.ask("layout", stdin=lines)


def figures(layout: Layout, pools: list[int]) -> dict:
    """What `capacity --json` prints for one layout."""
    f, grow = pool_pages(layout), pool_pages(layout, reservations=True) if layout.reserved() else None
    k4, m2 = f["4KiB"]["predicted"], f["2MiB"]["predicted"]
    return {"layout": layout.name, "ranges": f["ranges"], "bytes": f["bytes"],
            "vm_pte_pages": None if layout.vm_pte_kib is None else layout.vm_pte_kib * 1024 // PAGE,
            "pages": {"4KiB": k4, "2MiB": m2},
            # At least what it needs now: merged with its reservations, a range may align to
            # 2 MiB pages that its pieces, mapped one by one, would not.
            "could_grow_to": {k: max((grow or f)[k]["predicted"], f[k]["predicted"]) for k in ("4KiB", "2MiB")},
            "reserved_bytes": layout.reserved_bytes(),
            "left_out_kernel_half": [f"{s:x}-{e:x}" for s, e in layout.kernel_half()],
            "fits": {str(p): {"4KiB": k4 <= p, "2MiB": m2 <= p} for p in pools}}


def capacity(argv: list[str]) -> int:
    ap = Parser(prog="python3 -m ptplab capacity",
                description="Pool pages a PTP needs to map each layout (an unmodifiable PTP: every range a "
                            "process can touch, mapped up front), with 4 KiB pages and with 2 MiB pages where "
                            "aligned, and whether it fits each pool size; what it could grow to if its "
                            "reservations (PROT_NONE) became accessible; Linux's own page-table memory (VmPTE) "
                            "beside it where the layout has it. Only the user half counts: [vsyscall] and any "
                            "kernel-half range are left out.")
    ap.add_argument("layouts", nargs="+", metavar="LAYOUT",
                    help="captured layouts (JSON), /proc/<pid>/maps files, or START END [PERMS] lines")
    ap.add_argument("--pool-pages", default=None, help="pool sizes to judge (default: 512 ... 65536)")
    ap.add_argument("--json", action="store_true", help="one JSON object per layout")
    try:
        a = ap.parse_args(argv)
        pools = cli.pools(a.pool_pages) if a.pool_pages else lab.facts()["pool_pages"]["sweep"]
        rows = [(p, read(Path(p))) for p in a.layouts]
        out = [figures(layout, pools) for _, layout in rows]
    except (BenchError, LayoutError, lab.LabError) as e:
        print(f"capacity: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        for f in out:
            print(json.dumps(f))
        return 0
    print("pool pages needed, root included; VmPTE: Linux's page tables for the same process, in pages; "
          "grow: with every reservation (PROT_NONE) accessible")
    cells = [["layout", "ranges", "MiB", "VmPTE", "4KiB", "2MiB", "grow 4KiB", "grow 2MiB",
              "fits (4KiB/2MiB) at " + " ".join(map(str, pools))]]
    left = 0
    for f in out:
        pte = "-" if f["vm_pte_pages"] is None else str(f["vm_pte_pages"])
        fits = " ".join(("y" if f["fits"][str(p)]["4KiB"] else "n") + ("y" if f["fits"][str(p)]["2MiB"] else "n")
                        for p in pools)
        cells.append([f["layout"][:34], f["ranges"], f"{f['bytes'] / 2**20:.1f}", pte, f["pages"]["4KiB"],
                      f["pages"]["2MiB"], f["could_grow_to"]["4KiB"], f["could_grow_to"]["2MiB"], fits])
        left += len(f["left_out_kernel_half"])
    print("\n".join(grid(cells, {1, 2, 3, 4, 5, 6, 7})))
    if left:
        print(f"left out: {left} kernel-half range(s) ([vsyscall]): no user page table holds them")
    return 0


# ---- capture ---------------------------------------------------------------------------------

# (program, variant, argv, what to write on its stdin first); each waits on stdin while captured.
def programs(work: Path) -> list[tuple[str, str, list[str], str]]:
    out = []
    for mib in (0, 1, 16, 64, 256):
        out.append(("python3", f"bytes-{mib}MiB", [sys.executable, "-c", f"import sys; x = bytearray({mib} << 20); "
                                                   "x[::4096] = b'1' * len(x[::4096]); sys.stdin.read()"], ""))
        out.append(("perl", f"string-{mib}MiB", ["perl", "-e", f"my $x = 'a' x ({mib} * 1048576); <STDIN>;"], ""))
        out.append(("node", f"buffer-{mib}MiB", ["node", "-e", f"const b = Buffer.alloc({mib} * 1048576, 1); "
                                                "process.stdin.resume()"], ""))
        out.append(("awk", f"array-{mib}k", ["awk", "-v", f"n={mib * 1000}", "BEGIN { for (i = 0; i < n; i++) "
                                             "a[i] = i } { print }"], ""))
        out.append(("tclsh", f"string-{mib}MiB", ["tclsh"], f"set x [string repeat a [expr {mib} * 1048576]]\n"))
        out.append(("sqlite3", f"rows-{mib}k", ["sqlite3", ":memory:"],
                    f"create table t(x); with recursive c(i) as (select 1 union all select i + 1 from c "
                    f"limit {mib * 1000}) insert into t select randomblob(100) from c;\n"))
        out.append(("bash", f"string-{mib}MiB", ["bash", "-c", f"x=$(head -c {mib * 1048576} /dev/zero | tr '\\0' a);"
                                                 " read y"], ""))
        out.append(("vim", f"lines-{mib}k", ["vim", "-es", "-u", "NONE", "-i", "NONE", "-n"],
                    f":call setline(1, repeat(['vim'], {mib * 1000}))\n"))
        out.append(("qemu", f"guest-{max(mib, 8) * 8}MiB", ["qemu-system-x86_64", "-S", "-display", "none",
                                                          "-nodefaults", "-m", f"{max(mib, 8) * 8}M"], ""))
        out.append(("gdb", f"symbols-{mib}", ["gdb", "-q", "-nx"] + ([] if mib == 0 else [
            ["/usr/bin/perl", "/usr/bin/bash", "/usr/bin/sqlite3", "/usr/bin/qemu-system-x86_64"][[1, 16, 64, 256].index(mib)]]),
                    ""))
        out.append(("git", f"cmd-{mib}", ["git", "-C", str(lab.REPO)] + [
            ["cat-file", "--batch"], ["hash-object", "--stdin"], ["check-ignore", "--stdin"],
            ["mktree"], ["check-attr", "--stdin", "-a"]][[0, 1, 16, 64, 256].index(mib)], ""))
        out.append(("rustc", f"opt-{mib}", ["rustc", "-", "-o", str(work / "out"), "-C",
                                           f"opt-level={[0, 1, 2, 3, 's'][[0, 1, 16, 64, 256].index(mib)]}"], ""))
        out.append(("java", f"heap-{max(mib, 16)}MiB", ["java", f"-Xmx{max(mib, 16) * 2}m", f"-Xms{max(mib, 16)}m",
                                                     "-XX:+UseSerialGC", str(work / "Wait.java")], ""))
    return out


def settle(proc: subprocess.Popen, seconds: float) -> bool:
    """Let the program start up; False if it ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return proc.poll() is None


def snapshot(pid: int) -> tuple[list[list[str]], int | None]:
    ranges = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        m = MAPS_LINE.match(line)
        if m:  # addresses and permissions only: no offsets, devices, inodes or paths
            ranges.append([m.group(1), m.group(2), m.group(3)])
    pte = None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmPTE:"):
            pte = int(line.split()[1])
    return ranges, pte


def capture(argv: list[str]) -> int:
    ap = Parser(prog="python3 -m ptplab layouts capture",
                description="Start a set of real programs, record each one's address-space layout (ranges and "
                            "permissions, and VmPTE: no file names, paths or contents) while it runs.")
    ap.add_argument("--out", default=str(DIR))
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"ptplab-layouts-{os.getpid()}"
    work.mkdir(exist_ok=True)
    (work / "Wait.java").write_text("public class Wait { public static void main(String[] a) throws Exception {"
                                    " byte[] b = new byte[8 << 20]; System.in.read(); } }\n")
    written, missing = 0, set()
    for program, variant, cmd, feed in programs(work):
        if shutil.which(cmd[0]) is None:
            missing.add(program)
            continue
        # A session of its own: whatever the program starts (QEMU's helpers, a shell's pipeline)
        # is killed with it once its layout is read (a few seconds at most, settle's limit).
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=work, text=True, start_new_session=True)
        try:
            if feed:
                proc.stdin.write(feed)
                proc.stdin.flush()
            if not settle(proc, 2.5 if program in ("java", "node", "qemu", "gdb") else 1.0):
                print(f"layouts: {program}/{variant} ended before its capture (exit {proc.returncode})",
                      file=sys.stderr)
                continue
            ranges, pte = snapshot(proc.pid)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        path = out / f"{program}-{variant}.json"
        path.write_text(json.dumps({"program": program, "variant": variant, "vm_pte_kib": pte,
                                    "captured_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                    "ranges": ranges}, indent=None) + "\n")
        written += 1
    shutil.rmtree(work, ignore_errors=True)
    print(f"layouts: wrote {written} layouts in {out}" + (f"; not installed: {', '.join(sorted(missing))}"
                                                          if missing else ""), file=sys.stderr)
    return 0 if written else 1


def main(argv: list[str]) -> int:
    if argv and argv[0] == "capture":
        return capture(argv[1:])
    print("usage: python3 -m ptplab layouts capture [--out DIR]", file=sys.stderr)
    return 2
