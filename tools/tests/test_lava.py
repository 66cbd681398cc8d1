"""LAVA: a job's log is a results source, and every record a test case under its own name. The
committed log is lava-run's own stderr (Debian's lava-dispatcher 2023.01, its stock qemu device
type rendered from lava-server's qemu.jinja2, no_kvm, our selftest ISO `mode=selftest
suites=alloc pools=64 quick=1`, the job lava/jobs/qemu-iso.yaml); a server's job log holds the
same entries as a YAML list. The live tests run real jobs through lava-run (scripts/lava.sh)."""
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ptplab import collect, lab, lava, lavadevice, lavalog, limits, schema

DATA = Path(__file__).resolve().parent / "data"
LOG = DATA / "lava-run-qemu-selftest.log"
REPO = Path(__file__).resolve().parents[2]


def _collect(tmp_path, log: Path) -> list[dict]:
    out = tmp_path / log.stem
    assert collect.main([str(log), "--accel", "tcg", "--out", str(out)]) == 0
    (f,) = out.glob("*.jsonl")
    return [json.loads(line) for line in f.read_text().splitlines()]


def case_name(r: dict) -> str | None:
    """The test case a record is, as LAVA stores its name (lowercase, runs of non-word
    characters one `_`), written here from the records' fields, apart from the kernel's code."""
    t = r["type"]
    if t == "check":
        words = [r["suite"], r["bench"], r["name"]] + ([f"pool{r['pool_pages']}"] if r["pool_pages"] is not None
                                                         else [])
    elif t == "skip":
        words = [r["suite"], r["bench"], f"pool{r['pool_pages']}"]
    elif t == "fault":
        words = ["fault", r["name"], f"vector{r['vector']}", f"cpu{r['cpu']}"]
    elif t == "panic":
        words = ["panic", r["bench"]]
    elif t == "error":
        words = ["error", r["kind"]]
    elif t == "end":
        words = ["end"]
    else:
        return None
    return re.sub(r"\W+", "_", " ".join(words).lower())


def expected_cases(records: list[dict]) -> list[tuple[str, str]]:
    result = {"check": lambda r: "pass" if r["ok"] else "fail", "skip": lambda r: "skip",
              "end": lambda r: "pass" if r["status"] == "ok" else "fail"}
    return sorted((case_name(r), result.get(r["type"], lambda r: "fail")(r)) for r in records if case_name(r))


def lava_cases(log_text: str) -> list[tuple[str, str]]:
    _, _, _, cases = lava.outcome(lavalog.entries(log_text), lava.SUITE)
    return sorted((c["name"], c["result"]) for c in cases)


def test_a_lava_run_log_collects_into_a_valid_results_file_with_a_case_per_record(tmp_path):
    records = _collect(tmp_path, LOG)
    assert schema.validate(records) == []
    assert records[0]["type"] == "run" and records[-1]["type"] == "end" and records[-1]["status"] == "ok"
    assert sum(r["type"] == "check" for r in records) == 19 and sum(r["type"] == "skip" for r in records) == 5
    # Name by name: each check, skip and the end record is the LAVA case of its own name.
    cases = lava_cases(LOG.read_text())
    assert cases == expected_cases(records)
    assert len({name for name, _ in cases}) == len(cases) == 25


def test_a_server_job_log_reads_as_the_same_records(tmp_path):
    server = tmp_path / "job.log"
    server.write_text("".join(f"- {line}\n" for line in LOG.read_text().splitlines()))
    strip = lambda rs: [r for r in rs if r["type"] != "run"]  # noqa: E731 (collected_from differs)
    assert strip(_collect(tmp_path, server)) == strip(_collect(tmp_path, LOG))
    assert lava_cases(server.read_text()) == lava_cases(LOG.read_text())


def test_the_jobs_monitor_is_built_from_the_kernels_case_lines():
    m = lava.monitor(lab.facts())
    line = "# case alloc_bitmap_free_all_pool64 pass"
    found = re.search(m["MONITOR_PATTERN"], line)
    assert found and found.group("test_case_id") == "alloc_bitmap_free_all_pool64" and found.group("result") == "pass"
    assert not re.search(m["MONITOR_PATTERN"], '{"type":"check","suite":"alloc","bench":"x","ok":true}')
    assert re.search(m["MONITOR_START"], "# bench-kernel 0.1.0") and re.search(m["MONITOR_END"], "# halted (failure): x")
    job = lava.job(lava.DEVICES["qemu-tcg"], "ptp-lab x", 20, lab.facts(), ISO_URL="file:///i.iso")
    assert "MONITOR_" not in job and "{seconds: 20}" in job


