"""The scheduler actor on a mock clock, with real SQLite, the real writer and a recording
publisher: timing, restarts, failures, and exactly-once across a crash.

Commits run in worker threads, and while one runs the event loop is idle, so the autojump
clock would jump to the next deadline (the test's own sleep, a ``fail_after``) before the
commit lands. The ``clock`` fixture stops autojumping while a worker thread runs: a commit
takes no mock time, and every assertion about times is exact and deterministic.

Changes are added with the same ``schedule_db.insert`` + ``wake_nowait`` the POST route
uses; the routes have their own tests (test_store_schedule_routes.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from bus.envelope import Change, EnvChange
from store import schedule_db
from store.containment import Failures
from store.db import FlagDB
from store.records import ChangeRequest, CommittedChange
from store.schedule_db import ScheduledChange
from store.scheduler import Scheduler
from store.writer import Writer

BASE = 1_800_000_000.0  # the wall clock at trio time 0
FLAG = {"variations": [True, False], "on": True, "fallthrough": {"variation": 0},
        "offVariation": 1}


class Wall:
    """Wall time that follows trio's clock; ``down_s`` is time that passed while stopped."""

    def __init__(self, clock: MockClock) -> None:
        self.down_s = 0.0
        self._clock = clock  # read from FlagDB's commit thread too

    def __call__(self) -> float:
        return BASE + self.down_s + self._clock.current_time()

    def ms(self) -> int:
        return int(self() * 1000)


class Publisher:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.msgs: list[Change | EnvChange] = []
        self.event = trio.Event()

    async def publish(self, msg: Change | EnvChange) -> None:
        self.times.append(trio.current_time())
        self.msgs.append(msg)
        self.event.set()
        self.event = trio.Event()

    async def wait_for(self, count: int) -> None:
        """Until ``count`` messages were published."""
        with trio.fail_after(86400):  # a day of mock time: fail, not hang
            while len(self.msgs) < count:
                await self.event.wait()


@dataclass
class Node:
    db: FlagDB
    pub: Publisher
    writer: Writer
    scheduler: Scheduler
    wall: Wall

    def add(self, at_ms: int, patch: Any, *, fmt: str = "merge", key: str = "f",
            comment: str | None = None) -> ScheduledChange:
        change = self.db.run_write(partial(
            schedule_db.insert, env="prod", key=key, at_ms=at_ms, fmt=fmt,
            patch=orjson.dumps(patch), comment=comment, created_by="alice",
            now_ms=self.wall.ms()))
        self.scheduler.wake_nowait()
        return change

    def get(self, change_id: int) -> ScheduledChange:
        found = self.db.run_read(partial(schedule_db.get, env="prod", change_id=change_id))
        assert found is not None
        return found

    def flag(self, key: str = "f") -> dict[str, Any] | None:
        item = self.db.get_item("prod", "flags", key)
        return None if item is None or item.deleted else item.as_dict()

    def history(self, key: str = "f") -> list[dict[str, Any]]:
        return [h.as_dict() for h in self.db.history("prod", limit=100) if h.key == key]


@pytest.fixture
def clock(autojump_clock: MockClock,
          monkeypatch: pytest.MonkeyPatch) -> trio.testing.MockClock:
    """The autojump clock, standing still while a worker thread runs (module docstring)."""
    real = trio.to_thread.run_sync
    running = 0

    async def run_sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        nonlocal running
        running += 1
        autojump_clock.autojump_threshold = math.inf
        try:
            return await real(fn, *args, **kwargs)
        finally:
            running -= 1
            if running == 0:
                autojump_clock.autojump_threshold = 0
    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)
    return autojump_clock


@asynccontextmanager
async def open_node(data_dir: Path, wall: Wall, *,
                    commit: Callable[[FlagDB], Callable[..., Any]] | None = None,
                    ) -> AsyncIterator[Node]:
    db = FlagDB(data_dir, clock=wall)
    if commit is not None:
        db.commit = commit(db)  # type: ignore[method-assign]
    writer = Writer(db, pub := Publisher(), window_s=0.005)
    failures = Failures(clock=trio.current_time)
    # No wake-up deadline while nothing is pending: see the module docstring.
    scheduler = Scheduler(db, writer, clock=wall, failures=failures, max_sleep_s=math.inf)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await nursery.start(scheduler.run)
            yield Node(db, pub, writer, scheduler, wall)
            nursery.cancel_scope.cancel()
    finally:
        db.close()


