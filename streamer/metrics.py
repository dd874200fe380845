"""Prometheus ``/metrics`` of a streamer worker (SDK port), merged across the workers.

Theory of operation
-------------------
Figures are read when Prometheus scrapes (:class:`WorkerCollector` reads the directory's
worker counters, the stream gate's, the acceptor's, the bus subscriber's and the ingest
actor's statistics), so the fast path pays nothing for them, except the propagation histogram,
observed once per fan-out, and the stream-duration histogram, observed once per stream.

Wiring: :class:`WorkerMetrics` is made first (its histograms are what the gate and the
propagation probe are given at construction); once every part of the worker exists, the
worker builds one :class:`WorkerCollector` with all of its sources and registers it
(:meth:`WorkerMetrics.register`) before anything is served.

Several workers share the SDK port (``SO_REUSEPORT``), so a scrape reaches one of them at
random. Each worker therefore writes its own exposition to ``DATA_DIR/metrics/worker-N.prom``
every ``SNAPSHOT_INTERVAL_S`` (atomic rename), and whichever worker answers ``/metrics``
merges its live figures with the other workers' recent files (older than ``STALE_AFTER_S``:
a dead worker, left out). Every sample carries a ``worker`` label, so one scrape target gives
per-worker and (with ``sum without (worker)``) per-node figures.

A snapshot that cannot be written (a full disk, no file descriptor left) is skipped, counted
(``flagstream_io_errors{part="snapshot"}``) and logged once per episode; the next round tries
again. The other workers then leave this one out of their answers until it writes again, which
is better than a worker that ends, and drops every stream it holds, each time it tries.

Propagation (``flagstream_propagation_seconds``): from the moment the worker receives a
change from the bus (``Directory.apply_change``) to the end of the first fan-out loop that
follows for that environment, i.e. the change's bytes are in every fast-path socket's kernel
buffer. A change that reaches no stream (no subscribers) is not observed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from quart import Response
from quart_trio import QuartTrio

from ingest.batching import Episode
from streamer.logging_setup import lost_log_lines

if TYPE_CHECKING:
    from streamer.acceptor import Acceptor
    from streamer.directory import Directory
    from streamer.stream_gate import StreamGate

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SNAPSHOT_INTERVAL_S = 5.0
STALE_AFTER_S = 30.0
PROPAGATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                       2.5, 5.0)


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


class WorkerMetrics:
    """The worker's registry: the propagation and stream-duration histograms, and the
    collector registered once the worker's parts exist."""

    def __init__(self, worker: int, *, metrics_dir: Path | None) -> None:
        self.worker = worker
        self.registry = CollectorRegistry(auto_describe=False)
        self.snapshot_errors = 0  # run_snapshots counts its failed writes here
        self._durations = Histogram(
            "flagstream_stream_duration_seconds", "how long streams stayed open, by close reason",
            labelnames=["worker", "reason"], registry=self.registry,
            buckets=(1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400))
        self.propagation = Histogram(
            "flagstream_propagation_seconds",
            "bus receive to the end of the first fan-out loop, per change",
            labelnames=["worker"], buckets=PROPAGATION_BUCKETS, registry=self.registry,
        ).labels(worker=str(worker))
        self.metrics_dir = metrics_dir

    def register(self, directory: Directory, *, subscriber: Callable[[], Any] | None = None,
                 ingest: Callable[[], Any] | None = None, guard: Any = None,
                 gate: StreamGate | None = None,
                 acceptor: Acceptor | None = None) -> WorkerCollector:
        """Register the collector of this worker's statistics (once, before serving)."""
        collector = WorkerCollector(self.worker, directory=directory, subscriber=subscriber,
                                    ingest=ingest, guard=guard, gate=gate, acceptor=acceptor,
                                    snapshot_errors=lambda: self.snapshot_errors)
        self.registry.register(collector)
        return collector

    def observe_duration(self, reason: str, seconds: float) -> None:
        self._durations.labels(worker=str(self.worker), reason=reason).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def render_merged(self, own: bytes) -> bytes:
        """This worker's live figures (``own``, rendered on the event loop: the statistics
        read trio's clock) plus every other worker's recent snapshot (read in a thread)."""
        if self.metrics_dir is None:
            return own
        texts = [own.decode()]
        now = time.time()
        try:
            paths = sorted(self.metrics_dir.glob("worker-*.prom"))
        except OSError:  # e.g. EMFILE at the open-file limit: this worker's figures alone
            paths = []
        for path in paths:
            if path.name == f"worker-{self.worker}.prom":
                continue
            try:
                if now - path.stat().st_mtime > STALE_AFTER_S:
                    continue
                texts.append(path.read_text())
            except OSError:
                continue
        return merge_expositions(texts)

    async def run_snapshots(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
        run_sync: Callable[..., Awaitable[None]] = trio.to_thread.run_sync,
    ) -> None:
        """Write this worker's exposition file every SNAPSHOT_INTERVAL_S; remove it on exit.
        ``run_sync`` runs the blocking write (a thread; tests on a mock clock run it inline)."""
        task_status.started()
        if self.metrics_dir is None:
            return
        path = self.metrics_dir / f"worker-{self.worker}.prom"
        tmp = path.with_suffix(".tmp")
        failing = Episode()
        try:
            while True:
                data = self.render()
                try:
                    await run_sync(_write_atomic, tmp, path, data)
                except OSError as exc:
                    self.snapshot_errors += 1
                    if failing.occurred():
                        log.error("metrics snapshot %s not written (%s); retrying every %g s",
                                  path, exc, SNAPSHOT_INTERVAL_S)
                else:
                    if failing.resolved():
                        log.warning("metrics snapshot written again after %d failures",
                                    failing.count)
                        failing.count = 0
                await trio.sleep(SNAPSHOT_INTERVAL_S)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()


