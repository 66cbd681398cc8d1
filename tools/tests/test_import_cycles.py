"""No import cycle: between the modules of tools/ptplab (Python imports) and between the files of
each Rust crate (`use crate::...`, `super::...`, `self::...` and such paths used inline). Files in
a loop can be understood, changed and tested only together; a cycle is named file -> file with
the names that tie each pair, so it can be opened at those names.

Rust paths map to the file of the deepest module that exists (`crate::mapper::range::plan` ->
src/mapper/range.rs, else src/mapper/mod.rs). A module using its own descendants (`mod x; pub use
x::Y;`) is no edge: a parent re-exporting its children is no cycle; and a name a parent only
re-exports from a child (`pub use`) is resolved to that child."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tools/ptplab"
CRATES = ["lab/vystem-ptp/src", "lab/ptp-lab/src", "bench-kernel/src"]

Edges = dict[tuple[str, str], set[str]]


# ---- Python -----------------------------------------------------------------------------------


def python_edges(package: Path, base: Path) -> Edges:
    """module file -> module file, with the names taken, for imports between the package's own
    modules: `from . import x`, `from .x import y`, `import pkg.x`, `from pkg.x import y`, lazy
    imports inside functions included."""
    modules = {p.stem: p for p in package.glob("*.py")}
    name = package.name
    edges: Edges = {}
    for stem, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            found: list[tuple[str, str]] = []  # (module, name used)
            if isinstance(node, ast.ImportFrom):
                own = node.level == 1 or (node.level == 0 and node.module and node.module.split(".")[0] == name)
                if not own:
                    continue
                parts = (node.module or "").split(".") if node.module else []
                if node.level == 0:
                    parts = parts[1:]
                if parts:
                    found += [(parts[0], a.name) for a in node.names]
                else:  # from . import x: x is a module
                    found += [(a.name, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    if parts[0] == name and len(parts) > 1:
                        found.append((parts[1], parts[1]))
            for target, used in found:
                if target in modules and target != stem:
                    key = (str(path.relative_to(base)), str(modules[target].relative_to(base)))
                    edges.setdefault(key, set()).add(used)
    return edges


# ---- Rust -------------------------------------------------------------------------------------

RAW_STRING = re.compile(r'b?r(#*)".*?"\1', re.S)
CHAR = re.compile(r"b?'(?:[^'\\\n]|\\u\{[0-9a-fA-F]+\}|\\[^\n])'")
TOKEN = re.compile(r"""
    (?P<mod>\bmod\s+(?P<modname>[A-Za-z_]\w*)\s*(?P<body>[{;]))
  | (?P<open>\{) | (?P<close>\})
  | (?P<use>(?P<pub>\bpub\b(?:\s*\([^)]*\))?\s*)?\buse\s+(?P<tree>[^;]*);)
  | (?P<path>(?:\$?\bcrate|\bsuper|\bself)(?:\s*::\s*[A-Za-z_]\w*)+)
""", re.X)
ITEM = r"\b(?:fn|struct|enum|trait|type|const|static|union|mod)\s+{0}\b|\bmacro_rules!\s*{0}\b"


def strip_rust(text: str) -> str:
    """The code without comments, strings and character literals (their paths are no uses)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):  # nested, as Rust's are
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
            continue
        word_before = i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")
        m = None if word_before else RAW_STRING.match(text, i)
        if m:
            out.append('""')
            i = m.end()
            continue
        if text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
            continue
        m = CHAR.match(text, i) if text[i] in "'b" and not word_before else None
        if m:
            out.append("' '")
            i = m.end()
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def expand(tree: str) -> list[tuple[list[str], str | None]]:
    """A use tree as its paths: `a::{b, c::{d as e, self}}` -> a::b, a::c::d (as e), a::c."""
    tree = tree.strip()
    brace = tree.find("{")
    if brace < 0:
        m = re.fullmatch(r"(.*?)\s+as\s+(\w+)", tree, re.S)
        path, alias = (m.group(1), m.group(2)) if m else (tree, None)
        return [([s.strip() for s in path.split("::") if s.strip()], alias)]
    prefix = [s.strip() for s in tree[:brace].split("::") if s.strip()]
    inner = tree[brace + 1:tree.rindex("}")]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        depth += c == "{"
        depth -= c == "}"
        if c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    out = []
    for part in filter(str.strip, parts):
        for segs, alias in expand(part):
            out.append((prefix + (segs if segs != ["self"] else []), alias))
    return out


