"""The events endpoints over a real socket: hypercorn + quart-trio + the ingest actor with the
spool as sink; requests from httpx (chunked and gzip bodies included)."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import orjson
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from ingest.actor import IngestActor, IngestConfig, IngestHandle
from ingest.devserver import StaticResolver
from ingest.http import EventLimits, register_event_routes
from ingest.records import decode_record
from ingest.spool import Position, read_frames

RESOLVER = StaticResolver({"sdk-1": "prod"}, {"mob-1": "prod"}, {"envid1": "prod"})
EVENTS = [{"kind": "custom", "key": "a", "creationDate": 1}, {"kind": "identify", "context": {}}]


class Node:
    def __init__(self, base: str, handle: IngestHandle, spool_dir: Path) -> None:
        self.base, self.handle, self.spool_dir = base, handle, spool_dir

    def lines(self) -> list[dict[str, object]]:
        frames = read_frames(self.spool_dir, Position(1, 0), max_records=10_000, max_bytes=1 << 30)
        return [line for record, _ in frames for line in decode_record(record.data)]


@pytest.fixture
async def node(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Node]:
    config = IngestConfig(data_dir=tmp_path, worker_id=3)
    handle = await nursery.start(IngestActor(config).run)
    app = QuartTrio("test-ingest")
    register_event_routes(app, RESOLVER, handle, limits=EventLimits(max_body_bytes=64 * 1024))
    hyper = HyperConfig()
    hyper.bind = ["127.0.0.1:0"]
    hyper.accesslog = hyper.errorlog = None
    stop = trio.Event()
    binds = await nursery.start(partial(serve, app, hyper, shutdown_trigger=stop.wait))
    yield Node(binds[0], handle, config.spool_dir)
    stop.set()
    handle.close()


async def post(node: Node, path: str, body: object, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    async with httpx.AsyncClient() as client:
        return await client.post(node.base + path, content=content, headers=headers)


@pytest.mark.parametrize(
    ("path", "headers", "src", "kind"),
    [
        ("/bulk", {"Authorization": "sdk-1"}, "server", "analytics"),
        ("/bulk", {"Authorization": "api_key sdk-1"}, "server", "analytics"),
        ("/mobile", {"Authorization": "mob-1"}, "mobile", "analytics"),
        ("/mobile/events", {"Authorization": "mob-1"}, "mobile", "analytics"),
        ("/mobile/events/bulk", {"Authorization": "api_key mob-1"}, "mobile", "analytics"),
        ("/events/bulk/envid1", {}, "client", "analytics"),
    ],
)
async def test_analytics_endpoints_accept_and_spool(
    node: Node, path: str, headers: dict[str, str], src: str, kind: str
) -> None:
    resp = await post(node, path, EVENTS, **headers, **{"X-LaunchDarkly-Payload-ID": "pay-1"})
    assert resp.status_code == 202
    lines = node.lines()
    assert [(x["id"], x["src"], x["kind"], x["env"]) for x in lines] == [
        ("pay-1:0", src, kind, "prod"),
        ("pay-1:1", src, kind, "prod"),
    ]
    assert [x["event"] for x in lines] == EVENTS


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/diagnostic", {"Authorization": "sdk-1"}),
        ("/mobile/events/diagnostic", {"Authorization": "mob-1"}),
        ("/events/diagnostic/envid1", {}),
    ],
)
async def test_diagnostic_endpoints(node: Node, path: str, headers: dict[str, str]) -> None:
    resp = await post(node, path, {"kind": "diagnostic-init", "id": {}}, **headers)
    assert resp.status_code == 202
    assert [(x["kind"], x["event"]) for x in node.lines()] == [
        ("diagnostic", {"kind": "diagnostic-init", "id": {}})
    ]


async def test_chunked_and_gzip_bodies(node: Node) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        body = orjson.dumps(EVENTS)
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    async with httpx.AsyncClient() as client:
        resp = await client.post(
            node.base + "/bulk", content=chunks(), headers={"Authorization": "sdk-1"}
        )
        assert resp.request.headers.get("Transfer-Encoding") == "chunked"
        assert resp.status_code == 202
        gz = gzip.compress(orjson.dumps(EVENTS))
        resp = await client.post(
            node.base + "/bulk",
            content=gz,
            headers={"Authorization": "sdk-1", "Content-Encoding": "gzip"},
        )
        assert resp.status_code == 202
    assert [x["event"] for x in node.lines()] == EVENTS + EVENTS


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        (b"", {}, 400, "empty body"),
        (b"{not json", {}, 400, "not valid JSON"),
        (b'{"kind":"custom"}', {}, 400, "JSON array"),
        (b"[1]", {}, 400, "event 0: must be a JSON object"),
        (b'[{"kind":"feature"}]', {}, 400, "string 'key'"),
        (b'[{"kind":"summary","features":[]}]', {}, 400, "'features'"),
        (b"[]" + b" " * 70_000, {}, 413, "limit"),
        (gzip.compress(b"[" + b" " * 30_000_000 + b"]"), {"Content-Encoding": "gzip"}, 413, ""),
        (b"[]", {"Content-Encoding": "br"}, 400, "Content-Encoding"),
        (b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, 400, "gzip"),
    ],
)
async def test_garbage_gets_a_clear_4xx(
    node: Node, body: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    resp = await post(node, "/bulk", body, Authorization="sdk-1", **headers)
    assert resp.status_code == status
    assert fragment in resp.json()["message"]
    assert node.lines() == []


async def test_credentials(node: Node) -> None:
    assert (await post(node, "/bulk", EVENTS)).status_code == 401
    assert (await post(node, "/bulk", EVENTS, Authorization="sdk-2")).status_code == 401
    assert (await post(node, "/bulk", EVENTS, Authorization="sdk 1")).status_code == 401
    assert (await post(node, "/mobile", EVENTS, Authorization="sdk-1")).status_code == 401
    assert (await post(node, "/events/bulk/nope", EVENTS)).status_code == 404
    assert node.lines() == []


async def test_retry_with_same_payload_id_is_deduplicated(node: Node) -> None:
    for _ in range(3):
        resp = await post(
            node, "/bulk", EVENTS, Authorization="sdk-1", **{"X-LaunchDarkly-Payload-ID": "r1"}
        )
        assert resp.status_code == 202
    assert len(node.lines()) == 2
    assert node.handle.statistics().payloads == 1


async def test_cors_preflight_and_gif(node: Node) -> None:
    async with httpx.AsyncClient() as client:
        pre = await client.options(
            node.base + "/events/bulk/envid1", headers={"Origin": "https://app.example"}
        )
        assert pre.status_code == 200
        assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "X-LaunchDarkly-Payload-ID" in pre.headers["Access-Control-Allow-Headers"]
        assert pre.headers["Access-Control-Allow-Methods"] == "POST,OPTIONS"
        d = base64.urlsafe_b64encode(orjson.dumps(EVENTS)).decode().rstrip("=")
        gif = await client.get(node.base + f"/a/envid1.gif?d={d}")
        assert gif.status_code == 200 and gif.headers["Content-Type"] == "image/gif"
        assert gif.content.startswith(b"GIF89a")
        assert gif.headers["Access-Control-Allow-Origin"] == "*"
        bad = await client.get(node.base + "/a/envid1.gif?d=%%%")
        assert bad.status_code == 400
        unknown = await client.get(node.base + f"/a/nope.gif?d={d}")
        assert unknown.status_code == 404
        assert unknown.headers["Access-Control-Allow-Origin"] == "*"
    assert [(x["src"], x["event"]) for x in node.lines()] == [("client", e) for e in EVENTS]


async def test_shutdown_answers_503(node: Node) -> None:
    node.handle.close()
    # The actor refuses new payloads once its run task has taken the close request; with no
    # payload in flight it gets there without waiting on anything but the scheduler.
    await trio.testing.wait_all_tasks_blocked()
    resp = await post(node, "/bulk", EVENTS, Authorization="sdk-1")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"
