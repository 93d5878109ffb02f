"""The architecture, enforced: recforge's modules import each other in one direction only.

The layers, bottom to top. A module may import modules of its own package and of the lower layers
listed, never of a higher layer, and never of a sibling package in its own layer (the ground-floor
modules excepted: they are single modules that may use each other):

=====  ==========================================================  ==========================
layer  packages / modules (``recforge.<name>``)                    may import layers
=====  ==========================================================  ==========================
0      ground floor: ``_arrays``, ``errors``, ``io``,               0
       ``_optional``, ``config``, ``topk``, ``metrics`` and the
       package root ``recforge``
1      ``data``                                                     0
2      ``splits``                                                   0-1
3      ``loggers``: a ground-level service, used by training and   0
       everything above it
4      ``training`` (the epoch loops)                               0-3
5      ``models``                                                   0-4
6      ``evaluation``; ``testing`` (the conformance suite) and      0-5
       ``export`` (model files for other runtimes) beside it
7      outputs: ``serving`` (may rank with an export), ``viz``,     0-6
       ``demo``
8      ``experiments``: a run may export its model and plot its     0-7
       curves
9      ``tuning``: a search over experiment runs; ``ui``: the web    0-8
       app over serving, viz and saved experiment runs
10     ``distributed``: the Ray backend of evaluation, the batch     0-9
       job and tuning
11     ``cli``: the command line, imported by nothing               0-10
=====  ==========================================================  ==========================

A ``_``-prefixed module is private to the package that holds it: only modules inside that package
may import it (``recforge._arrays`` is the whole library's; ``recforge.models.persist`` is the
models'; ``recforge.models.neural.base`` is the neural family's).

Imports are read with :mod:`ast`, including the ones made inside functions (a lazy import is still
a dependency) and dynamic ones by name (a string literal that is exactly a recforge module's dotted
name, as in ``importlib.import_module("recforge.x.y")`` or a lazy ``__getattr__`` table), but not
those under ``if TYPE_CHECKING:`` (annotations only). The test also fails
on any import cycle between modules, lazy imports included. Each failure lists every offending
edge as ``importer -> imported (file:line)``.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "recforge"

#: (layer number, packages or modules directly under ``recforge``) from the bottom up.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("", "_arrays", "errors", "io", "_optional", "config", "topk", "metrics")),
    (1, ("data",)),
    (2, ("splits",)),
    (3, ("loggers",)),
    (4, ("training",)),
    (5, ("models",)),
    (6, ("evaluation", "testing", "export")),
    (7, ("serving", "viz", "demo")),
    (8, ("experiments",)),
    (9, ("tuning", "ui")),
    (10, ("distributed",)),
    (11, ("cli",)),
]
#: Layers that may import only some lower layers (the default is every lower layer).
RESTRICTED: dict[int, set[int]] = {3: {0}}
#: Layers whose members may import each other (cycles are still refused).
OPEN_LAYERS = {0}

LAYER_OF = {top: layer for layer, tops in LAYERS for top in tops}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / ROOT).rglob("*.py"))}


def _type_checking_test(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "TYPE_CHECKING") or (
        isinstance(node, ast.Attribute) and node.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom | ast.Constant]:
    """Every import statement and string literal, at any depth, except in ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom | ast.Constant] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_test(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
            isinstance(node, ast.Constant) and isinstance(node.value, str)
        ):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` names (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


@functools.cache
def import_edges() -> list[tuple[str, str, str]]:
    """``(importer, imported, "file:line")`` for every recforge-internal import."""
    known = _modules()
    edges = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = module if _is_package(path) else module.rpartition(".")[0]
        for node in _import_nodes(tree):
            targets: list[str] = []
            if isinstance(node, ast.Constant):
                # only an exact module name is a dynamic import; naming an enclosing package
                # (``resources.files("recforge.data")``) imports nothing new: it is loaded first
                if node.value not in known or module.startswith(node.value + "."):
                    continue
                targets = [node.value]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # ``from a import b`` imports the module a.b when there is one, else a name of a
                targets = [f"{stem}.{alias.name}" for alias in node.names]
            where = f"{path.relative_to(SRC.parent).as_posix()}:{node.lineno}"
            for target in targets:
                if target != ROOT and not target.startswith(ROOT + "."):
                    continue
                imported = _resolve(target, known)
                if imported is not None and imported != module and (module, imported, where) not in edges:
                    edges.append((module, imported, where))
    return edges


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> int:
    top = _top(module)
    assert top in LAYER_OF, f"{module} is in no layer: add recforge.{top} to LAYERS in {Path(__file__).name}"
    return LAYER_OF[top]


def _allowed(importer: str, imported: str) -> bool:
    a, b = _layer(importer), _layer(imported)
    if _top(importer) == _top(imported):
        return True
    if a == b:
        return a in OPEN_LAYERS
    if a in RESTRICTED:
        return b in RESTRICTED[a]
    return b < a


def _cycles(edges: list[tuple[str, str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def test_every_module_has_a_layer():
    unplaced = sorted({_top(m) for m in _modules()} - set(LAYER_OF))
    assert not unplaced, f"packages in no layer: {unplaced}; place them in LAYERS"


def test_imports_point_down_the_layers():
    edges = import_edges()
    assert edges, "no recforge-internal import found: the parser is broken"
    bad = sorted(
        (f"{a} -> {b} ({where})  [layer {_layer(a)} -> {_layer(b)}]", a, b)
        for a, b, where in edges if not _allowed(a, b)
    )
    assert not bad, f"{len(bad)} imports against the layer order:\n" + "\n".join(line for line, _, _ in bad)


def test_no_import_cycles():
    edges = import_edges()
    lines = []
    for component in _cycles(edges):
        members = set(component)
        lines.append(f"cycle of {len(component)} modules: {', '.join(component)}")
        lines += [f"    {a} -> {b} ({where})" for a, b, where in sorted(edges)
                  if a in members and b in members]
    assert not lines, "import cycles:\n" + "\n".join(lines)


def _private_owner(module: str) -> str | None:
    """The package a module is private to (the parent of its first ``_``-prefixed part), or None."""
    parts = module.split(".")
    for n, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:n])
    return None


def test_private_modules_stay_in_their_package():
    bad = []
    for a, b, where in import_edges():
        owner = _private_owner(b)
        if owner is not None and a != owner and not a.startswith(owner + "."):
            bad.append(f"{a} -> {b} ({where})  [{b} is private to {owner}]")
    assert not bad, f"{len(bad)} imports of another package's private module:\n" + "\n".join(sorted(bad))


def test_the_parser_sees_lazy_and_dynamic_imports_but_not_type_checking_ones():
    tree = ast.parse(
        "import recforge.data\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from recforge.cli import main\n"
        "else:\n"
        "    import recforge.splits\n"
        "def f():\n"
        "    from recforge.models import base\n"
        "    importlib.import_module('recforge.viz')\n"
    )
    names = [n.value if isinstance(n, ast.Constant) else n.names[0].name if isinstance(n, ast.Import)
             else f"{n.module}.{n.names[0].name}" for n in _import_nodes(tree)]
    assert names == ["recforge.data", "typing.TYPE_CHECKING", "recforge.splits", "recforge.models.base",
                     "recforge.viz"]
