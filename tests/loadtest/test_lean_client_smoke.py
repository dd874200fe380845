"""The lean client as a real subprocess against a tiny raw trio SSE server on loopback.

The server speaks just enough HTTP/1.1 (one chunked `text/event-stream` response per
connection) to exercise the client's real path: epoll, connect concurrency, several
destination addresses, head parsing, de-chunking, markers, failures and the control protocol.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import trio

from loadtest.lean_wire import mark_value
from streamer.fastpath import sse

REPO = Path(__file__).resolve().parents[2]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)
DENIED = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class TinySSEServer:
    def __init__(self, *, status_ok: bool = True) -> None:
        self.status_ok = status_ok
        self.streams: list[trio.SocketStream] = []
        self.local_addrs: set[str] = set()
        self.paths: list[str] = []
        self.scopes: list[trio.CancelScope] = []
        self.refuse_next = 0  # answer this many of the next requests with 503 + Retry-After
        self.accepted = 0
        self._accepted_event = trio.Event()

    async def wait_accepted(self, n: int) -> None:
        while self.accepted < n:
            await self._accepted_event.wait()

    def drop_all(self) -> None:
        """Close every held stream at once, as a restarted worker would."""
        for scope in self.scopes:
            scope.cancel()
        self.scopes = []
        self.streams = []

    async def handle(self, stream: trio.SocketStream) -> None:
        buf = b""
        with trio.move_on_after(10):
            while b"\r\n\r\n" not in buf and len(buf) < 16384:
                data = await stream.receive_some(4096)
                if not data:
                    return
                buf += data
        if not buf.startswith(b"GET /") or b"authorization: sdk-x" not in buf.lower():
            return
        if not self.status_ok:
            await stream.send_all(DENIED)
            return
        if self.refuse_next > 0:
            self.refuse_next -= 1
            await stream.send_all(BUSY)
            await stream.aclose()
            return
        self.accepted += 1
        self._accepted_event.set()
        self._accepted_event = trio.Event()
        self.paths.append(buf.split(b" ", 2)[1].decode())
        self.local_addrs.add(stream.socket.getsockname()[0])
        await stream.send_all(HEAD + sse.event_chunk("put", b'{"path":"/","data":{}}'))
        self.streams.append(stream)
        with trio.CancelScope() as scope:
            self.scopes.append(scope)
            await trio.sleep_forever()
        await stream.aclose()

    async def publish(self, seq: int) -> None:
        flag = {
            "key": "f",
            "version": seq,
            "variations": [mark_value(seq, time.monotonic_ns(), "a")],
        }
        frame = sse.event_chunk("patch", orjson.dumps({"path": "/flags/f", "data": flag}))
        for i, stream in enumerate(self.streams):
            await stream.send_all(sse.HEARTBEAT_CHUNK)
            if i % 3 == 0:  # some streams get the frame in two writes, cut mid chunk
                await stream.send_all(frame[:7])
                await trio.lowlevel.checkpoint()
                await stream.send_all(frame[7:])
            else:
                await stream.send_all(frame)


class ClientProcess:
    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self._buf = b""

    async def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(orjson.dumps(cmd) + b"\n")

    async def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self._buf:
            data = await self.proc.stdout.receive_some(1 << 20)
            assert data, "the client exited"
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        msg: dict[str, Any] = orjson.loads(line)
        return msg


@asynccontextmanager
async def lean_client() -> AsyncIterator[ClientProcess]:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "loadtest.lean_client", "--time-limit", "60"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield ClientProcess(proc)
    finally:
        with trio.move_on_after(10) as scope:
            await proc.wait()
        if scope.cancelled_caught:
            proc.kill()
            await proc.wait()


@asynccontextmanager
async def tiny_server(server: TinySSEServer) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        first = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=512)
        port = first[0].socket.getsockname()[1]
        second = await trio.open_tcp_listeners(port, host="127.0.0.2", backlog=512)
        await nursery.start(trio.serve_listeners, server.handle, first + second)
        yield port
        nursery.cancel_scope.cancel()


async def test_every_stream_gets_every_change() -> None:
    server = TinySSEServer()
    with trio.fail_after(60):
        async with tiny_server(server) as port, lean_client() as client:
            await client.send(
                {"cmd": "connect", "n": 200, "addresses": ["127.0.0.1", "127.0.0.2"],
                 "port": port, "headers": {"Authorization": "sdk-x"}, "concurrency": 32}
            )  # fmt: skip
            connected = await client.receive()
            assert connected["ev"] == "connected"
            assert (connected["connected"], connected["failed"], connected["live"]) == (200, 0, 200)
            assert server.local_addrs == {"127.0.0.1", "127.0.0.2"}
            for seq in (1, 2):
                await client.send({"cmd": "expect", "seq": seq, "timeout_s": 20})
                await server.publish(seq)
                report = await client.receive()
                assert report["ev"] == "round"
                assert report["seq"] == seq
                assert (report["received"], report["expected"]) == (200, 200)
                assert report["complete"] is True
                assert len(report["lat_ns"]) == 200
                assert all(v >= 0 for v in report["lat_ns"])
                assert report["events"] == 200
            await client.send({"cmd": "close"})
            bye = await client.receive()
            assert bye["ev"] == "bye"
            assert (bye["patches"], bye["duplicates"], bye["unmarked_patches"]) == (400, 0, 0)


async def test_refused_streams_are_counted_not_held() -> None:
    server = TinySSEServer(status_ok=False)
    with trio.fail_after(60):
        async with tiny_server(server) as port, lean_client() as client:
            await client.send(
                {"cmd": "connect", "n": 20, "addresses": ["127.0.0.1"], "port": port,
                 "headers": {"Authorization": "sdk-x"}}
            )  # fmt: skip
            connected = await client.receive()
            assert (connected["connected"], connected["failed"]) == (0, 20)
            assert connected["errors"] == {"http_401": 20}
            await client.send({"cmd": "bogus"})
            assert (await client.receive())["ev"] == "error"
            await client.send({"cmd": "close"})
            assert (await client.receive())["ev"] == "bye"


async def test_dropped_streams_come_back_after_backoff_and_retry_after() -> None:
    server = TinySSEServer()
    with trio.fail_after(60):
        async with tiny_server(server) as port, lean_client() as client:
            await client.send(
                {"cmd": "connect", "n": 40, "addresses": ["127.0.0.1", "127.0.0.2"],
                 "port": port, "paths": ["/all", "/eval/x/a", "/eval/x/b"],
                 "headers": {"Authorization": "sdk-x"},
                 "reconnect": {"base_s": 0.2, "max_s": 1.0, "jitter": 0.5}}
            )  # fmt: skip
            assert (await client.receive())["connected"] == 40
            assert sorted(set(server.paths)) == ["/all", "/eval/x/a", "/eval/x/b"]
            assert server.paths.count("/all") == 14  # round-robin over the paths
            t_mark = time.monotonic_ns()
            await client.send({"cmd": "storm_mark", "t_ns": t_mark})
            assert (await client.receive())["ev"] == "storm_marked"
            server.refuse_next = 10  # the first 10 reconnects are told to come back in 1 s
            server.drop_all()
            await client.send({"cmd": "await_live", "n": 40, "timeout_s": 30})
            back = await client.receive()
            assert back["ev"] == "live"
            assert back["reached"] is True and back["live"] == 40
            assert len(back["recovered_ns"]) == 40
            # a dropped stream waits its backoff (base 0.2 s, at most half of it jittered off)
            assert min(back["recovered_ns"]) >= 0.1e9
            # the refused ones waited Retry-After (1 s) on top of their first backoff
            assert sorted(back["recovered_ns"])[-10] >= 1.1e9
            assert back["retry_after"] == {"count": 10, "min": 1.0, "max": 1.0, "distinct": 1}
            assert back["errors"]["stream_eof"] == 40
            assert back["errors"]["reconnect_http_503"] == 10
            assert back["reconnects"] == 50
            assert server.accepted == 80
            await client.send({"cmd": "close"})
            assert (await client.receive())["ev"] == "bye"


async def test_stalled_streams_never_read_and_are_checked_later() -> None:
    server = TinySSEServer()
    with trio.fail_after(60):
        async with tiny_server(server) as port, lean_client() as client:
            await client.send(
                {"cmd": "connect", "n": 6, "addresses": ["127.0.0.1"], "port": port,
                 "headers": {"Authorization": "sdk-x"}, "read": False}
            )  # fmt: skip
            connected = await client.receive()
            assert (connected["connected"], connected["stalled"], connected["live"]) == (6, 6, 0)
            with trio.fail_after(10):
                await server.wait_accepted(6)
            for scope in server.scopes[:4]:  # the server gives up on four of them
                scope.cancel()
            await client.send({"cmd": "check_stalled", "timeout_s": 1.0})
            check = await client.receive()
            assert (check["closed_by_server"], check["still_open"]) == (4, 2)
            drained = check["drained_bytes"]
            assert drained > 0  # the head and put they never read
            await client.send({"cmd": "stats"})
            assert (await client.receive())["stalled"] == 2
            await client.send({"cmd": "close"})
            assert (await client.receive())["ev"] == "bye"
