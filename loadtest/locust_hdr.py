"""Propagation figures for Locust: HdrHistograms per change, merged across worker processes.

Every Locust process keeps one :class:`Propagation`. Stream users `record` each delivery (µs,
keyed by the change's seq) into one HdrHistogram per change. A worker ships what it gathered
since its last report inside Locust's own `report_to_master` message (`export`, base64
HdrHistogram encodings, then reset); the master `merge`s them, so its figures are exact over all
workers (a local run `flush`es its own instead), and `render` / `hgrm` give the per-change and
pooled percentiles at the end of a run.

Locust's own statistics table is fed too (request type ``SSE``, name ``propagation``): Locust
merges that across workers by itself. `log_to_stats` writes a batch of deliveries in one call
(the per-request `events.request.fire` path costs several µs each, too much for a lean user
holding thousands of streams); it follows Locust 2.x's `StatsEntry.log` field by field.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

REQUEST_TYPE = "SSE"
NAME = "propagation"


def _new() -> HdrHistogram:
    return HdrHistogram(1, 120_000_000, 3)  # µs, up to 2 minutes


# 3 significant digits on a lowest value of 1: 2048 sub-buckets, so a value keeps its top 11
# bits; the rest is below the histogram's resolution (HdrHistogram's own bucketing).
_KEPT_BITS = 11


def lowest_equivalent(value: int) -> int:
    """The smallest value the histogram stores ``value`` as (same bucket, same count).

    hdrh's own ``get_lowest_equivalent_value`` gives the same (tested) at 1.15 µs a call;
    this is 0.23 µs, and it runs once per delivery."""
    drop = value.bit_length() - _KEPT_BITS
    return value if drop <= 0 else (value >> drop) << drop


class Propagation:
    def __init__(self) -> None:
        self.by_seq: dict[int, HdrHistogram] = {}  # all seen here (on the master: merged)
        self._since_report: dict[int, HdrHistogram] = {}

    def record(self, seq: int, latency_us: int) -> None:
        h = self._since_report.get(seq)
        if h is None:
            h = self._since_report[seq] = _new()
        h.record_value(max(1, latency_us))

    def record_batch(self, deliveries: Iterable[tuple[int, int]]) -> None:
        """Many (seq, latency µs) deliveries at once, with the same result as ``record`` for
        each. Equal values are recorded once with their count: hdrh's ``record_value`` is
        about 2.4 µs of Python a call, while deliveries that arrive together mostly fall into
        a few of the histogram's buckets."""
        counts = Counter((seq, lowest_equivalent(max(1, us))) for seq, us in deliveries)
        for (seq, value), n in counts.items():
            h = self._since_report.get(seq)
            if h is None:
                h = self._since_report[seq] = _new()
            h.record_value(value, n)

    def export(self) -> dict[str, str]:
        """The deliveries since the last export, encoded (and forgotten here)."""
        out = {str(seq): h.encode().decode() for seq, h in self._since_report.items()}
        self._since_report = {}
        return out

    def flush(self) -> None:
        """Fold this process's own unexported deliveries into its figures (local runs)."""
        for seq, h in self._since_report.items():
            mine = self.by_seq.get(seq)
            if mine is None:
                mine = self.by_seq[seq] = _new()
            mine.add(h)
        self._since_report = {}

    def merge(self, exported: dict[str, str]) -> None:
        for seq_text, blob in exported.items():
            seq = int(seq_text)
            h = self.by_seq.get(seq)
            if h is None:
                h = self.by_seq[seq] = _new()
            h.decode_and_add(blob.encode())

    def pooled(self, *, skip_first: int = 0) -> HdrHistogram:
        h = _new()
        for seq in sorted(self.by_seq)[skip_first:]:
            h.add(self.by_seq[seq])
        return h

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"seq": seq, "count": h.get_total_count(),
             "p50_ms": h.get_value_at_percentile(50) / 1000,
             "p99_ms": h.get_value_at_percentile(99) / 1000,
             "max_ms": h.get_max_value() / 1000}
            for seq, h in sorted(self.by_seq.items())
        ]  # fmt: skip

    def render(self) -> str:
        lines = [" seq  deliveries   p50 ms   p99 ms   max ms"]
        lines += [f"{r['seq']:>4} {r['count']:>11} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                  f"{r['max_ms']:8.1f}" for r in self.rows()]  # fmt: skip
        p = self.pooled()
        if p.get_total_count():
            lines.append(
                f"pooled: {p.get_total_count()} deliveries, p50 "
                f"{p.get_value_at_percentile(50) / 1000:.1f}, p99 "
                f"{p.get_value_at_percentile(99) / 1000:.1f}, p99.9 "
                f"{p.get_value_at_percentile(99.9) / 1000:.1f}, "
                f"max {p.get_max_value() / 1000:.1f} ms"
            )
        return "\n".join(lines)

    def hgrm(self) -> str:
        buf = io.BytesIO()
        self.pooled().output_percentile_distribution(buf, 1000.0)
        return buf.getvalue().decode()


def log_to_stats(stats: Any, values_ms: list[int], content_length: int) -> None:
    """Log many deliveries to a Locust `RequestStats` at once: the same fields as one
    `log_request` per value (Locust 2.x `StatsEntry.log`), with the per-value work in C."""
    if not values_ms:
        return
    now = time.time()
    n = len(values_ms)
    buckets = Counter(v if v < 100 else round(v, -1) if v < 1000 else round(v, -2) if v < 10000
                      else round(v, -3) for v in values_ms)  # locust.stats.bucket_response_time
    total, lo, hi = sum(values_ms), min(values_ms), max(values_ms)
    for entry in (stats.total, stats.get(NAME, REQUEST_TYPE)):
        entry.num_requests += n
        entry.num_reqs_per_sec[int(now)] += n
        entry.last_request_timestamp = now
        entry.total_content_length += content_length * n
        entry.total_response_time += total
        entry.min_response_time = lo if entry.min_response_time is None else min(
            entry.min_response_time, lo)
        entry.max_response_time = max(entry.max_response_time, hi)
        for bucket, count in buckets.items():
            entry.response_times[bucket] += count
