from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.node_proc import NodeProcess, serve_argv


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One real two-worker node per test module (a module's tests share it)."""
    data = tmp_path_factory.mktemp("opsnode") / "data"
    n = NodeProcess(serve_argv(data, workers=2), data).start()
    try:
        yield n
    finally:
        n.stop()
