"""The containment boundary (store/containment.py) and where the streamer uses it: stream
actors, environment actors and context-group evaluation. Mock clock, real sockets."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from typing import cast

import pytest
import trio
import trio.testing
from quart import Response
from quart_trio import QuartTrio
from streamer_testkit import ENV, StreamReader, flag, flag_json, request, tcp_pair

from bus.envelope import EnvironmentInfo, ItemChange
from flagmodel import Context, parse_context
from store.containment import OVERFLOW_REASON, Failures, InputError, answer_for, failure_reason
from streamer.clientside.client_groups import ClientGroups, group_key
from streamer.clientside.client_model import EvalModel
from streamer.environments.directory import Directory
from streamer.environments.env_actor import RESTART_BACKOFF_MIN_S, Apply, Attach, Close, EnvActor
from streamer.environments.envstate import Delta, EnvState
from streamer.fastpath.http_head import StreamKind
from streamer.fastpath.mailbox import Mailbox
from streamer.fastpath.stream_actor import StreamActor
from streamer.fastpath.stream_conn import ClientSideConn, StreamConn
from streamer.fastpath.stream_gate import StreamGate
from streamer.fastpath.stream_limits import StreamLimits
from streamer.fastpath.stream_ports import EnvLink
from streamer.fastpath.worker_counters import WorkerCounters
from streamer.metrics import WorkerMetrics
from streamer.sdk_app import create_sdk_app

LOGGER = "flagstream.containment"

# (seconds since the first failure, logged?): an episode ends after QUIET_S (60 s) without one
EPISODE = [(0.0, True), (1.0, False), (60.5, False), (121.0, True), (122.0, False)]


def test_one_log_line_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    failures = Failures()
    with caplog.at_level(logging.ERROR, LOGGER):
        logged = [failures.record("client", RuntimeError("x"), t) for t, _ in EPISODE]
    assert logged == [want for _, want in EPISODE]
    assert failures.counts() == {("client", "RuntimeError"): len(EPISODE)}
    assert len(caplog.records) == 2
    assert caplog.records[0].exc_info is not None  # the first of an episode has its traceback
    assert "previous episode counted 2 more" in caplog.records[1].getMessage()


def test_kinds_are_bounded_and_named_by_type() -> None:
    failures = Failures(max_kinds=2)
    for exc in (KeyError("k"), ValueError("v"), TypeError("t"), OSError("o")):
        failures.record("http", exc, 0.0)
    assert failures.counts() == {("http", "KeyError"): 1, ("http", "ValueError"): 1,
                                 ("http", OVERFLOW_REASON): 2}
    assert failure_reason(ExceptionGroup("g", [TypeError("t")])) == "TypeError"
    assert answer_for(InputError("bad context")) == (400, "bad context")
    assert answer_for(RuntimeError("secret detail"))[0] == 503


async def test_cancellation_and_interrupts_pass_through(
        autojump_clock: trio.testing.MockClock) -> None:
    failures = Failures(clock=trio.current_time)
    with trio.move_on_after(1.0) as scope, failures.contain("client") as outcome:
        await trio.sleep(10)
    assert scope.cancelled_caught and outcome.error is None
    with pytest.raises(KeyboardInterrupt), failures.contain("client"):
        raise KeyboardInterrupt
    assert failures.counts() == {}


class BrokenDirectory:
    """A loaded directory whose lookup raises: the body of every stream actor fails."""

    loaded = True
    gate = StreamGate()

    async def wait_loaded(self) -> None:
        pass

    def stream_target(self, credential: str) -> EnvLink | None:
        raise RuntimeError(f"lookup of {credential!r} failed")

    async def await_known(self, find: Callable[[], object]) -> None:
        return None

    def client_stream_target(self, kind: StreamKind, credential: str
                             ) -> tuple[EnvLink, EnvironmentInfo] | None:
        raise RuntimeError("lookup failed")


def read_answer(client: socket.socket) -> bytes:
    client.setblocking(True)
    client.settimeout(5)
    buf = b""
    while data := client.recv(65536):
        buf += data
    return buf


async def test_failing_stream_actors_end_alone(
        autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
        caplog: pytest.LogCaptureFixture) -> None:
    counters = WorkerCounters()
    clients = []
    with caplog.at_level(logging.ERROR, LOGGER):
        async with trio.open_nursery() as worker:  # stands for the worker's acceptor nursery
            for _ in range(2):
                server, client = tcp_pair()
                client.send(request("/all"))
                clients.append(client)
                worker.start_soon(StreamActor(server, BrokenDirectory(), counters,
                                              StreamLimits()).run)
    answers = [await trio.to_thread.run_sync(read_answer, c) for c in clients]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"Retry-After: 5\r\n" in answer
    assert counters.statistics().failures == {("client", "RuntimeError"): 2}
    assert counters.statistics().rejected == {503: 2}
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1


class FailingOnce(EnvActor):
    """An environment actor whose first change delivery raises."""

    failed = False

    def _deliver(self, deltas: Iterable[Delta]) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("delivery failed")
        super()._deliver(deltas)


def stream_conn() -> tuple[StreamConn, socket.socket]:
    server, client = tcp_pair()
    return StreamConn(server, StreamKind.ALL, ENV.key, Mailbox(16, 1 << 20)), client


async def test_failed_environment_actor_closes_streams_and_restarts(
        autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    counters = WorkerCounters()
    actor = FailingOnce(ENV.key, counters)
    ended = trio.Event()

    async def run() -> None:
        await actor.run()
        ended.set()

    nursery.start_soon(run)
    await trio.testing.wait_all_tasks_blocked()
    first, _ = stream_conn()
    await actor.send(Attach(first))
    await actor.send(Apply((flag("a", 1),)))
    await trio.testing.wait_all_tasks_blocked()
    failed_at = trio.current_time()
    assert first.close_reason == "env_failed"
    assert counters.statistics().failures == {("environment", "RuntimeError"): 1}
    second, client = stream_conn()
    await actor.send(Attach(second))  # waits in the inbox while the actor backs off
    reader = StreamReader()
    with trio.fail_after(5):
        await reader.read_until(client, 1)
    assert trio.current_time() - failed_at >= RESTART_BACKOFF_MIN_S
    assert reader.head is not None and reader.head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert second.close_reason is None
    await actor.send(Close("test"))
    with trio.fail_after(5):
        await ended.wait()
    for conn in (first, second):  # the stream actor's job, which this test plays
        conn.sock.close()


def test_one_group_failing_leaves_the_others() -> None:
    state = EnvState()
    model = EvalModel()
    model.sync(state.view())
    groups: ClientGroups[str] = ClientGroups(model)
    good = {"kind": "user", "key": "good"}
    groups.add(group_key(good, with_reasons=False, mobile=False), parse_context(good), "g")
    # No flag yet, so adding evaluates nothing; the first change evaluates this one and fails.
    groups.add((b"bad", False, False), cast(Context, object()), "b")
    state.apply((client_side_flag("a", 1),))
    failed: list[tuple[set[str], str]] = []
    out = groups.on_change(model.sync(state.view()),
                           lambda conns, exc: failed.append((conns, type(exc).__name__)))
    assert [conns for conns, _ in out] == [{"g"}]
    assert failed == [({"b"}, "AttributeError")]
    assert len(groups) == 1


def failing_routes(app: QuartTrio) -> None:
    async def server_fault() -> Response:
        raise RuntimeError("a bug")

    async def bad_input() -> Response:
        raise InputError("the context is not usable")

    app.add_url_rule("/fault", "fault", server_fault, methods=["GET"])
    app.add_url_rule("/bad-input", "bad_input", bad_input, methods=["GET"])


async def test_http_handlers_answer_503_or_400_and_count(
        caplog: pytest.LogCaptureFixture) -> None:
    directory = Directory(gate=StreamGate())
    client = create_sdk_app(directory, extra_routes=[failing_routes]).test_client()
    with caplog.at_level(logging.ERROR, LOGGER):
        faults = [await client.get("/fault") for _ in range(2)]
        bad = await client.get("/bad-input")
    assert [r.status_code for r in faults] == [503, 503]
    assert faults[0].headers["Retry-After"] == "5"
    assert b"a bug" not in await faults[0].get_data()  # no internals in the answer
    assert bad.status_code == 400
    assert await bad.get_data() == b"the context is not usable\n"
    assert directory.counters.statistics().failures == {("http", "RuntimeError"): 2,
                                                        ("http", "InputError"): 1}
    assert len([r for r in caplog.records if r.name == LOGGER]) == 2  # one per kind
    metrics = WorkerMetrics(0, metrics_dir=None)
    metrics.register(directory)
    exposition = metrics.render().decode()
    assert ('flagstream_actor_failures_total{actor="http",reason="RuntimeError",worker="0"} 2.0'
            in exposition)


def client_side_flag(key: str, version: int) -> ItemChange:
    return ItemChange("flags", key, version, flag_json(key, version).replace(
        b'"clientSide": false', b'"clientSide": true'))


async def test_environment_actor_closes_only_the_group_that_failed(
        autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    counters = WorkerCounters()
    actor = EnvActor(ENV.key, counters)
    await nursery.start(actor.run)
    good_ctx = {"kind": "user", "key": "good"}
    conns, readers = [], []
    for group, context in ((group_key(good_ctx, with_reasons=False, mobile=False),
                            parse_context(good_ctx)),
                           ((b"bad", False, False), cast(Context, object()))):
        server, client = tcp_pair()
        conn = ClientSideConn(server, StreamKind.EVAL, ENV.key, Mailbox(16, 1 << 20), group=group,
                          context=context)
        await actor.send(Attach(conn))  # no flag yet: nothing is evaluated
        reader = StreamReader()
        with trio.fail_after(5):
            await reader.read_until(client, 1)  # the put
        conns.append(conn)
        readers.append((reader, client))
    await actor.send(Apply((client_side_flag("a", 1),)))
    good_reader, good_client = readers[0]
    with trio.fail_after(5):
        patch = await good_reader.read_until(good_client, 1)
    assert [getattr(e, "event", None) for e in patch] == ["patch"]
    assert [c.close_reason for c in conns] == [None, "evaluation_failed"]
    assert counters.statistics().failures == {("evaluation", "AttributeError"): 1}
    await actor.send(Close("test"))
    for conn in conns:
        conn.sock.close()
