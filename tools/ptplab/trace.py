"""Lifetime traces: strace's `-f` output (as users have it: pid prefixes of either form,
`<unfinished ...>`/`resumed` pairs, with or without `-tt`/`-y`), parsed in this one place, and
the address spaces it describes, call by call.

Rules the model follows (docs/lifetimes.md says them to users):
- each process has an address space; threads (CLONE_VM) and vfork share their parent's;
  fork copies it; exec starts a new one from the layout the kernel made (when the capture
  recorded it, else empty, and the replay says so);
- an accessible range (any of r, w, x) holds tables; PROT_NONE holds none: mmap maps what it
  returns (MAP_FIXED replaces what was there: unmapped, then mapped), munmap unmaps, mprotect
  to an accessible protection maps and to PROT_NONE unmaps, between accessible protections it
  only asks the TLB to forget; mremap moves (or grows and shrinks in place); brk grows and
  shrinks the heap from the first brk's answer; shmat maps, shmdt unmaps; madvise that drops
  pages (DONTNEED, FREE, REMOVE) asks the TLB to forget the accessible pages in its range and
  keeps their tables (they fault back in);
- each call that changes mapped pages is one flush of the pages it changes (none where it
  changes none), made while the address space had so many threads (a shootdown on SMP where
  more than one);
- the stack grows without a call: its extent comes from the final maps of the process;
- `[vsyscall]` and anything in the kernel half are not a user page table's: left out.

What comes out, per address space: the replay ops `ptp-host replay` plays (map, unmap,
forget, each with the strace line that caused it), its flushes, and at each captured exit the
accessible set the model holds, to compare with the final maps."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

PAGE = 4096
HUGE = 2 << 20
USER_TOP = 1 << 47

# madvise advice that drops a range's pages (they fault back in later): by name and number.
DROPS = {"MADV_DONTNEED": 4, "MADV_FREE": 8, "MADV_REMOVE": 9, "MADV_DONTNEED_LOCKED": 24}

_PREFIX = re.compile(r"^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(?:(\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+)\s+)?")
_CALL = re.compile(r"^([a-z_0-9]+)\((.*)$", re.S)
_RESUMED = re.compile(r"^<\.\.\. ([a-z_0-9]+) resumed>\s?(.*)$", re.S)
_RET = re.compile(r"\)\s+=\s+(\S+)(.*)$", re.S)
_FD_PATH = re.compile(r"(\d+)<[^<>]*>")
_EXITED = re.compile(r"^\+\+\+ (?:exited with (\d+)|killed by (\S+).*?|superseded by execve in pid (\d+)) \+\+\+$")

PROT_BITS = {"PROT_READ": 1, "PROT_WRITE": 2, "PROT_EXEC": 4, "PROT_NONE": 0, "PROT_SEM": 0,
             "PROT_GROWSDOWN": 0, "PROT_GROWSUP": 0}


class TraceError(Exception):
    """A trace that cannot be read: the message names the file, line and value."""


@dataclass
class Call:
    """One finished system call: the strace line (0-based) where it finished."""
    line: int
    pid: int
    name: str
    args: list[str]
    ret: str


@dataclass
class Event:
    """A process event strace reports outside a call: exit, kill, or being superseded."""
    line: int
    pid: int
    kind: str  # "exited", "killed", "superseded"


def split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments (brackets, braces and quotes nest)."""
    out, depth, cur, quote, esc = [], 0, [], False, False
    for ch in text:
        if quote:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quote = False
            continue
        if ch == '"':
            quote = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    last = "".join(cur).strip()
    if last or out:
        out.append(last)
    return out


