"""Before the first snapshot: client-side polls get 503, ``/eval`` streams wait, then both get
evaluated data; ping streams are pinged once per burst of changes, within the jitter window."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from streamer.clientside.clientside_app import register_clientside_routes
from streamer.environments.directory import Directory
from streamer.environments.env_actor import Apply
from streamer.fastpath.sse import SSEEvent
from streamer.fastpath.stream_actor import StreamActor
from streamer.fastpath.stream_gate import StreamGate
from streamer.fastpath.stream_limits import StreamLimits
from streamer.sdk_app import create_sdk_app
from tests.streamer.streamer_testkit import (
    ENV,
    StreamReader,
    close_client_sockets,
    flag,
    snapshot,
    tcp_pair,
)

CTX = base64.urlsafe_b64encode(b'{"kind":"user","key":"bob"}').decode().rstrip("=")


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    close_client_sockets()


async def test_polls_get_503_then_evaluated_flags(nursery: trio.Nursery) -> None:
    directory = Directory(gate=StreamGate())
    await nursery.start(directory.run)
    app = create_sdk_app(directory, extra_routes=[register_clientside_routes])
    client = app.test_client()
    urls = [(f"/sdk/evalx/{ENV.client_side_id}/contexts/{CTX}", {}),
            (f"/msdk/evalx/contexts/{CTX}", {"Authorization": ENV.mobile_key}),
            (f"/sdk/evalx/contexts/{CTX}", {"Authorization": ENV.sdk_key})]
    for url, headers in urls:
        response = await client.get(url, headers=headers)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "no flag data" in json.loads(await response.get_data())["message"]
    await directory.apply_snapshot(snapshot(1, (ENV, (flag("a", 1),))), full=True)
    # the testkit's flag has clientSide false: mobile and server-side SDKs see it, JS does not
    for (url, headers), keys in zip(urls, ([], ["a"], ["a"]), strict=True):
        response = await client.get(url, headers=headers)
        assert response.status_code == 200
        assert sorted(json.loads(await response.get_data())) == keys


def _send_get(sock: socket.socket, path: str, *headers: str) -> None:
    sock.send((f"GET {path} HTTP/1.1\r\nHost: t\r\n" + "".join(h + "\r\n" for h in headers)
               + "\r\n").encode())


async def test_eval_stream_waits_for_data_and_pings_are_jittered(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    directory = Directory(gate=StreamGate(), ping_jitter=2.0)
    await nursery.start(directory.run)
    meval_server, meval = tcp_pair()
    ping_server, ping = tcp_pair()
    _send_get(meval, f"/meval/{CTX}", f"Authorization: {ENV.mobile_key}")
    _send_get(ping, "/mping", f"Authorization: {ENV.mobile_key}")
    for server in (meval_server, ping_server):
        nursery.start_soon(StreamActor(server, directory, directory.counters, StreamLimits()).run)
    await trio.sleep(30)  # held silently meanwhile
    with pytest.raises(BlockingIOError):
        meval.recv(100)
    await directory.apply_snapshot(snapshot(1, (ENV, (flag("a", 1),))), full=True)
    streams, pings = StreamReader(), StreamReader()
    with trio.fail_after(1):
        (put,) = await streams.read_until(meval, 1)
        (first,) = await pings.read_until(ping, 1)
    assert isinstance(put, SSEEvent) and put.event == "put"
    assert json.loads(put.data)["a"]["value"] is True
    assert isinstance(first, SSEEvent) and first.event == "ping"
    actor = directory.actor(ENV.key)
    assert actor is not None
    t0 = trio.current_time()
    for version in (2, 3, 4):  # a burst: one ping, delayed within [jitter/2, jitter]
        await actor.send(Apply((flag("a", version, value=version % 2 == 0),)))
    with trio.fail_after(5):
        patches = await streams.read_until(meval, 3)
        (second,) = await pings.read_until(ping, 1)
    assert [(p.event, json.loads(p.data)["version"]) for p in patches
            if isinstance(p, SSEEvent)] == [("patch", 2), ("patch", 3), ("patch", 4)]
    assert isinstance(second, SSEEvent) and second.event == "ping"
    assert 1.0 <= trio.current_time() - t0 <= 2.0
    await trio.sleep(10)
    assert pings.drain(ping) == []  # no ping left over from the burst
