"""SIGTERM and SIGINT, watched from a process's first moment, for the supervisor and the workers.

A process that only reads its signal receiver once it is up defers a stop asked for during
start-up until the start-up has finished: with many workers that is minutes of Ctrl-C doing
nothing. :class:`StopSignal` is watched from the start instead. The first signal sets
:attr:`StopSignal.stopped` and cancels :attr:`StopSignal.startup`, the scope the process runs
its start-up in; the process then drains whatever is already up and exits.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import trio


class StopSignal:
    def __init__(self) -> None:
        self.stopped = trio.Event()
        self.startup = trio.CancelScope()  # run the start-up inside it
        self.name = ""  # e.g. "SIGTERM", once stopped

    async def watch(self, signals: AsyncIterator[int]) -> None:
        """Read ``signals`` (a ``trio.open_signal_receiver``) until the first one."""
        async for signum in signals:
            self.name = signal.Signals(signum).name
            self.stopped.set()
            self.startup.cancel()
            return
