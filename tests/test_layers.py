"""The package's layout holds: no import cycles, inference never imports training or the CLI, small modules.

An AST walk over ``wsi_screen/`` (no import is executed). Every ``import`` counts, at module level
and inside functions alike (a function-level import is a cycle that merely waits for its first
call); imports under ``if TYPE_CHECKING:`` are left out, as they never run. The layers (see
docs/design.md, "Layout"):

- ``wsi_screen.cli``: the commands; may import everything; nothing imports it.
- ``wsi_screen.training``: building and assessing models; may import the inference side, never
  the CLI.
- everything else (sources, tiling, detectors, patches, classifiers, aggregate, reports, pipeline,
  runner, batch, ...): what a screening run needs; imports neither ``training`` nor ``cli``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "wsi_screen"
MAX_LINES = 400
TOP_LAYERS = {"training": "model building", "cli": "the command-line interface"}
"""Subpackages that no inference module may import (the CLI also not from ``training``)."""


@dataclass(frozen=True)
class Edge:
    """One import statement between two modules of the package."""

    source: str
    target: str
    file: str
    line: int

    def where(self) -> str:
        """``file:line`` of the import (the file relative to the package's parent folder)."""
        return f"{self.file}:{self.line}"


def module_files(root: Path = ROOT / PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` (functions included), except those under TYPE_CHECKING."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # only the ``else:`` branch runs
            continue
        stack.extend(ast.iter_child_nodes(node))


def _owning_module(name: str, modules: dict[str, Path]) -> str | None:
    """The package module ``name`` refers to (a module, or the closest package above a member)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """All imports from one package module to another (a module importing itself is ignored)."""
    edges: list[Edge] = []
    for mod, path in modules.items():
        is_init = path.name == "__init__.py"
        package = mod if is_init else mod.rpartition(".")[0]
        file = path.relative_to(path.parents[mod.count(".") + is_init]).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # ``from pkg import sub`` imports the module pkg.sub; ``from mod import name`` mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                    continue
                owner = _owning_module(target, modules)
                if owner is not None and owner != mod:
                    edges.append(Edge(mod, owner, file, node.lineno))
    return edges


def find_cycles(edges: list[Edge]) -> list[tuple[list[str], list[Edge]]]:
    """Each group of modules that import each other (Tarjan), with one concrete cycle through it."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        graph.setdefault(e.source, {}).setdefault(e.target, e)
        graph.setdefault(e.target, {})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[set[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [(sorted(g), _cycle_in(sorted(g)[0], g, graph)) for g in groups]


def _cycle_in(start: str, group: set[str], graph: dict[str, dict[str, Edge]]) -> list[Edge]:
    """A shortest path of edges from ``start`` back to itself inside ``group`` (breadth first)."""
    previous: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for v in frontier:
            for w, e in sorted(graph[v].items()):
                if w not in group or w in previous:
                    continue
                previous[w] = e
                if w == start:
                    path: list[Edge] = []
                    node = start
                    while True:
                        edge = previous[node]
                        path.append(edge)
                        node = edge.source
                        if node == start:
                            return path[::-1]
                nxt.append(w)
        frontier = nxt
    return []  # pragma: no cover - a strongly connected group always has a cycle through start


def layer_of(module: str) -> str | None:
    """``training`` or ``cli`` for the top layers, None for the inference side."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in TOP_LAYERS else None


def layer_violations(edges: list[Edge]) -> list[str]:
    """Imports that run upwards: inference -> training or cli, training -> cli."""
    out: list[str] = []
    for e in edges:
        src, dst = layer_of(e.source), layer_of(e.target)
        if dst is None or dst == src:
            continue
        if src is None or dst == "cli":
            what = "an inference module" if src is None else f"wsi_screen.{src}"
            out.append(
                f"{e.where()}: {e.source} imports {e.target}: {what} must not import "
                f"wsi_screen.{dst} ({TOP_LAYERS[dst]}); move the shared code down into the module that owns it"
            )
    return out


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_edges(module_files()))
    lines = []
    for group, cycle in cycles:
        chain = " -> ".join([cycle[0].source, *(e.target for e in cycle)])
        steps = "\n".join(f"      {e.source} -> {e.target}  ({e.where()})" for e in cycle)
        others = sorted(set(group) - {e.source for e in cycle})
        also = f"\n    also in this circle: {', '.join(others)}" if others else ""
        lines.append(f"  {chain}\n{steps}{also}")
    if cycles:
        pytest.fail(
            f"{len(cycles)} import cycle(s) between wsi_screen modules (function-level imports count; "
            "move the shared names to the module that owns them):\n" + "\n".join(lines),
            pytrace=False,
        )


def test_inference_never_imports_training_or_cli() -> None:
    bad = layer_violations(import_edges(module_files()))
    if bad:
        pytest.fail(
            "imports that run up the layers (see docs/design.md, Layout):\n" + "\n".join(bad), pytrace=False
        )


def test_modules_are_small() -> None:
    big = {
        str(path.relative_to(ROOT)): n
        for path in module_files().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    if big:
        listing = ", ".join(f"{p} ({n})" for p, n in sorted(big.items(), key=lambda kv: -kv[1]))
        pytest.fail(f"modules over {MAX_LINES} lines (split them by what they do): {listing}", pytrace=False)


def test_the_checker_sees_cycles_and_upward_imports(tmp_path: Path) -> None:
    """The checks themselves: a function-level cycle is found, a TYPE_CHECKING import is not."""
    pkg = tmp_path / PACKAGE
    (pkg / "training").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "training" / "__init__.py").write_text("")
    (pkg / "training" / "fit.py").write_text("from wsi_screen import a\n")
    (pkg / "a.py").write_text("def f():\n    from wsi_screen.b import g\n")
    (pkg / "b.py").write_text("from . import a\nfrom wsi_screen.training import fit\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from wsi_screen.training.fit import x\n"
    )
    edges = import_edges(module_files(pkg))
    cycles = find_cycles(edges)
    assert [(g, [e.target for e in c]) for g, c in cycles] == [
        (["wsi_screen.a", "wsi_screen.b", "wsi_screen.training.fit"], ["wsi_screen.b", "wsi_screen.a"])
    ]
    assert cycles[0][1][0].where() == "wsi_screen/a.py:2"  # the function-level import
    bad = layer_violations(edges)
    assert len(bad) == 1
    assert bad[0].startswith("wsi_screen/b.py:2: wsi_screen.b imports wsi_screen.training.fit")
