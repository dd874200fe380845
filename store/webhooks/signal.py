"""How the delivery actors learn that a change was committed, without polling the database.

:class:`CommitSignal` sits between the writer and the bus publisher (it is the writer's
``ChangePublisher``): after each publish, committed or not on the bus, it records the
change's ``seq`` and wakes every waiter. The history row of that seq is committed before
the writer publishes, so a woken actor finds it. A wake-up is a broadcast of "something
above seq N exists"; an actor that misses one (it was busy delivering) sees the newer
``latest`` when it next waits, so none is lost; the actors also re-read the history every
``idle_poll_s`` as a backstop.
"""

from __future__ import annotations

import trio

from bus.envelope import Change, EnvChange
from bus.store_ports import ChangePublisher


class CommitSignal:
    """A ``ChangePublisher`` that forwards to ``inner`` and then wakes the waiters."""

    def __init__(self, inner: ChangePublisher, latest_seq: int) -> None:
        self._inner = inner
        self.latest_seq = latest_seq
        self._changed = trio.Event()

    async def publish(self, msg: Change | EnvChange) -> None:
        try:
            await self._inner.publish(msg)
        finally:
            self.notify(msg.seq)

    def notify(self, seq: int) -> None:
        if seq > self.latest_seq:
            self.latest_seq = seq
        self._changed.set()
        self._changed = trio.Event()

    async def wait_beyond(self, seq: int, timeout_s: float) -> None:
        """Return when a change above ``seq`` was announced, or after ``timeout_s``."""
        with trio.move_on_after(timeout_s):
            while self.latest_seq <= seq:
                await self._changed.wait()
