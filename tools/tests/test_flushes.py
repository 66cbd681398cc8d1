"""The TLB flushes programs ask for (`ptplab flushes`): the address-space model's flush rules,
madvise included; a program made on purpose, traced for real, gives exactly its sizes; no flush
changes more pages than its call names; the counts agree with the crate's replay; and the
ceiling that costs a workload least, from a results file, through `ptp-host flush-costs`."""
import json
import os
import subprocess
import sys

import pytest

from ptplab import flushes, lab, lifetimes, trace

REPO = lab.REPO
TRACES = lifetimes.trace_dirs()
M = "MAP_PRIVATE|MAP_ANONYMOUS"


def model(log):
    lt = trace.lifetimes(trace.parse(log.splitlines()))
    return lt, {sp.ident: sp for sp in lt.spaces}


def sizes(sp):
    return [(f.pages, f.pages_2mib, f.threads) for f in sp.flushes]


def test_each_call_that_changes_mapped_pages_is_one_flush_of_the_pages_it_changes():
    log = f"""\
1 execve("", [""], 0x1 /* 1 vars */) = 0
1 mmap(NULL, 40960, PROT_READ|PROT_WRITE, {M}, -1, 0) = 0x10000
1 mprotect(0x10000, 8192, PROT_READ) = 0
1 mprotect(0x10000, 8192, PROT_READ) = 0
1 madvise(0x12000, 12288, MADV_DONTNEED) = 0
1 madvise(0x12000, 12288, MADV_WILLNEED) = 0
1 madvise(0x15000, 4096, MADV_FREE) = 0
1 madvise(0x16000, 4096, 9) = 0
1 mmap(0x17000, 8192, PROT_NONE, {M}|MAP_FIXED, -1, 0) = 0x17000
1 madvise(0x17000, 8192, MADV_DONTNEED) = 0
1 munmap(0x17000, 8192) = 0
1 madvise(0x10000, 40960, MADV_DONTNEED) = -1 EINVAL (Invalid argument)
1 munmap(0x10000, 40960) = 0
1 munmap(0x10000, 40960) = 0
1 mmap(NULL, 4194304, PROT_READ, {M}, -1, 0) = 0x200000
1 munmap(0x1ff000, 4202496) = 0
"""
    lt, sps = model(log)
    sp = sps["1"]
    # Two pages re-protected (the same protection again changes none); three dropped (WILLNEED
    # drops none); one page by MADV_FREE, one by MADV_REMOVE (9); MAP_FIXED PROT_NONE over two
    # mapped pages; nothing left to drop or unmap there; a failed call is no flush; the munmap of
    # the seven pages still mapped, then of nothing; 4 MiB aligned: two 2 MiB pages.
    assert [(f.call, f.pages) for f in sp.flushes] == [(2, 2), (4, 3), (6, 1), (7, 1), (8, 2), (12, 8), (15, 1024)]
    assert sp.flushes[-1].pages_2mib == 2
    assert "forget 3 4" in sp.ops and "forget 1 6" in sp.ops and "forget 1 7" in sp.ops
    assert trace.pages_2mib(0x1ff000, 0x401000) == 1 + 2 and trace.pages_2mib(0x200000, 0x201000) == 1


def test_a_flush_counts_the_threads_sharing_the_space_then():
    log = f"""\
1 execve("", [""], 0x1 /* 1 vars */) = 0
1 mmap(NULL, 16384, PROT_READ|PROT_WRITE, {M}, -1, 0) = 0x10000
1 munmap(0x10000, 4096) = 0
1 clone3({{flags=CLONE_VM|CLONE_THREAD, exit_signal=0}}, 88) = 2
1 clone3({{flags=CLONE_VM|CLONE_THREAD, exit_signal=0}}, 88) = 3
2 munmap(0x11000, 4096) = 0
2 exit(0) = ?
2 +++ exited with 0 +++
1 munmap(0x12000, 4096) = 0
1 clone(child_stack=NULL, flags=SIGCHLD) = 4
4 munmap(0x13000, 4096) = 0
3 execve("", [""], 0x1 /* 1 vars */) = 0
3 mmap(NULL, 4096, PROT_READ, {M}, -1, 0) = 0x50000
3 munmap(0x50000, 4096) = 0
"""
    _, sps = model(log)
    # Alone; with two threads more; one left; the fork's copy alone; exec leaves the new program
    # alone (the old space's threads end).
    assert sizes(sps["1"]) == [(1, 1, 1), (1, 1, 3), (1, 1, 2)]
    assert sizes(sps["4"]) == [(1, 1, 1)] and sizes(sps["3"]) == [(1, 1, 1)]
    counts = sps["1"].flush_counts()
    assert counts["4KiB"] == {"1": 3} and counts["threaded"]["4KiB"] == {"1": 2}
    assert counts["threads"] == {"2": 1, "3": 1}


