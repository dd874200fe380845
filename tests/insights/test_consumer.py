"""Flag insights: the fold (table-driven), and the consumer end to end from the spool and
from Kinesis (moto), through the admin routes over a real socket, with duplicates and replay."""

from __future__ import annotations

import datetime as dt
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from ingest.actor import IngestActor, IngestConfig, IngestHandle
from ingest.records import Payload, PayloadKind, Source
from insights.consumer import InsightsConfig, InsightsConsumer, InsightsService, run_insights
from insights.fold import Contribution, fold_line, fold_record
from insights.routes import register_insights_routes
from insights.store import InsightsStore
from node import insights_cli as cli

DAY1 = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp() * 1000)
DAY2 = DAY1 + 86_400_000
NOW_MS = DAY2 + 3_600_000  # when the consumer counts, in the store tests
DAY2_ISO = "2026-03-02T12:00:00.000Z"


def line(event: dict[str, Any], id_: str = "p:0", kind: str = "analytics") -> dict[str, Any]:
    return {"v": 1, "id": id_, "env": "prod", "kind": kind, "received": DAY1, "event": event}


SUMMARY = {
    "kind": "summary",
    "startDate": DAY1 - 1000,
    "endDate": DAY1,
    "features": {
        "f1": {
            "default": False,
            "counters": [
                {"variation": 0, "version": 1, "value": False, "count": 3},
                {"variation": 1, "version": 1, "value": True, "count": 2},
                {"unknown": True, "value": False, "count": 1},
            ],
        },
        "f2": {"counters": [{"variation": 1, "count": 4}]},
    },
}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            line(SUMMARY),
            [
                Contribution("p:0", "prod", "f1", "2026-03-01", 0, 3, DAY1),
                Contribution("p:0", "prod", "f1", "2026-03-01", 1, 2, DAY1),
                Contribution("p:0", "prod", "f1", "2026-03-01", -1, 1, DAY1),
                Contribution("p:0", "prod", "f2", "2026-03-01", 1, 4, DAY1),
            ],
        ),
        (
            line({"kind": "feature", "key": "f1", "variation": 1, "creationDate": DAY2}),
            [Contribution("p:0", "prod", "f1", "2026-03-02", 1, 0, DAY2)],
        ),
        (line({"kind": "debug", "key": "f1", "variation": 1}), []),
        (line({"kind": "custom", "key": "f1"}), []),
        (line({"kind": "diagnostic-init"}, kind="diagnostic"), []),
        (line({"kind": "summary", "features": {"f": {"counters": [{"count": "x"}, 7]}}}), []),
        ({"id": 5, "env": "prod", "event": SUMMARY, "kind": "analytics"}, []),
    ],
)
def test_fold(lines: dict[str, Any], expected: list[Contribution]) -> None:
    assert fold_line(lines) == expected


def test_store_counts_each_event_once(tmp_path: Path) -> None:
    store = InsightsStore(tmp_path / "i.sqlite3")
    parts = [fold_record([line(SUMMARY, "a:0")]), fold_record([line(SUMMARY, "b:0")])] * 2
    assert store.apply(parts, "src", "1", NOW_MS) == 2
    assert store.apply(parts, "src", "2", NOW_MS) == 0  # duplicate delivery
    found = store.flag("prod", "f1")
    assert found is not None
    assert found.to_json() == {
        "key": "f1",
        "lastEvaluated": DAY1,
        "totalEvaluations": 12,
        "variations": [
            {"variation": None, "count": 2},
            {"variation": 0, "count": 6},
            {"variation": 1, "count": 4},
        ],
        "days": [{"day": "2026-03-01", "count": 12}],
    }
    assert store.checkpoint("src") == "2"
    store.reset_since("2026-03-01")
    assert store.flag("prod", "f1") is None and store.checkpoint("src") is None
    store.close()


class Catalog:
    def flag_keys(self, env: str) -> list[str] | None:
        return ["f1", "f2", "never"] if env == "prod" else None


def summary_payload(pid: str, counts: tuple[int, int], end_ms: int) -> Payload:
    event = {
        "kind": "summary",
        "startDate": end_ms - 1000,
        "endDate": end_ms,
        "features": {
            "f1": {
                "counters": [
                    {"variation": 0, "count": counts[0]},
                    {"variation": 1, "count": counts[1]},
                ]
            }
        },
    }
    feature = {"kind": "feature", "key": "f1", "variation": 1, "creationDate": end_ms - 10}
    return Payload("prod", PayloadKind.ANALYTICS, Source.SERVER, pid, end_ms, (feature, event))


async def submit_fixture_payloads(handle: IngestHandle, other: IngestHandle) -> None:
    await handle.submit(summary_payload("s1", (3, 2), DAY1))
    await handle.submit(summary_payload("s2", (1, 4), DAY2))
    # An SDK retry that reached another worker: same payload ID, so counted once.
    await other.submit(summary_payload("s2", (1, 4), DAY2))


