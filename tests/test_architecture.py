"""The layers rule of docs/architecture.md, checked on the import graph of src/campwatch.

Every import counts: module level, function level and ``if TYPE_CHECKING:`` blocks, read with
:mod:`ast` from the files :mod:`pkgutil` finds (the source is parsed, not run, so a lazy import
cannot hide an upward edge).  ``campwatch.io`` and ``campwatch.io.*`` are one module (io may become a package);
so are ``campwatch.detect`` and its submodules (the core node ``detect``), and ``campwatch.bench`` and its
submodules, except the pure ``campwatch.bench.metrics`` (:data:`OWN_NODE`).
"""

from __future__ import annotations

import ast
import itertools
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path

import campwatch

#: The ground: imports nothing above it.
GROUND = {"errors", "grid", "params", "profiles", "scene", "tables", "_version", "_kernels"}
#: Core stages: arrays in, arrays out; never open files or draw.
CORE = {"coregister", "detect", "layers", "masks", "normalise", "structures", "threshold", "vectorize", "vhr",
        "bench.metrics"}
#: What neither may import: reading/writing, drawing, the tools and the CLI.
ABOVE_CORE = {"aoi", "io", "plot", "provenance", "cli", "compare", "engine", "track", "report", "fetch", "webmap",
              "bench", "versions"}
#: Reading, writing and the view: above the core, below the tools and the CLI.
READ_WRITE_VIEW = {"aoi", "io", "plot", "provenance", "versions"}
#: Submodules that sit in a lower layer than their package, and so are a node of their own.
OWN_NODE = {"campwatch.bench.metrics": "bench.metrics"}
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
    """campwatch.vhr.growth -> vhr, campwatch.io.read -> io, campwatch -> '' (the package facade);
    campwatch.bench.metrics -> bench.metrics (:data:`OWN_NODE`)."""
    if module in OWN_NODE:
        return OWN_NODE[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_graph_is_read():
    assert {"campwatch.detect", "campwatch.detect.passes", "campwatch.vhr.growth", "campwatch.cli.main"} <= set(MODULES)
    assert any(e.importer == "campwatch.compare" and _top(e.target) == "detect" for e in EDGES)
    assert any(e.importer == "campwatch.fetch" and e.target == "campwatch.io" and e.name is None for e in EDGES)


def _upward(edges: list[Edge]) -> list[str]:
    bad = []
    for e in edges:
        src, dst = _top(e.importer), _top(e.target)
        if src in GROUND and (dst in CORE or dst in ABOVE_CORE):
            bad.append(f"ground module {e} (above the ground)")
        elif src in CORE and dst in ABOVE_CORE:
            bad.append(f"core module {e} (io, plot, a tool or the CLI)")
        elif src in READ_WRITE_VIEW and dst in ABOVE_CORE - READ_WRITE_VIEW:
            bad.append(f"read/write/view module {e} (a tool or the CLI)")
    return bad


def test_each_layer_imports_nothing_above_it():
    bad = _upward(EDGES)
    assert not bad, "upward imports:\n  " + "\n  ".join(bad)


def test_a_package_loads_its_lower_submodule_alone():
    """Importing ``campwatch.bench.metrics`` runs ``campwatch/bench/__init__.py`` first, so that file may import
    only the submodules of :data:`OWN_NODE` at run time; the rest it names under ``TYPE_CHECKING`` and loads lazily."""
    for module, node in OWN_NODE.items():
        package = module.rsplit(".", 1)[0]
        tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
        eager = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module
                 and n.module.startswith("campwatch")}
        eager |= {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names
                  if a.name.startswith("campwatch")}
        assert eager <= set(OWN_NODE), f"{package} imports {sorted(eager - set(OWN_NODE))} at run time; " \
            f"importing {module} ({node}) would load them"


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
    assert _top("campwatch.detect.passes") == _top("campwatch.detect") == "detect" in CORE
    assert _upward([Edge("campwatch.detect.methods", "campwatch.io.readers", "read_raster", 3)]) == [
        "core module campwatch.detect.methods (line 3) imports campwatch.io.readers.read_raster "
        "(io, plot, a tool or the CLI)"]
    e = Edge("campwatch.structures", "campwatch.plot", "growth_html", 504)
    assert _top(e.importer) in CORE and _top(e.target) in ABOVE_CORE
    assert str(e) == "campwatch.structures (line 504) imports campwatch.plot.growth_html"
    assert _upward([e]) == ["core module campwatch.structures (line 504) imports campwatch.plot.growth_html "
                            "(io, plot, a tool or the CLI)"]
    # bench is a tool; its pure metrics module sits in the core.
    assert _top("campwatch.bench.oscd") == _top("campwatch.bench") == "bench" in ABOVE_CORE
    assert len(_upward([Edge("campwatch.detect", "campwatch.bench.oscd", "oscd_cities", 1),
                        Edge("campwatch.grid", "campwatch.bench.metrics", "confusion", 2),
                        Edge("campwatch.bench.metrics", "campwatch.io", "read_raster", 3),
                        Edge("campwatch.plot", "campwatch.bench.vhr", "pixel_scores", 4)])) == 4
    assert not _upward([Edge("campwatch.detect", "campwatch.bench.metrics", "confusion", 4),
                        Edge("campwatch.plot", "campwatch.bench.metrics", "confusion", 4),
                        Edge("campwatch.bench.metrics", "campwatch.errors", "GridMismatchError", 5)])


