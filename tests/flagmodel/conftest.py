from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.flagmodel.sdk_oracle import open_oracle


@pytest.fixture(scope="module")
def oracle() -> Iterator[tuple[Any, Any]]:
    """The official SDK's evaluator and its in-memory store (``tests.flagmodel.sdk_oracle``)."""
    with open_oracle() as client_and_store:
        yield client_and_store