def parse(lines, source: str = "trace") -> list[Call | Event]:
    """Calls and events of strace output, pairing `<unfinished ...>` with `<... resumed>`.
    Lines that are neither (signals, strace's own notes) are skipped."""
    out: list[Call | Event] = []
    pending: dict[tuple[int, str], str] = {}
    for i, raw in enumerate(lines):
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        line = raw.rstrip("\n")
        m = _PREFIX.match(line)
        pid = int(m.group(1) or m.group(2) or 0)
        rest = line[m.end():].strip()
        if not rest or rest.startswith("---"):
            continue
        e = _EXITED.match(rest)
        if e:
            kind = "exited" if e.group(1) is not None else "killed" if e.group(2) else "superseded"
            out.append(Event(i, pid, kind))
            continue
        r = _RESUMED.match(rest)
        slot = None
        if r:
            name = r.group(1)
            head = pending.pop((pid, name), None)
            if head is None:
                continue  # its start came before the log did
            head, slot = head
            body = head + r.group(2)
        else:
            c = _CALL.match(rest)
            if not c:
                continue
            name, body = c.group(1), c.group(2)
            if body.endswith("<unfinished ...>"):
                if name in ("exit_group", "exit"):
                    out.append(Call(i, pid, name, [], "?"))  # it never returns
                else:
                    # An unmap takes effect before another thread's mmap can return an address
                    # in its range, which strace may print before the munmap's own end: it
                    # counts where it started. Other calls count where they end (mmap's address
                    # is known only then).
                    slot = None
                    if name == "munmap":
                        slot = len(out)
                        out.append(None)
                    pending[(pid, name)] = (body[: -len("<unfinished ...>")].rstrip(), None if slot is None else (slot, i))
                continue
        body = _FD_PATH.sub(r"\1", body)
        rm = None
        for rm in _RET.finditer(body):
            pass
        if rm is None:
            if name in ("exit_group", "exit") and body.rstrip().endswith("?"):
                out.append(Call(i, pid, name, [], "?"))
            continue
        args = split_args(body[: rm.start()])
        if slot is None:
            out.append(Call(i, pid, name, args, rm.group(1)))
        else:
            out[slot[0]] = Call(slot[1], pid, name, args, rm.group(1))
    return [c for c in out if c is not None]


def number(text: str) -> int | None:
    text = text.strip()
    if text == "NULL":
        return 0
    try:
        return int(text, 0)
    except ValueError:
        return None


def prot_of(text: str) -> int | None:
    n = number(text)
    if n is not None:
        return n & 7
    bits = 0
    for word in text.split("|"):
        word = word.strip()
        if word not in PROT_BITS:
            return None
        bits |= PROT_BITS[word]
    return bits


