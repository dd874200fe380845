"""Propagation histograms merged across Locust workers, and the batch logger for Locust's stats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.locust_hdr import Propagation, lowest_equivalent

REPO = Path(__file__).resolve().parents[2]

# (worker, seq, latency µs) as three workers would record them, in two report periods
DELIVERIES = [
    [(1, 1, 120_000), (1, 1, 180_000), (2, 1, 90_000), (3, 1, 450_000)],
    [(1, 2, 200_000), (2, 2, 210_000), (2, 1, 500_000), (3, 2, 1)],
]


def test_master_merge_equals_one_process_recording_everything() -> None:
    workers = {w: Propagation() for w in (1, 2, 3)}
    master, single = Propagation(), Propagation()
    for period in DELIVERIES:
        for worker, seq, us in period:
            workers[worker].record(seq, us)
            single.record(seq, us)
        for w in workers.values():  # a report_to_master round
            master.merge(w.export())
    assert single.rows() == []  # not flushed yet: everything waits for its export
    single.flush()
    assert master.rows() == single.rows()
    assert [(r["seq"], r["count"]) for r in master.rows()] == [(1, 5), (2, 3)]
    assert master.pooled().get_total_count() == 8
    assert master.pooled(skip_first=1).get_total_count() == 3
    # each export carries only what is new: a second export with nothing recorded is empty
    assert workers[1].export() == {}


def test_percentiles_and_text() -> None:
    p = Propagation()
    for us in range(1000, 101_000, 1000):  # 1..100 ms
        p.record(7, us)
    p.flush()
    (row,) = p.rows()
    assert row["seq"] == 7 and row["count"] == 100
    assert abs(row["p50_ms"] - 50) < 0.1 and abs(row["p99_ms"] - 99) < 0.1
    assert abs(row["max_ms"] - 100) < 0.1
    text = p.render()
    assert "pooled: 100 deliveries" in text
    assert "Percentile" in p.hgrm() and "#[Max" in p.hgrm()


# Importing locust monkey-patches the whole process with gevent, so the comparison with Locust's
# own RequestStats runs in a subprocess and prints its findings.
COMPARE = """
import json
from locust.stats import RequestStats
from loadtest.locust_hdr import NAME, REQUEST_TYPE, log_to_stats
values = [3, 45, 99, 100, 147, 155, 999, 1000, 3432, 3450, 58760, 58500]
batch, single = RequestStats(), RequestStats()
log_to_stats(batch, values, 10)
log_to_stats(batch, [], 10)
for v in values:
    single.log_request(REQUEST_TYPE, NAME, v, 10)
def fig(e):
    return [e.num_requests, e.total_response_time, e.min_response_time, e.max_response_time,
            e.total_content_length, sorted(e.response_times.items()),
            sum(e.num_reqs_per_sec.values())]
out = {k: [fig(get(s)) for s in (batch, single)]
       for k, get in (("total", lambda s: s.total), ("entry", lambda s: s.get(NAME, REQUEST_TYPE)))}
print(json.dumps(out))
"""


def test_batch_logging_matches_one_log_request_per_delivery() -> None:
    run = subprocess.run([sys.executable, "-c", COMPARE], cwd=REPO, capture_output=True,
                         timeout=60, check=True)  # fmt: skip
    out = json.loads(run.stdout.decode().strip().splitlines()[-1])
    for key in ("total", "entry"):
        batch, single = out[key]
        assert batch == single
        assert batch[0] == 12


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 119_000_000)), max_size=400))
@settings(max_examples=150, deadline=None)
def test_batch_recording_equals_one_by_one(deliveries: list[tuple[int, int]]) -> None:
    one, batch = Propagation(), Propagation()
    for seq, us in deliveries:
        one.record(seq, us)
    batch.record_batch(deliveries)
    one.flush()
    batch.flush()
    assert one.by_seq.keys() == batch.by_seq.keys()
    for seq, h in one.by_seq.items():
        b = batch.by_seq[seq]
        assert b.get_total_count() == h.get_total_count()
        assert (b.get_min_value(), b.get_max_value()) == (h.get_min_value(), h.get_max_value())
        for pct in (0, 1, 10, 50, 90, 99, 99.9, 100):
            assert b.get_value_at_percentile(pct) == h.get_value_at_percentile(pct)


@pytest.mark.parametrize(("value", "lowest"), [
    (1, 1), (2047, 2047), (2048, 2048), (2049, 2048), (4095, 4094), (4096, 4096),
    (1_000_003, 999_936), (119_999_999, 119_996_416)])
def test_lowest_equivalent_matches_the_histogram(value: int, lowest: int) -> None:
    assert lowest_equivalent(value) == lowest
    h = HdrHistogram(1, 120_000_000, 3)
    assert h.get_lowest_equivalent_value(value) == lowest
