"""Before the first snapshot: streams wait silently, polls get 503, then both get data."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest
import trio
import trio.testing
from streamer_testkit import (
    ENV,
    StreamReader,
    flag,
    request,
    snapshot,
    tcp_pair,
)

from bus.envelope import EnvChange
from streamer.environments.directory import Directory
from streamer.fastpath.sse import SSEEvent
from streamer.fastpath.stream_actor import StreamActor
from streamer.fastpath.stream_gate import StreamGate
from streamer.fastpath.stream_limits import StreamLimits
from streamer.sdk_app import create_sdk_app


async def expect_put(client: socket.socket) -> None:
    with trio.fail_after(5):
        items = await StreamReader().read_until(client, 1)
    assert isinstance(items[0], SSEEvent) and items[0].event == "put"


async def expect_refused(client: socket.socket, status: int) -> None:
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(client)
    assert client.recv(100).startswith(f"HTTP/1.1 {status} ".encode())


async def test_streams_wait_for_data_then_get_put_or_401(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    directory = Directory(gate=StreamGate())
    await nursery.start(directory.run)
    known_server, known = tcp_pair()
    unknown_server, unknown = tcp_pair()
    known.send(request(key=ENV.sdk_key))
    unknown.send(request(key="sdk-not-yet-known"))
    for server in (known_server, unknown_server):
        nursery.start_soon(StreamActor(server, directory, directory.counters, StreamLimits()).run)
    await trio.sleep(30)  # held silently meanwhile
    for client in (known, unknown):
        with pytest.raises(BlockingIOError):
            client.recv(100)
    await directory.apply_snapshot(snapshot(1, (ENV, (flag("a", 1),))), full=True)
    await expect_put(known)
    await expect_refused(unknown, 401)


async def test_streams_get_503_when_no_data_arrives_in_time(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    directory = Directory(gate=StreamGate())
    await nursery.start(directory.run)
    server, client = tcp_pair()
    client.send(request())
    t0 = trio.current_time()
    await StreamActor(server, directory, directory.counters, StreamLimits(unloaded_hold=60)).run()
    assert trio.current_time() - t0 == 60
    answer = client.recv(1000)
    assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5\r\n" in answer


async def test_polls_get_503_then_200(nursery: trio.Nursery) -> None:
    directory = Directory(gate=StreamGate())
    await nursery.start(directory.run)
    app = create_sdk_app(directory)
    test_client = app.test_client()
    headers = {"Authorization": ENV.sdk_key}
    response = await test_client.get("/sdk/latest-all", headers=headers)
    assert response.status_code == 503
    assert (await test_client.get("/readyz")).status_code == 503
    await directory.apply_snapshot(snapshot(1, (ENV, (flag("a", 1),))), full=True)
    await trio.testing.wait_all_tasks_blocked()
    response = await test_client.get("/sdk/latest-all", headers=headers)
    assert response.status_code == 200
    assert set((await response.get_json())["flags"]) == {"a"}
    assert (await test_client.get("/readyz")).status_code == 200


async def test_extra_routes_and_credential_lookups(nursery: trio.Nursery) -> None:
    directory = Directory(gate=StreamGate())
    await nursery.start(directory.run)
    await directory.apply_snapshot(snapshot(1, (ENV, ())), full=True)

    def register(app: object) -> None:
        @app.get("/extra")  # type: ignore[attr-defined, misc]
        async def extra() -> str:
            return "extra"

    app = create_sdk_app(directory, extra_routes=[register])
    assert (await app.test_client().get("/extra")).status_code == 200
    assert directory.env_key_for_sdk_key("api_key " + ENV.sdk_key) == ENV.key
    assert directory.env_key_for_mobile_key(ENV.mobile_key) == ENV.key
    assert directory.env_key_for_client_side_id(ENV.client_side_id) == ENV.key
    assert directory.env_key_for_sdk_key(ENV.mobile_key) is None
    assert directory.env_key_for_sdk_key("unknown") is None


async def test_rotated_keys_expire_and_removed_envs_close_their_streams(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    now_ms = [1_000]
    directory = Directory(gate=StreamGate(), wall_clock_ms=lambda: now_ms[0])
    await nursery.start(directory.run)
    rotated = replace(ENV, sdk_key="sdk-new", old_sdk_keys=(("sdk-prod-1", 2_000),))
    await directory.apply_snapshot(snapshot(1, (rotated, (flag("a", 1),))), full=True)
    assert directory.env_key_for_sdk_key("sdk-new") == ENV.key
    assert directory.env_key_for_sdk_key("sdk-prod-1") == ENV.key  # still valid
    server, client = tcp_pair()
    client.send(request(key="sdk-prod-1"))
    nursery.start_soon(StreamActor(server, directory, directory.counters, StreamLimits()).run)
    with trio.fail_after(5):
        await StreamReader().read_until(client, 1)
    now_ms[0] = 2_000
    assert directory.env_key_for_sdk_key("sdk-prod-1") is None  # expired
    await directory.apply_snapshot(snapshot(2), full=True)  # the environment is gone
    with trio.fail_after(5):
        for _ in range(1000):  # read until EOF: the stream was closed
            await trio.lowlevel.wait_readable(client)
            if not client.recv(65536):
                break
    await trio.testing.wait_all_tasks_blocked()
    assert directory.counters.disconnects == {"env_removed": 1}
    assert directory.env_key_for_sdk_key("sdk-new") is None


NEWER = replace(ENV, key="newer", sdk_key="sdk-newer", mobile_key="mob-newer",
                client_side_id="cid-newer")


async def loaded_directory(nursery: trio.Nursery) -> Directory:
    directory = Directory(gate=StreamGate())
    await nursery.start(directory.run)
    await directory.apply_snapshot(snapshot(1, (ENV, (flag("a", 1),))), full=True)
    return directory


async def test_a_key_created_a_moment_ago_is_served_not_refused(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # The admin API answers once the store has committed a new environment; the bus brings it
    # a moment later. A stream with its key that arrives in between must wait for it (up to
    # the hold), not get a 401, which several SDKs take as final.
    directory = await loaded_directory(nursery)
    early_server, early = tcp_pair()
    bogus_server, bogus = tcp_pair()
    early.send(request(key="sdk-newer"))
    bogus.send(request(key="sdk-never-made"))
    started = trio.current_time()
    for server in (early_server, bogus_server):
        nursery.start_soon(StreamActor(server, directory, directory.counters, StreamLimits()).run)
    await trio.sleep(0.3)
    await directory.apply_change(EnvChange(2, NEWER))
    await expect_put(early)
    await expect_refused(bogus, 401)
    # the unknown key is refused exactly when the hold ends
    assert trio.current_time() - started == pytest.approx(directory.unknown_credential_hold_s)


async def test_unknown_key_polls_wait_for_a_new_environment(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    directory = await loaded_directory(nursery)

    async def arrive_later() -> None:
        await trio.sleep(0.2)
        await directory.apply_change(EnvChange(2, NEWER))

    nursery.start_soon(arrive_later)
    found = await directory.await_known(lambda: directory.env_key_for_sdk_key("sdk-newer"))
    assert found == "newer" and trio.current_time() == pytest.approx(0.2)
    started = trio.current_time()
    assert await directory.await_known(lambda: directory.env_key_for_sdk_key("sdk-x")) is None
    assert trio.current_time() - started == pytest.approx(1.0)
    directory.unknown_credential_hold_s = 0
    started = trio.current_time()
    assert await directory.await_known(lambda: directory.env_key_for_sdk_key("sdk-x")) is None
    assert trio.current_time() == started
