"""The bus over real nng: publisher, snapshot server and subscriber on ipc:// and tcp://.

Waits are bounded with trio.fail_after; nothing here asserts how fast something happened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pynng
import pytest
import trio
from bus_fakes import DroppingPublisher, FakeStore, RecordingSink, StoreNode, until

from bus.envelope import (
    Change,
    ErrorReply,
    Heartbeat,
    Snapshot,
    SnapshotRequest,
    decode,
    encode,
)
from bus.publisher import BusPublisher, PublisherStatistics
from bus.snapshot_server import serve_snapshots
from bus.subscriber import BusSubscriber

Addresses = Callable[[], tuple[str, str]]


@pytest.fixture(params=["ipc", "tcp"])
def addresses(request: pytest.FixtureRequest, tmp_path: Path) -> Addresses:
    if request.param == "ipc":
        return lambda: (f"ipc://{tmp_path}/bus.sock", f"ipc://{tmp_path}/bus.sock.snap")
    return lambda: ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")


@pytest.fixture
def ipc(tmp_path: Path) -> tuple[str, str]:
    return f"ipc://{tmp_path}/bus.sock", f"ipc://{tmp_path}/bus.sock.snap"


def seeded_store(envs: tuple[str, ...] = ("prod",)) -> FakeStore:
    store = FakeStore()
    for env in envs:
        store.create_env(env)
        store.commit(env, [("flags", "f0", b'{"v":0}'), ("segments", "s0", b"{}")])
    return store


async def start_subscriber(
    nursery: trio.Nursery, node: StoreNode, sink: RecordingSink, **kw: float
) -> BusSubscriber:
    sub = BusSubscriber(node.bus, node.snap, sink, **kw)
    await nursery.start(sub.run)
    return sub


async def wait_live(sub: BusSubscriber) -> None:
    """Synced and a heartbeat seen: the pub -> sub path is up, so nothing published is lost."""
    await sub.wait_synced()
    seen = sub.statistics().heartbeats
    await until(lambda: sub.statistics().heartbeats > seen)


async def test_delivery_in_order(addresses: Addresses) -> None:
    store = seeded_store()
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(StoreNode(store, *addresses()).run)
        sub = await start_subscriber(nursery, node, sink)
        with trio.fail_after(5):
            await wait_live(sub)
            first = store.seq
            for i in range(50):
                await node.publish(store.commit("prod", [("flags", f"f{i % 7}", b"%d" % i)]))
            await node.publish(store.create_env("stage"))
            await node.publish(store.commit("stage", [("flags", "x", None)]))
            await sink.wait_for_state(store)
        stats = sub.statistics()
        assert sink.events[0] == ("snap", first)
        assert sink.events[1:] == [("chg", s) for s in range(first + 1, store.seq + 1)]
        assert sink.order_violations == []
        assert (stats.applied, stats.resyncs, stats.gaps_detected) == (52, 0, 0)
        assert stats.last_seq == store.seq and stats.connected
        assert node.publisher is not None
        pstats = node.publisher.statistics()
        assert (pstats.published, pstats.latest_seq) == (52, store.seq)
        assert pstats.heartbeats >= 1
        nursery.cancel_scope.cancel()


async def test_publisher_keeps_seq_order_and_announces_unsent(ipc: tuple[str, str]) -> None:
    publisher = BusPublisher(ipc[0], epoch="e", initial_seq=10, heartbeat_interval=0.05)
    store_change = Change(11, "prod", ())
    await publisher.publish(store_change)  # not listening yet: counted, announced later
    assert publisher.statistics() == PublisherStatistics(
        published=0, latest_seq=11, heartbeats=0, unsent=1
    )
    with pytest.raises(ValueError, match="seq must increase"):
        await publisher.publish(Change(11, "prod", ()))
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        with pynng.Sub0(topics=b"", dial=ipc[0]) as raw_sub, trio.fail_after(5):
            hb = decode(await raw_sub.arecv())
            while not isinstance(hb, Heartbeat):
                hb = decode(await raw_sub.arecv())
            assert hb == Heartbeat(11, "e")
        nursery.cancel_scope.cancel()


async def request(req: pynng.Req0, payload: bytes) -> object:
    await req.asend(payload)
    return decode(await req.arecv())


async def test_snapshot_server_serves_several_requesters_at_once(
    addresses: Addresses,
) -> None:
    store = seeded_store(("prod", "stage"))
    # Four snapshots must be in progress at the same time to pass this barrier.
    barrier = threading.Barrier(4, timeout=10)
    store.before_snapshot = barrier.wait
    async with trio.open_nursery() as nursery:
        snap_address = await nursery.start(
            partial(serve_snapshots, addresses()[1], store, epoch="node-epoch")
        )
        replies: list[object] = []

        async def one(env: str | None) -> None:
            with pynng.Req0(dial=snap_address, recv_max_size=0) as req:
                replies.append(await request(req, encode(SnapshotRequest(env))))

        with trio.fail_after(10):
            async with trio.open_nursery() as clients:
                for env in (None, "prod", "stage", None):
                    clients.start_soon(one, env)
        nursery.cancel_scope.cancel()
    assert len(replies) == 4 and all(isinstance(r, Snapshot) for r in replies)
    snaps = [r for r in replies if isinstance(r, Snapshot)]
    assert {s.epoch for s in snaps} == {"node-epoch"}  # re-stamped by the server
    assert sorted(len(s.envs) for s in snaps) == [1, 1, 2, 2]
    assert all(s.seq == store.seq for s in snaps)


async def test_snapshot_server_answers_bad_input_and_keeps_serving(
    ipc: tuple[str, str],
) -> None:
    store = seeded_store()
    failing = {"on": False}

    def maybe_fail() -> None:
        if failing["on"]:
            raise RuntimeError("disk on fire")

    store.before_snapshot = maybe_fail
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_snapshots, ipc[1], store, epoch="e"))
        with pynng.Req0(dial=ipc[1], recv_max_size=0) as req, trio.fail_after(10):
            cases: list[tuple[bytes, str]] = [
                (b"garbage", "bad request"),
                (b"", "bad request"),
                (encode(Heartbeat(1, "e")), "expected a snapshot request"),
                (encode(SnapshotRequest("nope")), "unknown environment 'nope'"),
            ]
            for payload, message in cases:
                reply = await request(req, payload)
                assert isinstance(reply, ErrorReply) and message in reply.message
            failing["on"] = True
            reply = await request(req, encode(SnapshotRequest(None)))
            assert isinstance(reply, ErrorReply) and "disk on fire" in reply.message
            failing["on"] = False
            # A request over the size limit is dropped by nng unread; the server lives on.
            await req.asend(b"\x00" * (128 * 1024))
            with trio.move_on_after(0.3):
                await req.arecv()
            reply = await request(req, encode(SnapshotRequest(None)))
            assert isinstance(reply, Snapshot) and reply.seq == store.seq
        nursery.cancel_scope.cancel()


async def test_gap_repair_after_dropped_messages(addresses: Addresses) -> None:
    store = seeded_store()
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(StoreNode(store, *addresses()).run)
        sub = await start_subscriber(nursery, node, sink)
        with trio.fail_after(5):
            await wait_live(sub)
        dropper = DroppingPublisher(node, drop={store.seq + 5, store.seq + 6, store.seq + 12})
        for i in range(20):
            await dropper.publish(store.commit("prod", [("flags", f"f{i % 4}", b"%d" % i)]))
        with trio.fail_after(2):
            await sink.wait_for_state(store)
        stats = sub.statistics()
        assert len(dropper.dropped) == 3
        assert stats.gaps_detected >= 1 and stats.resyncs >= 1
        assert stats.last_seq == store.seq
        assert sink.order_violations == []
        nursery.cancel_scope.cancel()


async def test_heartbeat_ahead_and_bus_garbage(ipc: tuple[str, str]) -> None:
    """A stand-in publisher (raw Pub0) speaks the wire protocol: garbage is counted and
    skipped; a heartbeat announcing a seq the subscriber lacks makes it resync."""
    store = seeded_store()
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_snapshots, ipc[1], store, epoch="E"))
        with pynng.Pub0(listen=ipc[0]) as pub:
            sub = await start_subscriber(nursery, StoreNode(store, *ipc), sink)
            with trio.fail_after(5):
                await sub.wait_synced()
                await until(lambda: sub.statistics().connected)
                synced_at = store.seq
                while sub.statistics().heartbeats == 0:  # also proves the path is up
                    pub.send(encode(Heartbeat(synced_at, "E")))
                    await trio.sleep(0.02)
                pub.send(b"junk")
                pub.send(encode(SnapshotRequest(None)))
                store.commit("prod", [("flags", "lost", b"1")])  # never published
                pub.send(encode(Heartbeat(store.seq, "E")))
            with trio.fail_after(2):
                await sink.wait_for_state(store)
            stats = sub.statistics()
            assert stats.malformed == 2 and stats.resyncs == 1 and stats.gaps_detected == 0
            assert sink.events[-1] == ("snap", store.seq)
            nursery.cancel_scope.cancel()


async def test_silence_triggers_resync(ipc: tuple[str, str]) -> None:
    store = seeded_store()
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(StoreNode(store, *ipc).run)
        sub = await start_subscriber(nursery, node, sink, heartbeat_timeout=0.3)
        with trio.fail_after(5):
            await wait_live(sub)
        node.stop_publishing()  # the snapshot server stays up
        store.commit("prod", [("flags", "unannounced", b"2")])
        with trio.fail_after(2):
            await sink.wait_for_state(store)
        stats = sub.statistics()
        assert stats.resyncs >= 1 and stats.gaps_detected == 0
        assert stats.last_message_age_s >= 0.3
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("older_db", [False, True], ids=["same-db", "restored-older-db"])
async def test_store_restart(addresses: Addresses, older_db: bool) -> None:
    store = seeded_store()
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(StoreNode(store, *addresses()).run)
        bus, snap = node.bus, node.snap  # tcp: the ports chosen, reused on restart
        sub = await start_subscriber(nursery, node, sink, heartbeat_timeout=1.0)
        with trio.fail_after(5):
            await wait_live(sub)
            for i in range(5):
                await node.publish(store.commit("prod", [("flags", f"f{i}", b"x")]))
            await sink.wait_for_state(store)
        node.stop()
        with trio.fail_after(5):
            await until(lambda: not sub.statistics().connected)
        if older_db:  # a backup from before the last five changes, under a new epoch
            store = seeded_store()
            store.commit("prod", [("flags", "only-in-backup", b"b")])
            epoch = "epoch-2"
        else:  # the same database, changed while the store was down
            store.commit("prod", [("flags", "while-down", b"d")])
            epoch = "epoch-1"
        node = await nursery.start(StoreNode(store, bus, snap, epoch=epoch).run)
        with trio.fail_after(5):
            await sink.wait_for_state(store)
            await node.publish(store.commit("prod", [("flags", "after", b"a")]))
            await sink.wait_for_state(store)
        stats = sub.statistics()
        assert stats.connected and stats.resyncs >= 1
        assert sink.order_violations == []
        nursery.cancel_scope.cancel()


async def test_subscriber_starts_before_the_store(ipc: tuple[str, str]) -> None:
    store = seeded_store()
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        sub = BusSubscriber(*ipc, sink, snapshot_timeout=0.2)
        assert await nursery.start(sub.run) is sub  # started before any data
        assert sink.events == [] and sub.statistics().last_seq is None
        with trio.fail_after(5):  # let a snapshot attempt fail first
            await until(lambda: sub.statistics().snapshot_failures > 0)
        await nursery.start(StoreNode(store, *ipc).run)
        with trio.fail_after(5):
            await sub.wait_synced()
        assert sink.events == [("snap", store.seq)] and sink.state == store.view()
        assert sub.statistics().resyncs == 0
        nursery.cancel_scope.cancel()


async def test_changes_during_snapshot_are_buffered_then_applied(ipc: tuple[str, str]) -> None:
    store = seeded_store()
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(StoreNode(store, *ipc).run)
        sub = await start_subscriber(nursery, node, sink)
        with trio.fail_after(5):
            await wait_live(sub)
        release = threading.Event()
        store.hold = release
        dropper = DroppingPublisher(node, drop={store.seq + 1})
        await dropper.publish(store.commit("prod", [("flags", "a", b"1")]))  # lost
        await dropper.publish(store.commit("prod", [("flags", "b", b"1")]))  # gap -> resync
        await trio.to_thread.run_sync(store.captured.wait, 5)
        snapshot_seq = store.seq
        for i in range(10):  # published while the snapshot is in flight
            await node.publish(store.commit("prod", [("flags", "c", b"%d" % i)]))
        with trio.fail_after(5):
            await until(lambda: sub.statistics().backlog >= 10)
        release.set()
        with trio.fail_after(5):
            await sink.wait_for_state(store)
        resync_at = sink.events.index(("snap", snapshot_seq))
        assert sink.events[resync_at + 1 :] == [
            ("chg", s) for s in range(snapshot_seq + 1, store.seq + 1)
        ]
        stats = sub.statistics()
        assert (stats.resyncs, stats.gaps_detected, stats.buffer_overflows) == (1, 1, 0)
        nursery.cancel_scope.cancel()


async def test_backlog_overflow_drops_it_and_resyncs_again(ipc: tuple[str, str]) -> None:
    store = seeded_store()
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(StoreNode(store, *ipc).run)
        sub = BusSubscriber(node.bus, node.snap, sink, buffer_limit=3)
        await nursery.start(sub.run)
        with trio.fail_after(5):
            await wait_live(sub)
        release = threading.Event()
        store.hold = release
        dropper = DroppingPublisher(node, drop={store.seq + 1})
        await dropper.publish(store.commit("prod", [("flags", "a", b"1")]))
        await dropper.publish(store.commit("prod", [("flags", "b", b"1")]))
        await trio.to_thread.run_sync(store.captured.wait, 5)
        for i in range(10):
            await node.publish(store.commit("prod", [("flags", "c", b"%d" % i)]))
        with trio.fail_after(5):
            await until(lambda: sub.statistics().buffer_overflows > 0)
        store.hold = None
        release.set()
        with trio.fail_after(5):
            await sink.wait_for_state(store)
        stats = sub.statistics()
        assert stats.buffer_overflows == 1 and stats.resyncs == 2
        assert sink.order_violations == []
        nursery.cancel_scope.cancel()


async def test_burst_with_slow_sink_ends_with_exact_state(ipc: tuple[str, str]) -> None:
    """10,000 changes at once; the sink needs 1 ms per change, so nng must drop many."""
    store = seeded_store()
    sink = RecordingSink(change_delay=0.001)
    payload = b"x" * 1024  # large enough that kernel buffers hold only a few hundred
    async with trio.open_nursery() as nursery:
        node = await nursery.start(StoreNode(store, *ipc).run)
        sub = await start_subscriber(nursery, node, sink)
        with trio.fail_after(5):
            await wait_live(sub)
        for i in range(10_000):
            await node.publish(store.commit("prod", [("flags", f"f{i % 100}", payload)]))
        with trio.fail_after(60):
            await sink.wait_for_state(store)
        stats = sub.statistics()
        assert stats.applied < 10_000, "precondition: nng dropped part of the burst"
        assert stats.resyncs >= 1 and stats.last_seq == store.seq
        assert sink.order_violations == []
        nursery.cancel_scope.cancel()