def test_exec_in_a_vfork_child_ends_only_its_own_thread_group():
    # posix_spawn: the child shares the parent's space (CLONE_VM|CLONE_VFORK) until its exec;
    # the exec ends the child's own threads, never the parent, whose calls stay in its space.
    log = f"""\
1 execve("", [""], 0x1 /* 1 vars */) = 0
1 clone3({{flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD}}, 88) = 2
2 execve("", [""], 0x1 /* 1 vars */) = 0
1 mmap(NULL, 8192, PROT_READ|PROT_WRITE, {M}, -1, 0) = 0x10000
1 clone3({{flags=CLONE_VM|CLONE_THREAD, exit_signal=0}}, 88) = 3
3 munmap(0x10000, 4096) = 0
1 vfork() = 4
4 execve("", [""], 0x1 /* 1 vars */) = 0
3 munmap(0x11000, 4096) = 0
"""
    _, sps = model(log)
    assert sorted(sps) == ["1", "2", "4"]
    # The parent with its thread: two, once each vfork child has gone to its own program.
    assert sizes(sps["1"]) == [(1, 1, 2), (1, 1, 2)]


# Maps, touches and unmaps ranges of known sizes after a marker (a PROT_NONE mapping of an
# unusual length), then re-protects, drops and replaces pages of one: its flushes after the
# marker are exactly these, whatever the C library does before.
PROGRAM = r"""
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)
static char *map(char *at, size_t pages, int prot, int flags) {
    char *p = mmap(at, pages << 12, prot, ANON | flags, -1, 0);
    if (p == MAP_FAILED) _exit(2);
    for (size_t i = 0; prot && i < pages; i++) p[i << 12] = 1;
    return p;
}
int main(void) {
    map(0, 0x777, PROT_NONE, 0);
    size_t sizes[] = {1, 5, 33, 34, 600};
    for (int i = 0; i < 5; i++) munmap(map(0, sizes[i], RW, 0), sizes[i] << 12);
    char *r = map(0, 3 << 9, PROT_NONE, 0);
    char *big = map((char *)(((uintptr_t)r + (2 << 20) - 1) & ~(uintptr_t)((2 << 20) - 1)), 1024, RW, MAP_FIXED);
    munmap(big, 4 << 20);
    char *p = map(0, 8, RW, 0);
    mprotect(p, 8 << 12, PROT_READ);
    madvise(p + (2 << 12), 3 << 12, MADV_DONTNEED);
    map(p, 2, RW, MAP_FIXED);
    _exit(0);
}
"""
EXPECTED = [1, 5, 33, 34, 600, 1024, 8, 3, 2]


