"""Lifetime traces: strace's -f output parsed as users have it, the address-space model's rules,
the replay through the algorithms crate (its model check, where pools run out), a real capture
of a real program, and every committed trace replaying to its final maps."""
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ptplab import lab, replay, trace

REPO = lab.REPO
TRACES = sorted(p for p in (REPO / "results/traces").glob("*") if (p / "strace.txt.gz").exists())

# One process, written the three ways strace prints pids (none, "PID ", "[pid PID] "), with -tt
# and -y, and a call split over <unfinished ...> / <... resumed>.
LOG = """\
100 10:00:00.000001 execve("/bin/x", ["x"], 0x7ffd /* 3 vars */) = 0
100 10:00:00.000002 brk(NULL)                = 0x555555559000
100 10:00:00.000003 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
100 10:00:00.000004 mmap(NULL, 12288, PROT_READ, MAP_PRIVATE, 3</usr/lib/a, b.so>, 0) = 0x7f0000010000
100 10:00:00.000005 mprotect(0x7f0000011000, 4096, PROT_NONE) = 0
100 10:00:00.000006 mprotect(0x7f0000010000, 4096, PROT_READ|PROT_EXEC) = 0
100 10:00:00.000007 brk(0x55555557a000 <unfinished ...>
101 10:00:00.000008 +++ exited with 0 +++
100 10:00:00.000009 <... brk resumed>)       = 0x55555557a000
100 10:00:00.000010 munmap(0x7f0000000000, 4096) = 0
100 10:00:00.000011 mremap(0x7f0000012000, 4096, 8192, MREMAP_MAYMOVE) = 0x7f0000100000
100 10:00:00.000012 mmap(0x7f0000100000, 4096, PROT_NONE, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x7f0000100000
100 10:00:00.000013 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, -1, 0) = -1 ENOMEM (Cannot allocate memory)
100 10:00:00.000014 brk(0x555555569000)      = 0x555555569000
100 10:00:00.000015 exit_group(0)            = ?
100 10:00:00.000016 +++ exited with 0 +++
"""


def _model(text):
    lt = trace.lifetimes(trace.parse(text.splitlines()))
    assert len(lt.spaces) == 1
    return lt, lt.spaces[0]


@pytest.mark.parametrize("prefix", ["", "100 ", "[pid   100] "])
def test_the_three_pid_forms_and_unfinished_calls_give_the_same_model(prefix):
    text = "\n".join(prefix + line.split(" ", 1)[1] if line.startswith("100 ") else line
                     for line in LOG.splitlines())
    lt, sp = _model(text)
    # What is accessible at the end: the brk heap (grown to 0x7a000, shrunk to 0x69000), the
    # mmap's second page, the file's first page (r-x), the mremap's new place but its first page
    # replaced by PROT_NONE.
    assert sp.accessible() == [(0x555555559000, 0x555555569000), (0x7f0000001000, 0x7f0000002000),
                               (0x7f0000010000, 0x7f0000011000), (0x7f0000101000, 0x7f0000102000)]
    assert lt.exits[sp.ident] == sp.accessible()


def test_each_rule_gives_its_ops():
    _, sp = _model(LOG)
    assert sp.ops == [
        "map 7f0000000000 7f0000002000 2",
        "map 7f0000010000 7f0000013000 3",
        "unmap 7f0000011000 7f0000012000 4",  # mprotect to PROT_NONE unmaps
        "forget 1 5",  # read to read+exec: the TLB forgets, no table changes
        "map 555555559000 55555557a000 8",  # brk grows from the first brk's answer
        "unmap 7f0000000000 7f0000001000 9",
        "unmap 7f0000012000 7f0000013000 10",  # mremap moves
        "map 7f0000100000 7f0000102000 10",
        "unmap 7f0000100000 7f0000101000 11",  # MAP_FIXED replaces, PROT_NONE holds none
        "unmap 555555569000 55555557a000 13",  # brk shrinks
    ]