@pytest.fixture
async def node(tmp_path: Path, clock: MockClock) -> AsyncIterator[Node]:
    async with open_node(tmp_path, Wall(clock)) as n:
        await prepare(n)
        yield n


async def prepare(n: Node) -> None:
    await n.writer.create_environment("prod", "Production")
    await n.writer.put("prod", "flags", "f", FLAG)


async def test_applied_at_its_time_not_before(node: Node, clock: MockClock) -> None:
    t0 = trio.current_time()
    change = node.add(node.wall.ms() + 10_000, {"on": False}, comment="launch off")
    await trio.sleep(9.999)
    assert node.flag()["on"] is True  # type: ignore[index]
    assert node.get(change.id).status == "pending"
    await node.pub.wait_for(3)
    assert node.pub.times[-1] - t0 == pytest.approx(10.0, abs=0.001)
    assert node.flag() == {**node.flag(), "on": False, "version": 2}  # type: ignore[dict-item]
    done = node.get(change.id)
    assert (done.status, done.late_by_ms) == ("applied", 0)
    assert done.seq == node.pub.msgs[-1].seq
    assert done.done_ms == node.wall.ms()
    latest = node.history()[0]
    assert latest["actor"] == "alice"  # the creator, not whoever runs the store
    assert latest["comment"] == f"scheduled change {change.id}: launch off"
    assert latest["after"]["on"] is False and latest["after"]["version"] == 2


async def test_an_earlier_change_added_later_wakes_the_actor(node: Node, clock: MockClock) -> None:
    t0 = trio.current_time()
    late = node.add(node.wall.ms() + 100_000, {"offVariation": 0})
    await trio.sleep(1)
    soon = node.add(node.wall.ms() + 10_000, {"on": False})  # due at t0 + 11 s
    await node.pub.wait_for(3)
    assert node.pub.times[-1] - t0 == pytest.approx(11.0, abs=0.001)
    assert (node.get(soon.id).status, node.get(late.id).status) == ("applied", "pending")
    await node.pub.wait_for(4)
    assert node.pub.times[-1] - t0 == pytest.approx(100.0, abs=0.001)
    assert node.get(late.id).status == "applied"
    assert node.flag()["version"] == 3  # type: ignore[index]


async def test_two_changes_due_together_apply_in_order(node: Node, clock: MockClock) -> None:
    at = node.wall.ms() + 5_000
    first = node.add(at, [{"op": "replace", "path": "/offVariation", "value": 0}],
                     fmt="json-patch")
    second = node.add(at, {"instructions": [{"kind": "turnFlagOff"}], "comment": "why"},
                      fmt="semantic", comment="freeze")
    await node.pub.wait_for(4)
    assert node.get(first.id).seq < node.get(second.id).seq  # type: ignore[operator]
    assert node.history()[0]["comment"] == f"scheduled change {second.id}: freeze; why"
    assert node.flag()["offVariation"] == 0 and node.flag()["on"] is False  # type: ignore[index]


async def test_cancelled_before_due_is_never_applied(node: Node, clock: MockClock) -> None:
    change = node.add(node.wall.ms() + 10_000, {"on": False})
    await trio.sleep(5)
    cancelled = node.db.run_write(partial(schedule_db.cancel, env="prod",
                                          change_id=change.id, who="bob",
                                          now_ms=node.wall.ms()))
    assert cancelled is not None and cancelled.status == "cancelled"
    node.scheduler.wake_nowait()
    await trio.sleep(3600)
    assert node.flag()["on"] is True and node.flag()["version"] == 1  # type: ignore[index]
    assert node.get(change.id).as_dict()["cancelledBy"] == "bob"
    with pytest.raises(schedule_db.NotPendingError):
        node.db.run_write(partial(schedule_db.cancel, env="prod", change_id=change.id,
                                  who="bob", now_ms=node.wall.ms()))


@pytest.mark.parametrize(("before_due", "patch", "fmt", "reason"), [
    ("delete", {"on": False}, "merge", "no longer exists"),
    ("edit", [{"op": "test", "path": "/on", "value": True},
              {"op": "replace", "path": "/on", "value": False}], "json-patch",
     "no longer applies"),
    ("edit", {"offVariation": 2}, "merge", "no longer validates"),
])
async def test_a_change_that_no_longer_applies_fails_and_is_not_applied(
        node: Node, clock: MockClock, before_due: str, patch: Any,
        fmt: str, reason: str) -> None:
    # offVariation 2 is valid at creation only with three variations.
    await node.writer.put("prod", "flags", "f", {**FLAG, "variations": [1, 2, 3]})
    change = node.add(node.wall.ms() + 10_000, patch, fmt=fmt)
    if before_due == "delete":
        await node.writer.delete("prod", "flags", "f")
    else:  # turned off by hand, with two variations again
        await node.writer.put("prod", "flags", "f", {**FLAG, "on": False})
    before = node.db.get_item("prod", "flags", "f")
    published = len(node.pub.msgs)
    await trio.sleep(60)
    failed = node.get(change.id)
    assert failed.status == "failed" and reason in (failed.reason or ""), failed
    assert failed.seq is None and failed.done_ms is not None
    assert node.db.get_item("prod", "flags", "f") == before
    assert len(node.pub.msgs) == published


