"""Environment and stream actors on a mock clock, with real sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import pytest
import trio
import trio.lowlevel
import trio.testing
from streamer_testkit import (
    ENV,
    StreamReader,
    apply_stream,
    flag,
    request,
    snapshot,
    tcp_pair,
    tombstone,
)

from bus.envelope import Change, ItemChange
from streamer.environments.directory import Directory
from streamer.environments.env_actor import EnvActor
from streamer.fastpath.http_head import STREAM_RESPONSE_HEAD
from streamer.fastpath.sse import SSEComment, SSEEvent
from streamer.fastpath.stream_actor import StreamActor
from streamer.fastpath.stream_conn import SLOW
from streamer.fastpath.stream_gate import StreamGate
from streamer.fastpath.stream_limits import StreamLimits


@pytest.fixture
async def directory(nursery: trio.Nursery) -> AsyncIterator[Directory]:
    d = Directory(gate=StreamGate(), heartbeat_interval=20.0)
    await nursery.start(d.run)
    await d.apply_snapshot(snapshot(1, (ENV, (flag("a", 1), flag("b", 1)))), full=True)
    yield d


async def _run_actor(nursery: trio.Nursery, directory: Directory, server: socket.socket,
                     limits: StreamLimits, ended: Ended | None = None) -> Ended:
    """Start a stream actor on ``server``; the returned event is set when it returns."""
    ended = Ended() if ended is None else ended

    async def run() -> None:
        await StreamActor(server, directory, directory.counters, limits).run()
        ended.set()

    nursery.start_soon(run)
    return ended


async def connect(nursery: trio.Nursery, directory: Directory, limits: StreamLimits,
                  path: str = "/all", ended: Ended | None = None,
                  ) -> tuple[socket.socket, StreamReader]:
    server, client = tcp_pair()
    client.send(request(path))
    await _run_actor(nursery, directory, server, limits, ended)
    reader = StreamReader()
    with trio.fail_after(5):
        await reader.read_until(client, 1)
    assert reader.head is not None and reader.head.startswith(b"HTTP/1.1 200 OK\r\n")
    return client, reader


class Ended:
    """Set when a stream actor returns; remembers the virtual time."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._event = trio.Event()

    def set(self) -> None:
        self.at = trio.current_time()
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


def env_actor(directory: Directory) -> EnvActor:
    actor = directory.stream_target(ENV.sdk_key)
    assert actor is not None
    return actor


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_heartbeats_come_every_interval_from_one_ticker(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory
) -> None:
    t0 = trio.current_time()  # the ticker started with the environment
    client, reader = await connect(nursery, directory, StreamLimits())
    seen: list[float] = []
    for _ in range(3):
        with trio.fail_after(25):
            items = await reader.read_until(client, 1)
        assert items == [SSEComment("")]
        seen.append(trio.current_time() - t0)
    assert seen == [20.0, 40.0, 60.0]
    assert directory.counters.heartbeats == 3


async def test_put_then_patch_and_delete_in_order(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory
) -> None:
    client, reader = await connect(nursery, directory, StreamLimits())
    (put,) = [i for i in reader.items if isinstance(i, SSEEvent)]
    assert set(json.loads(put.data)["data"]["flags"]) == {"a", "b"}
    await directory.apply_change(Change(2, ENV.key, (flag("a", 2), tombstone("b", 2))))
    with trio.fail_after(5):
        patch, delete = await reader.read_until(client, 2)
    assert isinstance(patch, SSEEvent) and isinstance(delete, SSEEvent)
    assert (patch.event, json.loads(patch.data)["path"]) == ("patch", "/flags/a")
    assert (delete.event, json.loads(delete.data)) == ("delete", {"path": "/flags/b", "version": 2})


async def test_legacy_flags_stream_gets_no_segments(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory
) -> None:
    client, reader = await connect(nursery, directory, StreamLimits(), path="/flags")
    (put,) = reader.items
    assert isinstance(put, SSEEvent) and set(json.loads(put.data)) == {"a", "b"}
    segment = ItemChange("segments", "s", 2, b'{"key":"s","version":2}')
    await directory.apply_change(Change(2, ENV.key, (segment,)))
    await directory.apply_change(Change(3, ENV.key, (flag("a", 3),)))
    with trio.fail_after(5):
        (patch,) = await reader.read_until(client, 1)
    assert isinstance(patch, SSEEvent) and json.loads(patch.data)["path"] == "/a"