EXPECTED_F1 = {
    "key": "f1",
    "lastEvaluated": DAY2,
    "totalEvaluations": 10,
    "variations": [{"variation": 0, "count": 4}, {"variation": 1, "count": 6}],
    "days": [{"day": "2026-03-01", "count": 5}, {"day": "2026-03-02", "count": 5}],
}


async def serve_admin(nursery: trio.Nursery, service: InsightsService) -> str:
    app = QuartTrio("test-admin")
    register_insights_routes(app, service)
    hyper = HyperConfig()
    hyper.bind = ["127.0.0.1:0"]
    hyper.accesslog = hyper.errorlog = None
    binds = await nursery.start(partial(serve, app, hyper))
    return str(binds[0])


async def wait_for_total(service: InsightsService, total: int) -> None:
    with trio.fail_after(30):
        for _ in range(3000):
            found = await trio.to_thread.run_sync(service.store.flag, "prod", "f1")
            if found is not None and found.total >= total:
                return
            await trio.sleep(0.02)


async def test_spool_insights_through_admin_routes(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(IngestActor(IngestConfig(tmp_path, 0)).run)
        other = await nursery.start(IngestActor(IngestConfig(tmp_path, 1)).run)
        await submit_fixture_payloads(handle, other)
        config = InsightsConfig(tmp_path, poll_interval_s=0.02)
        service = await nursery.start(partial(run_insights, config, Catalog()))
        base = await serve_admin(nursery, service)
        await wait_for_total(service, 10)
        async with httpx.AsyncClient(base_url=base) as client:
            resp = await client.get("/api/v1/environments/prod/flags/f1/insights")
            assert resp.status_code == 200
            assert resp.json() == {**EXPECTED_F1, "lastEvaluatedAt": DAY2_ISO}
            never = await client.get("/api/v1/environments/prod/flags/never/insights")
            assert never.json() == {
                "key": "never",
                "lastEvaluated": None,
                "lastEvaluatedAt": None,
                "totalEvaluations": 0,
                "variations": [],
                "days": [],
            }
            stale = await client.get("/api/v1/environments/prod/insights/stale?days=7")
            assert stale.json() == {
                "days": 7,
                "items": [
                    {"key": "f2", "lastEvaluated": None, "lastEvaluatedAt": None},
                    {"key": "never", "lastEvaluated": None, "lastEvaluatedAt": None},
                    {"key": "f1", "lastEvaluated": DAY2, "lastEvaluatedAt": DAY2_ISO},
                ],
            }
            for path, status in [
                ("/api/v1/environments/prod/flags/nope/insights", 404),
                ("/api/v1/environments/qa/flags/f1/insights", 404),
                ("/api/v1/environments/qa/insights/stale", 404),
                ("/api/v1/environments/prod/insights/stale?days=x", 400),
                ("/api/v1/environments/prod/insights/stale?days=0", 400),
            ]:
                bad = await client.get(path)
                assert bad.status_code == status and set(bad.json()["error"]) == {"code", "message"}
        nursery.cancel_scope.cancel()
    # Replay of the spool window rebuilds the same counts, not doubled.
    argv = ["replay", "--since", "2026-03-02", "--data-dir", str(tmp_path)]
    assert await trio.to_thread.run_sync(cli.main, argv) == 0
    store = InsightsStore(tmp_path / "insights.sqlite3")
    found = store.flag("prod", "f1")
    store.close()
    assert found is not None and found.to_json() == EXPECTED_F1


async def test_kinesis_insights_and_replay(tmp_path: Path, stream: str, moto_endpoint: str) -> None:
    ingest = IngestConfig(tmp_path, 0, kinesis_stream=stream, kinesis_endpoint=moto_endpoint)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(IngestActor(ingest).run)
        other = await nursery.start(
            IngestActor(IngestConfig(tmp_path / "w1", 1, stream, moto_endpoint)).run
        )
        await submit_fixture_payloads(handle, other)
        config = InsightsConfig(tmp_path, stream, moto_endpoint, poll_interval_s=0.05)
        service = await nursery.start(partial(run_insights, config, Catalog()))
        await wait_for_total(service, 10)
        # the consumer has applied all three records, the duplicate included, should it count it
        with trio.fail_after(30):
            for _ in range(3000):
                if service.records_applied >= 3:
                    break
                await trio.sleep(0.02)
        found = await trio.to_thread.run_sync(service.store.flag, "prod", "f1")
        assert found is not None and found.to_json() == EXPECTED_F1
        nursery.cancel_scope.cancel()
    argv = ["replay", "--since", "2026-03-01", "--data-dir", str(tmp_path)]
    argv += ["--kinesis-stream", stream, "--kinesis-endpoint", moto_endpoint]
    assert await trio.to_thread.run_sync(cli.main, argv) == 0
    store = InsightsStore(tmp_path / "insights.sqlite3")
    again = store.flag("prod", "f1")
    assert again is not None and again.to_json() == EXPECTED_F1
    consumer = InsightsConsumer(
        InsightsConfig(tmp_path, stream, moto_endpoint), InsightsService(store)
    )
    assert await consumer.poll_once() == 0  # checkpoints were saved: nothing is read twice
    store.close()
