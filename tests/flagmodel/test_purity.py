"""flagmodel is a pure package: its import graph, read with ``ast``, holds no trio, no other
package of the project and no IO (STYLE.md principle 1, DESIGN.md §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "flagmodel"
# Modules that wait, talk to the network or the disk, or start processes and threads.
IO_MODULES = frozenset({
    "trio", "anyio", "asyncio", "socket", "ssl", "select", "selectors", "io", "os", "pathlib",
    "shutil", "tempfile", "subprocess", "threading", "multiprocessing", "sqlite3", "urllib",
    "http", "logging", "time", "pynng", "hypercorn", "quart", "quart_trio", "h11", "boto3",
    "botocore", "httpx", "requests", "msgpack", "orjson",
})
IO_CALLS = frozenset({"open", "print", "input", "breakpoint", "exec", "eval", "__import__"})


def project_packages() -> frozenset[str]:
    return frozenset(p.name for p in ROOT.iterdir()
                     if (p / "__init__.py").is_file() and p.name != PACKAGE.name)


def impurities(source: str, name: str) -> list[str]:
    """What in ``source`` (module ``name``) a pure package may not have."""
    banned = IO_MODULES | project_packages()
    found = []
    for node in ast.walk(ast.parse(source, name)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            if module.split(".")[0] in banned:
                found.append(f"{name}:{node.lineno}: imports {module}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in IO_CALLS):
            found.append(f"{name}:{node.lineno}: calls {node.func.id}()")
    return found


def test_flagmodel_imports_no_trio_no_project_package_and_does_no_io() -> None:
    modules = sorted(PACKAGE.glob("**/*.py"))
    assert len(modules) >= 10
    found = [f for m in modules for f in impurities(m.read_text(), str(m.relative_to(ROOT)))]
    assert found == []


@pytest.mark.parametrize(("source", "expected"), [
    ("import trio", "imports trio"),
    ("from trio.lowlevel import checkpoint", "imports trio.lowlevel"),
    ("import store.db", "imports store.db"),
    ("from streamer import sse", "imports streamer"),
    ("import socket", "imports socket"),
    ("def f():\n    import os\n    return os.getpid()", "imports os"),
    ("def f(p):\n    return open(p).read()", "calls open()"),
])
def test_each_kind_of_impurity_is_found(source: str, expected: str) -> None:
    assert [f.split(": ", 1)[1] for f in impurities(source, "m.py")] == [expected]


def test_pure_code_passes() -> None:
    source = "from __future__ import annotations\nimport re\nfrom flagmodel.values import f\n"
    assert impurities(source, "m.py") == []