async def test_disconnect_is_detected_and_cleaned_up(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory
) -> None:
    ended = Ended()
    client, _ = await connect(nursery, directory, StreamLimits(), ended=ended)
    assert len(env_actor(directory).connections()) == 1
    assert directory.counters.connections[(ENV.key, "all")] == 1
    t_close = trio.current_time()
    client.close()
    with trio.fail_after(1):
        await ended.wait()
    assert ended.at == t_close
    assert env_actor(directory).connections() == []
    assert directory.counters.connections[(ENV.key, "all")] == 0
    assert directory.counters.disconnects == {"client_closed": 1}


async def test_max_age_ends_the_stream_cleanly(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory
) -> None:
    ended = Ended()
    t0 = trio.current_time()
    client, _ = await connect(nursery, directory, StreamLimits(max_age=100.0), ended=ended)
    with trio.fail_after(200):
        await ended.wait()
    assert ended.at is not None
    assert 75.0 <= ended.at - t0 <= 100.0  # max age minus up to 25 % jitter
    assert directory.counters.disconnects == {"max_age": 1}
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    assert data.endswith(b"0\r\n\r\n")  # the terminating chunk: a clean end of the body


def shrink(server_side: socket.socket, client_side: socket.socket) -> None:
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client_side.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


async def stalled_client(nursery: trio.Nursery, directory: Directory, limits: StreamLimits,
                         ended: Ended) -> socket.socket:
    server, client = tcp_pair()
    shrink(server, client)
    client.send(request())
    await _run_actor(nursery, directory, server, limits, ended)
    await settle()
    return client


async def change_until(directory: Directory, seq: int, done: object, *, pad: int = 2000,
                       limit: int = 2000) -> int:
    """Publish changes to distinct keys until ``done()`` is true; returns the next seq."""
    for i in range(limit):
        if done():  # type: ignore[operator]
            return seq
        await directory.apply_change(Change(seq, ENV.key, (flag(f"k{i}", seq, pad=pad),)))
        seq += 1
        await settle()
    raise AssertionError("condition never reached")


async def test_slow_client_coalesces_then_resyncs_then_is_dropped(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory
) -> None:
    limits = StreamLimits(mailbox_items=8, mailbox_bytes=1 << 20, stall_timeout=30.0)
    ended = Ended()
    client = await stalled_client(nursery, directory, limits, ended)
    counters = directory.counters
    seq = await change_until(directory, 10, lambda: counters.slow_entries == 1)
    (conn,) = env_actor(directory).connections()
    assert conn.state == SLOW
    # The same key again and again takes one mailbox slot: latest wins.
    before = len(conn.mailbox)
    for _ in range(20):
        await directory.apply_change(Change(seq, ENV.key, (flag("same", seq, pad=2000),)))
        seq += 1
    await settle()
    assert len(conn.mailbox) <= before + 1
    assert counters.slow_resyncs == 0
    # Distinct keys overflow the bound: the backlog becomes one fresh put ...
    seq = await change_until(directory, seq, lambda: counters.slow_resyncs == 1)
    assert conn.mailbox.has_queued_put
    assert not ended.is_set()
    # ... every time it overflows again: memory stays bounded, no change is lost ...
    await change_until(directory, seq, lambda: counters.slow_resyncs == 2)
    assert conn.mailbox.has_queued_put
    assert len(conn.mailbox) <= 1 + 1 + limits.mailbox_items
    t_last = trio.current_time()
    assert not ended.is_set()
    # ... until the socket has taken no byte for the stall timeout.
    with trio.fail_after(100):
        await ended.wait()
    assert ended.at is not None and t_last < ended.at <= t_last + 30.0
    assert counters.disconnects == {"slow_client": 1}
    assert env_actor(directory).connections() == []
    client.close()


@pytest.mark.parametrize(("env_goes", "after", "reason"),
                         [(False, 30.0, "slow_client"), (True, 0.0, "env_removed")])
