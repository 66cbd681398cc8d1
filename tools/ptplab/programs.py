"""The lab's set of lifetime traces: what a kernel developer sizing pools asks about, each with
its class (the report groups by it). `scripts/capture-traces.sh` without a command captures
them all into results/traces/ (programs not installed are skipped and named; a trace already
recorded is kept, never overwritten)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import capture, limits
from .cli import Parser

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class Program:
    name: str
    cls: str
    argv: list[str]
    user: str | None = None
    env: dict = field(default_factory=dict)
    program: str | None = None  # the name the report shows, where argv[0] is a shell


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


JAVA_THREADS = """public class Threads { public static void main(String[] a) throws Exception {
  int n = Integer.parseInt(a[0]); Thread[] t = new Thread[n];
  for (int i = 0; i < n; i++) { t[i] = new Thread(() -> { try { Thread.sleep(400); } catch (Exception e) {} });
    t[i].start(); }
  for (Thread x : t) x.join(); long s = 0; byte[] b = new byte[Integer.parseInt(a[1]) << 20];
  for (int i = 0; i < b.length; i += 4096) s += b[i]; System.out.println(s); } }
"""
C_HELLO = "#include <stdio.h>\n#include <stdlib.h>\nint main(void){char *p=malloc(1<<20);p[0]=1;" \
          "printf(\"%d\\n\",p[0]);free(p);return 0;}\n"


def programs(work: Path) -> list[Program]:
    """Every program of the set; `work` holds what they read and write."""
    pg = str(PG_BIN / "postgres")
    sock = work / "pg-sock"

    def pg_run(buffers: str, clients: int) -> list[str]:
        # The server and its backends, `clients` sessions at once, then a fast shutdown.
        q = "select sum(x) from generate_series(1, 200000) x"
        return _sh(f"{pg} -D {work}/pgdata -k {sock} -c listen_addresses= -c shared_buffers={buffers} "
                   f"-c huge_pages=off -c max_connections=40 & P=$!; "
                   f"for i in $(seq 50); do pg_isready -q -h {sock} && break; sleep 0.2; done; "
                   f"C=; for i in $(seq {clients}); do psql -q -h {sock} -d postgres -c '{q}' >/dev/null & C=\"$C $!\"; "
                   f"done; wait $C; kill -INT $P; wait $P")
    hello = work / "hello.c"
    return [
        # shell tools
        Program("ls-recursive", "shell", _sh("ls -lR /usr/share/doc >/dev/null"), program="ls"),
        Program("sort-pipeline", "shell", _sh("seq 300000 | sort -R | sort -n | tail -n 1 >/dev/null"),
                program="sort"),
        Program("tar-gzip", "shell", ["tar", "czf", str(work / "doc.tgz"), "-C", "/usr/share", "doc"], program="tar"),
        Program("grep-recursive", "shell", _sh("grep -r -c define /usr/include >/dev/null"), program="grep"),
        Program("bash-loop", "shell", ["bash", "-c", "for i in $(seq 3000); do x=$((x + i)); done; echo $x"],
                program="bash"),
        Program("xz-compress", "shell", _sh("xz -6 -T1 -c /usr/bin/perl >/dev/null"), program="xz"),
        Program("awk-array", "shell", ["awk", "BEGIN { for (i = 0; i < 300000; i++) a[i] = i; print length(a) }"],
                program="awk"),
        Program("git-log", "shell", ["git", "-C", str(Path(__file__).resolve().parents[2]), "log", "--stat", "-n",
                                     "300"], program="git"),
        # interpreters
        Program("python3-hello", "interpreter", ["python3", "-c", "print(1)"]),
        Program("python3-bytes-256MiB", "interpreter",
                ["python3", "-c", "x = bytearray(256 << 20); x[::4096] = b'1' * len(x[::4096])"]),
        Program("perl-hash", "interpreter", ["perl", "-e", "my %h; $h{$_} = $_ for 1 .. 300000; print scalar(%h)"]),
        Program("node-hello", "interpreter", ["node", "-e", "console.log(1)"]),
        Program("node-buffer-256MiB", "interpreter", ["node", "-e", "const b = Buffer.alloc(256 << 20, 1)"]),
        # builds with child processes
        Program("gcc-compile", "build", ["gcc", "-O2", "-o", str(work / "hello"), str(hello)], program="gcc"),
        Program("make-j2", "build", ["make", "-s", "-j2", "-C", str(work / "mk")], program="make"),
        Program("cargo-build", "build", ["cargo", "build", "--offline", "-q", "--manifest-path",
                                         str(work / "crate" / "Cargo.toml")], env={"CARGO_TARGET_DIR":
                                                                                   str(work / "crate-target")}),
        # databases
        Program("sqlite3-rows", "database",
                _sh("echo 'create table t(x); with recursive c(i) as (select 1 union all select i + 1 from c limit "
                    "200000) insert into t select randomblob(100) from c; select count(*) from t;' | sqlite3 :memory:"),
                program="sqlite3"),
        Program("postgres-initdb", "database", [str(PG_BIN / "initdb"), "-D", str(work / "pgdata0"), "-A", "trust"],
                user="postgres", program="initdb"),
        Program("postgres-16MB-buffers", "database", pg_run("16MB", 4), user="postgres", program="postgres"),
        Program("postgres-8GB-buffers", "database", pg_run("8GB", 4), user="postgres", program="postgres"),
        # JVMs
        Program("java-small-heap", "jvm", ["java", "-Xmx64m", "-cp", str(work), "Threads", "4", "16"], program="java"),
        Program("java-xms8g", "jvm", ["java", "-Xms8g", "-Xmx8g", "-cp", str(work), "Threads", "4", "1024"], program="java"),
        Program("java-1000-threads", "jvm", ["java", "-Xmx256m", "-cp", str(work), "Threads", "1000", "64"],
                program="java"),
        # thread-heavy servers and workers
        Program("python3-1024-threads", "threads", ["python3", "-c",
                "import threading, time\nts = [threading.Thread(target=time.sleep, args=(0.4,)) for _ in range(1024)]"
                "\nfor t in ts: t.start()\nfor t in ts: t.join()"]),
        Program("node-48-workers", "threads", ["node", "-e", "const { Worker } = require('worker_threads'); "
                "for (let i = 0; i < 48; i++) new Worker('setTimeout(() => {}, 400)', { eval: true })"]),
        Program("postgres-32-clients", "threads", pg_run("128MB", 32), user="postgres", program="postgres"),
        # sanitizers
        Program("asan-hello", "sanitizer", [str(work / "hello-asan")], env={"ASAN_OPTIONS": "detect_leaks=0"},
                program="hello-asan"),
        # emulators and tools a kernel developer runs
        Program("qemu-img-convert", "tool", ["qemu-img", "convert", "-O", "qcow2", str(work / "disk.raw"),
                                             str(work / "disk.qcow2")], program="qemu-img"),
        Program("rustc-compile", "build", ["rustc", "-O", "-o", str(work / "rs-hello"), str(work / "hello.rs")],
                program="rustc"),
    ]


# A preparation step (javac, gcc, initdb) takes seconds; past this it is killed and said.
PREPARE_TIMEOUT_S = 300


def prepare_run(cmd: list[str], **kwargs) -> None:
    """One preparation command, its failure left to the trace that needs it; a hang killed and said."""
    try:
        limits.run(cmd, PREPARE_TIMEOUT_S, stdin=subprocess.DEVNULL, **kwargs)
    except limits.TimedOut as e:
        print(f"capture-traces: {e}", file=sys.stderr)


def prepare(work: Path) -> None:
    """What the programs read: sources, a crate, a Makefile, a raw disk, a postgres cluster."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "hello.c").write_text(C_HELLO)
    (work / "hello.rs").write_text("fn main() { let v: Vec<u64> = (0..1000).collect(); println!(\"{}\", "
                                   "v.iter().sum::<u64>()); }\n")
    (work / "Threads.java").write_text(JAVA_THREADS)
    mk = work / "mk"
    mk.mkdir(exist_ok=True)
    for i in range(4):
        (mk / f"f{i}.c").write_text(f"int f{i}(int x) {{ return x * {i + 2}; }}\n")
    (mk / "main.c").write_text("int f0(int);int f1(int);int f2(int);int f3(int);\n"
                               "int main(void){return f0(1)+f1(1)+f2(1)+f3(1) == 0;}\n")
    (mk / "Makefile").write_text("prog: main.o f0.o f1.o f2.o f3.o\n\tcc -o $@ $^\n%.o: %.c\n\tcc -O2 -c $<\n")
    crate = work / "crate"
    (crate / "src").mkdir(parents=True, exist_ok=True)
    (crate / "Cargo.toml").write_text('[package]\nname = "lifetime"\nversion = "0.1.0"\nedition = "2021"\n')
    (crate / "src" / "main.rs").write_text("fn main() { println!(\"{}\", (1..100u64).product::<u64>() % 7); }\n")
    with open(work / "disk.raw", "wb") as f:
        for i in range(64):
            f.write(bytes([i + 1]) * 4096 + bytes((1 << 20) - 4096))  # 64 MiB, a page of data per MiB
    if shutil.which("javac"):
        prepare_run(["javac", "-d", str(work), str(work / "Threads.java")])
    if shutil.which("gcc"):
        prepare_run(["gcc", "-O1", "-fsanitize=address", "-o", str(work / "hello-asan"), str(work / "hello.c")])
    if (PG_BIN / "initdb").exists():
        pw = pwd.getpwnam("postgres")
        os.chown(work, pw.pw_uid, pw.pw_gid)
        os.chmod(work, 0o755)
        (work / "pg-sock").mkdir(exist_ok=True)
        os.chown(work / "pg-sock", pw.pw_uid, pw.pw_gid)
        shutil.rmtree(work / "pgdata0", ignore_errors=True)  # initdb's own trace makes it again
        if not (work / "pgdata").exists():
            prepare_run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(work / "pgdata"),
                         "-A", "trust"], stdout=subprocess.DEVNULL)


