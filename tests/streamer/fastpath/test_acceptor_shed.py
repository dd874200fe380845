"""The acceptor's shedding: while the stream gate refuses everyone, a connection whose request
is already in its socket gets the 503 at accept, without a stream actor; real loopback sockets,
a real directory and gate."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from typing import cast

import pytest
import trio
import trio.testing
from streamer_testkit import ENV, flag, request, snapshot

import streamer.fastpath.acceptor as acceptor_module
from streamer.environments.directory import Directory
from streamer.environments.env_actor import EnvActor
from streamer.fastpath.acceptor import Acceptor
from streamer.fastpath.load_monitor import DEFAULT_WORKER_MEMORY_BUDGET_MIB, LoadBudget, LoadMonitor
from streamer.fastpath.stream_gate import GateLimits, Refusal, StreamGate
from streamer.fastpath.stream_limits import StreamLimits


class SpyDirectory(Directory):
    """A real directory that counts how often a stream actor looked up a stream's target."""

    lookups = 0

    def stream_target(self, credential: str) -> EnvActor | None:
        self.lookups += 1
        return super().stream_target(credential)


async def _spy_directory(nursery: trio.Nursery, gate: StreamGate) -> SpyDirectory:
    d = SpyDirectory(gate=gate, heartbeat_interval=20.0)
    await nursery.start(d.run)
    await d.apply_snapshot(snapshot(1, (ENV, (flag("a", 1),))), full=True)
    return d


@pytest.fixture
async def directory(nursery: trio.Nursery) -> AsyncIterator[SpyDirectory]:
    yield await _spy_directory(nursery, StreamGate())


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _client(listener: socket.socket, *, send: bool) -> socket.socket:
    client = socket.create_connection(listener.getsockname()[:2], timeout=5)
    if send:
        client.sendall(request("/all", ENV.sdk_key))
    return client


