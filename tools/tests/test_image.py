"""The real-hardware image (issue: one image, BIOS and UEFI, CD and USB stick, results on screen
and on serial), booted as machines would boot it: SeaBIOS and OVMF, from a CD and as a USB stick
on xHCI; the screen read back; Bochs (BIOS) too."""
import json
import shutil

import pytest

from ptplab import bench, bochs, collect, lab, machine, runners, stream
from ptplab.plan import plan_from_args

pytestmark = [
    pytest.mark.skipif(not lab.KERNEL.exists(), reason="kernel not built (scripts/test.sh builds it)"),
    pytest.mark.skipif(shutil.which("grub-mkrescue") is None, reason="grub not installed (scripts/test.sh does)"),
]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "ptplab.iso"
    assert bench.main(["--image", str(path), "--selftest", "--pool-pages", "64,1024", "--menu-timeout", "1"]) == 0
    return path


def finished(booted):
    """Every selftest check passed, the end record is out, the kernel said it halted."""
    types = [r["type"] for r in booted.records]
    assert "end" in types, booted.log[-2000:]
    end = next(r for r in booted.records if r["type"] == "end")
    checks = [r for r in booted.records if r["type"] == "check"]
    assert end["status"] == "ok" and end["checks_failed"] == 0 and len(checks) >= 50
    boot = next(r for r in booted.records if r["type"] == "boot")
    assert boot["protocol"] == "multiboot2" and boot["rsdp"] is not None, "the ACPI tag GRUB hands over"
    assert "# halted (success)" in booted.log
    return boot


@pytest.mark.skipif(not machine.OVMF.exists(), reason="ovmf not installed (scripts/test.sh installs it)")
@pytest.mark.parametrize("fw", ["bios", "uefi"])
def test_the_image_boots_as_a_usb_stick(image, fw):
    booted = machine.boot(image, fw, "usb")
    finished(booted)
    assert booted.status == 33  # the kernel's success code through isa-debug-exit


def test_under_bios_from_a_cd_the_summary_is_on_the_vga_text_screen(image):
    booted = machine.boot(image, "bios", "cdrom", look=True)
    finished(booted)
    screen = "\n".join(booted.text)
    # More lines than the 25 rows of text: the screen scrolled, and what a person needs at
    # the end is there, the last suite, the summary and the last words, in order.
    rows = [r for r in booted.text if r.strip()]
    assert len(rows) >= 24 and "bench-kernel 0.1.0" not in screen, screen
    last = [next(i for i, r in enumerate(rows) if word in r) for word in
            ("suite churn pool_pages 64,1024", "summary: kernel run, emulated", "halted (success)")]
    assert last == sorted(last) and last[-1] >= len(rows) - 3, screen
    assert "{" not in screen, "human lines only, no JSON"


@pytest.mark.skipif(not machine.OVMF.exists(), reason="ovmf not installed (scripts/test.sh installs it)")
def test_under_uefi_from_a_cd_the_lines_are_drawn_on_the_framebuffer(image):
    booted = machine.boot(image, "uefi", "cdrom", look=True)
    boot = finished(booted)
    memmap = next((r for r in booted.records if r["type"] == "memmap"), None)
    assert boot["free_ram_bytes"] > 0 and memmap is None or memmap["entries"], "memory from GRUB's (EFI) map"
    rows = machine.lit_rows(booted.pixels)
    # The first text row holds "bench-kernel 0.1.0": lit; at least six rows of text follow it.
    assert rows[0] > 100 and sum(n > 100 for n in rows) >= 6, rows


def test_a_fault_shows_the_same_report_on_the_screen_as_on_serial(tmp_path):
    path = tmp_path / "fault.iso"
    assert bench.main(["--image", str(path), "--selftest", "--suite", "alloc", "--pool-pages", "64",
                       "--menu-timeout", "0", "--append-extra", "fault=pf"]) == 0
    booted = machine.boot(path, "bios", "cdrom", look=True)
    fault = next(r for r in booted.records if r["type"] == "fault")
    screen = "\n".join(booted.text)
    assert fault["name"] == "#PF" and "FATAL: unexpected exception #PF (vector 14) on CPU 0" in screen, screen
    assert f"cr2={fault['cr2']}" in screen.replace("\n", "") and "halted (failure)" in screen


@pytest.mark.skipif(shutil.which("bochs") is None, reason="bochs not installed (scripts/test.sh installs it)")
def test_the_image_boots_under_bochs_to_the_end_record(tmp_path):
    # One suite is enough here: what is asked is that the hybrid image boots under Bochs's BIOS
    # and runs to its end; every check under Bochs is test_bochs's (a full selftest there).
    path = tmp_path / "one-suite.iso"
    assert bench.main(["--image", str(path), "--selftest", "--suite", "alloc", "--pool-pages", "64",
                       "--menu-timeout", "0"]) == 0
    cmd, serial = bochs.command("bochs", tmp_path, path, 512, 1)
    out = stream.run_process(cmd, timeout=300, env=bochs.ENV, serial=serial)
    assert out.end() is not None and out.end()["status"] == "ok", "\n".join(out.log[-20:])
    assert {r["suite"] for r in out.records if r["type"] == "check"} == {"boot", "alloc"}


def test_the_menu_offers_the_default_run_the_sweep_the_selftest_and_the_tlb_suite_on_every_cpu():
    plan = plan_from_args(["--image", "x.iso", "--suite", "map", "--pool-pages", "2048"])
    entries = runners.image_entries(plan, lab.facts())
    titles = [t for t, _ in entries]
    assert titles[0] == "PTP lab: the default run (as built)" and "suites=map pools=2048" in entries[0][1]
    assert any("pools=512,1024,2048,4096,8192,16384,32768,65536" in c for _, c in entries)
    assert any(c.startswith("mode=selftest") for _, c in entries)
    assert any("suites=tlb " in c for _, c in entries)


@pytest.mark.parametrize("words,message", [
    (["--image", "x.iso", "--host"], "--image and --host: choose one"),
    (["--image", "x.iso", "--menu-timeout", "-1"], "--menu-timeout: \"-1\" is not a whole number in 0..=600"),
    (["--image", "x.iso", "--accel", "tcg"], "--accel tcg: the real-hardware image (--image) does not take it"),
    (["--image", "x.iso", "--repeat", "2"], "--repeat 2: the real-hardware image (--image) does not take it"),
])
def test_image_options_that_cannot_apply_are_refused(words, message, capsys):
    assert bench.main(words) != 0 and message in capsys.readouterr().err


def test_an_existing_image_is_never_overwritten(tmp_path, capsys):
    path = tmp_path / "old.iso"
    path.write_text("a user's file")
    assert bench.main(["--image", str(path)]) != 0
    assert "exists; images are not overwritten" in capsys.readouterr().err and path.read_text() == "a user's file"


def test_collect_refuses_a_truncated_log_unless_asked(tmp_path, capsys):
    log = tmp_path / "serial.log"
    run = {"type": "run", "schema": 4, "where": "kernel", "execution": "native"}
    log.write_text(json.dumps(run) + "\n" + json.dumps({"type": "measurement", "suite": "alloc", "bench": "b", "impl": "i"}) + "\n")
    out = tmp_path / "results"
    assert collect.main([str(log), "--accel", "bare-metal", "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "no end record" in err and "--partial" in err, err
    assert not out.exists() or not list(out.iterdir()), "nothing written"
    assert collect.main([str(log), "--accel", "bare-metal", "--out", str(out), "--partial"]) == 5
    assert [p.name.endswith(".partial.jsonl") for p in out.glob("*.jsonl")] == [True]