def capture_all(out: Path, only: str | None = None) -> int:
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "ptplab-programs"
    prepare(work)
    todo = [p for p in programs(work) if only in (None, p.name)]
    if only and not todo:
        print(f"capture-traces: no program {only!r} in the set (tools/ptplab/programs.py)", file=sys.stderr)
        return 2
    done, skipped, kept = 0, [], []
    for p in todo:
        if (out / p.name).exists():
            kept.append(p.name)
            continue
        if shutil.which(p.argv[0]) is None:
            skipped.append(p.name)
            continue
        try:
            meta = capture.capture(p.name, p.argv, out, p.cls, p.user, env=p.env, cwd=work, program=p.program)
        except capture.CaptureError as e:
            print(f"capture-traces: {p.name}: {e}", file=sys.stderr)
            continue
        done += 1
        snapshot(out / p.name, out.parent / "layouts")
        print(f"capture-traces: {p.name}: {meta['layouts']['exec']} exec and {meta['layouts']['exit']} exit layouts "
              f"({meta['layouts']['late']} late), exit {meta['exit_status']}, {meta['seconds']} s", file=sys.stderr)
    print(f"capture-traces: {done} captured in {out}" + (f"; kept as recorded: {', '.join(kept)}" if kept else "")
          + (f"; not installed: {', '.join(skipped)}" if skipped else ""), file=sys.stderr)
    return 0 if done or kept else 1


