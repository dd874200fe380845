"""The seam between the bus subscriber and the worker's environment actors."""

from __future__ import annotations

from typing import Protocol

from bus.envelope import Change, EnvChange, Snapshot


class ChangeSink(Protocol):
    """Receives what the bus subscriber has put in order.

    ``apply_snapshot`` replaces the state of every environment the snapshot names (and, for a
    full snapshot, drops environments it does not name); it is called on start and after every
    detected gap. ``apply_change`` is called for each in-order change.
    """

    async def apply_change(self, msg: Change | EnvChange) -> None: ...

    async def apply_snapshot(self, snapshot: Snapshot, *, full: bool) -> None: ...
