"""Real layouts and the capacity model: every committed layout's prediction equals what
mapping it really takes, the three input formats read, bad input named."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ptplab import bench, lab, layouts, replay

REPO = lab.REPO
LAYOUTS = sorted((REPO / "results/layouts").glob("*.json"))


def test_the_committed_set_is_many_programs():
    programs = {json.loads(p.read_text())["program"] for p in LAYOUTS}
    assert len(LAYOUTS) >= 50 and len(programs) >= 10, (len(LAYOUTS), programs)
    for p in LAYOUTS:
        d = json.loads(p.read_text())
        assert set(d) == {"program", "variant", "vm_pte_kib", "captured_utc", "ranges"}, p
        assert all(len(r) == 3 for r in d["ranges"]), "addresses and permissions only"


@pytest.mark.parametrize("path", LAYOUTS, ids=[p.stem for p in LAYOUTS])
def test_prediction_equals_what_mapping_the_layout_really_takes(path):
    f = layouts.pool_pages(layouts.read(path))
    for size in ("4KiB", "2MiB"):
        assert f[size]["mapped"] is not None and f[size]["predicted"] == f[size]["mapped"], (size, f)
    assert f["2MiB"]["predicted"] <= f["4KiB"]["predicted"]


def test_a_proc_maps_file_and_a_hand_written_layout_read_alike(tmp_path):
    maps = tmp_path / "self.maps"
    maps.write_text(Path("/proc/self/maps").read_text())
    from_maps = layouts.read(maps)
    hand = tmp_path / "hand.txt"
    hand.write_text("# START END [PERMS]\n" + "".join(f"{s:#x} {e:#x} {p}\n" for s, e, p in from_maps.ranges))
    assert layouts.read(hand).ranges == from_maps.ranges
    assert layouts.pool_pages(layouts.read(hand)) == layouts.pool_pages(from_maps)
    (tmp_path / "bad.txt").write_text("0x1000 0x3000\n0x5000 zz\n")
    with pytest.raises(layouts.LayoutError, match=r"bad.txt:2: '0x5000 zz' is neither"):
        layouts.read(tmp_path / "bad.txt")


def test_capacity_prints_pool_pages_vmpte_and_fit(tmp_path):
    hand = tmp_path / "two-gib.txt"
    hand.write_text("0x40000000 0xc0000000 rw-p\n0x10000 0x11000 ---p\n")  # 2 GiB; a reservation left out
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
    p = subprocess.run([sys.executable, "-m", "ptplab", "capacity", str(hand), "--pool-pages", "1024,4096"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    row = next(line for line in p.stdout.splitlines() if line.startswith("two-gib"))
    # 2 GiB of 4 KiB pages: 1024 PTs, 2 PDs, a PDPT and the root; with 2 MiB pages: 4.
    # The reservation, were it accessible: a PD and a PT more for the first GiB.
    assert row.split()[1:] == ["1", "2048.0", "-", "1028", "4", "1030", "6", "ny", "yy"], row
    hand.write_text("0x40000000 0xc0000000 rw-p\nffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n")
    p = subprocess.run([sys.executable, "-m", "ptplab", "capacity", str(hand), "--json"], capture_output=True,
                       text=True, env=env)
    (f,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 0 and f["pages"] == {"4KiB": 1028, "2MiB": 4} == f["could_grow_to"]
    assert f["left_out_kernel_half"] == ["ffffffffff600000-ffffffffff601000"] and f["fits"]["1024"]["2MiB"]
    bad = subprocess.run([sys.executable, "-m", "ptplab", "capacity", str(tmp_path / "none")], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and "none: No such file" in bad.stderr


POPULATE = r"""
import ctypes, re, sys, time
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(41, 1, 0, 0, 0) == 0  # PR_SET_THP_DISABLE: 4 KiB pages only, as the model counts
assert libc.mlockall(3) == 0, ctypes.get_errno()  # MCL_CURRENT | MCL_FUTURE: every accessible page populated
time.time()  # the vDSO's data page, which mlock does not populate, read
for _ in range(20):
    a = open("/proc/self/status").read()
    maps = open("/proc/self/maps").read()
    b = open("/proc/self/status").read()
    if a == b:
        break
print(re.search(r"VmPTE:\s+(\d+) kB", b).group(1))
sys.stdout.write(maps)
"""


def test_the_model_equals_linux_page_tables_of_a_fully_populated_process(tmp_path):
    """Every accessible page touched, THP off: Linux's page-table memory (VmPTE, every level below
    the PML4) plus the PML4 is what the model counts, to the page; [vsyscall] left out."""
    p = subprocess.run([sys.executable, "-c", POPULATE], capture_output=True, text=True)
    if p.returncode != 0 and "mlockall" in p.stderr:
        pytest.skip(f"mlockall refused (RLIMIT_MEMLOCK, not root): {p.stderr.strip()[-200:]}")
    assert p.returncode == 0, p.stderr
    pte_kib, maps = p.stdout.split("\n", 1)
    (tmp_path / "populated.maps").write_text(maps)
    layout = layouts.read(tmp_path / "populated.maps")
    assert layout.kernel_half(), "the [vsyscall] line is there, and left out"
    assert layouts.pool_pages(layout)["4KiB"]["predicted"] == int(pte_kib) // 4 + 1


def test_in_the_kernel_every_layout_maps_to_exactly_the_predicted_pages(tmp_path):
    if not lab.KERNEL.exists():
        pytest.skip("kernel not built")
    rc = bench.main(["--accel", "tcg", "--selftest", "--suite", "layouts", "--out", str(tmp_path)])
    records = [json.loads(line) for line in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    assert rc == 0
    checks = {r["name"]: r for r in records if r["type"] == "check" and r["bench"] == "layouts_predicted_equals_mapped"}
    names = {layouts.read(p).name for p in LAYOUTS}
    assert set(checks) == names | {"every_layout_checked"}
    assert all(c["ok"] for c in checks.values()), [c for c in checks.values() if not c["ok"]]
    assert checks["every_layout_checked"]["detail"].startswith(f"{len(LAYOUTS)} layouts checked")
    # A few lifetimes replayed on real page tables: the pool holds what the model says, every
    # final range reads through the MMU, the page after each faults.
    replays = [r for r in records if r["type"] == "check" and r["bench"] == "layouts_replay_translates"]
    assert {r["name"].split("/")[0] for r in replays} == set(replay.KERNEL_TRACES) | {"every_replay_checked"}
    assert all(r["ok"] for r in replays), [r for r in replays if not r["ok"]]
    one = next(r for r in replays if r["name"].startswith("gcc-compile/"))
    m = re.search(r"(\d+) ranges at the end: model Some\((\d+)\) table pages, pool holds (\d+); (\d+) pages read "
                  r"through the MMU, (\d+) pages after a range faulted", one["detail"])
    ranges, model, held, reads, faults = map(int, m.groups())
    assert model == held > 0 and reads == 2 * ranges and faults >= 1, one["detail"]
