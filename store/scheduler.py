"""The scheduler actor: applies scheduled flag changes (store.schedule_db) at their time.

Theory of operation
-------------------
One task in the store's nursery. Each pass applies every pending change whose time has come
(oldest time first), then sleeps until the soonest pending one is due (at most
``max_sleep_s``, so a step of the wall clock is noticed), or until :meth:`wake_nowait` says
a change was added (it may be sooner than the one it sleeps for). The wake-up mailbox holds
one message; overflow policy: a wake-up already waiting covers the new one, so it is dropped.

"Now" is the wall clock (``clock``, injectable; a change's time is wall time), the sleep is
trio's clock, so tests drive both from ``trio.testing.MockClock``.

Applying goes through the writer actor (``Writer.patch_at_once``), so the change reaches the
bus and every SDK like any other; its history record names the creator as the actor and says
``scheduled change <id>`` (and how late, when more than ``LATE_NOTE_MS`` late).

Exactly once. The flag write and ``status = 'applied'`` are ONE SQLite transaction: the writer
runs ``schedule_db.mark_applied`` inside the commit of the flag change (``ChangeRequest.also``),
and that update only succeeds on a row that is still pending, else it raises and the flag
change rolls back with it. So:

* a crash (or kill) before the COMMIT leaves neither: the change is still pending and is
  applied after the restart, recorded as late;
* a crash after the COMMIT leaves both: after the restart the change is ``applied`` and is
  not looked at again, whatever the scheduler had or had not seen of the answer;
* a cancel racing the apply: one of the two updates wins; a cancelled change is not applied.

Missed while down: a change whose time passed while the store was stopped is due at the
first pass after start, and ``lateByMs`` records by how much.

Failure: a change the writer refuses (the flag was deleted, or changed so that the patch no
longer applies or no longer validates) is marked ``failed`` with the writer's reason and is
not applied. When the database cannot commit (disk full...), the change stays pending and the
pass is retried after ``retry_s``. Any other exception is contained (``Failures.contain``,
actor "scheduler"): on one change it marks that change failed; on the pass, the pass is
retried after ``retry_s``. The actor itself goes on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Final

import orjson
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from store import schedule_db
from store.containment import Failures
from store.db import FlagDB
from store.patch_errors import PatchError
from store.patch_format import PatchFormat, parse_patch
from store.schedule_db import NotPendingError, ScheduledChange
from store.writer import CommitFailedError, ConflictError, NotFoundError, WriteError, Writer

log = logging.getLogger(__name__)

LATE_NOTE_MS: Final = 1000  # the history comment says how late from this much on
PASS_BATCH: Final = 100  # due changes read per query


def history_comment(change: ScheduledChange, late_by_ms: int, patch_comment: str | None) -> str:
    """The comment of the applied change's history record: the schedule id, how late, and
    the scheduled change's and its semantic patch's own comments."""
    text = f"scheduled change {change.id}"
    if late_by_ms >= LATE_NOTE_MS:
        text += f", applied late by {late_by_ms} ms"
    given = "; ".join(c for c in (change.comment, patch_comment) if c)
    return f"{text}: {given}" if given else text


def failure_reason(exc: WriteError) -> str:
    """Why a refused change was not applied, for its ``reason``."""
    message = "; ".join(exc.errors)
    if isinstance(exc, NotFoundError):
        return f"not applied: the flag or its environment no longer exists ({message})"
    if isinstance(exc, ConflictError):
        return f"not applied: the flag changed so that the patch no longer applies ({message})"
    return f"not applied: the patch no longer validates against the flag ({message})"


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    applied: int  # scheduled changes this process applied
    failed: int  # scheduled changes it marked failed


class Scheduler:
    def __init__(self, db: FlagDB, writer: Writer, *, clock: Callable[[], float] = time.time,
                 failures: Failures | None = None, retry_s: float = 5.0,
                 max_sleep_s: float = 60.0) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._failures = failures or Failures()
        self._retry_s = retry_s
        self._max_sleep_s = max_sleep_s
        self._wake_send, self._wake_recv = trio.open_memory_channel[None](1)
        self._limiter = trio.CapacityLimiter(1)
        self._applied = self._failed = 0

    def statistics(self) -> SchedulerStatistics:
        return SchedulerStatistics(self._applied, self._failed)

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def wake_nowait(self) -> None:
        """A change was added or cancelled: look again (see the module docstring)."""
        with contextlib.suppress(trio.WouldBlock):  # a wake-up is already waiting
            self._wake_send.send_nowait(None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            delay = await self._pass()
            with trio.move_on_after(delay):
                await self._wake_recv.receive()

    async def _pass(self) -> float:
        """Apply what is due; the seconds until the next pass should run."""
        with self._failures.contain("scheduler", "a pass over due changes") as outcome:
            while True:
                changes = self._db.run_read(partial(schedule_db.due, now_ms=self.now_ms(),
                                                    limit=PASS_BATCH))
                if not changes:
                    break
                for change in changes:
                    if not await self._apply_contained(change):
                        return self._retry_s
            soonest = self._db.run_read(schedule_db.next_at)
        if outcome.error is not None:
            return self._retry_s
        if soonest is None:
            return self._max_sleep_s
        return min(max(0.0, (soonest - self._clock() * 1000) / 1000), self._max_sleep_s)

    async def _apply_contained(self, change: ScheduledChange) -> bool:
        """Apply one change; False when the store cannot commit now (retry later)."""
        with self._failures.contain("scheduler", f"scheduled change {change.id}") as outcome:
            return await self._apply(change)
        assert outcome.error is not None
        await self._mark_failed(change, "not applied: the store failed applying it "
                                f"({type(outcome.error).__name__})")
        return True

    async def _apply(self, change: ScheduledChange) -> bool:
        late_by_ms = max(0, self.now_ms() - change.at_ms)
        try:
            # Checked at creation; parsing is deterministic, so this fails only if the rules
            # of the patch format changed in between.
            patch = parse_patch(PatchFormat(change.format), orjson.loads(change.patch), "flags")
        except (PatchError, ValueError) as exc:
            await self._mark_failed(change, f"not applied: the patch is no longer valid ({exc})")
            return True
        try:
            result = await self._writer.patch_at_once(
                change.env, "flags", change.key, patch, actor=change.created_by,
                comment=history_comment(change, late_by_ms, patch.comment),
                also=partial(schedule_db.mark_applied, change_id=change.id,
                             late_by_ms=late_by_ms))
        except CommitFailedError:
            # Not committed: the database failed, or the change was cancelled meanwhile
            # (mark_applied refused). A still-pending change is tried again later.
            current = self._db.run_read(partial(schedule_db.get, env=change.env,
                                                change_id=change.id))
            return current is None or current.status != "pending"
        except WriteError as exc:
            await self._mark_failed(change, failure_reason(exc))
            return True
        self._applied += 1
        log.info("applied scheduled change %d to flag %r in %r (version %d, %d ms late)",
                 change.id, change.key, change.env, result.item.version, late_by_ms)
        return True

    async def _mark_failed(self, change: ScheduledChange, reason: str) -> None:
        late_by_ms = max(0, self.now_ms() - change.at_ms)
        log.warning("scheduled change %d to flag %r in %r failed: %s", change.id, change.key,
                    change.env, reason)
        try:
            await trio.to_thread.run_sync(
                self._db.run_write, partial(schedule_db.mark_failed, change_id=change.id,
                                            reason=reason, now_ms=self.now_ms(),
                                            late_by_ms=late_by_ms),
                limiter=self._limiter)
        except NotPendingError:
            return  # cancelled meanwhile
        self._failed += 1



class SchedulerCollector(Collector):
    """``/metrics`` of the scheduler: what it applied and failed, and what is pending."""

    def __init__(self, db: FlagDB, scheduler: Scheduler) -> None:
        self._db, self._scheduler = db, scheduler

    def collect(self) -> Iterator[Metric]:
        stats = self._scheduler.statistics()
        yield CounterMetricFamily("flagstream_scheduled_changes_applied",
                                  "scheduled changes applied", stats.applied)
        yield CounterMetricFamily("flagstream_scheduled_changes_failed",
                                  "scheduled changes marked failed (not applied)", stats.failed)
        yield GaugeMetricFamily("flagstream_scheduled_changes_pending",
                                "scheduled changes waiting for their time",
                                self._db.run_read(schedule_db.pending_count))
