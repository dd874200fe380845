"""The insights consumer's figures in the store's ``/metrics`` (read when Prometheus scrapes,
like ``store.metrics.StoreCollector``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from insights.consumer import InsightsService


class InsightsCollector(Collector):
    def __init__(self, service: InsightsService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        s = self._service.statistics()
        yield CounterMetricFamily(
            "flagstream_insights_records_counted",
            "records (per day of their events) counted into flag insights",
            s.units_counted,
        )
        unknown = CounterMetricFamily(
            "flagstream_insights_unknown_flags",
            "evaluations dropped because their environment has no such flag",
            labels=["env"],
        )
        for env, n in s.unknown_flags:
            unknown.add_metric([env], n)
        yield unknown
        yield CounterMetricFamily(
            "flagstream_insights_seen_pruned",
            "de-duplication rows forgotten after the retention",
            s.seen_pruned,
        )
        yield CounterMetricFamily(
            "flagstream_insights_store_failures",
            "consumer passes the insights database failed (disk full, I/O); retried",
            s.failures,
        )
