"""Helpers shared by the streamer tests: test data and raw-socket clients."""

from __future__ import annotations

import json
import socket

import trio

from bus.envelope import EnvironmentInfo, EnvSnapshot, ItemChange, Snapshot
from streamer.fastpath.sse import ChunkedDecoder, SSEComment, SSEDecoder, SSEEvent

ENV = EnvironmentInfo("prod", "Production", "sdk-prod-1", "mob-prod-1", "cid-prod-1")
OTHER_ENV = EnvironmentInfo("dev", "Development", "sdk-dev-1", "mob-dev-1", "cid-dev-1")


def flag_json(key: str, version: int, *, value: bool = True, pad: int = 0) -> bytes:
    """A complete server-side flag that evaluates to ``value`` for everybody."""
    body = {
        "key": key, "version": version, "on": True, "salt": "s", "deleted": False,
        "variations": [False, True], "offVariation": 0, "fallthrough": {"variation": int(value)},
        "prerequisites": [], "targets": [], "rules": [], "trackEvents": False,
        "trackEventsFallthrough": False, "debugEventsUntilDate": None, "clientSide": False,
    }
    if pad:
        body["_pad"] = "x" * pad
    return json.dumps(body).encode()


def flag(key: str, version: int, *, value: bool = True, pad: int = 0) -> ItemChange:
    return ItemChange("flags", key, version, flag_json(key, version, value=value, pad=pad))


def tombstone(key: str, version: int) -> ItemChange:
    return ItemChange("flags", key, version, None)


def snapshot(seq: int, *envs: tuple[EnvironmentInfo, tuple[ItemChange, ...]]) -> Snapshot:
    return Snapshot(seq, "epoch-1", tuple(EnvSnapshot(info, items) for info, items in envs))


def request(path: str = "/all", key: str | None = "sdk-prod-1", method: str = "GET") -> bytes:
    auth = f"Authorization: {key}\r\n" if key is not None else ""
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}\r\n".encode()


CLIENT_SOCKETS: list[socket.socket] = []  # closed after each test by the autouse fixture


def close_client_sockets() -> None:
    while CLIENT_SOCKETS:
        CLIENT_SOCKETS.pop().close()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair (server side, client side), both non-blocking."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    for s in (server, client):
        s.setblocking(False)
    CLIENT_SOCKETS.append(client)
    return server, client


class StreamReader:
    """Parses what a raw client socket received: the response head, then chunked SSE."""

    def __init__(self) -> None:
        self.head: bytes | None = None
        self._buf = b""
        self._chunks = ChunkedDecoder()
        self._sse = SSEDecoder()
        self.items: list[SSEEvent | SSEComment] = []

    def feed(self, data: bytes) -> list[SSEEvent | SSEComment]:
        if self.head is None:
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return []
            self.head, data = self._buf[: end + 4], self._buf[end + 4 :]
        new = self._sse.feed(self._chunks.feed(data))
        self.items += new
        return new

    def drain(self, sock: socket.socket) -> list[SSEEvent | SSEComment]:
        """Read what is available now, without blocking."""
        new: list[SSEEvent | SSEComment] = []
        while True:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                return new
            if not data:
                return new
            new += self.feed(data)

    async def read_until(self, sock: socket.socket, count: int) -> list[SSEEvent | SSEComment]:
        """Wait until at least ``count`` new items arrived (bounded by the caller's timeout)."""
        new: list[SSEEvent | SSEComment] = []
        while len(new) < count:
            await trio.lowlevel.wait_readable(sock)
            data = sock.recv(1 << 20)
            if not data:
                break
            new += self.feed(data)
        return new


def apply_stream(state: dict[str, int], item: SSEEvent | SSEComment) -> None:
    """Apply one /all event to a key -> version map, with the SDKs' version rule."""
    if not isinstance(item, SSEEvent):
        return
    body = json.loads(item.data)
    if item.event == "put":
        state.clear()
        for key, f in body["data"]["flags"].items():
            state[key] = f["version"]
    elif item.event in ("patch", "delete"):
        key = body["path"].removeprefix("/flags/")
        version = body["data"]["version"] if item.event == "patch" else body["version"]
        if version > abs(state.get(key, 0)):
            state[key] = version if item.event == "patch" else -version
