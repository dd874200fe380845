"""Client-side context groups in the environment actor, on a mock clock with real sockets:
a group is freed as soon as its last stream closes, not at the next heartbeat."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from streamer_testkit import ENV, StreamReader, request, snapshot, tcp_pair

from bus.envelope import ItemChange
from streamer.environments.directory import Directory
from streamer.environments.env_actor import Apply
from streamer.fastpath.sse import SSEEvent
from streamer.fastpath.stream_actor import StreamActor
from streamer.fastpath.stream_gate import StreamGate
from streamer.fastpath.stream_limits import StreamLimits
from streamer.metrics_collector import WorkerCollector


def client_flag(key: str) -> ItemChange:
    body = {"key": key, "version": 1, "on": True, "salt": "s", "variations": [False, True],
            "offVariation": 0, "fallthrough": {"variation": 1}, "targets": [], "rules": [],
            "prerequisites": [], "clientSideAvailability": {"usingEnvironmentId": True,
                                                            "usingMobileKey": True}}
    return ItemChange("flags", key, 1, json.dumps(body).encode())


@pytest.fixture
async def directory(nursery: trio.Nursery) -> AsyncIterator[Directory]:
    d = Directory(gate=StreamGate(), heartbeat_interval=20.0)
    await nursery.start(d.run)
    await d.apply_snapshot(snapshot(1, (ENV, (client_flag("a"), client_flag("b")))), full=True)
    yield d


def eval_path(user: str) -> str:
    ctx = json.dumps({"kind": "user", "key": user}).encode()
    return f"/eval/{ENV.client_side_id}/" + base64.urlsafe_b64encode(ctx).decode().rstrip("=")


async def open_eval(nursery: trio.Nursery, directory: Directory, user: str,
                    ) -> tuple[socket.socket, trio.Event, StreamReader]:
    server, client = tcp_pair()
    client.send(request(eval_path(user), key=None))
    ended = trio.Event()

    async def run() -> None:
        await StreamActor(server, directory, directory.counters, StreamLimits()).run()
        ended.set()

    nursery.start_soon(run)
    reader = StreamReader()
    with trio.fail_after(5):
        items = await reader.read_until(client, 1)
    assert isinstance(items[0], SSEEvent) and items[0].event == "put"
    assert json.loads(items[0].data)["a"]["value"] is True
    return client, ended, reader


async def test_a_group_is_freed_when_its_last_stream_closes(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, directory: Directory
) -> None:
    amy1, amy1_ended, _ = await open_eval(nursery, directory, "amy")
    amy2, amy2_ended, _ = await open_eval(nursery, directory, "amy")
    bob, _, _ = await open_eval(nursery, directory, "bob")
    actor = directory.actor(ENV.key)
    assert actor is not None and actor.client_groups is not None
    groups = actor.client_groups
    assert (len(groups), groups.connections()) == (2, 3)
    t0 = trio.current_time()
    amy1.close()
    with trio.fail_after(1):
        await amy1_ended.wait()
    await trio.testing.wait_all_tasks_blocked()
    assert (len(groups), groups.connections()) == (2, 2)
    amy2.close()
    with trio.fail_after(1):
        await amy2_ended.wait()
    await trio.testing.wait_all_tasks_blocked()
    # freed at once: the heartbeat (and its prune) is 20 s away
    assert trio.current_time() == t0
    assert (len(groups), groups.connections()) == (1, 1)
    assert groups.statistics().freed == 1
    assert len(actor.connections()) == 1
    bob.close()


async def test_the_group_bound_reaches_the_actor_and_the_metrics(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    directory = Directory(gate=StreamGate(), heartbeat_interval=20.0, max_context_groups=1)
    await nursery.start(directory.run)
    await directory.apply_snapshot(snapshot(1, (ENV, (client_flag("a"),))), full=True)
    amy, _, reader = await open_eval(nursery, directory, "amy")
    bob, _, _ = await open_eval(nursery, directory, "bob")
    stats = directory.statistics().client_groups
    assert (stats.groups, stats.warm, stats.connections, stats.evictions) == (2, 1, 2, 1)
    # amy's group went cold; a change still reaches it, evaluated now
    actor = directory.actor(ENV.key)
    assert actor is not None
    await actor.send(Apply((ItemChange("flags", "a", 2, client_flag("a").data), )))
    with trio.fail_after(5):
        items = await reader.read_until(amy, 1)
    assert isinstance(items[-1], SSEEvent) and items[-1].event == "patch"
    samples = {m.name: m.samples[0].value
               for m in WorkerCollector(0, directory=directory, subscriber=None,
                                        ingest=None).collect()
               if m.name.startswith("flagstream_client_group")}
    assert samples == {"flagstream_client_groups": 2, "flagstream_client_groups_warm": 1,
                       "flagstream_client_group_evictions": 1}
    amy.close()
    bob.close()