def module_files(src: Path) -> list[list[tuple[tuple[str, ...], Path]]]:
    """Each crate in `src` as its files with their module paths: the library (lib.rs, else
    main.rs) and every binary target (main.rs beside a lib.rs, src/bin/NAME.rs, src/bin/NAME/main.rs),
    which reaches the library by the crate's name, not by `crate::`."""
    bins = src / "bin"

    def tree(root: Path, top: Path) -> list[tuple[tuple[str, ...], Path]]:
        files = [root] + [p for p in sorted(top.rglob("*.rs")) if p != root and bins not in p.parents
                          and p.name not in ("lib.rs", "main.rs")] if top != bins else [root]
        mods = [((), root)]
        for p in files[1:]:
            rel = p.relative_to(top).with_suffix("").parts
            mods.append((rel[:-1] if rel[-1] == "mod" else rel, p))
        return mods

    lib = src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs"
    crates = [tree(lib, src)] if lib.exists() else []
    if lib.name == "lib.rs" and (src / "main.rs").exists():
        crates.append([((), src / "main.rs")])
    for b in sorted(bins.glob("*.rs")):
        crates.append(tree(b, bins))
    for d in sorted(p for p in bins.glob("*/") if (p / "main.rs").exists()):
        crates.append([((), d / "main.rs")] + [m for m in tree(d / "main.rs", d)[1:]])
    return crates


def rust_edges(src: Path, base: Path) -> Edges:
    """file -> file, with the names used, for paths between the files of each crate in `src`."""
    edges: Edges = {}
    for mods in module_files(src):
        modmap = {m: p for m, p in mods}
        filemod = {p: m for m, p in mods}
        code = {p: strip_rust(p.read_text()) for _, p in mods}
        events = []  # (file, module path, pub, use tree or inline path)
        for m, p in mods:
            depth, stack = 0, []
            for t in TOKEN.finditer(code[p]):
                here = m + tuple(name for name, _ in stack)
                if t["mod"]:
                    if t["body"] == "{":
                        depth += 1
                        stack.append((t["modname"], depth))
                        modmap.setdefault(here + (t["modname"],), p)  # an inline module lives in its file
                elif t["open"]:
                    depth += 1
                elif t["close"]:
                    if stack and stack[-1][1] == depth:
                        stack.pop()
                    depth -= 1
                elif t["use"]:
                    events.append((p, here, bool(t["pub"]), expand(t["tree"])))
                else:
                    events.append((p, here, False, [(re.split(r"\s*::\s*", t["path"]), None)]))

        def absolute(segs: list[str], here: tuple[str, ...]) -> list[str] | None:
            if not segs:
                return None
            if segs[0] in ("crate", "$crate"):
                return segs[1:]
            if segs[0] == "self":
                return list(here) + segs[1:]
            if segs[0] == "super":
                while segs and segs[0] == "super":
                    if not here:
                        return None
                    here, segs = here[:-1], segs[1:]
                return list(here) + segs
            if here + (segs[0],) in modmap:  # 2018 paths: a child module by its name
                return list(here) + segs
            return None  # another crate, or a name brought in by another use

        reexports: dict[tuple[str, ...], dict[str, list[str]]] = {}
        globs: dict[tuple[str, ...], list[list[str]]] = {}
        for p, here, pub, paths in events:
            for segs, alias in paths if pub else []:
                target = absolute(segs, here)
                if target is None or not target:
                    continue
                if target[-1] == "*":
                    globs.setdefault(here, []).append(target[:-1])
                else:
                    reexports.setdefault(here, {})[alias or target[-1]] = target

        def below(f: Path, g: Path) -> bool:
            """Is g's module a descendant of f's (or f itself)?"""
            a, b = filemod[f], filemod[g]
            return b[:len(a)] == a

        def resolve(segs: list[str], hops: int = 0) -> tuple[Path, str]:
            k = max(k for k in range(len(segs) + 1) if tuple(segs[:k]) in modmap)
            here = tuple(segs[:k])
            f = modmap[here]
            if k == len(segs):
                return f, segs[-1] if segs else "crate"
            name = segs[k]
            if hops < 8:  # a name this module only re-exports from a child is the child's
                target = reexports.get(here, {}).get(name)
                if target is not None:
                    g, used = resolve(target, hops + 1)
                    if g != f and below(f, g):
                        return g, used
                for glob in globs.get(here, []):
                    g, _ = resolve(glob, hops + 1)
                    if g != f and below(f, g) and re.search(ITEM.format(re.escape(name)), code[g]):
                        return resolve(glob + [name], hops + 1)
            return f, name

        for p, here, _pub, paths in events:
            for segs, _alias in paths:
                target = absolute(segs, here)
                if target is None:
                    continue
                g, used = resolve(target)
                if g != p and not below(p, g):
                    edges.setdefault((str(p.relative_to(base)), str(g.relative_to(base))), set()).add(used)
    return edges


# ---- cycles -----------------------------------------------------------------------------------


