"""The seams the store meets other parts at (consumer-defined, STYLE.md principle 8).

Each has a real implementation (``bus.publisher.BusPublisher``, ``store.db.FlagDB``)
and an in-memory fake in the tests.
"""

from __future__ import annotations

from typing import Protocol

from bus.envelope import Change, EnvChange, Snapshot


class ChangePublisher(Protocol):
    """Where the store's writer sends each committed change (the nng PUB side of the bus)."""

    async def publish(self, msg: Change | EnvChange) -> None: ...


class SnapshotSource(Protocol):
    """What the snapshot server needs from the store: a consistent copy at one ``seq``."""

    def snapshot(self, env: str | None) -> Snapshot: ...

    def latest_seq(self) -> int: ...
