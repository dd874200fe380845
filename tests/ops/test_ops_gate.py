"""The stream gate (streamer/fastpath/stream_gate.py) on trio's MockClock: admission and limits with
jittered Retry-After, rotated keys closed exactly when their grace ends, the drain's spread."""

from __future__ import annotations

import random
import resource

import pytest
import trio
import trio.testing

from streamer.environments.propagation import PropagationProbe
from streamer.fastpath.stream_gate import GateLimits, StreamGate, fd_capped
from streamer.metrics import merge_expositions


class FakeConn:
    """Stands in for a StreamConn: only ``request_close`` is used, and it is recorded."""

    def __init__(self) -> None:
        self.close_reason: str | None = None
        self.closed_at: float | None = None

    def request_close(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.closed_at = trio.current_time()


def reason(conn: FakeConn) -> str | None:
    return conn.close_reason  # a call, so the type checker does not pin it between awaits


@pytest.mark.parametrize(
    ("limits", "entries", "expect"),
    [
        (GateLimits(max_connections=2), [("k", "a"), ("k", "b"), ("j", "c")], [None, None, 503]),
        (GateLimits(max_per_key=1), [("k", "a"), ("k", "b"), ("j", "c")], [None, 429, None]),
        (GateLimits(max_per_address=2), [("k", "a"), ("j", "a"), ("l", "a"), ("l", "b")],
         [None, None, 429, None]),
        (GateLimits(), [("k", "a")] * 50, [None] * 50),
    ],
)
async def test_admission(limits: GateLimits, entries: list[tuple[str, str]],
                         expect: list[int | None]) -> None:
    gate = StreamGate(limits, rng=random.Random(1))
    got = []
    for cred, addr in entries:
        refusal = gate.enter(FakeConn(), cred, addr, "prod")
        got.append(None if refusal is None else refusal.status)
        if refusal is not None:
            assert limits.retry_after_s <= refusal.retry_after <= 2 * limits.retry_after_s
    assert got == expect


async def test_retry_after_is_jittered_and_leave_frees_a_slot() -> None:
    gate = StreamGate(GateLimits(max_connections=1, retry_after_s=5), rng=random.Random(3))
    first = FakeConn()
    assert gate.enter(first, "k", "a", "prod") is None
    waits = set()
    for _ in range(200):
        refusal = gate.enter(FakeConn(), "k", "a", "prod")
        assert refusal is not None and refusal.status == 503
        waits.add(refusal.retry_after)
    assert waits == set(range(5, 11))  # spread over [5, 10], not one value
    assert gate.refused == {503: 200}
    gate.leave(first)
    assert gate.enter(FakeConn(), "k", "a", "prod") is None


async def test_rotated_key_streams_close_when_grace_ends(
        autojump_clock: trio.testing.MockClock) -> None:
    wall = [1_000_000]
    gate = StreamGate(wall_clock_ms=lambda: wall[0])
    valid = {"new", "old"}
    on_old, on_new, other_env = FakeConn(), FakeConn(), FakeConn()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: gate.run(
            still_valid=lambda env, cred: cred in valid, task_status=task_status))
        gate.enter(on_old, "old", "a", "prod")
        gate.enter(on_new, "new", "a", "prod")
        gate.enter(other_env, "old", "b", "test")  # same string, another environment
        start = trio.current_time()
        gate.credentials_changed("prod", {"new"}, {"old": wall[0] + 30_000}, wall[0])
        await trio.sleep(29.9)
        assert reason(on_old) is None
        valid.discard("old")
        await trio.sleep(1)
        assert reason(on_old) == "key_rotated" and on_old.closed_at == start + 30
        assert reason(on_new) is None and reason(other_env) is None
        gate.leave(on_old)  # as its stream actor does once the stream has ended
        # no grace: closed at once
        gate.credentials_changed("prod", {"newer"}, {}, wall[0])
        assert reason(on_new) == "key_rotated" and on_new.closed_at == start + 30.9
        assert gate.rotated_closed == 2
        nursery.cancel_scope.cancel()


async def test_drain_spreads_the_closes(autojump_clock: trio.testing.MockClock) -> None:
    gate = StreamGate(rng=random.Random(5))
    conns = [FakeConn() for _ in range(10)]
    for c in conns:
        assert gate.enter(c, "k", "a", "prod") is None
    start = trio.current_time()
    assert await gate.drain(5.0) == 10
    times = sorted(c.closed_at - start for c in conns if c.closed_at is not None)
    assert times == pytest.approx([0.5 * i for i in range(10)])
    assert all(c.close_reason == "shutdown" for c in conns)
    refusal = gate.enter(FakeConn(), "k", "a", "prod")
    assert refusal is not None and refusal.status == 503 and "shutting down" in refusal.message


async def test_stream_durations_are_observed(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[str, float]] = []
    gate = StreamGate(observe_duration=lambda reason, s: seen.append((reason, s)))
    c = FakeConn()
    gate.enter(c, "k", "a", "prod")
    await trio.sleep(12)
    c.close_reason = "client_closed"
    gate.leave(c)
    gate.leave(c)  # twice is harmless
    assert seen == [("client_closed", 12.0)]


def test_propagation_probe_matches_and_drops_stale() -> None:
    now = [0.0]
    seen: list[float] = []
    probe = PropagationProbe(seen.append, clock=lambda: now[0])
    probe.received("prod")
    now[0] = 0.004
    probe.received("prod")  # an older change is still pending: it is the one measured
    probe.fanned_out("prod")
    probe.fanned_out("prod")  # a second fan-out (another stream kind) is not a new change
    probe.received("test")  # reaches nobody ...
    now[0] = 10.0
    probe.fanned_out("test")  # ... and a heartbeat 10 s later is not taken for it
    assert seen == [0.004] and probe.unmatched == 1


def test_merge_expositions() -> None:
    a = ('# HELP x_total things\n# TYPE x_total counter\nx_total{worker="0"} 1.0\n'
         '# HELP g a gauge\n# TYPE g gauge\ng{worker="0",env="p"} 3.0\n')
    b = '# HELP x_total things\n# TYPE x_total counter\nx_total{worker="1"} 2.0\n'
    out = merge_expositions([a, b]).decode()
    assert out.count("# TYPE x_total counter") == 1
    assert 'x_total{worker="0"} 1.0' in out and 'x_total{worker="1"} 2.0' in out
    assert 'g{env="p",worker="0"} 3.0' in out


@pytest.mark.parametrize(("configured", "nofile", "expect"), [
    (0, 20_000, 19_000),  # no limit set: the open-file limit less a twentieth
    (15_000, 20_000, 15_000),  # below the cap: kept
    (25_000, 20_000, 19_000),  # above what the fds allow: lowered
    (0, 1024, 768),  # small limits keep at least 256 files for everything else
    (0, 200, 1),
    (0, resource.RLIM_INFINITY, 0),  # no file limit: no cap
])
def test_max_connections_is_capped_by_the_open_file_limit(
        configured: int, nofile: int, expect: int) -> None:
    limits = GateLimits(max_connections=configured, max_per_key=7)
    assert fd_capped(limits, nofile) == GateLimits(max_connections=expect, max_per_key=7)
