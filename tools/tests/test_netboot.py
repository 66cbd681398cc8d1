"""Network boot: the roots `scripts/make-image.sh --netboot DIR` writes for a lab's TFTP and HTTP
servers, and the loopback HTTP server the iPXE stand-ins sanboot from (Range requests, 127.0.0.1
only, stops by itself). The boots themselves are the LAVA stand-in jobs (test_lava.py)."""
import http.client
import subprocess
import time

import pytest

from ptplab import httpd, lab, netboot

REPO = lab.REPO


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    c.close()
    return out


def test_the_http_server_answers_ranges_on_loopback_only_and_stops_by_itself(tmp_path):
    data = bytes(range(256)) * 64
    (tmp_path / "image.iso").write_bytes(data)
    with httpd.Serving(tmp_path, limit=60) as s:
        assert s.server.server_address[0] == "127.0.0.1"
        status, head, body = get(s.port, "/image.iso")
        assert status == 200 and body == data
        status, head, body = get(s.port, "/image.iso", {"Range": "bytes=100-199"})
        assert status == 206 and body == data[100:200] and head["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert get(s.port, "/image.iso", {"Range": "bytes=-16"})[2] == data[-16:]
        assert get(s.port, "/image.iso", {"Range": "bytes=16000-"})[2] == data[16000:]
        assert get(s.port, "/image.iso", {"Range": f"bytes={len(data)}-"})[0] == 416
        assert get(s.port, "/missing.iso")[0] == 404
    with httpd.Serving(tmp_path, limit=0.5) as s:
        time.sleep(1.5)
        with pytest.raises(OSError):
            get(s.port, "/image.iso")


def test_make_image_netboot_writes_the_tftp_and_http_roots_and_never_over_them(tmp_path):
    if not lab.KERNEL.exists():
        pytest.skip("the kernel is not built")
    out = tmp_path / "net"
    p = subprocess.run([str(REPO / "scripts/make-image.sh"), "--netboot", str(out), "--suite", "alloc"],
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    tftp, http = out / "tftp", out / "http"
    for f in netboot.BOOTFILES.values():
        assert (tftp / f).is_file(), f
    assert (tftp / netboot.KERNEL).read_bytes() == lab.KERNEL.read_bytes() and (tftp / netboot.MODULE).is_file()
    cfg = (tftp / "boot/grub/grub.cfg").read_text()
    # The menu's first entry runs the options given, its kernel and module from the boot server.
    at = cfg.index("menuentry")
    first = cfg[at:cfg.index("\n}\n", at)]
    assert f"multiboot2 (tftp)/{netboot.KERNEL} " in first and "suites=alloc" in first
    assert f"module2 (tftp)/{netboot.MODULE}" in first and "terminal_output serial console" in cfg
    assert (http / netboot.IMAGE).stat().st_size > 1 << 20
    assert (http / netboot.SCRIPT).read_text() == netboot.IPXE_SCRIPT
    assert f"DHCP boot file {netboot.BOOTFILES['bios']}" in p.stderr
    again = subprocess.run([str(REPO / "scripts/make-image.sh"), "--netboot", str(out)], capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=REPO)
    assert again.returncode == 2 and f"{tftp} exists" in again.stderr