def cycles(edges: Edges, limit: int = 100) -> list[list[str]]:
    """Every elementary cycle (up to `limit`), each from its smallest file: Tarjan's strongly
    connected components, then a depth-first search inside each."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, comps = {}, {}, [], set(), []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    found: list[list[str]] = []
    for comp in sorted(comps, key=min):
        for start in sorted(comp):
            def walk(path: list[str]) -> None:
                for w in sorted(graph[path[-1]] & comp):
                    if len(found) >= limit:
                        return
                    if w == start:
                        found.append(path + [start])
                    elif w > start and w not in path:
                        walk(path + [w])
            walk([start])
    return found


def describe(found: list[list[str]], edges: Edges) -> str:
    lines = []
    for c in found:
        lines.append(" -> ".join(c))
        lines += [f"    {a} -> {b}: {', '.join(sorted(edges[a, b]))}" for a, b in zip(c, c[1:])]
    return "\n".join(lines)


# ---- the project's own code ---------------------------------------------------------------------


def test_the_python_tools_import_no_cycle():
    edges = python_edges(PACKAGE, REPO)
    found = cycles(edges)
    assert not found, f"import cycles in tools/ptplab:\n{describe(found, edges)}"


def test_only_the_entry_point_imports_the_bench_job():
    """bench.py is the job; what it is built on must not know it. The LAVA job (lava.py) plans
    through the same home (plan.py, bootmodule.py) beside it, and nothing but the entry point
    knows either job."""
    edges = python_edges(PACKAGE, REPO)
    users = sorted(a for a, b in edges if b == "tools/ptplab/bench.py")
    assert users == ["tools/ptplab/__main__.py"], users
    assert sorted(a for a, b in edges if b == "tools/ptplab/lava.py") == ["tools/ptplab/__main__.py"]


@pytest.mark.parametrize("crate", CRATES)
def test_no_crate_has_a_use_cycle_between_its_files(crate):
    edges = rust_edges(REPO / crate, REPO)
    assert edges, f"{crate}: no path between its files found: the checker reads nothing"
    found = cycles(edges)
    assert not found, f"use cycles in {crate}:\n{describe(found, edges)}"


# ---- the checker, on trees made here ----------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checker_finds_a_python_cycle_and_its_names(tmp_path):
    pkg = write(tmp_path / "pkg", {"__init__.py": "", "a.py": "from .b import thing\n",
                                   "b.py": "def f():\n    from . import a\n    return a\n",
                                   "c.py": "import pkg.a\nfrom pkg.b import thing\n"})
    edges = python_edges(pkg, tmp_path)
    assert cycles(edges) == [["pkg/a.py", "pkg/b.py", "pkg/a.py"]]
    assert describe(cycles(edges), edges) == ("pkg/a.py -> pkg/b.py -> pkg/a.py\n"
                                              "    pkg/a.py -> pkg/b.py: thing\n    pkg/b.py -> pkg/a.py: a")
    assert ("pkg/c.py", "pkg/a.py") in edges and ("pkg/c.py", "pkg/b.py") in edges


def test_the_checker_finds_a_rust_cycle_through_use_and_inline_paths(tmp_path):
    src = write(tmp_path / "src", {
        "lib.rs": "mod a;\nmod b;\nmod c;\n",
        "a.rs": "use crate::b::Thing;\n// crate::c::commented_out\nconst S: &str = \"crate::c::in_a_string\";\n",
        "b.rs": "pub struct Thing;\nfn f() { crate::c::stop(1); }\n",
        "c.rs": "pub fn stop(_: u32) { super::a::start() }\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"})
    edges = rust_edges(src, tmp_path)
    assert set(edges) == {("src/a.rs", "src/b.rs"), ("src/b.rs", "src/c.rs"), ("src/c.rs", "src/a.rs")}
    assert cycles(edges) == [["src/a.rs", "src/b.rs", "src/c.rs", "src/a.rs"]]
    assert "src/b.rs -> src/c.rs: stop" in describe(cycles(edges), edges)


def test_a_parent_reexporting_its_child_is_no_cycle_and_its_names_are_the_childs(tmp_path):
    src = write(tmp_path / "src", {
        "lib.rs": "mod mapper;\nmod capacity;\npub use mapper::Chunks;\n",
        "mapper/mod.rs": "mod range;\npub use range::{Chunk, Chunks as Chunks};\npub use self::walk::*;\nmod walk;\n",
        "mapper/range.rs": "use super::*;\npub struct Chunks;\npub struct Chunk;\n",
        "mapper/walk.rs": "pub fn descend() {}\n",
        "capacity.rs": "pub struct Usage;\nfn f() { crate::mapper::Chunks::new(); crate::Chunks::new(); "
                       "crate::mapper::descend(); }\n"})
    edges = rust_edges(src, tmp_path)
    assert cycles(edges) == []
    assert edges[("src/capacity.rs", "src/mapper/range.rs")] == {"Chunks"}
    assert edges[("src/capacity.rs", "src/mapper/walk.rs")] == {"descend"}
    assert ("src/mapper/range.rs", "src/mapper/mod.rs") in edges  # a child using its parent is an edge
    assert not any(b.startswith("src/mapper/") and a == "src/mapper/mod.rs" for a, b in edges)


def test_a_binary_is_its_own_crate(tmp_path):
    """src/bin/tool.rs reaches the library by its name: its `crate::` is itself."""
    src = write(tmp_path / "src", {"lib.rs": "pub mod x;\n", "x.rs": "pub fn f() {}\n",
                                   "bin/tool.rs": "use lab::x::f;\nfn main() { crate::helper(); f() }\n"
                                                  "fn helper() {}\n"})
    assert rust_edges(src, tmp_path) == {}
