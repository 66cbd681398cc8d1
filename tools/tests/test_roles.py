"""Names as rows (issue 32): the report, the tables and the plots ask for a benchmark or a
contender by its role (lab/ptp-lab/src/suites/roles.rs, `ptp-host facts` key `roles`), never by a
string of their own, and never build the kernel's `pools=` word themselves."""
import ast

import pytest

from ptplab import lab

REPO = lab.REPO
READERS = ["report.py", "table.py", "plots.py", "lifetimes.py", "aggregate.py"]


def strings(path):
    return {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_every_role_names_something_the_table_runs():
    facts = lab.facts()
    benches = {b["name"] for b in facts["benches"]}
    assert set(facts["roles"]["benches"].values()) <= benches
    assert lab.bench("shootdown") == "tlb_shootdown" and lab.contender("bitmap") == "lab-bitmap"


@pytest.mark.parametrize("name", READERS)
def test_readers_name_no_benchmark_or_contender_themselves(name):
    facts = lab.facts()
    names = {b["name"] for b in facts["benches"]} | set(facts["roles"]["contenders"].values())
    found = strings(REPO / "tools/ptplab" / name) & names
    assert not found, f"{name} names {sorted(found)}: ask lab.bench(role) or lab.contender(role)"
    key = next(o["word"] for o in facts["options"] if o["name"] == "pool_pages")
    assert not any(s.startswith(key + "=") for s in strings(REPO / "tools/ptplab" / name)), "lab.pool_word builds it"