def test_a_server_job_asks_for_the_device_by_its_tag():
    import yaml
    for name, device in lava.DEVICES.items():
        files = {"ISO_URL": "file:///i.iso", "KERNEL_URL": "file:///k", "MODULE_URL": "file:///m", "CMDLINE": "x",
                 "IMAGE_URL": "file:///i.iso", "HTTP_PORT": "80"}
        tagged = yaml.safe_load(lava.job(device, "ptp-lab x", 20, lab.facts(), tag=name, **files))
        plain = yaml.safe_load(lava.job(device, "ptp-lab x", 20, lab.facts(), **files))
        assert tagged["tags"] == [name] and "tags" not in plain
        assert {k: v for k, v in tagged.items() if k != "tags"} == plain


def test_a_servers_suite_choices_are_the_image_menus_and_a_bad_one_is_refused_by_name(tmp_path):
    from ptplab.plan import plan_from_args
    from ptplab.runners import suite_choices
    plan = plan_from_args(["--server", "x", "--selftest", "--choices", "default,tlb,default"], door="lava")
    got = lava.server_choices(plan, lab.facts())
    assert [k for k, _ in got] == ["default", "tlb"] and got[0][1] == plan.cmdline()
    keys = [k for k, _, _ in suite_choices(plan, lab.facts())]
    help_text = next(o for o in lab.facts()["options"] if o["name"] == "choices")["help"]
    assert re.findall(r"\b(" + "|".join(keys) + r")\b", help_text) == keys, "the help lists the choices, in order"
    p = subprocess.run([str(REPO / "scripts/lava.sh"), "--server", "x", "--choices", "tlb,n\u00f6pe", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "'nöpe' is not a suite choice" in p.stderr, p.stderr
    assert not list(tmp_path.iterdir())


def test_stop_tree_kills_what_a_process_left_in_a_session_of_its_own(tmp_path):
    # A parent that ignores SIGTERM and a grandchild in its own session (as pexpect starts
    # lava-run's QEMU): both gone after the grace.
    script = tmp_path / "tree.sh"
    script.write_text("trap '' TERM\nsetsid sleep 300 &\necho $! > \"$1\"\nwait\n")
    proc = subprocess.Popen(["bash", str(script), str(tmp_path / "pid")], start_new_session=True)
    for _ in range(100):
        if (tmp_path / "pid").exists() and (tmp_path / "pid").read_text().strip():
            break
        time.sleep(0.05)
    grandchild = int((tmp_path / "pid").read_text())
    t0 = time.monotonic()
    killed = limits.stop_tree(proc, grace=1.0)
    assert time.monotonic() - t0 < 10
    assert grandchild in {pid for pid, _ in killed} and proc.returncode is not None
    time.sleep(0.2)
    assert not Path(f"/proc/{grandchild}").exists() or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]


# ---- real jobs through lava-run -------------------------------------------------------------

def _needs_lava():
    if os.geteuid() != 0:
        pytest.skip("lava-run runs a job as root only")
    missing = [what for what, there in (("lava-run (lava-dispatcher)", shutil.which("lava-run")),
                                        ("the built kernel", lab.KERNEL.exists())) if not there]
    if missing and os.environ.get("PTPLAB_RUN_TAG"):
        pytest.fail(f"scripts/test.sh set up and built these, yet they are missing: {', '.join(missing)}")
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def lava_sh(tmp_path, *args: str, limit: int = 540, suites: str = "alloc") -> tuple[int, str, Path]:
    """scripts/lava.sh in a session of its own; past `limit` (above the job's own limits) it is
    stopped as lava.sh stops lava-run, so a failing test leaves nothing running."""
    out = tmp_path / "out"
    proc = subprocess.Popen([str(REPO / "scripts/lava.sh"), "--local", "--selftest", "--suite", suites,
                             "--pool-pages", "64", "--out", str(out), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, cwd=REPO,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        limits.stop_tree(proc, 40)
        pytest.fail(f"scripts/lava.sh {' '.join(args)} did not end within {limit} s")
    return proc.returncode, err, out


def test_lava_sh_refuses_what_a_qemu_device_job_cannot_take_before_setting_anything_up(tmp_path):
    for bad in (["--accel", "kvm"], ["--memory", "2048"], ["--cpus", "2"], ["--host"], ["--repeat", "2"]):
        p = subprocess.run([str(REPO / "scripts/lava.sh"), "--local", *bad, "--out", str(tmp_path)],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=REPO)
        assert p.returncode == 2 and p.stderr.startswith("lava: error: ") and bad[0] in p.stderr, (bad, p.stderr)
        assert p.stderr.count("\n") == 1, p.stderr
        assert "setup:" not in p.stderr and "time:" not in p.stderr  # refused before any set-up


def test_lava_sh_runs_the_job_says_its_result_and_keeps_the_job_log_beside_the_results(tmp_path):
    _needs_lava()
    rc, err, out = lava_sh(tmp_path)
    assert rc == 0, err[-2000:]
    (f,) = out.glob("*.jsonl")
    records = [json.loads(line) for line in f.read_text().splitlines()]
    assert schema.validate(records) == [] and records[-1]["status"] == "ok"
    assert records[0]["device"]["boot"] == "grub-cdrom-bios" and records[0]["device"]["device_type"] == "qemu"
    assert "result pass; test cases: 20 pass, 0 fail, 5 skip" in err
    stem = f.name.removesuffix(".jsonl")
    log = (out / f"{stem}.lava-job.log").read_text()
    assert lava_cases(log) == expected_cases(records)
    import yaml
    res = yaml.safe_load((out / f"{stem}.lava-results.yaml").read_text())
    assert res["result"] == "pass" and sorted((c["name"], c["result"]) for c in res["cases"]) == lava_cases(log)


def test_a_kernel_fault_is_a_failed_case_in_a_job_that_ends_and_lava_sh_exits_as_bench_sh(tmp_path):
    _needs_lava()
    rc, err, out = lava_sh(tmp_path, "--append-extra", "fault=pf")
    assert rc == 5, err[-2000:]  # as scripts/bench.sh on a crash (docs/exit-codes.md)
    assert "result pass;" in err and "1 fail" in err and "failed: fault_pf_vector14_cpu0" in err
    (f,) = out.glob("*.partial.jsonl")
    records = [json.loads(line) for line in f.read_text().splitlines()]
    log = next(out.glob("*.lava-job.log")).read_text()
    assert ("fault_pf_vector14_cpu0", "fail") in lava_cases(log)
    assert lava_cases(log) == expected_cases(records)


def test_a_kernel_that_waits_forever_ends_within_the_jobs_limit_through_lava_sh(tmp_path):
    _needs_lava()
    t0 = time.monotonic()
    rc, err, out = lava_sh(tmp_path, "--append-extra", "fault=hang", "--timeout", "6")
    assert rc == 4, err[-2000:]
    assert time.monotonic() - t0 < 120  # LAVA's test action ends it, far inside lava.sh's own limit
    assert "timed out" in err and "fault=hang: waiting forever" in err  # LAVA's reason, the last lines
    assert list(out.glob("*.partial.jsonl")) and list(out.glob("*.lava-job.log"))


def test_sigterm_to_lava_sh_stops_lava_run_and_its_qemu_and_keeps_what_was_printed(tmp_path):
    _needs_lava()
    out = tmp_path / "out"
    earlier = set(lava.WORK.glob("job-*/job.log"))
    proc = subprocess.Popen([str(REPO / "scripts/lava.sh"), "--local", "--selftest", "--suite", "alloc",
                             "--pool-pages", "64", "--append-extra", "fault=hang", "--timeout", "300", "--out",
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # until the kernel waits forever
            logs = sorted(set(lava.WORK.glob("job-*/job.log")) - earlier)
            if logs and "fault=hang: waiting forever" in logs[-1].read_text(errors="replace"):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the job never reached the kernel's wait")
        below = limits.descendants(proc.pid)
        assert any(b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid, _ in below
                   if Path(f"/proc/{pid}").exists())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            limits.stop_tree(proc, 10)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted by SIGTERM" in err
    assert not [p for p in below if limits._same(p)]  # lava-run and its QEMU: gone
    assert list(out.glob("*.partial.jsonl")) and list(out.glob("*.lava-job.log"))


# ---- network boots: the stand-ins for real machines ----------------------------------------

def listening(port: int) -> bool:
    """Whether anything listens on TCP `port` here (any address)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


@pytest.mark.parametrize("device, suites", [("grub-pxe-bios", "alloc,layouts"), ("grub-pxe-uefi", "alloc"),
                                            ("ipxe-bios", "alloc"), ("ipxe-uefi", "alloc,layouts")])
def test_a_network_boot_stand_in_runs_the_job_to_every_check_passing(tmp_path, device, suites):
    # GRUB over PXE and TFTP, or iPXE sanboot over HTTP, under SeaBIOS or OVMF: the LAVA job is
    # the network-boot test, with and without the layouts module (which LAVA must not take for
    # a cpio archive). Its servers (the stand-in's serial port, the HTTP server) listen on
    # 127.0.0.1 only and are gone when lava.sh ends.
    _needs_lava()
    rc, err, out = lava_sh(tmp_path, "--device", device, suites=suites)
    assert rc == 0, err[-3000:]
    (f,) = out.glob("*.jsonl")
    records = [json.loads(line) for line in f.read_text().splitlines()]
    assert schema.validate(records) == [] and records[-1]["status"] == "ok"
    d = lava.DEVICES[device]
    assert records[0]["device"]["boot"] == d.boot and records[0]["device"]["device_type"] == d.device_type
    assert "result pass; test cases: " in err and " 0 fail" in err
    assert sum(r["type"] == "check" for r in records) > 19 if "layouts" in suites else True
    log = next(out.glob("*.lava-job.log")).read_text()
    assert lava_cases(log) == expected_cases(records)
    work = lava.WORK / f"job-{records[0]['device']['lava_job_id']}"
    port = int(re.search(r"TCP:127\.0\.0\.1:(\d+)", (work / "device.yaml").read_text()).group(1))
    assert "tcp:127.0.0.1:" in (work / "power-on.sh").read_text()
    assert not listening(port) and not (work / "standin.pid").exists()
    http = re.search(r"HTTP server on 127\.0\.0\.1:(\d+)", err)
    assert (http is not None) == device.startswith("ipxe") and (http is None or not listening(int(http.group(1))))


def test_a_network_boot_that_cannot_find_its_file_ends_within_its_limit_saying_so(tmp_path, monkeypatch, capsys):
    # The stand-in's PXE asks the TFTP server for a boot file that is not there: the firmware
    # gives up and waits forever; LAVA's boot action ends the job at its limit, and lava.sh says
    # so with what the machine printed last.
    _needs_lava()
    monkeypatch.setattr(lavadevice, "GRUB_NETDIR", "ptplab-no-such-netdir")
    monkeypatch.setattr(lava, "grub_netdir", lambda tftp: None)
    monkeypatch.setattr(lava, "BOOT_S", 25)
    t0 = time.monotonic()
    rc = lava.main(["--local", "--device", "grub-pxe-bios", "--selftest", "--suite", "alloc", "--pool-pages", "64",
                    "--timeout", "6", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 4, err[-3000:]
    assert time.monotonic() - t0 < 120
    assert "the machine never started the kernel (bootloader-interrupt timed out" in err, err[-2000:]
    assert "No bootable device" in err, err[-2000:]  # the firmware's own last words
    assert not list((tmp_path / "out").glob("*.jsonl")), "nothing ran: no results file"


def test_jobs_for_real_machines_carry_the_planned_command_lines_and_validate_on_their_devices(tmp_path):
    # One job per network boot and suite choice, each command line the plan's check made
    # (runners.suite_choices); each validates with lava-run against the real devices'
    # dictionaries, BIOS and UEFI (their console command swapped for one this machine has).
    _needs_lava()
    from ptplab import runners
    from ptplab.plan import plan_from_args
    out = tmp_path / "lab"
    args = ["--selftest", "--suite", "alloc", "--pool-pages", "64"]
    p = subprocess.run([str(REPO / "scripts/lava.sh"), "--jobs", str(out), *args], capture_output=True, text=True,
                       timeout=600, stdin=subprocess.DEVNULL, cwd=REPO)
    assert p.returncode == 2 and "--artifacts URL is needed" in p.stderr, p.stderr[-1000:]
    p = subprocess.run([str(REPO / "scripts/lava.sh"), "--jobs", str(out), "--artifacts", f"file://{out}/artifacts",
                        *args], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    plan = plan_from_args(["--image", "x.iso", *args])
    lines = {key: cmd for key, _, cmd in runners.suite_choices(plan, lab.facts())}
    jobs = sorted((out / "jobs").glob("*.yaml"))
    assert [j.name for j in jobs] == sorted(f"{f}-{k}.yaml" for f in lava.JOB_FAMILIES for k in lava.JOB_CHOICES)
    for j in jobs:
        key = j.stem.split("-")[-1]
        text = j.read_text()
        assert f"ptp-lab {key}: {lines[key]}" in text
        if j.name.startswith("grub-pxe"):
            assert f"/{{KERNEL}} {lines[key]}'" in text  # the multiboot2 line GRUB is given
    for fw in ("bios", "uefi"):
        for family in lava.JOB_FAMILIES:
            dev = tmp_path / f"{family}-{fw}.yaml"
            dev.write_text(lava.render_device(lava.LAVA / "devices" / f"x86-{family}-{fw}.jinja2",
                                              {"connection_command": "socat - TCP:127.0.0.1:9"}))
            for j in [j for j in jobs if j.name.startswith(family + "-")]:
                n = lava.Job.new()
                v = subprocess.run(["lava-run", "--validate", "--job-id", str(n.id), "--output-dir",
                                    str(n.work / "output"), "--device", str(dev), str(j)], capture_output=True,
                                   text=True, timeout=120, stdin=subprocess.DEVNULL)
                assert v.returncode == 0, (fw, j.name, v.stderr[-1500:])
    again = subprocess.run([str(REPO / "scripts/lava.sh"), "--jobs", str(out), "--artifacts", "http://x/"],
                           capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=REPO)
    assert again.returncode == 2 and "exists; jobs are not overwritten" in again.stderr
