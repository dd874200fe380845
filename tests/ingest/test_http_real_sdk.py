"""The official Python server SDK (``ldclient``) sends its events to the ingest routes; the
insights consumer then shows exactly the evaluations the SDK made.

The SDK runs in Relay daemon mode (``use_ldd=True``) over a pre-filled in-memory store, which
still sends analytics and diagnostic events, so no stream endpoint is needed. ``events_node``
is the only thing the test needs from a server: swap that fixture for a real flagstream node
(``base`` = its ``--sdk-bind`` URL, ``data_dir`` = its data dir, credentials from its store)
once the worker mounts these routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from ldclient import Context, LDClient
from ldclient.config import Config
from ldclient.feature_store import InMemoryFeatureStore
from ldclient.versioned_data_kind import FEATURES, SEGMENTS
from quart_trio import QuartTrio

from ingest.actor import IngestActor, IngestConfig, IngestHandle
from ingest.devserver import StaticResolver
from ingest.http import register_event_routes
from insights.consumer import InsightsConfig, InsightsConsumer, InsightsService
from insights.store import InsightsStore

FLAG = {
    "key": "flag1",
    "version": 4,
    "on": True,
    "salt": "s",
    "variations": [False, True],
    "offVariation": 0,
    "fallthrough": {"variation": 0},
    "targets": [{"values": ["u1", "u2", "u3"], "variation": 1}],
    "rules": [],
    "prerequisites": [],
    "trackEvents": True,
}


@dataclass
class EventsNode:
    base: str
    data_dir: Path
    sdk_key: str
    env: str
    handle: IngestHandle


@pytest.fixture
async def events_node(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[EventsNode]:
    handle = await nursery.start(IngestActor(IngestConfig(tmp_path, 0)).run)
    app = QuartTrio("sdk-events")
    register_event_routes(app, StaticResolver({"sdk-python": "prod"}), handle)
    hyper = HyperConfig()
    hyper.bind = ["127.0.0.1:0"]
    hyper.accesslog = hyper.errorlog = None
    stop = trio.Event()
    binds = await nursery.start(partial(serve, app, hyper, shutdown_trigger=stop.wait))
    yield EventsNode(binds[0], tmp_path, "sdk-python", "prod", handle)
    stop.set()
    handle.close()


def run_python_sdk(node: EventsNode, users: list[str]) -> list[bool]:
    store = InMemoryFeatureStore()
    store.init({FEATURES: {"flag1": FLAG}, SEGMENTS: {}})
    config = Config(
        node.sdk_key,
        events_uri=node.base,
        use_ldd=True,
        feature_store=store,
        flush_interval=0.2,
    )
    client = LDClient(config=config)
    try:
        values = [bool(client.variation("flag1", Context.create(u), False)) for u in users]
        client.flush()
    finally:
        client.close()  # flushes what is left and waits for the sender
    return values


async def test_python_sdk_events_become_insights(events_node: EventsNode) -> None:
    users = ["u1", "u2", "u3", "a", "b", "c", "d", "e", "u1", "f"]
    values = await trio.to_thread.run_sync(run_python_sdk, events_node, users)
    assert values == [True, True, True, False, False, False, False, False, True, False]
    stats = events_node.handle.statistics()
    assert stats.payloads >= 1 and stats.dropped == 0

    store = await trio.to_thread.run_sync(InsightsStore, events_node.data_dir / "insights.sqlite3")
    try:
        consumer = InsightsConsumer(InsightsConfig(events_node.data_dir), InsightsService(store))
        await consumer.poll_once()
        found = store.flag(events_node.env, "flag1")
    finally:
        store.close()
    assert found is not None
    doc = found.to_json()
    assert doc["totalEvaluations"] == len(users)
    assert doc["variations"] == [{"variation": 0, "count": 6}, {"variation": 1, "count": 4}]
    assert isinstance(doc["lastEvaluated"], int)