async def test_slow_stream_ends_at_the_stall_timeout_or_at_once_when_asked(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory,
    env_goes: bool, after: float, reason: str,
) -> None:
    # The stream waits on a full socket in the slow path. A request_close (here: its
    # environment removed) must wake that wait, though the stream has no cancel scope of its
    # own (only max_age gives it one).
    limits = StreamLimits(stall_timeout=30.0, mailbox_items=10_000)
    ended = Ended()
    client = await stalled_client(nursery, directory, limits, ended)
    await change_until(directory, 10, lambda: directory.counters.slow_entries == 1)
    t_slow = trio.current_time()
    if env_goes:
        await directory.apply_snapshot(snapshot(50), full=True)
    with trio.fail_after(100):
        await ended.wait()
    assert ended.at == t_slow + after
    assert directory.counters.disconnects == {reason: 1}
    client.close()


@pytest.mark.parametrize("mailbox_items", [10_000, 4], ids=["coalesce", "resync"])
async def test_slow_client_that_catches_up_ends_in_the_right_state(
    nursery: trio.Nursery, directory: Directory, mailbox_items: int
) -> None:
    # The real clock: catching up waits on the kernel's TCP window updates, which a mock
    # clock in autojump mode would race.
    limits = StreamLimits(mailbox_items=mailbox_items, stall_timeout=1000.0)
    ended = Ended()
    client = await stalled_client(nursery, directory, limits, ended)
    counters = directory.counters
    seq = await change_until(directory, 10, lambda: counters.slow_entries == 1)
    for i in range(30):  # more changes while slow, some to the same keys, some deletes
        item = tombstone(f"k{i % 7}", seq) if i % 5 == 0 else flag(f"k{i % 7}", seq, pad=500)
        await directory.apply_change(Change(seq, ENV.key, (item,)))
        seq += 1
    await settle()
    reader = StreamReader()
    # Live items only: a put leaves tombstones out, so the client forgets deleted keys.
    expected = {k: i.version for k, i in env_actor(directory).view().flags.items() if i.data}
    state: dict[str, int] = {}

    def live() -> dict[str, int]:
        return {k: v for k, v in state.items() if v > 0}

    with trio.move_on_after(10):  # a bound, not a performance assert
        while live() != expected:
            await trio.lowlevel.wait_readable(client)
            for item in reader.feed(client.recv(1 << 20)):
                apply_stream(state, item)
    assert live() == expected
    (conn,) = env_actor(directory).connections()
    await settle()
    assert conn.state != SLOW
    assert reader.head == STREAM_RESPONSE_HEAD
    assert (counters.slow_resyncs > 0) == (mailbox_items == 4)
    assert not ended.is_set()
    client.close()


async def _read_all(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
            continue
        if not data:
            return out
        out += data


async def _send_in_pieces(client: socket.socket, data: bytes, pieces: int, gap: float) -> None:
    size = -(-len(data) // pieces)
    for i in range(0, len(data), size):
        if i:
            await trio.sleep(gap)
        client.send(data[i:i + size])


async def test_head_in_pieces_within_the_deadline_is_served(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory
) -> None:
    server, client = tcp_pair()
    await _run_actor(nursery, directory, server, StreamLimits(header_timeout=7.0))
    await _send_in_pieces(client, request("/all"), pieces=3, gap=3.0)  # whole after 6 s
    reader = StreamReader()
    with trio.fail_after(5):
        await reader.read_until(client, 1)
    assert reader.head is not None and reader.head.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize(("pieces", "gap"), [
    (1, 0.0),  # a head that never ends (its blank line is never sent)
    (5, 3.0),  # each gap is short, all four are not: the deadline is for the whole head
])
async def test_head_not_whole_by_the_header_deadline_gets_408_then(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory,
    pieces: int, gap: float,
) -> None:
    server, client = tcp_pair()
    t0 = trio.current_time()
    ended = await _run_actor(nursery, directory, server, StreamLimits(header_timeout=7.0))
    head = request("/all") if pieces > 1 else b"GET /all HTTP/1.1\r\nHost: x\r\n"
    async with trio.open_nursery() as sender:
        sender.start_soon(_send_in_pieces, client, head, pieces, gap)
        with trio.fail_after(30):
            answer = await _read_all(client)
            await ended.wait()
        sender.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert ended.at is not None and ended.at - t0 == pytest.approx(7.0)
    assert directory.counters.rejects == {408: 1}
