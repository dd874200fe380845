"""The layout's arrows, read from the code with ``ast``: which package may import which, no
import cycle between modules, and the pure cores (SSE, sequence tracking, bus envelope,
coalescer, merge patch, batching) reach no trio and no IO, also through what they import.

Only module-level imports count (an import inside ``if TYPE_CHECKING:`` is for the type
checker, one inside a function runs late and is allowed to break a start-up cycle)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.flagmodel.test_purity import IO_MODULES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flagmodel", "bus", "store", "streamer", "ingest", "insights", "node", "loadtest")
# Package -> the project packages it may import (docs/ARCHITECTURE.md draws this table).
# flagmodel and bus import nothing of the project; store never imports streamer (the streamer
# is a consumer of the bus); ingest never imports insights (insights consumes ingest's events);
# the store imports insights because the store process serves the insights routes and runs
# the consumer (store/service.py); streamer uses the store's HTTP containment (store.containment,
# store.http_guard, store.hypercorn_setup, store.json_depth) and ingest's batch bounds for its
# metrics. node (the entry point and the process wiring) and loadtest may import everything.
_EVERYTHING = frozenset({"flagmodel", "bus", "store", "streamer", "ingest", "insights"})
ALLOWED = {
    "flagmodel": frozenset(),
    "bus": frozenset(),
    "ingest": frozenset(),
    "insights": frozenset({"ingest"}),
    "store": frozenset({"flagmodel", "bus", "insights"}),
    "streamer": frozenset({"flagmodel", "bus", "store", "ingest"}),
    "node": _EVERYTHING,
    "loadtest": _EVERYTHING | {"node"},
}
PURE_CORES = ("streamer.fastpath.sse", "bus.seqtrack", "bus.envelope", "store.coalescer",
              "store.merge_patch", "ingest.batching", "streamer.fastpath.mailbox")
CORE_BANNED = IO_MODULES - {"msgpack", "orjson"}  # pure encoders: bytes in, bytes out


def module_files(root: Path = ROOT) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _top_level_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.ClassDef):
            continue  # class bodies import nothing here; methods run late
        yield from ast.walk(node)


def imports_of(source: str) -> set[str]:
    """Every module name a module imports at load time (``from a import b`` names both
    ``a`` and ``a.b``, since ``b`` may be a submodule)."""
    out: set[str] = set()
    for node in _top_level_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def project_graph(files: Mapping[str, Path]) -> dict[str, set[str]]:
    return {name: {m for m in imports_of(path.read_text()) if m in files}
            for name, path in files.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
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
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def forbidden_arrows(graph: Mapping[str, set[str]]) -> list[str]:
    out = []
    for name, targets in graph.items():
        package = name.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != package and other not in ALLOWED[package]:
                out.append(f"{name} imports {target}")
    return out


def impure_reach(core: str, graph: Mapping[str, set[str]],
                 files: Mapping[str, Path]) -> list[str]:
    """Banned imports in ``core`` or in any project module it reaches."""
    seen, todo, found = set(), [core], []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for module in sorted(imports_of(files[name].read_text())):
            if module.split(".")[0] in CORE_BANNED:
                found.append(f"{name} imports {module}")
        todo.extend(graph[name])
    return found


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return module_files()


@pytest.fixture(scope="module")
def graph(files: dict[str, Path]) -> dict[str, set[str]]:
    return project_graph(files)


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_packages_import_only_what_the_layout_allows(graph: dict[str, set[str]]) -> None:
    assert forbidden_arrows(graph) == []


@pytest.mark.parametrize("core", PURE_CORES)
def test_pure_cores_reach_no_trio_and_no_io(core: str, graph: dict[str, set[str]],
                                            files: dict[str, Path]) -> None:
    assert impure_reach(core, graph, files) == []


# The checks themselves, on made-up graphs and sources: each must see what it is for.

def test_cycles_finds_a_cycle_and_only_real_ones() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_forbidden_arrows_catches_store_importing_streamer() -> None:
    graph = {"store.db": {"streamer.directory", "flagmodel"}, "streamer.worker": {"store.db"}}
    assert forbidden_arrows(graph) == ["store.db imports streamer.directory"]


@pytest.mark.parametrize(("source", "expected"), [
    ("import trio\n", {"trio"}),
    ("from streamer.sse import event_chunk\n", {"streamer.sse", "streamer.sse.event_chunk"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trio\n",
     {"typing", "typing.TYPE_CHECKING"}),
    ("def f():\n    import trio\n", set()),
    ("try:\n    import socket\nexcept ImportError:\n    pass\n", {"socket"}),
])
def test_imports_of_reads_load_time_imports(source: str, expected: set[str]) -> None:
    assert imports_of(source) == expected


def test_impure_reach_follows_project_imports(tmp_path: Path) -> None:
    (tmp_path / "core.py").write_text("from helper import x\n")
    (tmp_path / "helper.py").write_text("import trio\nx = 1\n")
    files = {"core": tmp_path / "core.py", "helper": tmp_path / "helper.py"}
    assert impure_reach("core", {"core": {"helper"}, "helper": set()}, files) == [
        "helper imports trio"]
