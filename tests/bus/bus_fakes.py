"""Test doubles for the bus tests: an in-memory store (a SnapshotSource holding dict state), a
recording ChangeSink, a publisher wrapper that drops chosen seqs on purpose, and a helper that
runs the real publisher and snapshot server of one store "node"."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import trio

from bus.envelope import (
    Change,
    EnvChange,
    EnvironmentInfo,
    EnvSnapshot,
    ItemChange,
    ItemKind,
    Snapshot,
)
from bus.publisher import BusPublisher
from bus.snapshot_server import serve_snapshots
from bus.store_ports import ChangePublisher

ItemId = tuple[str, str]  # (kind, key)
State = dict[str, tuple[EnvironmentInfo, dict[ItemId, ItemChange]]]


def env_info(key: str) -> EnvironmentInfo:
    return EnvironmentInfo(key, key.title(), f"sdk-{key}", f"mob-{key}", f"cid-{key}")


class FakeStore:
    """The store's state as dicts, numbered by seq like the real one. Thread-safe, because the
    snapshot server reads it from a worker thread."""

    def __init__(self) -> None:
        self.seq = 0
        self._lock = threading.Lock()
        self._state: State = {}
        self.snapshots_served = 0
        # Test hooks: hold a snapshot (already read) until `release` is set.
        self.hold: threading.Event | None = None
        self.captured = threading.Event()
        self.before_snapshot: Callable[[], None] | None = None

    def create_env(self, key: str) -> EnvChange:
        with self._lock:
            self.seq += 1
            info = env_info(key)
            self._state[key] = (info, self._state.get(key, (info, {}))[1])
            return EnvChange(self.seq, info)

    def commit(self, env: str, items: Iterable[tuple[ItemKind, str, bytes | None]]) -> Change:
        """Store new versions of items (data None deletes) as one change."""
        with self._lock:
            self.seq += 1
            _, current = self._state[env]
            changed = []
            for kind, key, data in items:
                old = current.get((kind, key))
                item = ItemChange(kind, key, 1 if old is None else old.version + 1, data)
                current[(kind, key)] = item
                changed.append(item)
            return Change(self.seq, env, tuple(changed))

    def view(self) -> State:
        with self._lock:
            return {k: (info, dict(items)) for k, (info, items) in self._state.items()}

    # SnapshotSource
    def snapshot(self, env: str | None) -> Snapshot:
        if self.before_snapshot is not None:
            self.before_snapshot()
        with self._lock:
            if env is not None and env not in self._state:
                raise KeyError(env)
            envs = tuple(
                EnvSnapshot(info, tuple(items.values()))
                for key, (info, items) in sorted(self._state.items())
                if env is None or key == env
            )
            snap = Snapshot(self.seq, "source-epoch", envs)
            self.snapshots_served += 1
        if self.hold is not None:
            self.captured.set()
            assert self.hold.wait(10), "test never released the held snapshot"
        return snap

    def latest_seq(self) -> int:
        return self.seq


class RecordingSink:
    """A ChangeSink that keeps the state it was given and the order of calls."""

    def __init__(self, *, change_delay: float = 0.0) -> None:
        self.change_delay = change_delay
        self.state: State = {}
        self.seq: int | None = None
        self.events: list[tuple[str, int]] = []  # ("snap", seq) / ("chg", seq)
        self.order_violations: list[str] = []
        self._changed = trio.Event()

    async def apply_change(self, msg: Change | EnvChange) -> None:
        if self.change_delay:
            await trio.sleep(self.change_delay)
        if self.seq is None or msg.seq != self.seq + 1:
            self.order_violations.append(f"change {msg.seq} applied after {self.seq}")
        if isinstance(msg, EnvChange):
            self.state[msg.env.key] = (msg.env, self.state.get(msg.env.key, (msg.env, {}))[1])
        else:
            for item in msg.items:
                self.state[msg.env][1][(item.kind, item.key)] = item
        self._note("chg", msg.seq)

    async def apply_snapshot(self, snapshot: Snapshot, *, full: bool) -> None:
        assert full
        self.state = {
            e.env.key: (e.env, {(i.kind, i.key): i for i in e.items}) for e in snapshot.envs
        }
        self._note("snap", snapshot.seq)
        await trio.lowlevel.checkpoint()

    def _note(self, what: str, seq: int) -> None:
        self.seq = seq
        self.events.append((what, seq))
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (unbounded: callers wrap it in trio.fail_after) until ``predicate`` holds."""
        while not predicate():
            await self._changed.wait()

    async def wait_for_state(self, store: FakeStore) -> None:
        await self.wait_until(lambda: self.seq == store.seq and self.state == store.view())


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` (over statistics() records, which have no change event); callers
    bound the wait with trio.fail_after."""
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(0.005)


class DroppingPublisher:
    """A ChangePublisher that loses the chosen seqs, as an overloaded nng link would."""

    def __init__(self, inner: ChangePublisher, drop: Iterable[int]) -> None:
        self.inner = inner
        self.drop = set(drop)
        self.dropped: list[int] = []

    async def publish(self, msg: Change | EnvChange) -> None:
        if msg.seq in self.drop:
            self.dropped.append(msg.seq)
            await trio.lowlevel.checkpoint()
            return
        await self.inner.publish(msg)


class StoreNode:
    """The store side of the bus for one FakeStore: real BusPublisher and snapshot server."""

    def __init__(
        self, store: FakeStore, bus: str, snap: str, *, epoch: str = "epoch-1",
        heartbeat_interval: float = 0.05,
    ) -> None:  # fmt: skip
        self.store = store
        self.bus = bus
        self.snap = snap
        self.epoch = epoch
        self.heartbeat_interval = heartbeat_interval
        self.publisher: BusPublisher | None = None
        self.scope = trio.CancelScope()
        self.publisher_scope = trio.CancelScope()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with self.scope:
            publisher = BusPublisher(
                self.bus, epoch=self.epoch, initial_seq=self.store.seq,
                heartbeat_interval=self.heartbeat_interval,
            )  # fmt: skip
            async with trio.open_nursery() as nursery:
                await nursery.start(self._run_publisher, publisher)
                assert publisher.bound_address is not None
                self.bus = publisher.bound_address
                self.snap = await nursery.start(
                    partial(serve_snapshots, self.snap, self.store, epoch=self.epoch)
                )
                self.publisher = publisher
                task_status.started(self)

    async def _run_publisher(
        self, publisher: BusPublisher, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        with self.publisher_scope:
            await publisher.run(task_status=task_status)

    def stop(self) -> None:
        """Stop publisher and snapshot server (their sockets close)."""
        self.scope.cancel()

    def stop_publishing(self) -> None:
        """Stop only the publisher: no more changes, no more heartbeats."""
        self.publisher_scope.cancel()

    async def publish(self, msg: Change | EnvChange) -> None:
        assert self.publisher is not None
        await self.publisher.publish(msg)