def test_threads_share_a_space_fork_copies_it_and_exec_starts_anew():
    log = """\
1 execve("", [""], 0x1 /* 1 vars */) = 0
1 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x10000
1 clone3({flags=CLONE_VM|CLONE_THREAD|CLONE_SIGHAND, exit_signal=0}, 88 <unfinished ...>
2 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x20000
1 <... clone3 resumed> => {parent_tid=[2]}, 88) = 2
1 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7) = 3
3 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x30000
3 execve("", [""], 0x1 /* 1 vars */) = 0
3 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x40000
"""
    lt = trace.lifetimes(trace.parse(log.splitlines()))
    got = {sp.ident: sp.accessible() for sp in lt.spaces}
    # The thread's mmap (printed before the clone returned) lands in the shared space.
    assert got == {"1": [(0x10000, 0x11000), (0x20000, 0x21000)],
                   "3": [(0x10000, 0x11000), (0x20000, 0x21000), (0x30000, 0x31000)],
                   "3.1": [(0x40000, 0x41000)]}
    assert lt.spaces[1].ops[:2] == ["map 10000 11000 5", "map 20000 21000 5"], "fork maps the copy at the fork"


def test_the_exec_layout_and_the_final_maps_come_from_the_capture():
    log = '7 execve("", [""], 0x1 /* 1 vars */) = 0 (DELAYED)\n7 exit_group(0) = ?\n'
    layouts = {"exec": [{"pid": 7, "line": 0, "comm": "x", "ranges": [
        ["400000", "401000", "r-xp"], ["7ffe0000", "7ffe2000", "rw-p", "[stack]"],
        ["ffffffffff600000", "ffffffffff601000", "--xp", "[vsyscall]"]]}],
        "exit": [{"pid": 7, "line": 1, "ranges": [["400000", "401000", "r-xp"], ["7ffd0000", "7ffe2000", "rw-p",
                                                                                "[stack]"]]}]}
    lt = trace.lifetimes(trace.parse(log.splitlines()), layouts)
    sp = lt.spaces[0]
    assert sp.program == "x"
    # The stack as it grew (from the final maps), the kernel-half [vsyscall] left out.
    assert sp.ops == ["map 400000 401000 0", "map 7ffd0000 7ffe2000 0"]
    assert trace.final_matches(lt, sp.ident) is True
    layouts["exit"][0]["ranges"].append(["500000", "501000", "rw-p"])
    assert trace.final_matches(trace.lifetimes(trace.parse(log.splitlines()), layouts), "7") is False
    assert trace.final_matches(trace.lifetimes(trace.parse(log.splitlines())), "7") is None


def _host(ops, pools="64,512"):
    p = subprocess.run([str(lab.host_bin()), "replay", f"pools={pools}"], input=ops, capture_output=True, text=True)
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines()], p.stderr


def test_the_replay_counts_tables_as_the_model_does_and_bump_keeps_what_the_bitmap_frees():
    ops = ("process 1 t\nmap 400000 600000 0\nmap 7f0000000000 7f0000201000 1\n"
           "unmap 7f0000000000 7f0000201000 2\nforget 40 3\nmap 7f0000000000 7f0000001000 4\n")
    rc, (r,), _ = _host(ops)
    assert rc == 0 and r["model"] == {"checked": 4, "mismatch": None}
    # Root + PDPT + PD + PT for 2 MiB at 4 MiB; a second PDPT, PD and two PTs for 2 MiB + 4 KiB.
    assert (r["bitmap"]["peak"], r["bitmap"]["peak_call"], r["bitmap"]["end"]) == (8, 1, 7)
    assert (r["bitmap"]["tables_freed"], r["bitmap"]["tables_reused"]) == (4, 3)
    assert (r["bump"]["peak"], r["bump"]["end"], r["bump"]["tables_kept_empty"]) == (8, 8, 1)
    assert r["forget"] == {"calls": 2, "pages": 513 + 40, "largest": 513, "over": {"1": 2, "33": 2, "512": 1}}
    assert r["bitmap"]["exhausted"] == {"64": None, "512": None}
    # Free after flush: call 2's unmap empties 4 tables, which wait for its flush. Flushed after
    # each call, they are gone before call 4 maps (the peak stays call 1's 8); gathered over 16
    # calls they still wait when call 4 maps a new PDPT, PD and PT: 7 in use + 4 waiting = 11.
    assert r["bitmap"]["waiting"] == [{"every": 1, "peak_waiting": 4, "peak_pool": 8},
                                      {"every": 16, "peak_waiting": 4, "peak_pool": 11}]