async def _response(client: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sent until it closed, and whether it closed with a FIN."""
    client.setblocking(False)
    data = b""
    with trio.fail_after(5):
        while True:
            await trio.lowlevel.wait_readable(client)
            try:
                part = client.recv(65536)
            except ConnectionResetError:
                return data, False
            if not part:
                return data, True
            data += part


def _saturated_gate(cause: str) -> StreamGate:
    if cause == "draining":
        gate = StreamGate()
        gate.draining = True
    elif cause == "at_capacity":
        gate = StreamGate(GateLimits(max_connections=1))
        gate.enter(_Held(), "k", "a", ENV.key)
    else:  # loop_lag
        gate = StreamGate(load=LoadMonitor(LoadBudget(max_loop_lag_s=0.5, hold_s=60.0,
                                                      retry_after_s=1)))
        gate.load.observe_lag(0.7, trio.current_time())
    return gate


class _Held:
    close_reason: str | None = None

    def request_close(self, reason: str) -> None:
        pass


@pytest.mark.parametrize(("cause", "message", "waits", "request_first"), [
    ("draining", b"shutting down", range(5, 11), True),
    ("draining", b"shutting down", range(5, 11), False),
    ("at_capacity", b"connection limit", range(5, 11), True),
    ("at_capacity", b"connection limit", range(5, 11), False),  # the refusal pool answers
    ("loop_lag", b"saturated (event loop is lagging)", range(1, 4), True),
    ("loop_lag", b"saturated (event loop is lagging)", range(1, 4), False),
])
async def test_a_refusing_gate_sheds_with_a_clean_503(
    nursery: trio.Nursery, cause: str, message: bytes, waits: range, request_first: bool,
) -> None:
    # request_first: the head is in the socket when it is accepted, so the acceptor answers at
    # once and no actor runs; otherwise the actor reads the head and the gate refuses it there.
    directory = await _spy_directory(nursery, _saturated_gate(cause))
    listener = _listener()
    clients = [_client(listener, send=request_first) for _ in range(8)]
    await nursery.start(Acceptor(listener, directory, directory.counters, StreamLimits()).run)
    if not request_first:
        with trio.fail_after(5):  # every connection accepted, its actor waiting for the head
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert directory.counters.accepted == len(clients)
        for c in clients:
            c.sendall(request("/all", ENV.sdk_key))
    for c in clients:
        body, fin = await _response(c)
        head, _, text = body.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), body
        assert message in text
        retry = int(head.lower().split(b"retry-after: ")[1].split(b"\r\n")[0])
        assert retry in waits
        assert fin, "closed with a reset: the request was left unread"
        c.close()
    assert directory.counters.rejects == {503: 8}
    assert directory.gate.refused == {503: 8}
    if cause == "loop_lag":
        assert directory.gate.saturated_refusals == {"loop_lag": 8}
    # at capacity, a request that comes late is answered by the acceptor's refusal pool
    assert directory.lookups == (0 if request_first or cause == "at_capacity" else 8)
    listener.close()


async def test_an_admitting_gate_leaves_every_connection_to_its_actor(
    nursery: trio.Nursery, directory: SpyDirectory,
) -> None:
    listener = _listener()
    client = _client(listener, send=True)
    await nursery.start(Acceptor(listener, directory, directory.counters, StreamLimits()).run)
    client.setblocking(False)
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(client)
    assert client.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    assert directory.lookups == 1 and len(directory.gate) == 1
    client.close()
    listener.close()


async def test_idle_connections_count_toward_the_connection_limit(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two places and a refusal pool of two. Two connections that never send a request take
    # the places (each actor waits for its head); the next six go through the pool two at a
    # time (the rest wait in the listen backlog meanwhile) and are closed when they send
    # nothing, without an actor, so idle connections cannot fill the open-file table. Once the
    # idle ones go, a stream is served.
    monkeypatch.setattr(acceptor_module, "LATE_REFUSALS", 2)
    monkeypatch.setattr(acceptor_module, "LATE_REFUSAL_WAIT_S", 0.2)
    directory = await _spy_directory(nursery, StreamGate(GateLimits(max_connections=2)))
    listener = _listener()
    acceptor = Acceptor(listener, directory, directory.counters, StreamLimits())
    await nursery.start(acceptor.run)
    idle = [_client(listener, send=False) for _ in range(2)]
    with trio.fail_after(5):
        while acceptor.held < 2:
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    late = [_client(listener, send=False) for _ in range(6)]
    for c in late:
        body, fin = await _response(c)
        assert body == b"" and fin
        c.close()
    assert acceptor.closed_idle == 6 and acceptor.held == 2 and directory.lookups == 0
    assert acceptor.late_refusals == 0 and acceptor.pool_pauses >= 2
    for c in idle:
        c.close()
    with trio.fail_after(5):
        while acceptor.held:
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    client = _client(listener, send=True)
    client.setblocking(False)
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(client)
    assert client.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    client.close()
    listener.close()


async def test_a_full_refusal_pool_pauses_accepting_so_late_requests_still_get_their_503(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A reconnect herd at capacity: one place, a pool of two, and eight connections whose
    # request comes a moment after the handshake. The pool cannot hold them all at once; the
    # ones behind it wait in the listen backlog instead of being closed (a bare close looks
    # like a network fault to an SDK), so every one of them gets the 503 with Retry-After.
    monkeypatch.setattr(acceptor_module, "LATE_REFUSALS", 2)
    directory = await _spy_directory(nursery, StreamGate(GateLimits(max_connections=1)))
    listener = _listener()
    acceptor = Acceptor(listener, directory, directory.counters, StreamLimits())
    await nursery.start(acceptor.run)
    idle = _client(listener, send=False)
    with trio.fail_after(5):
        while acceptor.held < 1:
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    late = [_client(listener, send=False) for _ in range(8)]
    with trio.fail_after(5):  # the pool is full and the rest are queued behind it
        while acceptor.late_refusals < 2:
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    with trio.fail_after(5):  # the requests come once the acceptor has paused, not on a timer
        while acceptor.pool_pauses < 1:
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    for c in late:
        c.sendall(request("/all", ENV.sdk_key))
    for c in late:
        body, fin = await _response(c)
        assert body.startswith(b"HTTP/1.1 503 ") and b"connection limit" in body, body
        assert fin
        c.close()
    assert directory.counters.rejects == {503: 8} and acceptor.closed_idle == 0
    assert acceptor.pool_pauses >= 1 and acceptor.late_refusals == 0
    idle.close()
    listener.close()


class _RefusingGate:
    """Not a StreamGate, only what the directory, the acceptor and a stream ask of a gate: it
    refuses every stream."""

    limits = GateLimits()

    def __init__(self) -> None:
        self.counted = 0

    def __len__(self) -> int:
        return 0

    def refusal_for_all(self, *, held: int = 0) -> Refusal:
        return Refusal(503, "refusing every stream (test)", 5)

    def count_refusal(self, refusal: Refusal) -> None:
        self.counted += 1

    def enter(self, conn: object, credential: str, address: str, env: str) -> Refusal:
        self.count_refusal(self.refusal_for_all())
        return self.refusal_for_all()

    def leave(self, conn: object) -> None:
        pass

    def credentials_changed(self, env: str, current: set[str], old: dict[str, int],
                            now_ms: int) -> None:
        pass

    async def run(self, *, still_valid: object,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()


async def test_the_acceptor_sheds_with_whatever_gate_the_directory_was_given(
    nursery: trio.Nursery,
) -> None:
    # The acceptor used to look for the gate with getattr and isinstance(StreamGate): any other
    # gate turned shedding at accept off without a word, and every refused stream cost an
    # actor and a lookup. The gate is now the directory's constructor argument, used as given.
    gate = _RefusingGate()
    directory = await _spy_directory(nursery, cast(StreamGate, gate))
    listener = _listener()
    clients = [_client(listener, send=True) for _ in range(4)]
    await nursery.start(Acceptor(listener, directory, directory.counters, StreamLimits()).run)
    for c in clients:
        body, fin = await _response(c)
        assert body.startswith(b"HTTP/1.1 503 ") and b"refusing every stream" in body, body
        assert fin
        c.close()
    assert directory.lookups == 0 and gate.counted == 4
    listener.close()


def _client_side_request(kind: str) -> bytes:
    ctx = b'{"kind":"user","key":"amy"}'
    b64 = base64.urlsafe_b64encode(ctx).decode().rstrip("=")
    if kind == "eval":
        return request(f"/eval/{ENV.client_side_id}/{b64}", key=None)
    if kind == "meval":
        return request(f"/meval/{b64}", key=ENV.mobile_key)
    return (f"REPORT /eval/{ENV.client_side_id} HTTP/1.1\r\nHost: test\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(ctx)}\r\n\r\n"
            ).encode() + ctx


@pytest.mark.parametrize("kind", ["eval", "report", "meval"])
@pytest.mark.parametrize("request_first", [True, False])
async def test_client_side_streams_are_shed_over_the_default_memory_budget(
    nursery: trio.Nursery, directory: SpyDirectory, kind: str, request_first: bool,
) -> None:
    # The gate's own default budget (no limit configured here): a worker whose RSS passed it
    # refuses client-side streams too, before any context is evaluated.
    directory.gate.load.observe_rss(DEFAULT_WORKER_MEMORY_BUDGET_MIB * 1024 * 1024,
                                    trio.current_time())
    listener = _listener()
    client = socket.create_connection(listener.getsockname()[:2], timeout=5)
    if request_first:
        client.sendall(_client_side_request(kind))
    await nursery.start(Acceptor(listener, directory, directory.counters, StreamLimits()).run)
    if not request_first:
        with trio.fail_after(5):
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        client.sendall(_client_side_request(kind))
    body, _ = await _response(client)
    head, _, text = body.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), body
    assert b"saturated (memory is over budget)" in text
    assert int(head.lower().split(b"retry-after: ")[1].split(b"\r\n")[0]) in range(1, 4)
    assert directory.gate.saturated_refusals == {"memory": 1}
    actor = directory.actor(ENV.key)
    assert actor is not None and actor.client_groups is None  # nothing was evaluated
    client.close()
    listener.close()
