"""The admin listener's contained failures reach its /metrics under the workers' name."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from store.containment import Failures
from store.metrics import FailuresCollector


def test_failures_collector_exports_each_kind_with_its_count() -> None:
    failures = Failures()
    failures.record("http", RuntimeError("boom"), 0.0)
    failures.record("http", RuntimeError("boom"), 1.0)
    failures.record("http", KeyError("k"), 2.0)
    registry = CollectorRegistry()
    registry.register(FailuresCollector(failures))
    text = generate_latest(registry).decode()
    assert 'flagstream_actor_failures_total{actor="http",reason="RuntimeError"} 2.0' in text
    assert 'flagstream_actor_failures_total{actor="http",reason="KeyError"} 1.0' in text


def test_no_failure_still_declares_the_family() -> None:
    registry = CollectorRegistry()
    registry.register(FailuresCollector(Failures()))
    text = generate_latest(registry).decode()
    assert "# TYPE flagstream_actor_failures_total counter" in text
    assert "flagstream_actor_failures_total{" not in text
