"""Cross-CPU shootdown under QEMU/TCG: the bench kernel starts every CPU the MADT lists, the run
record names those that came up, the shootdown checks pass through each CPU's MMU, the round
trips are measured per target count, a CPU that does not answer is reported and left out, and
INVLPGB (which no CPU here has) is skipped with its reason."""
import json

import pytest

from ptplab import bench, lab, qemu, schema, stream

pytestmark = pytest.mark.skipif(not lab.KERNEL.exists(), reason="kernel not built (scripts/test.sh builds it)")


def run(tmp_path, *args):
    rc = bench.main(["--accel", "tcg", "--selftest", "--suite", "tlb", "--pool-pages", "64", "--out", str(tmp_path),
                     *args])
    files = sorted(tmp_path.glob("*.jsonl"))
    assert len(files) == 1, files
    return rc, [json.loads(line) for line in files[0].read_text().splitlines()]


def shootdown(records):
    return [r for r in records if r.get("bench") == "tlb_shootdown"]


def test_two_cpus_shoot_down_checked_and_measured_for_one_target(kernel_selftest):
    rc, _, records = kernel_selftest
    assert rc == 0 and schema.validate(records) == []
    run0 = records[0]
    assert [c["cpu"] for c in run0["cpus"]] == [0, 1] and run0["qemu_args"][4:6] == ["-smp", "2"]
    smp = run0["boot"]["smp"]
    # The APIC mode is the guest CPU's (QEMU 10's TCG has x2APIC, 7.2's has not), never one version's.
    apic = "x2apic" if run0["cpu"]["x2apic"] else "xapic"
    assert (smp["source"], smp["apic"], smp["found"], smp["left_out"], smp["online_capable"]) == ("madt", apic, 2, 0, 0)
    assert smp["cpus"][1]["up"] and isinstance(smp["cpus"][1]["tsc_offset_ticks"], int)
    checks = {r["name"]: (r["ok"], r["detail"]) for r in shootdown(records) if r["type"] == "check"}
    assert all(ok for ok, _ in checks.values()) and set(checks) == {
        "shootdown_join", "shootdown_new_frame_seen", "shootdown_others_untouched",
        "shootdown_tables_freed_after_every_ack", "shootdown_crossover"}
    # Free after flush through the MMUs: CPU 1 walked the mapping (0xc3 = 195); CPU 0's unmap
    # held its 3 tables while CPU 1 had not acknowledged, released them after, and a new
    # mapping through the same pages reads the new frame (0xd4 = 212) on both CPUs.
    freed = checks["shootdown_tables_freed_after_every_ack"][1]
    assert "targets read [Some(195)]" in freed and "3 tables held" in freed, freed
    assert "still allocated with no acknowledgement: true" in freed and "released Ok(3)" in freed, freed
    assert "reuses them: true, reads 0xd4 here and [Some(212)] on the targets" in freed, freed
    # CPU 1 read the old frame (0xa1 = 161) before and the new one (0xb2 = 178) after.
    assert "[Some(161)] (old frame 0xa1) before, [Some(178)] after" in checks["shootdown_new_frame_seen"][1]
    ms = [r for r in shootdown(records) if r["type"] == "measurement"]
    ipi = {(r["params"]["targets"], r["params"]["pages"]): r["params"]["target_flush"] for r in ms
           if r["impl"] == "ipi"}
    assert set(ipi) == {(1, 1), (1, 8), (1, 32), (1, 64), (1, "full")}
    ceiling = next(r["params"]["ceiling"] for r in ms if r["impl"] == "ipi")
    assert ipi[(1, 1)] == "invlpg" and ipi[(1, "full")] == "cr3-reload"
    assert ipi[(1, 64)] == ("invlpg" if ceiling >= 64 else "cr3-reload"), "each target flushes by the policy"
    lost = [r for r in ms if r["impl"] == "ipi-target-lost"]
    assert len(lost) == 5 and all(r["n"] >= 1 and r["min"] >= 0 for r in lost)
    cross = [r for r in records if r["type"] == "crossover" and r["bench"] == "tlb_shootdown"]
    assert len(cross) == 1 and cross[0]["per_page"] == "ipi-invlpg-refill"
    skip = next(r for r in records if r["type"] == "skip" and r["bench"] == "tlb_shootdown_invlpgb")
    assert "INVLPGB" in skip["reason"] and "CPUID 0x80000008 EBX bit 3" in skip["reason"]


