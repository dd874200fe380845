"""A whole worker in-process, fed by a real nng publisher and snapshot server, with real clients."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from ldclient import Context, LDClient
from ldclient.config import Config
from ldclient.impl.datasource.feature_requester import FeatureRequesterImpl
from streamer_testkit import ENV, StreamReader, flag, request, tombstone

from bus.envelope import Change, EnvSnapshot, ItemChange, Snapshot
from bus.publisher import BusPublisher
from bus.snapshot_server import serve_snapshots
from node.worker import WorkerConfig, WorkerReady, run_worker

EPOCH = "epoch-1"


class FakeStore:
    """A tiny in-memory store: implements bus.store_ports.SnapshotSource and publishes changes."""

    def __init__(self) -> None:
        self.seq = 1
        self.items: dict[tuple[str, str], ItemChange] = {}
        self.publisher: BusPublisher | None = None

    def snapshot(self, env: str | None) -> Snapshot:
        return Snapshot(self.seq, EPOCH, (EnvSnapshot(ENV, tuple(self.items.values())),))

    def latest_seq(self) -> int:
        return self.seq

    async def change(self, *items: ItemChange) -> None:
        assert self.publisher is not None
        self.seq += 1
        for item in items:
            self.items[(item.kind, item.key)] = item
        await self.publisher.publish(Change(self.seq, ENV.key, items))


@dataclass
class Running:
    store: FakeStore
    ready: WorkerReady

    @property
    def stream_uri(self) -> str:
        return "http://{}:{}".format(*self.ready.stream)

    @property
    def base_uri(self) -> str:
        return "http://{}:{}".format(*self.ready.sdk)


@pytest.fixture
async def worker(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Running]:
    store = FakeStore()
    for item in (flag("a", 1, value=True), flag("b", 1, value=True)):
        store.items[(item.kind, item.key)] = item
    pub = BusPublisher("tcp://127.0.0.1:0", epoch=EPOCH, initial_seq=1, heartbeat_interval=0.2)
    await nursery.start(pub.run)
    store.publisher = pub
    assert pub.bound_address is not None
    snap = await nursery.start(partial(serve_snapshots, "tcp://127.0.0.1:0", store, epoch=EPOCH))
    config = WorkerConfig(worker_id=0, stream_bind=("127.0.0.1", 0), sdk_bind=("127.0.0.1", 0),
                          bus=pub.bound_address, bus_snapshot=snap, data_dir=tmp_path)
    ready: WorkerReady = await nursery.start(run_worker, config)
    with trio.fail_after(10):
        await ready.directory.wait_loaded()
    yield Running(store, ready)


def sdk_config(w: Running, *, stream: bool) -> Config:
    return Config(ENV.sdk_key, base_uri=w.base_uri, stream_uri=w.stream_uri,
                  events_uri=w.base_uri, send_events=False, diagnostic_opt_out=True,
                  stream=stream)


async def eventually(check: Callable[[], Awaitable[bool]], *, attempts: int = 1000) -> None:
    """Poll ``check`` every 10 ms, at most ``attempts`` times (a bound, not a timing assert)."""
    for _ in range(attempts):
        if await check():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not reached")


async def wait_for_value(client: LDClient, key: str, want: object, default: object) -> None:
    ctx = Context.create("user-1")

    async def check() -> bool:
        return bool(await trio.to_thread.run_sync(client.variation, key, ctx, default) == want)

    await eventually(check)


async def test_python_sdk_streams_put_patch_and_delete(worker: Running) -> None:
    client = await trio.to_thread.run_sync(
        lambda: LDClient(config=sdk_config(worker, stream=True), start_wait=10))
    try:
        assert client.is_initialized()
        ctx = Context.create("user-1")
        assert await trio.to_thread.run_sync(client.variation, "a", ctx, "dflt") is True
        await worker.store.change(flag("a", 2, value=False))
        await wait_for_value(client, "a", False, "dflt")
        await worker.store.change(tombstone("b", 2))
        await wait_for_value(client, "b", "dflt", "dflt")
    finally:
        await trio.to_thread.run_sync(client.close)
    stats = worker.ready.directory.statistics().counters
    assert stats.new_connections[(ENV.key, "all")] == 1


async def test_python_sdk_polls_and_gets_304_when_unchanged(worker: Running) -> None:
    client = await trio.to_thread.run_sync(
        lambda: LDClient(config=sdk_config(worker, stream=False), start_wait=10))
    try:
        assert client.is_initialized()
        ctx = Context.create("user-1")
        assert await trio.to_thread.run_sync(client.variation, "a", ctx, "dflt") is True
    finally:
        await trio.to_thread.run_sync(client.close)
    # The SDK's own requester caches the ETag and sends If-None-Match on its next poll.
    requester = FeatureRequesterImpl(sdk_config(worker, stream=False))
    first = await trio.to_thread.run_sync(requester.get_all_data)
    polls = worker.ready.directory.counters.polls
    before = polls.get(304, 0)
    second = await trio.to_thread.run_sync(requester.get_all_data)
    assert first == second
    assert polls.get(304, 0) == before + 1


async def test_polling_etag_gzip_and_errors(worker: Running) -> None:
    auth = {"Authorization": ENV.sdk_key}
    async with httpx.AsyncClient(base_url=worker.base_uri) as http:
        r = await http.get("/sdk/latest-all", headers=auth)
        assert r.status_code == 200
        assert set(r.json()["flags"]) == {"a", "b"}
        etag = r.headers["ETag"]
        r = await http.get("/sdk/latest-all", headers={**auth, "If-None-Match": etag})
        assert (r.status_code, r.content) == (304, b"")
        r = await http.get("/sdk/latest-all/", headers={**auth, "Accept-Encoding": "gzip"})
        assert r.headers["Content-Encoding"] == "gzip"
        assert set(r.json()["flags"]) == {"a", "b"}  # httpx decompressed it
        await worker.store.change(flag("a", 5, value=False))

        async def changed() -> bool:
            r = await http.get("/sdk/latest-all", headers={**auth, "If-None-Match": etag})
            return r.status_code == 200

        await eventually(changed)
        prefixed = {"Authorization": "api_key " + ENV.sdk_key}
        r = await http.get("/sdk/latest-flags/a", headers=prefixed)
        assert (r.status_code, r.json()["version"], r.headers["ETag"]) == (200, 5, '"fs-v5"')
        assert set((await http.get("/sdk/flags", headers=auth)).json()) == {"a", "b"}
        assert (await http.get("/sdk/flags/nope", headers=auth)).status_code == 404
        assert (await http.get("/sdk/segments/nope", headers=auth)).status_code == 404
        assert (await http.get("/sdk/latest-all", headers={"Authorization": "sdk-x"})
                ).status_code == 401
        assert (await http.get("/sdk/latest-all")).status_code == 401
        assert (await http.post("/sdk/latest-all", headers=auth)).status_code == 405
        assert (await http.get("/healthz")).status_code == 200

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready)


async def raw_exchange(addr: tuple[str, int], data: bytes) -> bytes:
    stream = await trio.open_tcp_stream(*addr)
    async with stream:
        await stream.send_all(data)
        out = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                out += chunk
    return out


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request("/all", key="sdk-unknown"), b"401"),
        (request("/all", key="api_key two words"), b"401"),
        (request("/all", key=None), b"401"),
        (request("/nowhere"), b"404"),
        (request("/all?filter=x"), b"404"),
        (request("/all", method="POST"), b"405"),
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /all HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 40000 + b"\r\n\r\n", b"431"),
    ],
    ids=["unknown-key", "space", "no-key", "path", "filter", "method", "garbage", "too-large"],
)
async def test_stream_errors_are_http_answers(worker: Running, data: bytes, status: bytes) -> None:
    answer = await raw_exchange(worker.ready.stream, data)
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    assert b"\r\nConnection: close\r\n" in answer


async def test_raw_stream_head_and_put(worker: Running) -> None:
    stream = await trio.open_tcp_stream(*worker.ready.stream)
    async with stream:
        await stream.send_all(request("/all/", key="api_key " + ENV.sdk_key))
        reader = StreamReader()
        with trio.fail_after(10):
            while not reader.items:
                reader.feed(await stream.receive_some())
    assert reader.head is not None
    head = reader.head.decode()
    for line in ("HTTP/1.1 200 OK", "Content-Type: text/event-stream; charset=utf-8",
                 "Cache-Control: no-cache, no-store, must-revalidate", "Connection: keep-alive",
                 "Access-Control-Allow-Origin: *", "X-Accel-Buffering: no",
                 "Transfer-Encoding: chunked"):
        assert line + "\r\n" in head


def _free_port_held() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def _worker_argv(stream: str, sdk: str, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "node.worker", "--worker-id", "3", "--stream-bind", stream,
            "--sdk-bind", sdk, "--bus", "tcp://127.0.0.1:1", "--bus-snapshot",
            "tcp://127.0.0.1:2", "--data-dir", str(tmp)]


def test_worker_process_ready_line_and_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(_worker_argv("127.0.0.1:0", "127.0.0.1:0", tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["event"] == "ready" and line["worker"] == 3 and line["pid"] == proc.pid
        assert line["stream"].startswith("127.0.0.1:") and line["sdk"].startswith("127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == ""  # exactly one line on stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()


@pytest.mark.parametrize("which", ["taken-port", "bad-argument"])
def test_worker_process_exits_2(tmp_path: Path, which: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with _free_port_held() as held:
        port = held.getsockname()[1]
        argv = _worker_argv(f"127.0.0.1:{port}", "127.0.0.1:0", tmp_path)
        if which == "bad-argument":
            argv = [*_worker_argv("127.0.0.1:0", "127.0.0.1:0", tmp_path),
                    "--heartbeat-interval", "90"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip()


logging.getLogger("ldclient").setLevel(logging.WARNING)
