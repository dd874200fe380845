"""Prometheus ``/metrics`` of the store (admin port).

Nothing is counted on the write path for this: a :class:`StoreCollector` reads the writer's,
the publisher's and the database's own figures when Prometheus scrapes, so the metrics cost
nothing between scrapes. Each app gets its own registry (several stores can live in one test
process). ``flagstream_env_revision`` is the seq of each environment's latest change; the
streamer workers export the revision they have applied under the same name, so a
``max by (env)`` minus ``min by (env)`` alert catches a node that drifts behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from quart import Response
from quart_trio import QuartTrio

from bus.publisher import BusPublisher
from store.containment import Failures
from store.db import FlagDB
from store.writer import Writer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StoreCollector(Collector):
    def __init__(self, db: FlagDB, writer: Writer, publisher: BusPublisher) -> None:
        self._db, self._writer, self._publisher = db, writer, publisher

    def collect(self) -> Iterator[Metric]:
        w = self._writer.statistics()
        p = self._publisher.statistics()
        yield CounterMetricFamily("flagstream_store_writes", "item writes accepted", w.writes)
        yield CounterMetricFamily("flagstream_store_commits", "SQLite transactions", w.commits)
        yield CounterMetricFamily("flagstream_store_commit_failures",
                                  "commits the database refused (disk full, I/O)",
                                  w.commit_failures)
        yield GaugeMetricFamily("flagstream_store_pending_writes",
                                "writes waiting in the coalescer", w.pending)
        yield CounterMetricFamily("flagstream_bus_published", "bus messages sent", p.published)
        yield CounterMetricFamily("flagstream_bus_unsent",
                                  "bus messages with no socket to send on", p.unsent)
        yield GaugeMetricFamily("flagstream_bus_seq", "latest bus sequence number published",
                                p.latest_seq)
        revisions = GaugeMetricFamily("flagstream_env_revision",
                                      "seq of the environment's latest change", labels=["env"])
        for env, seq in sorted(self._db.revisions().items()):
            revisions.add_metric([env], seq)
        yield revisions
        sums = GaugeMetricFamily("flagstream_env_version_sum",
                                 "sum of the item versions of an environment (drift alerts)",
                                 labels=["worker", "env"])
        for env, total in sorted(self._db.version_sums().items()):
            sums.add_metric(["store", env], total)
        yield sums


class FailuresCollector(Collector):
    """The admin listener's contained failures, under the same name the workers use."""

    def __init__(self, failures: Failures) -> None:
        self._failures = failures

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "flagstream_actor_failures",
            "exceptions contained by a boundary (store/containment.py): the request ended, "
            "the store went on", labels=["actor", "reason"])
        for (actor, reason), n in sorted(self._failures.counts().items()):
            family.add_metric([actor, reason], n)
        yield family


# The permission table entry (store/permissions.py): scrapers read /metrics without a token;
# it holds counts and environment keys, no credential.
RIGHTS: dict[tuple[str, str], str] = {("GET", "/metrics"): "public"}


def register_metrics_route(app: QuartTrio, *, collectors: list[Collector]) -> None:
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    render: Callable[[], bytes] = lambda: generate_latest(registry)  # noqa: E731

    @app.get("/metrics")
    async def metrics() -> Response:
        # The revisions query reads SQLite: off the event loop.
        body = await trio.to_thread.run_sync(render)
        return Response(body, status=200, content_type=CONTENT_TYPE)