def _up(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


def pages_2mib(s: int, e: int) -> int:
    """Invalidations of [s, e) with 2 MiB pages where it covers aligned 2 MiB, 4 KiB elsewhere."""
    hs, he = -(-s // HUGE) * HUGE, e // HUGE * HUGE
    if he <= hs:
        return (e - s) // PAGE
    return (he - hs) // HUGE + (hs - s + e - he) // PAGE


@dataclass
class Flush:
    """One call's flush: the strace line, pages changed (4 KiB; and 2 MiB where aligned), and
    the threads sharing the address space then."""
    call: int
    pages: int
    pages_2mib: int
    threads: int


@dataclass
class Space:
    """One address space: ranges [start, end) with their protection bits (0: PROT_NONE)."""
    ident: str
    program: str
    vmas: list[list[int]] = field(default_factory=list)  # [start, end, prot], sorted, disjoint
    ops: list[str] = field(default_factory=list)
    brk_start: int | None = None
    brk_end: int | None = None
    stack: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)
    flushes: list[Flush] = field(default_factory=list)
    threads: int = 1

    def accessible(self) -> list[tuple[int, int]]:
        """Accessible ranges, neighbours merged."""
        out: list[tuple[int, int]] = []
        for s, e, p in self.vmas:
            if not p:
                continue
            if out and out[-1][1] == s:
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out

    def _window(self, s: int, e: int) -> tuple[int, int]:
        """The slice of `vmas` overlapping [s, e) (sorted, disjoint: a binary search)."""
        lo = bisect.bisect_left(self.vmas, [s])
        if lo > 0 and self.vmas[lo - 1][1] > s:
            lo -= 1
        hi = lo
        while hi < len(self.vmas) and self.vmas[hi][0] < e:
            hi += 1
        return lo, hi

    def _acc_in(self, s: int, e: int) -> list[tuple[int, int, int]]:
        lo, hi = self._window(s, e)
        return [(max(a, s), min(b, e), p) for a, b, p in self.vmas[lo:hi]]

    def _cut(self, s: int, e: int, insert: list | None = None) -> None:
        """Take [s, e) out of every range; put `insert` (ranges within [s, e)) in its place."""
        lo, hi = self._window(s, e)
        keep = []
        for a, b, p in self.vmas[lo:hi]:
            if a < s:
                keep.append([a, s, p])
        keep += insert or []
        for a, b, p in self.vmas[lo:hi]:
            if b > e:
                keep.append([e, b, p])
        self.vmas[lo:hi] = keep

    def _emit(self, kind: str, s: int, e: int, call: int) -> None:
        if e > s:
            self.ops.append(f"{kind} {s:x} {e:x} {call}")
            if kind == "unmap":
                self._flushed(s, e, call)

    def _flushed(self, s: int, e: int, call: int) -> None:
        """[s, e) changed: part of `call`'s flush."""
        f = self.flushes[-1] if self.flushes and self.flushes[-1].call == call else None
        if f is None:
            f = Flush(call, 0, 0, self.threads)
            self.flushes.append(f)
        f.pages += (e - s) // PAGE
        f.pages_2mib += pages_2mib(s, e)

    def set(self, s: int, e: int, prot: int | None, call: int) -> None:
        """Make [s, e) a new mapping with `prot` (None: unmapped), replacing what was there."""
        s, e = max(s, 0) // PAGE * PAGE, min(_up(e), USER_TOP)
        if e <= s:
            return
        for a, b, p in self._acc_in(s, e):
            if p:
                self._emit("unmap", a, b, call)
        self._cut(s, e, None if prot is None else [[s, e, prot]])
        if prot:
            self._emit("map", s, e, call)

    def protect(self, s: int, e: int, prot: int, call: int) -> None:
        s, e = max(s, 0) // PAGE * PAGE, min(_up(e), USER_TOP)
        if e <= s:
            return
        pieces = self._acc_in(s, e)
        forget = 0
        for a, b, p in pieces:
            if p and not prot:
                self._emit("unmap", a, b, call)
            elif prot and not p:
                self._emit("map", a, b, call)
            elif p and prot and p != prot:
                forget += (b - a) // PAGE
                self._flushed(a, b, call)
        if forget:
            self.ops.append(f"forget {forget} {call}")
        self._cut(s, e, [[a, b, prot] for a, b, _ in pieces])

    def drop(self, s: int, e: int, call: int) -> None:
        """madvise dropping [s, e)'s pages: the accessible ones forgotten, tables kept."""
        s, e = max(s, 0) // PAGE * PAGE, min(_up(e), USER_TOP)
        forget = 0
        for a, b, p in self._acc_in(s, e) if e > s else []:
            if p:
                forget += (b - a) // PAGE
                self._flushed(a, b, call)
        if forget:
            self.ops.append(f"forget {forget} {call}")

    def flush_counts(self) -> dict:
        """Its flushes by pages changed (4 KiB; 2 MiB where aligned), all of them and those made
        while it had more than one thread, and how many threads then: {size: flushes}."""
        def hist(values) -> dict[str, int]:
            out: dict[int, int] = {}
            for v in values:
                out[v] = out.get(v, 0) + 1
            return {str(k): out[k] for k in sorted(out)}
        shared = [f for f in self.flushes if f.threads > 1]
        return {"4KiB": hist(f.pages for f in self.flushes), "2MiB": hist(f.pages_2mib for f in self.flushes),
                "threaded": {"4KiB": hist(f.pages for f in shared), "2MiB": hist(f.pages_2mib for f in shared)},
                "threads": hist(f.threads for f in shared)}

    def prot_at(self, addr: int) -> int | None:
        for a, b, p in self.vmas:
            if a <= addr < b:
                return p
        return None

    def copy(self, ident: str, call: int) -> "Space":
        """A fork's copy: the same ranges, mapped into a new PTP at the fork."""
        c = Space(ident, self.program, [v[:] for v in self.vmas], [], self.brk_start, self.brk_end, self.stack)
        for s, e in c.accessible():
            c._emit("map", s, e, call)
        return c


def layout_ranges(ranges) -> tuple[list[tuple[int, int, int]], tuple[int, int] | None, list[str]]:
    """A captured layout's user ranges (start, end, prot), its stack, and what was left out."""
    out, stack, left = [], None, []
    for r in ranges:
        s, e, perms = int(r[0], 16), int(r[1], 16), r[2]
        label = r[3] if len(r) > 3 else ""
        if label == "[vsyscall]" or e > USER_TOP:
            left.append(label or f"{s:x}-{e:x}")
            continue
        prot = (4 if "x" in perms else 0) | (2 if "w" in perms else 0) | (1 if "r" in perms else 0)
        out.append((s, e, prot))
        if label == "[stack]":
            stack = (s, e)
    return out, stack, left


@dataclass
class Lifetimes:
    """Every address space of a trace, in the order they began."""
    spaces: list[Space]
    # (space ident, strace line, pid) of each captured exit: the model's accessible set there.
    exits: dict[str, list[tuple[int, int]]]
    finals: dict[str, list[tuple[int, int]]]
    notes: list[str]

    def replay_ops(self) -> str:
        parts = ["# ptplab replay ops: process ID PROGRAM / map|unmap START END CALL / forget PAGES CALL"]
        for sp in self.spaces:
            parts.append(f"process {sp.ident} {sp.program or '?'}")
            parts.extend(sp.ops)
        return "\n".join(parts) + "\n"


def merged(ranges) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and out[-1][1] >= s:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def lifetimes(items: list[Call | Event], layouts: dict | None = None, program: str = "") -> Lifetimes:
    """The address spaces `items` describe. `layouts` is what the capture read at each exec
    and exit: {"exec": [{"pid", "line", "ranges"}], "exit": [...]} (ranges as
    [start hex, end hex, perms, label]); without it, exec starts from nothing."""
    layouts = layouts or {}
    at_exec = {(x["pid"], x["line"]): x for x in layouts.get("exec", [])}
    at_exit = {x["pid"]: x for x in layouts.get("exit", [])}
    # An exit layout belongs to the pid's last exit_group: keyed by pid, matched by line.
    at_exit_line = {(x["pid"], x["line"]): x["ranges"] for x in layouts.get("exit", [])}
    space_of: dict[int, Space] = {}
    group_of: dict[int, int] = {}  # pid -> its thread group (CLONE_THREAD); absent: its own
    spaces: list[Space] = []
    execs: dict[int, int] = {}
    notes: list[str] = []
    exits: dict[str, list[tuple[int, int]]] = {}
    finals: dict[str, list[tuple[int, int]]] = {}
    held: dict[int, list] = {}  # events of pids whose creating call has not finished yet
    known: set[int] = set()
    first_pid = None
    no_layout = False
    shm_size: dict[int, int] = {}  # shmget's id -> size
    attached: dict[tuple[int, int], int] = {}  # (space, address) -> size

    def new_space(pid: int, prog: str) -> Space:
        n = execs.get(pid, 0)
        execs[pid] = n + 1
        sp = Space(f"{pid}" if n == 0 else f"{pid}.{n}", prog)
        spaces.append(sp)
        return sp

    def handle(c: Call | Event) -> None:
        nonlocal no_layout
        pid = c.pid
        if isinstance(c, Event):
            gone = space_of.pop(pid, None)
            if gone is not None:
                gone.threads = max(gone.threads - 1, 0)
            return
        sp = space_of.get(pid)
        name, a, ret = c.name, c.args, c.ret
        rv = number(ret)
        ok = rv is not None and not (ret.startswith("-") and rv < 0 and rv > -4096)
        if name in ("execve", "execveat") and ret == "0":
            captured = at_exec.get((pid, c.line))
            path = a[0].strip('"') if a else ""  # a user's own log keeps it; ours are emptied
            old = space_of.get(pid)
            if old is not None:
                # exec ends the other threads of its thread group (Linux's de_thread), not the
                # other users of the space (a vfork parent): they all leave the old space.
                group = [p for p in space_of if space_of[p] is old and group_of.get(p, p) == group_of.get(pid, pid)]
                for p in group:
                    del space_of[p]
                old.threads = max(old.threads - len(group), 0)
            sp = new_space(pid, (captured or {}).get("comm") or path.rsplit("/", 1)[-1] or program or "?")
            space_of[pid] = sp
            ranges = None if captured is None else captured["ranges"]
            if ranges is None:
                no_layout = True
                sp.notes.append("no exec layout captured: replayed from what the calls show")
                return
            user, stack, _left = layout_ranges(ranges)
            ex = at_exit.get(pid)
            if stack and ex:
                # The stack grows without a call: its lowest extent is in the final maps.
                for s, e, p in layout_ranges(ex["ranges"])[0]:
                    if s <= stack[1] - 1 < e and s < stack[0]:
                        user = [(s, stack[1], p) if (u[0], u[1]) == stack else u for u in user]
                        stack = (s, stack[1])
            sp.stack = stack
            for s, e, p in user:
                sp.set(s, e, p, c.line)
            return
        if sp is None:
            return
        if name in ("clone", "clone3", "fork", "vfork") and ok and rv and rv > 0:
            flags = " ".join(a)
            child = rv
            shared = "CLONE_VM" in flags or name == "vfork"
            space_of[child] = sp if shared else sp.copy(f"{child}", c.line)
            if shared:
                sp.threads += 1
            group_of[child] = group_of.get(pid, pid) if "CLONE_THREAD" in flags else child
            if not shared:
                execs[child] = 1
                spaces.append(space_of[child])
            known.add(child)
            for h in held.pop(child, []):
                handle(h)
            return
        if name in ("exit_group", "exit"):
            if name == "exit_group" or all(s is not sp for p, s in space_of.items() if p != pid):
                exits[sp.ident] = sp.accessible()
                ranges = at_exit_line.get((pid, c.line))
                if ranges is None and pid in at_exit and name == "exit_group":
                    ranges = at_exit[pid]["ranges"]
                if ranges is not None:
                    user = layout_ranges(ranges)[0]
                    finals[sp.ident] = merged((s, e) for s, e, p in user if p)
            return
        if not ok:
            return
        if name == "mmap" and len(a) >= 3:
            length, prot = number(a[1]), prot_of(a[2])
            if length is not None and prot is not None:
                sp.set(rv, rv + length, prot, c.line)
        elif name == "munmap" and len(a) >= 2:
            addr, length = number(a[0]), number(a[1])
            if addr is not None and length is not None:
                sp.set(addr, addr + length, None, c.line)
        elif name in ("mprotect", "pkey_mprotect") and len(a) >= 3:
            addr, length, prot = number(a[0]), number(a[1]), prot_of(a[2])
            if None not in (addr, length, prot):
                sp.protect(addr, addr + length, prot, c.line)
        elif name == "mremap" and len(a) >= 3:
            old, olen, nlen = number(a[0]), number(a[1]), number(a[2])
            if None in (old, olen, nlen):
                return
            prot = sp.prot_at(old)
            prot = 3 if prot is None else prot
            if rv == old:
                if nlen > olen:
                    sp.set(old + _up(olen), old + nlen, prot, c.line)
                elif nlen < olen:
                    sp.set(old + _up(nlen), old + olen, None, c.line)
            else:
                if "MREMAP_DONTUNMAP" not in (a[3] if len(a) > 3 else ""):
                    sp.set(old, old + olen, None, c.line)
                sp.set(rv, rv + nlen, prot, c.line)
        elif name == "madvise" and len(a) >= 3:
            addr, length, advice = number(a[0]), number(a[1]), a[2].strip()
            if None not in (addr, length) and (advice in DROPS or number(advice) in DROPS.values()):
                sp.drop(addr, addr + length, c.line)
        elif name == "brk" and len(a) == 1:
            if sp.brk_start is None:
                sp.brk_start = sp.brk_end = rv
                return
            if rv > sp.brk_end:
                sp.set(_up(sp.brk_end), rv, 3, c.line)
            elif rv < sp.brk_end:
                sp.set(_up(rv), _up(sp.brk_end), None, c.line)
            sp.brk_end = rv
        elif name == "shmget" and len(a) >= 2:
            size = number(a[1])
            if size is not None:
                shm_size[rv] = size
        elif name == "shmat" and len(a) >= 3:
            size = shm_size.get(number(a[0]))
            if size is None:
                sp.notes.append(f"shmat at line {c.line}: its shmget is not in the log, not replayed")
                return
            sp.set(rv, rv + size, 1 if "SHM_RDONLY" in a[2] else 3, c.line)
            attached[(id(sp), rv)] = size
        elif name == "shmdt" and len(a) >= 1:
            addr = number(a[0])
            size = attached.pop((id(sp), addr), None)
            if size is not None:
                sp.set(addr, addr + size, None, c.line)

    for it in items:
        if first_pid is None and isinstance(it, Call):
            first_pid = it.pid
            known.add(it.pid)
        if it.pid not in known and it.pid not in space_of:
            held.setdefault(it.pid, []).append(it)
            continue
        known.add(it.pid)
        handle(it)
    if held:
        notes.append(f"{len(held)} process(es) whose creation the log does not show: left out")
    if no_layout:
        notes.append("some exec layouts were not captured: those address spaces replay from the calls alone")
    return Lifetimes(spaces, exits, finals, notes)


def final_matches(lt: Lifetimes, ident: str) -> bool | None:
    """Whether the model's accessible set at the captured exit equals the final maps (both
    merged); None where no final maps was captured."""
    if ident not in lt.finals or ident not in lt.exits:
        return None
    return merged(lt.exits[ident]) == lt.finals[ident]
