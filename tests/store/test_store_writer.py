"""The writer actor on a mock clock, with real SQLite and an in-memory publisher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from bus.envelope import Change, EnvChange
from store.db import FlagDB
from store.normalize import normalize
from store.records import ItemWrite
from store.writer import (
    CommitFailedError,
    ConflictError,
    InvalidError,
    NotFoundError,
    Writer,
    WriteResult,
)

FLAG = {"variations": [True, False], "on": True, "fallthrough": {"variation": 0}}


class RecordingPublisher:
    """Records (time since creation, message)."""

    def __init__(self) -> None:
        self.log: list[tuple[float, Change | EnvChange]] = []
        self.t0 = trio.current_time()

    async def publish(self, msg: Change | EnvChange) -> None:
        self.log.append((trio.current_time() - self.t0, msg))

    @property
    def seqs(self) -> list[int]:
        return [m.seq for _, m in self.log]


class Harness:
    def __init__(self, db: FlagDB, pub: RecordingPublisher, writer: Writer) -> None:
        self.db, self.pub, self.writer = db, pub, writer
        self.done: dict[str, tuple[float, Any]] = {}  # name -> (time since t0, result)
        self.t0 = trio.current_time()

    def now(self) -> float:
        return trio.current_time() - self.t0

    async def call(self, name: str, coro_fn: Any, *args: Any, **kw: Any) -> None:
        try:
            result = await coro_fn(*args, **kw)
        except Exception as exc:
            result = exc
        self.done[name] = (self.now(), result)


@pytest.fixture
async def h(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> AsyncIterator[Harness]:
    db = FlagDB(tmp_path)
    db.create_environment("prod", "Production")
    writer = Writer(db, pub := RecordingPublisher(), window_s=0.005)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield Harness(db, pub, writer)
        nursery.cancel_scope.cancel()
    db.close()


async def test_burst_to_one_key_is_one_change(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    await h.writer.put("prod", "flags", "f", FLAG)
    start, base_publishes = h.now(), len(h.pub.log)
    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(
                h.call, f"p{i}", h.writer.patch, "prod", "flags", "f", {"offVariation": i % 2}
            )
    assert {t - start for t, _ in h.done.values()} == {0.005}
    results = [r for _, r in h.done.values()]
    assert all(isinstance(r, WriteResult) for r in results)
    assert {r.item.version for r in results} == {2}
    assert len(h.pub.log) - base_publishes == 1
    stats = h.writer.statistics()
    assert (stats.writes, stats.commits, stats.publishes) == (201, 2, 2)


async def test_keys_due_together_commit_in_one_transaction(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        for key in ("a", "b", "c"):
            nursery.start_soon(h.call, key, h.writer.put, "prod", "flags", key, FLAG)
    assert {t for t, _ in h.done.values()} == {0.005}
    assert h.writer.statistics().commits == 1
    assert h.pub.seqs == [2, 3, 4]
    assert [t for t, _ in h.pub.log] == [pytest.approx(0.005)] * 3


async def test_staggered_keys_commit_one_window_after_their_first_write(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    async def later() -> None:
        await trio.sleep(0.003)
        await h.call("b", h.writer.put, "prod", "flags", "b", FLAG)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.call, "a", h.writer.put, "prod", "flags", "a", FLAG)
        nursery.start_soon(later)
    assert h.done["a"][0] == pytest.approx(0.005)
    assert h.done["b"][0] == pytest.approx(0.008)
    assert h.pub.seqs == [2, 3] and h.writer.statistics().commits == 2


async def test_acknowledged_only_after_commit_then_published(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    result = await h.writer.put("prod", "flags", "f", FLAG)
    assert result.created and result.item.version == 1
    assert h.db.get_item("prod", "flags", "f") == result.item  # committed before the answer
    (_, msg) = h.pub.log[-1]
    assert isinstance(msg, Change) and msg.items[0].data == result.item.json
    again = await h.writer.put("prod", "flags", "f", FLAG)
    assert not again.created and again.item.version == 2


async def test_bad_patch_is_refused_at_once_and_leaves_the_pending_state(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    await h.writer.put("prod", "flags", "f", FLAG)
    start = h.now()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            h.call, "good1", h.writer.patch, "prod", "flags", "f", {"offVariation": 1}
        )
        nursery.start_soon(h.call, "bad", h.writer.patch, "prod", "flags", "f", {"offVariation": 5})
        nursery.start_soon(h.call, "good2", h.writer.patch, "prod", "flags", "f", {"on": False})
    t_bad, bad = h.done["bad"]
    assert isinstance(bad, InvalidError) and t_bad == pytest.approx(start)
    assert "offVariation: variation index 5 is out of range" in bad.errors[0]
    t_good, good = h.done["good2"]
    assert t_good - start == pytest.approx(0.005)
    assert good.item.as_dict()["offVariation"] == 1 and good.item.as_dict()["on"] is False
    assert h.done["good1"][1] == good


async def test_not_found_and_conflict(h: Harness, autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(NotFoundError, match='environment "nope" not found'):
        await h.writer.put("nope", "flags", "f", FLAG)
    with pytest.raises(NotFoundError, match="flag not found"):
        await h.writer.patch("prod", "flags", "f", {"on": True})
    with pytest.raises(NotFoundError, match="segment not found"):
        await h.writer.delete("prod", "segments", "s")
    with pytest.raises(ConflictError):
        await h.writer.create_environment("prod", "Again")
    await h.writer.put("prod", "flags", "f", FLAG)
    await h.writer.delete("prod", "flags", "f")
    with pytest.raises(NotFoundError):
        await h.writer.delete("prod", "flags", "f")
    assert h.pub.seqs == [2, 3]


async def test_environment_creation_is_published(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    env = await h.writer.create_environment("test", "Test", secure_mode=True)
    (t, msg) = h.pub.log[-1]
    assert isinstance(msg, EnvChange) and msg.env == env and msg.seq == 2
    assert t == pytest.approx(0.0)  # not coalesced: committed at once
    await h.writer.put("test", "flags", "f", FLAG)


async def test_import_flushes_pending_writes_first(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    async def import_later() -> None:
        await trio.sleep(0.001)
        items = [ItemWrite("flags", k, normalize("flags", k, FLAG, salt="s")) for k in ("x", "y")]
        await h.call("import", h.writer.import_items, "prod", items)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.call, "a", h.writer.put, "prod", "flags", "a", FLAG)
        nursery.start_soon(import_later)
    assert h.done["a"][0] == pytest.approx(0.001)  # flushed early by the import
    assert h.done["import"][0] == pytest.approx(0.001)
    assert h.pub.seqs == [2, 3] and h.writer.statistics().commits == 1
    imported = h.done["import"][1]
    assert [i.key for i in imported.change.items] == ["x", "y"]


async def test_cancellation_commits_what_was_accepted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    db = FlagDB(tmp_path)
    db.create_environment("prod", "P")
    pub = RecordingPublisher()
    writer = Writer(db, pub, window_s=10.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        nursery.start_soon(writer.put, "prod", "flags", "f", FLAG)
        await trio.sleep(1.0)
        assert db.get_item("prod", "flags", "f") is None  # still in its window
        nursery.cancel_scope.cancel()
    stored = db.get_item("prod", "flags", "f")
    assert stored is not None and stored.version == 1
    db.close()


async def test_removing_an_environment_commits_its_pending_writes_first(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    await h.writer.create_environment("other", "Other")

    async def remove_soon() -> None:
        await trio.sleep(0.001)  # inside the coalescing window of both writes
        await h.call("remove", h.writer.delete_environment, "prod")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.call, "prod-write", h.writer.put, "prod", "flags", "f", FLAG)
        nursery.start_soon(h.call, "other-write", h.writer.put, "other", "flags", "f", FLAG)
        nursery.start_soon(remove_soon)
    results = {name: r for name, (_, r) in h.done.items()}
    # Without the flush, the prod write would commit after its environment is gone: the
    # foreign key refuses it, and the whole batch (other's write too) fails with it.
    assert isinstance(results["prod-write"], WriteResult)
    assert isinstance(results["other-write"], WriteResult)
    assert h.writer.statistics().commit_failures == 0
    removed = h.pub.log[-1][1]
    assert isinstance(removed, EnvChange) and removed.removed and removed.env.key == "prod"
    assert h.pub.seqs == sorted(h.pub.seqs)
    with pytest.raises(NotFoundError):
        await h.writer.put("prod", "flags", "g", FLAG)
    assert h.db.get_environment("prod") is None and h.db.list_items("prod", "flags") == []


async def test_a_write_that_fails_unexpectedly_is_refused_alone(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug in a patch applier (here: any exception) refuses that one write with a 503-class
    # error; the writer lives on and the next write commits.
    import store.coalescer

    def broken(state: object, patch: object) -> object:
        raise RuntimeError("applier bug")

    await h.writer.put("prod", "flags", "f", FLAG)
    monkeypatch.setattr(store.coalescer, "apply_patch", broken)
    with pytest.raises(CommitFailedError, match="could not apply this write"):
        await h.writer.patch("prod", "flags", "f", {"on": False})
    monkeypatch.undo()
    after = await h.writer.patch("prod", "flags", "f", {"on": False})
    assert after.item.as_dict()["on"] is False and after.item.version == 2
