from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.node_proc import NodeProcess, serve_argv


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    n = NodeProcess(serve_argv(tmp_path / "data"), tmp_path / "data").start()
    try:
        yield n
    finally:
        n.stop()