def test_a_program_made_on_purpose_flushes_exactly_the_sizes_it_unmaps_and_reprotects(tmp_path):
    for tool in ("strace", "gcc"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            pytest.skip(f"{tool} not installed")
    (tmp_path / "p.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "sizes"), str(tmp_path / "p.c")], check=True)
    from ptplab import capture, replay
    capture.capture("sizes", [str(tmp_path / "sizes")], tmp_path / "t", "test")
    t = replay.load(tmp_path / "t/sizes")
    calls = trace.parse(t.lines)
    marker = next(c.line for c in calls if c.name == "mmap" and trace.number(c.args[1]) == 0x777 << 12)
    (sp,) = trace.lifetimes(calls, t.layouts).spaces
    ours = [f for f in sp.flushes if f.call > marker]
    assert [f.pages for f in ours] == EXPECTED
    # With 2 MiB pages: the aligned 4 MiB is two; the others as their place falls (600 pages
    # may cover an aligned 2 MiB).
    at = {c.line: trace.number(c.args[0]) for c in calls if isinstance(c, trace.Call)}
    assert [f.pages_2mib for f in ours] == [trace.pages_2mib(at[f.call], at[f.call] + f.pages * 4096) for f in ours]
    assert ours[5].pages_2mib == 2 and [f.pages_2mib for f in ours[6:]] == [8, 3, 2]
    # The same through the command, from the folder: the process's counts hold them.
    p = subprocess.run([sys.executable, "-m", "ptplab", "flushes", "--json", str(tmp_path / "t/sizes")],
                       capture_output=True, text=True, cwd=REPO / "tools")
    assert p.returncode == 0, p.stderr
    proc = next(json.loads(line) for line in p.stdout.splitlines() if json.loads(line)["type"] == "process")
    for pages in EXPECTED:
        assert proc["flushes"]["4KiB"][str(pages)] >= 1, pages


NAMED = {"munmap": 1, "mprotect": 1, "pkey_mprotect": 1, "madvise": 1, "mmap": 1, "mremap": 1}


@pytest.mark.parametrize("path", TRACES, ids=[p.name for p in TRACES])
def test_no_flush_of_a_whole_trace_changes_more_pages_than_its_call_names(path):
    from ptplab import replay
    t = replay.load(path)
    calls = trace.parse(t.lines)
    by_line = {c.line: c for c in calls if isinstance(c, trace.Call)}
    lt = trace.lifetimes(calls, t.layouts, t.meta.get("program", ""))
    for sp in lt.spaces:
        for f in sp.flushes:
            c = by_line[f.call]
            assert f.pages > 0 and f.pages_2mib <= f.pages
            if c.name in NAMED:
                named = -(-trace.number(c.args[NAMED[c.name]]) // trace.PAGE)
                assert f.pages <= named, (c, f)
            else:
                assert c.name in ("brk", "shmdt"), c  # they name an end, not a length


def test_the_flush_counts_agree_with_the_crates_replay_and_classes_sum_their_processes():
    rows = lifetimes.rows(TRACES, lab.facts()["pool_pages"]["sweep"])
    for r in rows:
        if r["beyond_largest_pool"]:  # the crate's replay stops where the largest pool runs out
            continue
        h = r["flushes"]["4KiB"]
        assert (sum(h.values()), sum(int(k) * v for k, v in h.items())) == (r["forget"]["calls"], r["forget"]["pages"])
    per = flushes.classes(rows)
    assert sum(per["all"]["flushes"]["4KiB"].values()) == sum(sum(r["flushes"]["4KiB"].values()) for r in rows)
    assert [r["trace"] for r in rows if r["beyond_largest_pool"]] == ["asan-hello"]
    assert sum(v["processes"] for c, v in per.items() if c != "all") == len(rows)
    assert per["build"]["programs"] == 4 and per["threads"]["flushes"]["threads"], "threads classes share spaces"


def costs_file(tmp_path, local, shootdown=None, execution="emulated"):
    """A results file with the crossover records `costs` reads (sizes, per page, full)."""
    def cross(bench, pts, cal):
        return {"type": "crossover", "suite": "tlb", "bench": bench, "pool_pages": 4096, "page_size": "4KiB",
                "per_page": "invlpg-refill", "full": "cr3-reload-refill", "unit": "ticks",
                "sizes": [p[0] for p in pts], "per_page_costs": [p[1] for p in pts], "full_costs": [p[2] for p in pts],
                "n_star": None, "ceiling": 0, "fixed_ceilings": {}, "calibrated_ceiling": cal, "calibration_ticks": 1,
                "calibrated_worst_excess": 1.0}
    run = json.loads(next(line for line in (REPO / "results/2026-12-07-vm-tcg.jsonl").read_text().splitlines()))
    run["execution"] = execution
    recs = [run, cross(lab.bench("crossover"), local, 8)]
    if shootdown:
        recs.append(cross(lab.bench("shootdown"), shootdown, 16))
    f = tmp_path / "tlb.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return f


def test_the_cheapest_ceiling_for_a_class_follows_its_flushes_on_the_cpu_given(tmp_path):
    # Per page 10 a page, full 300 + 2 a page: per page is cheaper up to 37 pages.
    pts = [(n, 10 * n, 300 + 2 * n) for n in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)]
    f = costs_file(tmp_path, pts, shootdown=[(n, 1000 + 10 * n, 1300 + 2 * n) for n in (1, 8, 64)])
    cpu = flushes.tlb_file(f)
    per_class = {"a": {"flushes": {"4KiB": {"1": 90, "40": 10}, "threaded": {"4KiB": {"40": 5}}}},
                 "b": {"flushes": {"4KiB": {"34": 1}, "threaded": {"4KiB": {}}}}}
    got = flushes.costs(cpu, per_class)
    a, b = got["local"]["workloads"]["a"], got["local"]["workloads"]["b"]
    # a: one-page flushes per page (10); 40 pages full (380 < 400): ceiling 1, up to 39 alike.
    assert a["best"] == {"ceiling": 1, "same_up_to": 39, "cost": (90 * 10 + 10 * 380) / 100}
    assert a["at"]["33"] == a["best"]["cost"] and a["at"]["8"] == a["best"]["cost"]
    # b: 34 pages, per page 340 against 368: ceiling 34; 33 and 8 pay the full flush.
    assert b["best"]["ceiling"] == 34 and b["at"]["33"] == 368.0 and b["best"]["cost"] == 340.0
    shot = got["shootdown"]["workloads"]
    # On the IPI rounds (measured to 64): 40 pages, per page 1400 against full 1380.
    assert shot["a"]["best"] == {"ceiling": 0, "same_up_to": 39, "cost": 1380.0} and shot["b"]["best"] is None
    assert got["shootdown"]["calibrated"] == 16 and got["local"]["calibrated"] == 8


def test_flushes_answers_per_class_on_a_recorded_cpu_and_labels_it_emulated():
    f = REPO / "results/2026-12-07-vm-tcg.jsonl"
    p = subprocess.run([sys.executable, "-m", "ptplab", "flushes", str(REPO / "results/traces"), "--costs", str(f)],
                       capture_output=True, text=True, cwd=REPO / "tools")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "what a syscall trace cannot see: page reclaim" in out and "MAP_FIXED" in out
    assert "2014 kernel compile: 56.92 %" in out and "emulated, so these costs show the method" in out
    assert "QEMU TCG CPU version 2.5+ (emulated, tcg; `results/2026-12-07-vm-tcg.jsonl`)" in out
    for cls in ("build", "jvm", "threads", "all"):
        assert f"\n{cls} " in out, cls
    assert "Shootdowns: the file has no IPI rounds" in out and "Expected cost per flush at each ceiling" in out


@pytest.mark.parametrize("args, why", [
    (["nowhere"], "nowhere: no such file or folder"),
    (["results/traces/gcc-compile", "--costs", "results/traces/README.md"], "README.md:1: not a JSON object"),
    (["results/traces/gcc-compile", "--costs", "results/2026-12-07-vm-none-35.jsonl"], "no 4 KiB crossover record"),
])
def test_bad_input_is_named_with_a_non_zero_exit(args, why):
    p = subprocess.run([sys.executable, "-m", "ptplab", "flushes", *args], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO / "tools")})
    assert p.returncode == 2 and why in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize("question, why", [
    ("{", "the input is not JSON"),
    ('{"costs": [], "workloads": {}}', "no costs"),
    ('{"costs": [[2, 1, 1], [1, 1, 1]], "workloads": {}}', "cost [1,1,1] is not [PAGES, PER_PAGE, FULL]"),
    ('{"costs": [[1, -1, 1]], "workloads": {}}', "cost [1,-1,1]"),
    ('{"costs": [[1, 1, 1]], "workloads": {"w": [[0, 3]]}}', 'workload "w": size [0,3] is not [PAGES, COUNT]'),
    ('{"costs": [[1, 1, 1]], "ceilings": ["x"], "workloads": {}}', 'ceiling "x" is not a whole number'),
    ('{"costs": [[1, 1, 1]]}', "no workloads"),
])
def test_flush_costs_names_bad_input(question, why):
    p = subprocess.run([str(lab.host_bin()), "flush-costs"], input=question, capture_output=True, text=True)
    assert p.returncode == 2 and why in p.stderr and p.stdout == "", p.stderr
