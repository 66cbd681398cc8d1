"""The exit statuses are defined once (the job's in cli.Exit, the kernel's and the host runner's
in lab/ptp-lab/src/exit.rs) and listed in docs/exit-codes.md, which must say what the code says."""
import re
import subprocess
import sys
from pathlib import Path

from ptplab import cli, lab

REPO = Path(__file__).resolve().parents[2]


def test_the_documented_table_is_the_one_the_code_prints():
    doc = (REPO / "docs/exit-codes.md").read_text()
    table = cli.exit_codes_table()
    assert table in doc, "docs/exit-codes.md differs from `python3 -m ptplab exit-codes`: paste its output"
    out = subprocess.run([sys.executable, "-m", "ptplab", "exit-codes"], capture_output=True, text=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO / "tools"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout == table


def test_every_status_has_a_meaning_and_the_kernel_and_host_rows_come_from_rust():
    assert set(cli.EXIT_MEANING) == set(cli.Exit)
    ex = lab.facts()["exit"]
    table = cli.exit_codes_table()
    for name, k in ex["kernel"].items():
        assert f"| {k['qemu_status']} | {name} |" in table
    assert [int(e) for e in cli.Exit] == list(range(len(cli.Exit)))
    assert cli.interrupted(2) == 130


def test_no_exit_status_is_a_literal_at_a_raise():
    # Each status is named where it is raised: code=Exit.X, never code=4.
    for p in sorted((REPO / "tools/ptplab").glob("*.py")):
        hits = re.findall(r"code=\d+", p.read_text())
        assert not hits, f"{p.name}: {hits}"
