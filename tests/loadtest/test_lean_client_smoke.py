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
from streamer import sse

REPO = Path(__file__).resolve().parents[2]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
DENIED = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class TinySSEServer:
    def __init__(self, *, status_ok: bool = True) -> None:
        self.status_ok = status_ok
        self.streams: list[trio.SocketStream] = []
        self.local_addrs: set[str] = set()

    async def handle(self, stream: trio.SocketStream) -> None:
        buf = b""
        with trio.move_on_after(10):
            while b"\r\n\r\n" not in buf and len(buf) < 16384:
                data = await stream.receive_some(4096)
                if not data:
                    return
                buf += data
        if (
            not buf.startswith(b"GET /all HTTP/1.1\r\n")
            or b"authorization: sdk-x" not in buf.lower()
        ):
            return
        if not self.status_ok:
            await stream.send_all(DENIED)
            return
        self.local_addrs.add(stream.socket.getsockname()[0])
        await stream.send_all(HEAD + sse.event_chunk("put", b'{"path":"/","data":{}}'))
        self.streams.append(stream)
        await trio.sleep_forever()

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