async def test_missed_while_down_is_applied_at_start_once_and_late(
        tmp_path: Path, clock: MockClock) -> None:
    wall = Wall(clock)
    async with open_node(tmp_path, wall) as n:
        await prepare(n)
        change = n.add(wall.ms() + 3_600_000, {"on": False})
    wall.down_s = 7200.0  # stopped for two hours: its time passed an hour ago
    async with open_node(tmp_path, wall) as n:
        assert n.get(change.id).status == "pending"
        await n.pub.wait_for(1)
        done = n.get(change.id)
        assert done.status == "applied"
        assert 3_600_000 <= done.late_by_ms < 3_601_000  # type: ignore[operator]
        comment = n.history()[0]["comment"]
        assert comment == f"scheduled change {change.id}, applied late by " \
                          f"{done.late_by_ms} ms"
    async with open_node(tmp_path, wall) as n:  # and a third start does nothing more
        await trio.sleep(3600)
        assert n.flag()["version"] == 2 and len(n.history()) == 2  # type: ignore[index]
        assert len(n.pub.msgs) == 0


class Crash(BaseException):
    """The process dies here (not an Exception: nothing contains it)."""


def crash_after_commit(db: FlagDB) -> Callable[[list[ChangeRequest]], list[CommittedChange]]:
    real = db.commit

    def commit(batch: list[ChangeRequest]) -> list[CommittedChange]:
        results = real(batch)
        if any(req.also is not None for req in batch):
            raise Crash  # committed, and nobody heard of it
        return results
    return commit


def crash_before_commit(db: FlagDB) -> Callable[[list[ChangeRequest]], list[CommittedChange]]:
    real = db.commit

    def crash(*_: object) -> None:
        raise Crash

    def commit(batch: list[ChangeRequest]) -> list[CommittedChange]:
        # Die inside the transaction, after the flag and history rows were written.
        return real([dataclasses.replace(r, also=None if r.also is None else crash)
                     for r in batch])
    return commit


@pytest.mark.parametrize("crash", [crash_after_commit, crash_before_commit])
async def test_exactly_once_across_a_crash(
        tmp_path: Path, clock: MockClock,
        crash: Callable[[FlagDB], Callable[..., Any]]) -> None:
    wall = Wall(clock)
    async with open_node(tmp_path, wall) as n:
        await prepare(n)
    with pytest.raises(BaseExceptionGroup) as info:
        async with open_node(tmp_path, wall, commit=crash) as n:
            change = n.add(wall.ms() + 10_000, {"on": False})
            await trio.sleep_forever()
    assert info.group_contains(Crash)
    wall.down_s = 60.0
    async with open_node(tmp_path, wall) as n:
        await trio.sleep(60)
        await trio.sleep(3600)  # nothing more happens
        assert n.flag()["on"] is False and n.flag()["version"] == 2  # type: ignore[index]
        assert len(n.history()) == 2  # the put, then the scheduled change: once
        done = n.get(change.id)
        assert done.status == "applied"
        assert done.seq == n.history()[0]["seq"]
        # Applied before the crash, it was on time; applied after the restart, it is late.
        expected_late = 0 if crash is crash_after_commit else 60_000
        assert done.late_by_ms == expected_late


async def test_an_unexpected_failure_fails_that_change_only(
        node: Node, clock: MockClock) -> None:
    def broken(*_: object, **__: object) -> Any:
        raise RuntimeError("bug")

    change = node.add(node.wall.ms() + 1_000, {"on": False})
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr("store.scheduler.parse_patch", broken)
        await trio.sleep(60)
    failed = node.get(change.id)
    assert failed.status == "failed" and "RuntimeError" in (failed.reason or "")
    later = node.add(node.wall.ms() + 1_000, {"on": False})  # the actor goes on
    await node.pub.wait_for(3)
    assert node.get(later.id).status == "applied"