def _write_atomic(tmp: Path, path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all; a failed write leaves no partial file taking space."""
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def merge_expositions(texts: list[str]) -> bytes:
    """Merge Prometheus text expositions whose samples differ by their ``worker`` label."""
    families: dict[str, Metric] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            into = families.get(fam.name)
            if into is None:
                families[fam.name] = fam
            else:
                into.samples.extend(fam.samples)

    class _Merged(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from families.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return generate_latest(registry)


def register_metrics_route(app: QuartTrio, *, metrics: WorkerMetrics) -> None:
    @app.get("/metrics")
    async def worker_metrics() -> Response:
        body = await trio.to_thread.run_sync(metrics.render_merged, metrics.render())
        return Response(body, status=200, content_type=CONTENT_TYPE)


class _EnvCounters:
    """One environment actor's view of the worker's shared counters: every attribute is the
    shared one, except that ``fanned_out`` also ends a pending propagation measurement."""

    def __init__(self, shared: Any, env: str, probe: PropagationProbe) -> None:
        object.__setattr__(self, "_shared", shared)
        object.__setattr__(self, "_env", env)
        object.__setattr__(self, "_probe", probe)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shared, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._shared, name, value)  # e.g. ``counters.slow_entries += 1``

    def fanned_out(self, streams: int, wall_ns: int, cpu_ns: int) -> None:
        self._shared.fanned_out(streams, wall_ns, cpu_ns)
        self._probe.fanned_out(self._env)


class PropagationProbe:
    """Implements ``streamer.directory.ChangeProbe``: the oldest change of an environment
    not yet fanned out, matched with the end of its next fan-out loop. A change that fans out
    to nobody leaves its mark; after ``MATCH_WINDOW_S`` the mark is dropped unobserved, so a
    later heartbeat round is never mistaken for it."""

    MATCH_WINDOW_S = 5.0

    def __init__(self, observe: Callable[[float], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._observe = observe
        self._clock = clock
        self._pending: dict[str, float] = {}
        self.unmatched = 0

    def received(self, env: str) -> None:
        self._pending.setdefault(env, self._clock())

    def fanned_out(self, env: str) -> None:
        started = self._pending.pop(env, None)
        if started is None:
            return
        took = self._clock() - started
        if took > self.MATCH_WINDOW_S:
            self.unmatched += 1
            return
        self._observe(took)

    def wrap(self, env: str, counters: Any) -> Any:
        return _EnvCounters(counters, env, self)
