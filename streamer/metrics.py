"""Prometheus ``/metrics`` of a streamer worker (SDK port), merged across the workers.

Theory of operation
-------------------
Figures are read when Prometheus scrapes (:mod:`streamer.metrics_collector`), so the fast path
pays nothing for them, except the propagation histogram, observed once per fan-out
(:mod:`streamer.environments.propagation`), and the stream-duration histogram, observed once per
stream.

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
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from quart import Response
from quart_trio import QuartTrio

from ingest.batching import Episode
from streamer.metrics_collector import WorkerCollector

if TYPE_CHECKING:
    from streamer.environments.directory import Directory
    from streamer.fastpath.acceptor import Acceptor
    from streamer.fastpath.stream_gate import StreamGate

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SNAPSHOT_INTERVAL_S = 5.0
STALE_AFTER_S = 30.0
PROPAGATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                       2.5, 5.0)


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
