"""The worker's counters: streams, polls, fan-outs and contained failures.

One :class:`WorkerCounters` per worker; every actor of the worker (the stream actors, the
environment actors, the acceptor) and the polling app add to the same instance, and
``/metrics`` reads a frozen :class:`WorkerStatistics` from it at scrape time. Plain integer
additions: the fast path pays one attribute update per event.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from store.containment import Failures


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    connections: dict[tuple[str, str], int]  # open streams by (environment, kind)
    new_connections: dict[tuple[str, str], int]  # cumulative
    disconnects: dict[str, int]  # by reason
    rejected: dict[int, int]  # error answers on the stream listener, by status
    polls: dict[int, int]  # polling answers on the SDK listener, by status
    accepted: int
    slow_entries: int
    slow_resyncs: int
    fanouts: int
    fanout_sends: int  # sum of the streams reached by every fan-out
    fanout_wall_ns: int
    fanout_cpu_ns: int
    fanout_max_wall_ns: int
    heartbeats: int
    failures: dict[tuple[str, str], int]  # contained failures by (actor, reason)


class WorkerCounters:
    """The worker-wide counters; every actor of one worker adds to the same instance."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str], int] = {}
        self.new_connections: dict[tuple[str, str], int] = {}
        self.disconnects: dict[str, int] = {}
        self.rejects: dict[int, int] = {}
        self.polls: dict[int, int] = {}
        self.accepted = 0
        self.slow_entries = 0
        self.slow_resyncs = 0
        self.fanouts = 0
        self.fanout_sends = 0
        self.fanout_wall_ns = 0
        self.fanout_cpu_ns = 0
        self.fanout_max_wall_ns = 0
        self.heartbeats = 0
        # Containment (store/containment.py): every actor of the worker records its failures
        # here; /metrics reads it as flagstream_actor_failures_total.
        self.failures = Failures(clock=trio.current_time)  # every caller runs under trio

    def opened(self, env: str, kind: str) -> None:
        k = (env, kind)
        self.connections[k] = self.connections.get(k, 0) + 1
        self.new_connections[k] = self.new_connections.get(k, 0) + 1

    def closed(self, env: str, kind: str, reason: str) -> None:
        k = (env, kind)
        self.connections[k] = self.connections.get(k, 0) - 1
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1

    def rejected(self, status: int) -> None:
        self.rejects[status] = self.rejects.get(status, 0) + 1

    def polled(self, status: int) -> None:
        self.polls[status] = self.polls.get(status, 0) + 1

    def fanned_out(self, streams: int, wall_ns: int, cpu_ns: int) -> None:
        self.fanouts += 1
        self.fanout_sends += streams
        self.fanout_wall_ns += wall_ns
        self.fanout_cpu_ns += cpu_ns
        self.fanout_max_wall_ns = max(self.fanout_max_wall_ns, wall_ns)

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(
            dict(self.connections), dict(self.new_connections), dict(self.disconnects),
            dict(self.rejects), dict(self.polls), self.accepted, self.slow_entries,
            self.slow_resyncs, self.fanouts, self.fanout_sends, self.fanout_wall_ns,
            self.fanout_cpu_ns, self.fanout_max_wall_ns, self.heartbeats,
            self.failures.counts(),
        )