def test_four_cpus_measure_one_to_three_targets_and_leave_the_others_alone(tmp_path):
    rc, records = run(tmp_path, "--cpus", "4")
    assert rc == 0 and records[-1]["type"] == "end" and records[-1]["checks_failed"] == 0
    assert [c["cpu"] for c in records[0]["cpus"]] == [0, 1, 2, 3]
    checks = {r["name"]: r for r in shootdown(records) if r["type"] == "check"}
    assert "targets [1, 2], others [3]: requests handled per CPU [3, 3, 3] -> [4, 4, 3]" in \
        checks["shootdown_others_untouched"]["detail"]
    targets = {r["params"]["targets"] for r in shootdown(records) if r["type"] == "measurement" and r["impl"] == "ipi"}
    assert targets == {1, 2, 3}


def test_a_cpu_that_does_not_answer_is_reported_and_the_run_goes_on_without_it(tmp_path):
    # ap_hang=1 (tests only): CPU 1 stops before it announces itself.
    rc, records = run(tmp_path, "--cpus", "3", "--append-extra", "ap_hang=1")
    assert rc == 0 and records[-1]["type"] == "end" and records[-1]["checks_failed"] == 0
    smp = records[0]["boot"]["smp"]
    assert [(c["cpu"], c["up"]) for c in smp["cpus"]] == [(0, True), (1, False), (2, True)]
    assert "did not answer INIT-SIPI-SIPI within 200 ms" in smp["cpus"][1]["detail"]
    assert [c["cpu"] for c in records[0]["cpus"]] == [0, 2]
    targets = {r["params"]["targets"] for r in shootdown(records) if r["type"] == "measurement" and r["impl"] == "ipi"}
    assert targets == {1}, "CPU 2 alone is the target"
    assert all(r["ok"] for r in shootdown(records) if r["type"] == "check")


def test_one_cpu_skips_the_shootdown_with_the_reason(tmp_path):
    rc, records = run(tmp_path)
    skip = next(r for r in records if r["type"] == "skip" and r["bench"] == "tlb_shootdown")
    assert rc == 0 and "one CPU came up" in skip["reason"] and "--cpus 2" in skip["reason"]
    assert records[0]["qemu_args"][4:6] == ["-smp", "1"]


@pytest.mark.parametrize("words,message", [
    (["--host", "--cpus", "2"], "--cpus 2: the host runner (--host) does not take it"),
    (["--cpus", "17"], "--cpus: \"17\" is not a whole number in 1..=16"),
    (["--cpus", "0"], "--cpus"),
])
def test_bad_cpu_counts_are_refused_by_name(words, message, capsys):
    assert bench.main(words) != 0
    assert message in capsys.readouterr().err


def test_bochs_boots_with_the_cpus_asked_for(tmp_path):
    from ptplab import bochs
    text = bochs.config(tmp_path / "x.iso", tmp_path / "s", tmp_path / "l", 512, 3)
    assert "cpu: count=3, model=corei7_haswell_4770" in text


def test_a_fault_on_another_cpu_is_reported_with_its_number():
    import subprocess
    from ptplab import lab
    cmd = ["timeout", "60"] + qemu.qemu_args(qemu.QEMU, "tcg", 256, [
        "-kernel", str(lab.KERNEL), "-append", "mode=selftest suites=alloc pools=64 quick=1 fault=ap_pf"], cpus=2)
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    fault = next(r for r in map(stream.parse_line, p.stdout.splitlines()) if r and r["type"] == "fault")
    assert (fault["cpu"], fault["vector"], fault["name"], fault["cr2"]) == (1, 14, "#PF", "0x700000000000")
    assert fault["bench"] == "fault_demo_ap_pf" and fault["rip"].startswith("0x")
    assert "on CPU 1 in bench 'fault_demo_ap_pf'" in p.stdout
    assert p.returncode == lab.kernel_status("failure")


def test_without_acpi_the_mp_table_and_cpuid_find_the_cpus(tmp_path):
    # acpi=off (Linux's word): SeaBIOS's MP table lists one CPU per package; CPUID names the rest.
    rc = bench.main(["--accel", "tcg", "--selftest", "--suite", "alloc", "--pool-pages", "64", "--cpus", "3",
                     "--append-extra", "acpi=off", "--out", str(tmp_path)])
    run0 = json.loads(next(tmp_path.glob("*.jsonl")).read_text().splitlines()[0])
    smp = run0["boot"]["smp"]
    assert rc == 0 and (smp["source"], smp["found"]) == ("mp", 3)
    assert [c["cpu"] for c in run0["cpus"]] == [0, 1, 2]
