"""A read-only HTTP server of one folder on 127.0.0.1, for the length of a `with` block (or at
most `limit` seconds): what iPXE's sanboot of an image needs, Range requests answered with 206
(Python's http.server answers them with the whole file). A guest on QEMU's user-mode network
reaches it at 10.0.2.2:PORT; nothing beyond loopback can."""
from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """GET and HEAD of files, with single byte ranges; quiet (no log lines)."""

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        want = self.headers.get("Range")
        if not want:
            return super().send_head()
        path = Path(self.translate_path(self.path))
        m = _RANGE.match(want.strip())
        if not path.is_file() or not m or m.groups() == ("", ""):
            return super().send_head()
        size = path.stat().st_size
        first, last = m.groups()
        start, end = (size - int(last), size - 1) if first == "" else (int(first), min(int(last or size - 1), size - 1))
        if start >= size or start > end or start < 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._left = end - start + 1
        return f

    def copyfile(self, source, outputfile) -> None:
        left = getattr(self, "_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        while left > 0:
            chunk = source.read(min(left, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)
        self._left = None


def server(folder: Path, port: int) -> http.server.ThreadingHTTPServer:
    """The server of `folder` on 127.0.0.1:`port` (0: a free one), not yet serving."""
    handler = functools.partial(RangeHandler, directory=os.fspath(folder))
    made = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    made.daemon_threads = True
    return made


class Serving:
    """`with Serving(folder) as s:` s.port is where it listens on 127.0.0.1; it stops at the
    block's end, or by itself after `limit` seconds, whichever comes first."""

    def __init__(self, folder: Path, limit: float):
        self.server = server(folder, 0)
        self.port = self.server.server_address[1]
        self.limit = limit
        self._stop = threading.Timer(limit, self.close)
        self._stop.daemon = True
        self._closed = threading.Lock()

    def __enter__(self) -> "Serving":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._stop.start()
        return self

    def close(self) -> None:
        """Stop serving and close the socket (once, whoever comes first: the block's end or the limit)."""
        if self._closed.acquire(blocking=False):
            self.server.shutdown()
            self.server.server_close()

    def __exit__(self, *_exc) -> None:
        self._stop.cancel()
        self.close()


def main(argv: list[str]) -> int:
    """`python3 -m ptplab.httpd DIR PORT`: serve DIR on 127.0.0.1:PORT until stopped (the
    loopback LAVA server's HTTP of its TFTP directory; its time limit is the caller's)."""
    import sys
    if len(argv) != 2 or not argv[1].isdigit() or not Path(argv[0]).is_dir():
        print(f"usage: python3 -m ptplab.httpd DIR PORT (got {' '.join(map(repr, argv))})", file=sys.stderr)
        return 2
    with server(Path(argv[0]), int(argv[1])) as serving:
        serving.serve_forever()
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
