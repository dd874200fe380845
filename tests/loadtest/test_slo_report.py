"""The SLO runner's verdicts and text report, from figures (no run): targets defined at 50,000
connections are not judged in a smaller run, and record sections are tables."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest import slo

FANOUT = {
    "connect": {"held": 2000, "server_rss_per_conn_kb": 14.0},
    "pooled_ms": {"p99": 30.0}, "rounds_p99_within_slo": 3, "measured_rounds": 3,
    "server_cpu_us_per_client": 25.0, "all_delivered": True,
}  # fmt: skip
STORM = {
    "workers_killed": 2, "streams_before": 2000, "recovered": 2000, "within_15s": 2000,
    "recover_max_ms": 4100.0, "peak_worker_rss_mb": [70.5, 72.0],
    "worker_memory_budget_mb": 227, "workers_died": 0,
    "errors": {"reconnect_http_503": 4}, "retry_after": [{"count": 4, "min": 1, "max": 3,
                                                          "distinct": 3}],
}  # fmt: skip


def verdicts_at(connections: int) -> dict[str, str]:
    args = slo.build_parser().parse_args(["--connections", str(connections)])
    report: dict[str, Any] = {"fanout": FANOUT, "storm": dict(STORM)}
    return {name: verdict for name, _, verdict in slo.verdicts(report, args)}


NOT_JUDGED = "applies at 50,000 connections; not judged at 2,000"


@pytest.mark.parametrize(("target", "small", "full"), [
    ("server CPU <= 11 µs/client/change", NOT_JUDGED, "NOT MET"),
    ("server RSS <= 10 KB/conn", NOT_JUDGED, "NOT MET"),
    ("pooled P99 <= 500 ms", NOT_JUDGED, "met"),
    ("per-change P99 <= 500 ms in >= 80 % of changes", NOT_JUDGED, "met"),
    ("storm: every client has a fresh put within 15 s", NOT_JUDGED, "met"),
    # targets that hold at any size are judged at any size
    ("every stream got every change", "met", "met"),
    ("storm: no worker over its memory budget", "met", "met"),
    ("storm: no worker fell over (died beyond the ones killed)", "met", "met"),
])  # fmt: skip
def test_targets_defined_at_50k_are_not_judged_in_a_smaller_run(target: str, small: str,
                                                                full: str) -> None:
    assert verdicts_at(2000)[target] == small
    assert verdicts_at(50_000)[target] == full


def test_held_target_names_the_run_size() -> None:
    assert verdicts_at(2000)["2000 connections held"] == "met"
    assert verdicts_at(50_000)["50000 connections held"] == "NOT MET"  # 2,000 held


def test_the_storm_section_is_a_table() -> None:
    report = {"date": "2026-12-02", "machine": "m", "command": "c", "storm": STORM}
    text = slo.render(report, [])
    section = text.split("== storm\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "{" not in text
    width = len("errors.reconnect_http_503")  # the longest key
    assert section[:3] == [f"{'workers_killed':<{width}}  2",
                           f"{'streams_before':<{width}}  2,000",
                           f"{'recovered':<{width}}  2,000"]
    assert f"{'errors.reconnect_http_503':<{width}}  4" in section
    assert f"{'retry_after[0].distinct':<{width}}  3" in section
    assert all(len(line) < 100 for line in section)
