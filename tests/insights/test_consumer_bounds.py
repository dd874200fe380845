"""Insights stay bounded (issue 12, finding 5): the de-duplication rows are pruned by age, only
flags the environment has are counted (the rest dropped, counted, logged once), every table
a client can grow has a cap, and the queries read through their indexes.

The consumer runs for real on a real spool (frames written by ``ingest.spool``) and a real
SQLite file; the catalog is the in-memory ``FlagCatalog``."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from ingest import spool
from ingest.records import Payload, PayloadKind, Source, encode_records
from insights.consumer import (
    MAX_ENV_LABELS,
    OTHER_ENVS,
    InsightsConfig,
    InsightsConsumer,
    InsightsService,
)
from insights.fold import Contribution, fold_record
from insights.known import SAMPLE_KEYS, KnownFlags
from insights.metrics import InsightsCollector
from insights.store import FLAG_SQL, LAST_EVALUATED_SQL, PRUNE_SQL, InsightsStore
from node import insights_cli as cli

DAY_MS = 86_400_000
DAY1 = 1_772_366_400_000  # 2026-03-01 12:00 UTC
KNOWN = ["f1", "f2"]


class Catalog:
    """The environment "prod" has the flags in ``keys``; counts its reads."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.reads = 0

    def flag_keys(self, env: str) -> list[str] | None:
        self.reads += 1
        return list(self.keys) if env == "prod" else None


def summary(pid: str, end_ms: int, flags: dict[str, int], env: str = "prod") -> Payload:
    event = {
        "kind": "summary",
        "startDate": end_ms - 1000,
        "endDate": end_ms,
        "features": {k: {"counters": [{"variation": 1, "count": n}]} for k, n in flags.items()},
    }
    return Payload(env, PayloadKind.ANALYTICS, Source.SERVER, pid, end_ms, (event,))


def write(data_dir: Path, payloads: list[Payload]) -> None:
    writer = spool.SpoolWriter(data_dir / "spool" / "worker-0")
    writer.open()
    frames = [spool.encode_frame(r) for p in payloads for r in encode_records(p)]
    writer.append(b"".join(frames))
    writer.close()


def unit(pid: str, day_ms: int, count: int = 1) -> list[Contribution]:
    lines: list[dict[str, Any]] = [
        {"id": f"{pid}:0", "env": "prod", "kind": "analytics", "received": day_ms,
         "event": {"kind": "summary", "endDate": day_ms,
                   "features": {"f1": {"counters": [{"variation": 0, "count": count}]}}}}
    ]
    return fold_record(lines)


def seen_rows(store: InsightsStore) -> int:
    return int(store._db.execute("SELECT count(*) FROM seen_records").fetchone()[0])


# -- pruning ----------------------------------------------------------------------------


def test_prune_forgets_old_rows_and_keeps_recent_ones(tmp_path: Path) -> None:
    store = InsightsStore(tmp_path / "i.sqlite3")
    now_ms = DAY1 + 20 * DAY_MS
    assert store.apply([unit("old", DAY1)], "src", "1", DAY1) == 1
    assert store.apply([unit("new", DAY1)], "src", "2", now_ms - DAY_MS) == 1
    wall = now_ms / 1000
    consumer = InsightsConsumer(
        InsightsConfig(tmp_path), InsightsService(store), wall_clock=lambda: wall
    )
    assert trio.run(consumer.prune_once) == 1
    assert seen_rows(store) == 1 and consumer.service.seen_pruned == 1
    # The recent row still de-duplicates; the old one is gone (its copy would count again).
    assert store.apply([unit("new", DAY1)], "src", "3", now_ms) == 0
    assert store.apply([unit("old", DAY1)], "src", "4", now_ms) == 1
    store.close()


