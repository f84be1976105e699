"""The layers rule of docs/architecture.md, checked on the import graph of src/campwatch.

Every import counts: module level, function level and ``if TYPE_CHECKING:`` blocks, read with
:mod:`ast` from the files :mod:`pkgutil` finds (the source is parsed, not run, so a lazy import
cannot hide an upward edge).  ``campwatch.io`` and ``campwatch.io.*`` are one module (io may become a package).
"""

from __future__ import annotations

import ast
import itertools
import pkgutil
from dataclasses import dataclass
from pathlib import Path

import campwatch

#: The ground: imports nothing above it.
GROUND = {"errors", "grid", "params", "profiles", "scene", "tables", "_version", "_kernels"}
#: Core stages: arrays in, arrays out; never open files or draw.
CORE = {"coregister", "detect", "layers", "masks", "normalise", "structures", "threshold", "vectorize", "vhr"}
#: What neither may import: reading/writing, drawing, the tools and the CLI.
ABOVE_CORE = {"aoi", "io", "plot", "provenance", "cli", "compare", "engine", "track", "report", "fetch", "webmap",
              "evaluate", "vhr_bench"}
#: Deliberately private modules anyone may import.
PRIVATE_MODULES_OK = {"_version", "_kernels"}
#: Private names of campwatch.io still used elsewhere: io.py is being split into a package (issue 19,
#: another branch); these become its public API there.  Remove entries as they go.


@dataclass(frozen=True)
class Edge:
    importer: str  # e.g. campwatch.track
    target: str  # a module, e.g. campwatch.plot
    name: str | None  # the name taken from it (from X import name), or the attribute used (X._name)
    line: int

    def __str__(self) -> str:
        what = f"{self.target}.{self.name}" if self.name else self.target
        return f"{self.importer} (line {self.line}) imports {what}"


def _modules() -> dict[str, Path]:
    root = Path(campwatch.__file__).parent
    found = {"campwatch": root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], prefix="campwatch."):  # walks subpackages without importing
        spec = info.module_finder.find_spec(info.name, None)  # type: ignore[call-arg]
        assert spec is not None and spec.origin, info.name
        found[info.name] = Path(spec.origin)
    return found


MODULES = _modules()


def _resolve(importer: str, is_pkg: bool, module: str | None, level: int) -> str:
    if not level:
        return module or ""
    base = importer.split(".") if is_pkg else importer.split(".")[:-1]
    base = base[: len(base) - level + 1]
    return ".".join(base + ([module] if module else []))


def _edges() -> list[Edge]:
    edges: list[Edge] = []
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        bound: dict[str, str] = {}  # local name -> campwatch module it refers to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "campwatch":
                        edges.append(Edge(mod, a.name, None, node.lineno))
                        bound[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, path.name == "__init__.py", node.module, node.level)
                if target.split(".")[0] != "campwatch":
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in MODULES:  # from campwatch import io: the module campwatch.io
                        edges.append(Edge(mod, sub, None, node.lineno))
                        bound[a.asname or a.name] = sub
                    else:
                        edges.append(Edge(mod, target, a.name, node.lineno))
        for node in ast.walk(tree):  # io._helper(...) on a bound campwatch module
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
                edges.append(Edge(mod, bound[node.value.id], node.attr, node.lineno))
    return edges


EDGES = _edges()


def _top(module: str) -> str:
    """campwatch.vhr.growth -> vhr, campwatch.io.read -> io, campwatch -> '' (the package facade)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_graph_is_read():
    assert {"campwatch.detect", "campwatch.vhr.growth", "campwatch.cli.main"} <= set(MODULES)
    assert any(e.importer == "campwatch.compare" and _top(e.target) == "detect" for e in EDGES)
    assert any(e.importer == "campwatch.fetch" and e.target == "campwatch.io" and e.name is None for e in EDGES)


def test_ground_and_core_import_nothing_above_them():
    bad = []
    for e in EDGES:
        src, dst = _top(e.importer), _top(e.target)
        if src in GROUND and (dst in CORE or dst in ABOVE_CORE):
            bad.append(f"ground module {e} (above the ground)")
        elif src in CORE and dst in ABOVE_CORE:
            bad.append(f"core module {e} (io, plot, a tool or the CLI)")
    assert not bad, "upward imports:\n  " + "\n  ".join(bad)


def test_no_cycle_among_top_level_modules():
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], Edge] = {}
    for e in EDGES:
        src, dst = _top(e.importer), _top(e.target)
        if src and dst and src != dst:
            graph.setdefault(src, set()).add(dst)
            where.setdefault((src, dst), e)
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                loop = [*stack[stack.index(m):], m]
                cycles.append(" -> ".join(loop) + "\n    " + "\n    ".join(
                    str(where[(a, b)]) for a, b in itertools.pairwise(loop)))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_no_private_name_from_another_module():
    bad = []
    for e in EDGES:
        if e.name is None or not e.name.startswith("_") or e.name.startswith("__"):
            continue
        if e.name in PRIVATE_MODULES_OK or _top(e.target) in PRIVATE_MODULES_OK:
            continue
        if e.target == e.importer:
            continue
        bad.append(str(e))
    assert not bad, "private names used across modules (make them public API, or move them):\n  " + "\n  ".join(bad)


def test_the_checks_catch_what_they_should():
    """The rules above, on made-up edges: each kind of offence is named with its module and import."""
    assert _top("campwatch.io.read") == _top("campwatch.io") == "io"
    e = Edge("campwatch.structures", "campwatch.plot", "growth_html", 504)
    assert _top(e.importer) in CORE and _top(e.target) in ABOVE_CORE
    assert str(e) == "campwatch.structures (line 504) imports campwatch.plot.growth_html"