def _imported(mod: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The campwatch modules one import statement names (``from campwatch import io`` names campwatch.io)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "campwatch"]
    target = _resolve(mod, MODULES[mod].name == "__init__.py", node.module, node.level)
    if target.split(".")[0] != "campwatch":
        return []
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def _eager_modules() -> set[str]:
    """The campwatch modules ``import campwatch`` loads: the facade's module-level imports, transitively (an
    ``if TYPE_CHECKING:`` block and a function body load nothing; importing campwatch.a.b also runs campwatch.a)."""
    def body_imports(stmts: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
        found: list[ast.Import | ast.ImportFrom] = []
        for n in stmts:
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                found.append(n)
            elif isinstance(n, ast.If) and not (isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"):
                found += body_imports(n.body) + body_imports(n.orelse)
            elif isinstance(n, ast.Try):
                found += body_imports(n.body)
        return found

    loaded: set[str] = set()
    todo = ["campwatch"]
    while todo:
        mod = todo.pop()
        if mod in loaded or mod not in MODULES:
            continue
        loaded.add(mod)
        tree = ast.parse(MODULES[mod].read_text(encoding="utf-8"))
        for node in body_imports(tree.body):
            for target in _imported(mod, node):
                parts = target.split(".")
                todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return loaded


def _lazy_imports_of_loaded(mod: str, tree: ast.Module, eager: set[str]) -> list[str]:
    """Function-level imports in ``mod`` of modules ``import campwatch`` has loaded already: they save no import
    time, so they belong at the top of the module (a cycle they dodge is fixed by moving what is shared down)."""
    bad: dict[tuple[int, str], str] = {}  # (line, module) -> innermost function (ast.walk goes outer first)
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    bad |= {(node.lineno, t): fn.name for t in _imported(mod, node) if t in eager}
    return [f"{mod} (line {line}, in {fn}) imports {t}" for (line, t), fn in sorted(bad.items())]


def test_no_function_level_import_of_a_module_campwatch_loads():
    """What ``import campwatch`` loads is imported at the top of a module; function-level imports remain for
    the optional and heavy (numba kernels, engine, report, webmap, bench tools, third-party) and in ``cli/``,
    which keeps ``campwatch --help`` fast."""
    eager = _eager_modules()
    assert {"campwatch.io", "campwatch.compare", "campwatch.vhr.growth"} <= eager <= set(sys.modules)
    assert not {"campwatch._kernels", "campwatch.engine", "campwatch.report", "campwatch.webmap"} & eager
    bad = []
    for mod, path in MODULES.items():
        if mod.startswith("campwatch.cli") or mod == "campwatch.__main__":
            continue
        bad += _lazy_imports_of_loaded(mod, ast.parse(path.read_text(encoding="utf-8")), eager)
    assert not bad, "function-level imports of modules `import campwatch` loads anyway (move them to the top):\n  " \
        + "\n  ".join(bad)
    made_up = ast.parse("def f():\n    from campwatch.io import read_raster\n    from campwatch import webmap\n"
                        "    from campwatch._kernels import set_nan\n    import numpy\n"
                        "    def g():\n        from campwatch import masks\n")
    assert _lazy_imports_of_loaded("campwatch.track", made_up, eager) == [
        "campwatch.track (line 2, in f) imports campwatch.io", "campwatch.track (line 7, in g) imports campwatch.masks"]
