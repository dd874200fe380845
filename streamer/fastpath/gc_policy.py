"""The worker's garbage-collector policy: fewer collections during connection bursts.

Theory of operation
-------------------
The young-generation threshold is raised so connection bursts trigger fewer collections, and
after each burst of new connections (the acceptor reports every batch: :meth:`after_accepts`)
the surviving objects are moved to the permanent generation (``gc.freeze()``), so later
collections do not walk tens of thousands of long-lived connection objects. The fan-out loop
itself runs with the collector disabled (see :mod:`streamer.environments.env_actor`). Cycles that
become garbage after being frozen are only reclaimed by the periodic maintenance pass (unfreeze,
collect, freeze; default every 10 min).
"""

from __future__ import annotations

import gc
import logging
import time

import trio

log = logging.getLogger(__name__)


class GcPolicy:
    def __init__(
        self,
        *,
        freeze_after: int = 500,
        gen0_threshold: int = 20_000,
        maintenance_interval: float = 600.0,
    ) -> None:
        self._freeze_after = freeze_after
        self._gen0_threshold = gen0_threshold
        self._maintenance_interval = maintenance_interval
        self._since_freeze = 0
        self.freezes = 0
        self.maintenance_passes = 0

    def install(self) -> None:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(self._gen0_threshold, gen1, gen2)

    def after_accepts(self, count: int, *, drained: bool) -> None:
        """Freeze once a burst of at least ``freeze_after`` connections has been taken in."""
        self._since_freeze += count
        if drained and self._since_freeze >= self._freeze_after:
            gc.freeze()
            self.freezes += 1
            self._since_freeze = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self._maintenance_interval)
            started = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
            self.maintenance_passes += 1
            log.info("gc maintenance: %d unreachable objects, %.1f ms",
                     found, (time.perf_counter() - started) * 1000)