def test_prune_chunks_are_bounded(tmp_path: Path) -> None:
    store = InsightsStore(tmp_path / "i.sqlite3")
    store.apply([unit(f"p{i}", DAY1) for i in range(25)], "src", "1", DAY1)
    assert [store.prune_seen(DAY1 // DAY_MS + 1, 10) for _ in range(4)] == [10, 10, 5, 0]
    store.close()


async def inline(fn: Callable[..., Any], *args: Any, limiter: object = None) -> Any:
    """The consumer's ``run_sync`` on a mock clock: the real store, called without a thread."""
    return fn(*args)


async def test_the_consumer_prunes_periodically(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A row counted at hour 1 of a UTC day is pruned by the first hourly pass once 8 days
    have begun (7 days of retention, counted in whole days): at 191 h, not an hour before."""
    store = InsightsStore(tmp_path / "i.sqlite3")
    start_wall = (DAY1 // DAY_MS) * 86_400 + 3600.0
    store.apply([unit("p", DAY1)], "src", "1", int(start_wall * 1000))
    service = InsightsService(store, Catalog(KNOWN))
    config = InsightsConfig(tmp_path, poll_interval_s=600, prune_interval_s=3600)
    consumer = InsightsConsumer(
        config, service, wall_clock=lambda: start_wall + trio.current_time(), run_sync=inline
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(consumer.run)
        await trio.sleep(191 * 3600 - 1)
        assert seen_rows(store) == 1 and service.seen_pruned == 0
        await trio.sleep(2)
        assert seen_rows(store) == 0 and service.seen_pruned == 1
        nursery.cancel_scope.cancel()
    store.close()


# -- unknown flags -------------------------------------------------------------------------


async def test_unknown_flags_are_not_stored_and_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = int(time.time() * 1000)
    write(tmp_path, [
        summary("a", now, {"f1": 3, "invented-1": 5, "invented-2": 7}),
        summary("b", now, {"f2": 1, "invented-3": 1}),
        summary("c", now, {"f1": 1}, env="gone"),  # an environment deleted meanwhile
    ])
    store = await trio.to_thread.run_sync(InsightsStore, tmp_path / "insights.sqlite3")
    service = InsightsService(store, Catalog(KNOWN))
    consumer = InsightsConsumer(InsightsConfig(tmp_path), service)
    with caplog.at_level(logging.WARNING, logger="flagstream.insights"):
        assert await consumer.poll_once() == 3
        write(tmp_path, [summary("d", now, {"invented-4": 1})])  # same episode: no new line
        assert await consumer.poll_once() == 1
    assert store.last_evaluated("prod") == {"f1": now, "f2": now}
    assert store.flag("prod", "invented-1") is None and store.last_evaluated("gone") == {}
    rows = store._db.execute("SELECT DISTINCT flag FROM counts").fetchall()
    assert sorted(r[0] for r in rows) == ["f1", "f2"]
    assert service.statistics().unknown_flags == (("gone", 1), ("prod", 4))
    warnings = [r for r in caplog.records if "does not have" in r.getMessage()]
    assert len(warnings) == 1 and "prod/invented-1" in warnings[0].getMessage()
    metrics = {m.name: m for m in InsightsCollector(service).collect()}
    samples = metrics["flagstream_insights_unknown_flags"].samples
    assert {(s.name, s.labels["env"], s.value) for s in samples} == {
        ("flagstream_insights_unknown_flags_total", "gone", 1),
        ("flagstream_insights_unknown_flags_total", "prod", 4),
    }
    store.close()


def test_a_flag_created_a_moment_ago_is_counted_at_once() -> None:
    catalog = Catalog(["f1"])
    known = KnownFlags(catalog, refresh_s=5.0, miss_refresh_s=1.0)
    parts = unit("p", DAY1)
    assert known.split(parts, now=100.0).kept == parts
    catalog.keys.append("new")
    fresh = [Contribution("p:1", "prod", "new", "2026-03-01", 0, 1, DAY1)]
    assert known.split(fresh, now=100.5).kept == []  # read half a second ago: not again yet
    assert known.split(fresh, now=101.0).kept == fresh  # a miss a second later reads again
    assert catalog.reads == 2


# -- caps ------------------------------------------------------------------------------------


def test_a_flood_of_invented_keys_costs_one_catalog_read_per_interval() -> None:
    catalog = Catalog(KNOWN)
    known = KnownFlags(catalog, miss_refresh_s=1.0, refresh_s=5.0)
    flood = [Contribution("p:0", "prod", f"k{i}", "2026-03-01", 0, 1, DAY1) for i in range(10_000)]
    for step in range(10):
        split = known.split(flood, now=step * 0.25)
        assert split.kept == [] and split.unknown == {"prod": 10_000}
        assert len(split.sample) == SAMPLE_KEYS
    assert catalog.reads == 3  # at 0, 1.0 and 2.0 s


def test_the_catalog_cache_holds_at_most_max_envs() -> None:
    known = KnownFlags(Catalog(KNOWN), max_envs=3)
    for i in range(10):
        known.split([Contribution("p:0", f"env{i}", "f1", "2026-03-01", 0, 1, DAY1)], now=0.0)
    assert len(known) == 3


def test_unknown_flag_counters_are_capped_by_environment(tmp_path: Path) -> None:
    from insights.known import Split

    service = InsightsService(InsightsStore(tmp_path / "i.sqlite3"), Catalog(KNOWN))
    for i in range(MAX_ENV_LABELS + 50):
        service.count_unknown(Split([], {f"env{i}": 2}))
    labels = dict(service.statistics().unknown_flags)
    assert len(labels) == MAX_ENV_LABELS + 1 and labels[OTHER_ENVS] == 100
    service.store.close()


@pytest.mark.parametrize(
    ("end_ms", "variation", "count", "expected"),
    [
        (DAY1, 1, 5, ("2026-03-01", 1, 5)),
        (DAY1 + 400 * DAY_MS, 1, 5, ("2026-03-01", 1, 5)),  # far future: dated when received
        (DAY1 - 400 * DAY_MS, 1, 5, ("2026-03-01", 1, 5)),  # far past: the same
        (DAY1 - 3 * DAY_MS, 1, 5, ("2026-02-26", 1, 5)),  # late mobile events: believed
        (DAY1, 10**6, 5, ("2026-03-01", -1, 5)),  # an index no flag has: "no variation"
        (DAY1, 1, 2**62, ("2026-03-01", 1, 1_000_000_000)),  # sums stay 64-bit
    ],
)
def test_client_dates_variations_and_counts_cannot_grow_the_tables(
    end_ms: int, variation: int, count: int, expected: tuple[str, int, int]
) -> None:
    lines: list[dict[str, Any]] = [
        {"id": "p:0", "env": "prod", "kind": "analytics", "received": DAY1,
         "event": {"kind": "summary", "endDate": end_ms,
                   "features": {"f1": {"counters": [{"variation": variation, "count": count}]}}}}
    ]
    (c,) = fold_record(lines)
    assert (c.day, c.variation, c.count) == expected


# -- indexes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params", "plan"),
    [
        (LAST_EVALUATED_SQL, ("prod",), "SEARCH flag_last USING PRIMARY KEY (env=?)"),
        (FLAG_SQL, ("prod", "f1"), "SEARCH counts USING PRIMARY KEY (env=? AND flag=?)"),
        (PRUNE_SQL, (1, 10), "SEARCH seen_records USING COVERING INDEX seen_records_by_age"),
    ],
)
def test_queries_read_through_an_index(
    tmp_path: Path, sql: str, params: tuple[object, ...], plan: str
) -> None:
    store = InsightsStore(tmp_path / "i.sqlite3")
    rows = store._db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    details = [str(r[-1]) for r in rows]
    store.close()
    assert any(d.startswith(plan) for d in details), details
    assert not any(d.startswith("SCAN") for d in details), details


# -- replay and migration ----------------------------------------------------------------


async def test_replay_after_pruning_does_not_double_count(tmp_path: Path) -> None:
    """Records of two days counted, every de-duplication row pruned, then a replay of the
    second day: the first day is not counted again, the second is rebuilt exactly."""
    write(tmp_path, [summary("a", DAY1, {"f1": 3}), summary("b", DAY1 + DAY_MS, {"f1": 4}),
                     summary("b", DAY1 + DAY_MS, {"f1": 4})])  # an SDK retry on another worker
    store = await trio.to_thread.run_sync(InsightsStore, tmp_path / "insights.sqlite3")
    wall = [(DAY1 + DAY_MS) / 1000]
    consumer = InsightsConsumer(
        InsightsConfig(tmp_path), InsightsService(store), wall_clock=lambda: wall[0]
    )
    assert await consumer.poll_once() == 3
    wall[0] += 30 * 86_400
    assert await consumer.prune_once() == 2
    before = store.flag("prod", "f1")
    store.close()
    assert before is not None and before.total == 7
    argv = ["replay", "--since", "2026-03-02", "--data-dir", str(tmp_path)]
    assert await trio.to_thread.run_sync(cli.main, argv) == 0
    store = InsightsStore(tmp_path / "insights.sqlite3")
    after = store.flag("prod", "f1")
    store.close()
    assert after is not None and after.to_json() == before.to_json()


def test_a_store_from_before_drops_its_per_event_table(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE counts (env TEXT NOT NULL, flag TEXT NOT NULL, day TEXT NOT NULL,"
        " variation INTEGER NOT NULL, count INTEGER NOT NULL, last_ms INTEGER NOT NULL,"
        " PRIMARY KEY (env, flag, day, variation)) WITHOUT ROWID;"
        "CREATE TABLE seen (id TEXT PRIMARY KEY, day TEXT NOT NULL) WITHOUT ROWID;"
        "INSERT INTO counts VALUES ('prod', 'f1', '2026-03-01', 0, 4, 77);"
        "INSERT INTO seen VALUES ('p:0', '2026-03-01');"
    )
    db.commit()
    db.close()
    store = InsightsStore(path)
    assert store.last_evaluated("prod") == {"f1": 77}
    tables = store._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert "seen" not in {t[0] for t in tables}
    store.close()


async def test_the_cli_counts_only_the_flags_of_the_flag_store(tmp_path: Path) -> None:
    """``flagstream insights replay`` on a data dir with a real flag store: its flags only."""
    from store.db import FlagDB
    from store.normalize import normalize
    from store.records import ChangeRequest, ItemWrite

    flags = FlagDB(tmp_path)
    flags.create_environment("prod", "Production")
    flags.commit([ChangeRequest("prod", "test", (
        ItemWrite("flags", "f1", normalize("flags", "f1", {}, salt="s")),))])
    flags.close()
    write(tmp_path, [summary("a", DAY1, {"f1": 3, "invented": 5})])
    argv = ["replay", "--since", "2026-03-01", "--data-dir", str(tmp_path)]
    assert await trio.to_thread.run_sync(cli.main, argv) == 0
    store = InsightsStore(tmp_path / "insights.sqlite3")
    assert store.last_evaluated("prod") == {"f1": DAY1}
    store.close()