def main(argv: list[str]) -> int:
    ap = Parser(prog="scripts/capture-traces.sh",
                description="Record a program's lifetime (strace -f of its memory and process calls, and its "
                            "layouts at each exec and exit) into DIR/NAME/. Without COMMAND: the lab's set of "
                            "programs (tools/ptplab/programs.py).")
    ap.add_argument("name", nargs="?", metavar="NAME")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "results" / "traces"))
    ap.add_argument("--class", dest="cls", default="user", help="the class the report groups it in")
    ap.add_argument("--user", default=None, help="run it as this user (strace -u): postgres refuses root")
    ap.epilog = "NAME [options] -- COMMAND...: one program; without -- COMMAND: the lab's set (or its NAME)."
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if "--" in argv and not command:
        print("capture-traces: error: nothing after --: give the command to trace", file=sys.stderr)
        return 2
    a.command = command
    try:
        if not a.command:
            return capture_all(Path(a.out), only=a.name)
        meta = capture.capture(a.name or Path(a.command[0]).name, a.command, Path(a.out), a.cls, a.user)
    except capture.CaptureError as e:
        print(f"capture-traces: error: {e}", file=sys.stderr)
        return 2
    print(f"capture-traces: {meta['name']}: {meta['layouts']['exec']} exec and {meta['layouts']['exit']} exit "
          f"layouts ({meta['layouts']['late']} late), exit {meta['exit_status']}, {meta['seconds']} s",
          file=sys.stderr)
    return 0


def snapshot(folder: Path, layouts_dir: Path) -> Path | None:
    """The snapshot corpus grows with the lifetimes: the final maps of a trace's largest process
    (by pool pages at its peak), as a captured layout `trace-NAME.json`; None when it has no
    final maps or needs more than the largest pool (its peak comes from the model: the layouts
    are each mapped for real to check the model). Never overwrites a layout."""
    import datetime as dt
    import gzip
    import json
    from . import lab, replay as rp
    dest = layouts_dir / f"trace-{folder.name}.json"
    if dest.exists():
        return None
    rows = [r for r in rp.replay_trace(rp.load(folder), [lab.facts()["pool_pages"]["max"]])
            if r["final_matches"] and not r["beyond_largest_pool"]]
    if not rows:
        return None
    top = max(rows, key=lambda r: r["peak"]["bitmap"])
    exits = json.loads(gzip.decompress((folder / "layouts.json.gz").read_bytes()))["exit"]
    ranges = [x["ranges"] for x in exits if x["pid"] == top["pid"]][-1]
    meta = json.loads((folder / "meta.json").read_text())
    dest.write_text(json.dumps({"program": top["program"], "variant": f"lifetime-{folder.name}-final",
                                "vm_pte_kib": None,
                                "captured_utc": meta.get("captured_utc") or dt.datetime.now(dt.timezone.utc)
                                .isoformat(timespec="seconds"),
                                "ranges": [r[:3] for r in ranges]}) + "\n")
    return dest
