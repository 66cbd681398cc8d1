"""The boot module a run hands the kernel: the recorded layouts (and a few replayed lifetimes)
the layouts and churn suites map on real page tables; on the host, the file the facts'
`layouts_env` variable names."""
from __future__ import annotations

import tempfile
from pathlib import Path

from . import lab, layouts
from .cli import BenchError
from .plan import Plan


def layouts_module(plan: Plan, work: Path) -> Path | None:
    """With the layouts or churn suite: the layouts as the kernel reads them (`# NAME`, then
    `START END` hex lines of the ranges a PTP maps), in a file to hand over as a boot module (on
    the host: the file the facts' `layouts_env` variable names)."""
    if not {"layouts", "churn"} & set(plan.suites) or plan.layouts is None:
        return None
    paths = sorted(plan.layouts.glob("*.json"))
    if not paths:
        raise BenchError(f"--layouts: no layouts in {plan.layouts} (scripts/capture-layouts.sh records them)")
    text = []
    for p in paths:
        lay = layouts.read(p)
        text.append(f"# {lay.name}\n" + "".join(f"{s:x} {e:x}\n" for s, e in lay.mapped()))
    if "layouts" in plan.suites:
        from .lifetimes import DIR as TRACES
        from .replay import kernel_blocks
        text.append(kernel_blocks(TRACES))  # a few lifetimes, replayed on real page tables
    path = work / "layouts.txt"
    path.write_text("".join(text))
    return path


def host_layouts(plan: Plan) -> dict:
    """The environment that hands the layouts to a host run (its boot module, in the kernel)."""
    module = layouts_module(plan, Path(tempfile.mkdtemp(prefix="ptplab-module-")))
    return {lab.facts()["layouts_env"]: str(module)} if module else {}
