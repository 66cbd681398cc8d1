"""A checked run: what `ptp-host plan` (lab/ptp-lab/src/plan.rs, the one check of a run's
arguments) answers, as the runners and the LAVA job use it; and how scripts/bench.sh and
scripts/lava.sh hand the plan their check made to the run they start, so arguments are checked
once on every path."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import lab
from .cli import checked_plan


# scripts/bench.sh hands the plan its check made to the run it starts, so the arguments are checked once.
PLAN_ENV = "PTPLAB_PLAN"


@dataclass
class Plan:
    """A checked run: `ptp-host plan`'s answer (lab/ptp-lab/src/plan.rs), as the runners use it."""
    runner: str
    needs: list[str]
    pools: list[int]
    suites: list[str]
    quick: bool
    selftest: bool
    out: Path
    accel: str
    timeout: int
    memory: int
    seed: int
    cpus: int
    kernel: Path
    host_bin: Path
    qemu: str
    bochs: str
    extra: str
    words: str
    criterion_args: list[str] = field(default_factory=list)
    repeat: int = 1
    layouts: Path | None = None
    report: Path | None = None
    image: Path | None = None
    netboot: Path | None = None
    device: str = "qemu-tcg"
    jobs: Path | None = None
    artifacts: str = ""
    server: str = ""
    choices: str = "default"
    menu_timeout: int = 5
    validate: bool = False

    @property
    def host(self) -> bool:
        return self.runner == "host"

    @property
    def criterion(self) -> bool:
        return self.runner == "criterion"

    @classmethod
    def from_checked(cls, p: dict) -> "Plan":
        o = p["options"]
        path = lambda k: None if o.get(k) is None else Path(o[k])  # noqa: E731
        return cls(runner=p["runner"], needs=p["needs"], pools=p["config"]["pool_pages"],
                   suites=p["config"]["suites"], quick=p["config"]["quick"], selftest=p["config"]["mode"] == "selftest",
                   out=path("out"), accel=o.get("accel") or "none", timeout=o.get("timeout") or 0,
                   memory=o.get("memory") or 0, seed=p["config"]["seed"], cpus=o.get("cpus") or 1,
                   kernel=path("kernel") or lab.KERNEL, host_bin=path("host_bin") or lab.HOST_BIN,
                   qemu=o.get("qemu") or "", bochs=o.get("bochs") or "", extra=o.get("append_extra") or "",
                   words=p["cmdline"], criterion_args=p["criterion_args"], repeat=o.get("repeat") or 1,
                   layouts=path("layouts"), report=path("report"), image=path("image"), netboot=path("netboot"),
                   device=o.get("device") or "qemu-tcg", jobs=path("jobs"), artifacts=o.get("artifacts") or "",
                   server=o.get("server") or "", choices=o.get("choices") or "default",
                   menu_timeout=o.get("menu_timeout", 5), validate=o.get("validate", False))

    def cmdline(self) -> str:
        return self.words


def plan_from_args(argv: list[str], door: str = "bench") -> Plan:
    return Plan.from_checked(checked(argv, door))


def checked(argv: list[str], door: str = "bench") -> dict:
    """The run `argv` asks for, checked once: by `ptp-host plan`, or the plan scripts/bench.sh
    had it make for these very arguments (a file named by PLAN_ENV, used once)."""
    handed = os.environ.get(PLAN_ENV)
    if handed and Path(handed).is_file():
        try:
            made = json.loads(Path(handed).read_text())
            Path(handed).unlink()
            if made.get("args") == argv and made.get("door") == door:
                return made
        except (OSError, ValueError):
            pass  # not ours to trust: check the arguments here
    return checked_plan(door, argv)


def hand_over(made: dict, argv: list[str]) -> None:
    """--validate under scripts/bench.sh: keep the plan for the run it starts with the same
    arguments (less this --validate)."""
    handed = os.environ.get(PLAN_ENV)
    if handed and "--validate" in argv:
        rest = list(argv)
        rest.remove("--validate")
        run = {**made, "args": rest, "options": {**made["options"], "validate": False}}
        Path(handed).write_text(json.dumps(run))
