"""Bochs as a supported way to run the lab: the GRUB ISO boots its Intel Haswell model, every
selftest check passes, the run is labelled emulated with the emulator named, and the job stops
Bochs at the kernel's exit record (it has no isa-debug-exit)."""
import json
import shutil

import pytest

from ptplab import bench, lab, schema

pytestmark = [
    pytest.mark.skipif(not lab.KERNEL.exists(), reason="kernel not built (scripts/test.sh builds it)"),
    pytest.mark.skipif(shutil.which("bochs") is None, reason="bochs not installed (scripts/test.sh installs it)"),
]


@pytest.fixture(scope="module")
def bochs_selftest(tmp_path_factory):
    out = tmp_path_factory.mktemp("bochs")
    rc = bench.main(["--accel", "bochs", "--cpus", "2", "--selftest", "--pool-pages", "64,1024", "--out", str(out)])
    files = list(out.glob("*.jsonl"))
    return rc, files, [json.loads(line) for line in files[0].read_text().splitlines()] if files else []


def test_every_check_passes_under_bochs(bochs_selftest):
    rc, files, records = bochs_selftest
    assert rc == 0 and len(files) == 1 and files[0].name.endswith("-bochs.jsonl")
    assert schema.validate(records) == []
    checks = [r for r in records if r["type"] == "check"]
    assert len(checks) >= 50 and [c for c in checks if not c["ok"]] == []
    table = {(b["suite"], b["name"]) for b in lab.facts()["benches"]}
    assert {(r["suite"], r["bench"]) for r in records if r["type"] in ("measurement", "skip", "check")
            and r["suite"] != "boot"} == table


def test_a_bochs_run_says_what_ran_it(bochs_selftest):
    _, _, records = bochs_selftest
    run = records[0]
    assert (run["where"], run["accel"], run["execution"]) == ("kernel", "bochs", "emulated")
    assert run["emulator"].startswith("Bochs x86 Emulator") and "corei7_haswell_4770" in run["emulator"]
    assert run["cpu"]["hypervisor"] is None, "Bochs sets no hypervisor bit: the calibration says emulated"
    assert run["cpu"]["pcid"] and run["cpu"]["invpcid"] and run["cpu"]["x2apic"] and run["cpu"]["pages_1g"]
    assert run["boot"]["boot"]["protocol"] == "multiboot2"
    assert records[-1]["type"] == "end" and records[-1]["status"] == "ok"


def test_under_bochs_both_cpus_come_up_in_x2apic_mode_and_the_shootdown_is_checked_and_measured(bochs_selftest):
    _, _, records = bochs_selftest
    run = records[0]
    smp = run["boot"]["smp"]
    assert (smp["source"], smp["apic"], smp["found"]) == ("madt", "x2apic", 2), smp
    assert [c["up"] for c in smp["cpus"]] == [True, True] and [c["cpu"] for c in run["cpus"]] == [0, 1]
    assert run["emulator"].endswith("(corei7_haswell_4770, 2 CPUs)")
    shoot = [r for r in records if r.get("bench") == "tlb_shootdown"]
    checks = {r["name"]: r["ok"] for r in shoot if r["type"] == "check"}
    assert checks == {"shootdown_join": True, "shootdown_new_frame_seen": True,
                      "shootdown_others_untouched": True, "shootdown_tables_freed_after_every_ack": True,
                      "shootdown_crossover": True}
    ipi = [r for r in shoot if r["type"] == "measurement" and r["impl"] == "ipi"]
    assert sorted(str(r["params"]["pages"]) for r in ipi if r["params"]["targets"] == 1) == \
        sorted(["1", "8", "32", "64", "full"])


def test_under_bochs_pcid_and_invpcid_are_measured_and_checked_not_skipped(bochs_selftest):
    _, _, records = bochs_selftest
    tlb = [r for r in records if r.get("suite") == "tlb"]
    measured = {r["impl"] for r in tlb if r["type"] == "measurement"}
    assert {"pcid-switch-no-flush", "pcid-switch-flush", "invpcid-0-address", "invpcid-1-context",
            "invpcid-2-all", "invpcid-3-all-but-global"} <= measured
    checks = {r["name"]: r["ok"] for r in tlb if r["type"] == "check"}
    assert checks["pcid_switch_keeps_other_context_usable"] and checks["pcid_switch_with_flush_new_frame_seen"]
    assert all(checks[f"invpcid_type_{t}_new_frame_seen"] for t in range(4))
    skipped = {r["bench"] for r in tlb if r["type"] == "skip" and r["pool_pages"] == 64}
    assert skipped == {"tlb_invlpgb", "tlb_shootdown_invlpgb", "tlb_linux_round_trips", "tlb_linux_refill"}, \
        "only INVLPGB (AMD) is missing from Bochs's Haswell (and Linux's costs are the host's)"
    pairs = {(r["page_size"], r["per_page"], r["full"]) for r in tlb if r["type"] == "crossover"}
    assert pairs == {("4KiB", "invlpg-refill", "cr3-reload-refill"), ("2MiB", "invlpg-refill-2MiB", "cr3-reload-refill-2MiB"),
                     ("4KiB", "invpcid-0-refill", "invpcid-1-refill"),
                     ("4KiB", "ipi-invlpg-refill", "ipi-cr3-reload-refill")}
