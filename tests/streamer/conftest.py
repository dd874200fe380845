"""Fixtures for the streamer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamer_testkit import close_client_sockets


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    """Close the client sides of the sockets `streamer_testkit.tcp_pair` opened in a test."""
    yield
    close_client_sockets()