def test_where_a_pool_runs_out_is_the_first_call_that_needs_more():
    # 100 regions, each in its own 1 GiB: a PD and a PT each, beyond 64 pages at the 32nd.
    ops = "process 9 many\n" + "".join(f"map {(i + 1) << 30:x} {((i + 1) << 30) + 4096:x} {i * 2}\n"
                                       for i in range(100))
    rc, (r,), _ = _host(ops)
    assert rc == 0
    # Root + PDPT + 2 per region: 64 pages hold 31 regions; the 32nd (call 62) needs 66.
    assert r["bitmap"]["exhausted"] == {"64": 62, "512": None} == r["bump"]["exhausted"]
    assert r["bitmap"]["peak"] == 2 + 2 * 100 == r["peak_4kib_model"]


@pytest.mark.parametrize("bad,why", [
    ("map 1000 2000 0\n", "before any process"),
    ("process 1 x\nmap 2000 1000 0\n", "START < END"),
    ("process 1 x\nmap zz 1000 0\n", "not map START END CALL"),
    ("process 1 x\nfrobnicate\n", "is not process"),
])
def test_bad_replay_ops_are_named(bad, why):
    rc, out, err = _host(bad)
    assert rc == 2 and out == [] and why in err and "line" in err


def test_a_real_capture_of_a_real_program_replays_to_its_final_maps(tmp_path):
    if subprocess.run(["which", "strace"], capture_output=True).returncode:
        pytest.skip("strace not installed")
    from ptplab import capture
    meta = capture.capture("py", [sys.executable, "-c", "import threading; t = threading.Thread(target=print); "
                                                        "t.start(); t.join(); x = bytearray(8 << 20)"],
                           tmp_path, "interpreter")
    assert meta["layouts"]["exec"] >= 1 and meta["layouts"]["exit"] >= 1
    text = gzip.decompress((tmp_path / "py/strace.txt.gz").read_bytes()).decode()
    assert "/usr" not in text and "bytearray" not in text, "no paths or contents in the committed log"
    rows = replay.replay_trace(replay.load(tmp_path / "py"), [64, 4096])
    assert [r["final_matches"] for r in rows] == [True]
    with pytest.raises(capture.CaptureError, match="never overwritten"):
        capture.capture("py", ["true"], tmp_path, "x")


@pytest.mark.parametrize("path", TRACES, ids=[p.name for p in TRACES])
def test_every_committed_trace_replays_to_its_final_maps(path):
    rows = replay.replay_trace(replay.load(path), [4096])
    assert all(r["final_matches"] is not False for r in rows), [r["space"] for r in rows if r["final_matches"] is False]
    assert any(r["final_matches"] for r in rows), "at least the main process's final maps were captured"
    assert all(r["model"]["mismatch"] is None and r["failed"] is None for r in rows)


def test_the_committed_set_is_25_programs_with_classes():
    metas = [json.loads((p / "meta.json").read_text()) for p in TRACES]
    assert len(metas) >= 25, len(metas)
    assert {m["class"] for m in metas} >= {"shell", "interpreter", "build", "database", "jvm", "threads", "sanitizer"}
