"""The worker's Prometheus collector: its statistics, read when Prometheus scrapes.

:class:`WorkerCollector` reads the directory's worker counters, the stream gate's, the
acceptor's, the bus subscriber's and the ingest actor's statistics at scrape time, so the fast
path pays nothing for them. Every source is a constructor argument; the worker builds the one
collector once its parts exist and registers it (:meth:`streamer.metrics.WorkerMetrics.register`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamer.logging_setup import lost_log_lines

if TYPE_CHECKING:
    from streamer.environments.directory import Directory
    from streamer.fastpath.acceptor import Acceptor
    from streamer.fastpath.stream_gate import StreamGate


class WorkerCollector(Collector):
    """Reads the worker's own statistics at scrape time. Every source is a constructor
    argument; ``subscriber`` and ``ingest`` are callables returning the statistics dataclasses;
    a source that is None (that part is not running) is left out."""

    def __init__(self, worker: int, *, directory: Directory,
                 subscriber: Callable[[], Any] | None = None,
                 ingest: Callable[[], Any] | None = None, guard: Any = None,
                 gate: StreamGate | None = None, acceptor: Acceptor | None = None,
                 snapshot_errors: Callable[[], int] = lambda: 0) -> None:
        self.worker = str(worker)
        self._directory = directory
        self._subscriber = subscriber
        self._ingest = ingest
        self._guard = guard
        self._gate = gate
        self._acceptor = acceptor  # the stream listener's (closed_idle)
        self._snapshot_errors = snapshot_errors

    def collect(self) -> Iterator[Metric]:
        w = self.worker
        stats = self._directory.statistics()
        s = stats.counters
        conns = GaugeMetricFamily("flagstream_connections", "open streams",
                                  labels=["worker", "env", "kind"])
        for (env, kind), n in sorted(s.connections.items()):
            conns.add_metric([w, env, kind], n)
        yield conns
        new = CounterMetricFamily("flagstream_new_connections", "streams opened",
                                  labels=["worker", "env", "kind"])
        for (env, kind), n in sorted(s.new_connections.items()):
            new.add_metric([w, env, kind], n)
        yield new
        closed = CounterMetricFamily("flagstream_disconnects", "streams closed, by reason",
                                     labels=["worker", "reason"])
        for reason, n in sorted(s.disconnects.items()):
            closed.add_metric([w, reason], n)
        yield closed
        rejected = CounterMetricFamily(
            "flagstream_stream_rejections",
            "stream requests refused (503: admission control or no data yet, 429: limits)",
            labels=["worker", "status"])
        for status, n in sorted(s.rejected.items()):
            rejected.add_metric([w, str(status)], n)
        yield rejected
        polls = CounterMetricFamily("flagstream_polls", "polling answers, by status",
                                    labels=["worker", "status"])
        for status, n in sorted(s.polls.items()):
            polls.add_metric([w, str(status)], n)
        yield polls
        failures = CounterMetricFamily(
            "flagstream_actor_failures",
            "exceptions contained by a boundary (store/containment.py): the actor, request or "
            "evaluation ended, the worker went on", labels=["worker", "actor", "reason"])
        for (actor, reason), n in sorted(s.failures.items()):
            failures.add_metric([w, actor, reason], n)
        yield failures
        for name, doc, value in (
            ("flagstream_accepted_connections", "TCP connections accepted", s.accepted),
            ("flagstream_slow_client_entries", "streams that entered the slow path",
             s.slow_entries),
            ("flagstream_slow_client_resyncs", "slow streams reset to a fresh put (overflow)",
             s.slow_resyncs),
            ("flagstream_fanouts", "fan-out loops", s.fanouts),
            ("flagstream_fanout_sends", "frames written by fan-out loops", s.fanout_sends),
            ("flagstream_heartbeat_rounds", "heartbeat rounds", s.heartbeats),
        ):
            yield _counter(name, doc, w, value)
        yield _gauge("flagstream_environments", "environments loaded", w, stats.environments)
        g = stats.client_groups
        yield _gauge("flagstream_client_groups", "client-side context groups (distinct "
                     "contexts with an open stream)", w, g.groups)
        yield _gauge("flagstream_client_groups_warm", "client-side groups that keep their "
                     "evaluated flags cached (at most --max-context-groups per environment)",
                     w, g.warm)
        yield _counter("flagstream_client_group_evictions", "client-side groups whose cache "
                       "was dropped by the --max-context-groups bound (overflow policy)", w,
                       g.evictions)
        versions = GaugeMetricFamily(
            "flagstream_env_version_sum",
            "sum of the item versions of an environment; equal on the store and every worker "
            "when in sync (alert on max minus min by env)", labels=["worker", "env"])
        for env, total in sorted(self._directory.version_sums().items()):
            versions.add_metric([w, env], total)
        yield versions
        io_errors = CounterMetricFamily(
            "flagstream_io_errors", "writes that failed and were skipped or refused, by part "
            "(snapshot: metrics file; spool: events answered 503; log: lines lost)",
            labels=["worker", "part"])
        io_errors.add_metric([w, "snapshot"], self._snapshot_errors())
        io_errors.add_metric([w, "log"], lost_log_lines())
        if self._ingest is not None:
            io_errors.add_metric([w, "spool"], self._ingest().disk_errors)
        yield io_errors
        if self._subscriber is not None:
            b = self._subscriber()
            yield _gauge("flagstream_bus_seq", "last bus sequence number applied", w,
                         -1 if b.last_seq is None else b.last_seq)
            yield _gauge("flagstream_bus_lag_seconds", "age of the last bus message", w,
                         min(b.last_message_age_s, 1e9))
            yield _gauge("flagstream_bus_connected", "1 if connected to the store's bus", w,
                         int(b.connected))
            for name, doc, value in (
                ("flagstream_bus_changes_applied", "changes applied one by one", b.applied),
                ("flagstream_bus_resyncs", "snapshots applied after the first", b.resyncs),
                ("flagstream_bus_gaps", "sequence gaps detected", b.gaps_detected),
                ("flagstream_bus_malformed", "bus messages that failed to decode", b.malformed),
            ):
                yield _counter(name, doc, w, value)
        if self._ingest is not None:
            e = self._ingest()
            events = CounterMetricFamily("flagstream_events", "analytics records, by outcome",
                                         labels=["worker", "outcome"])
            for outcome in ("sent", "retried", "spooled"):
                events.add_metric([w, outcome], getattr(e, outcome))
            events.add_metric([w, "dropped"], e.dropped)
            yield events
            yield _gauge("flagstream_events_queued", "payloads waiting for the spool", w,
                         e.queued)
            yield _gauge("flagstream_events_backlog_bytes", "spooled bytes not yet in Kinesis",
                         w, e.backlog_bytes)
            yield _counter("flagstream_kinesis_errors", "PutRecords calls that failed", w,
                           e.kinesis_errors)
            yield _counter("flagstream_kinesis_throttled", "records or calls throttled", w,
                           e.throttled)
        if self._guard is not None:
            yield _counter("flagstream_http_refused_heads", "431: too many request headers", w,
                           self._guard.refused_heads)
            yield _counter("flagstream_http_body_timeouts", "408: body not received in time",
                           w, self._guard.body_timeouts)
            yield _counter("flagstream_http_ambiguous_framing",
                           "400: Content-Length and Transfer-Encoding together", w,
                           self._guard.ambiguous_framing)
            yield _counter("flagstream_http_discarded_bodies",
                           "bodies read and dropped from methods that take none", w,
                           self._guard.discarded_bodies)
        if self._acceptor is not None:
            yield _counter("flagstream_idle_connections_closed",
                           "stream connections closed at accept: every place taken and no "
                           "request sent yet", w, self._acceptor.closed_idle)
            yield _counter("flagstream_refusal_pool_pauses",
                           "times the stream listener stopped accepting until a place in its "
                           "refusal pool freed", w, self._acceptor.pool_pauses)
        gate = self._gate
        if gate is not None:
            admission = CounterMetricFamily(
                "flagstream_admission_rejections",
                "streams refused by the gate (503: at capacity or draining; 429: per-key or "
                "per-address limit)", labels=["worker", "status"])
            for status, n in sorted(gate.refused.items()):
                admission.add_metric([w, str(status)], n)
            yield admission
            saturated = CounterMetricFamily(
                "flagstream_saturated_refusals",
                "streams refused with 503 because the worker was saturated, by reason "
                "(loop_lag, memory)", labels=["worker", "reason"])
            for why, n in sorted(gate.saturated_refusals.items()):
                saturated.add_metric([w, why], n)
            yield saturated
            load = gate.load.statistics(trio.current_time())
            yield _gauge("flagstream_loop_lag_seconds",
                         "how late the worker's event loop woke up, last sample", w,
                         load.last_lag_s)
            yield _gauge("flagstream_loop_lag_max_seconds",
                         "the largest event-loop lag seen since the worker started", w,
                         load.max_lag_s)
            yield _gauge("flagstream_worker_rss_bytes", "the worker's resident memory", w,
                         load.rss_bytes)
            yield _gauge("flagstream_saturated", "1 while the worker refuses new streams for "
                         "saturation", w, 0 if load.saturated is None else 1)
            episodes = CounterMetricFamily(
                "flagstream_saturation_episodes", "times the worker became saturated, by reason",
                labels=["worker", "reason"])
            for why, n in sorted(load.episodes.items()):
                episodes.add_metric([w, why], n)
            yield episodes
            yield _counter("flagstream_rotated_key_closes",
                           "streams closed because their rotated key expired", w,
                           gate.rotated_closed)


def _counter(name: str, doc: str, worker: str, value: float) -> Metric:
    m = CounterMetricFamily(name, doc, labels=["worker"])
    m.add_metric([worker], value)
    return m


def _gauge(name: str, doc: str, worker: str, value: float) -> Metric:
    m = GaugeMetricFamily(name, doc, labels=["worker"])
    m.add_metric([worker], value)
    return m
