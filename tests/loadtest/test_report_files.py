"""The report files: .hgrm text, the SVG plots, the HTML page."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from loadtest.report import (
    axis_top,
    hgrm_text,
    percentile_svg,
    rounds_svg,
    table_lines,
    write_report,
)
from loadtest.rounds import histogram


def test_hgrm_is_hdrhistogram_text_in_ms() -> None:
    text = hgrm_text(histogram([1000, 2000, 250_000]))
    lines = text.splitlines()
    assert lines[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    assert "#[Max     =      250.111" in text or "#[Max" in text
    values = [float(line.split()[0]) for line in lines[2:] if line.strip() and
              not line.startswith("#")]  # fmt: skip
    assert min(values) == 1.0 and math.isclose(max(values), 250.0, rel_tol=0.01)


def test_svgs_plot_every_change_and_the_objective() -> None:
    rows = [{"seq": i, "p50_ms": 100.0 + i, "p99_ms": 200.0 + i, "max_ms": 300.0 + i}
            for i in range(1, 11)]  # fmt: skip
    svg = rounds_svg(rows, slo_ms=500, title="t")
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    assert "stroke-dasharray" in svg and ">target 500 ms</text>" in svg  # axis 0-500 ms
    assert rounds_svg([], slo_ms=500, title="t") == ""
    assert percentile_svg(histogram([]), slo_ms=500, title="t") == ""
    assert percentile_svg(histogram([5000] * 10), slo_ms=500, title="t").count("<polyline") == 1


def test_write_report(tmp_path: Path) -> None:
    written = write_report(tmp_path / "out", "r", text="a <b>", hist=histogram([10, 20]),
                           sections=[("plot", "<svg></svg>")])  # fmt: skip
    assert [p.name for p in written] == ["r.txt", "r.hgrm", "r.html"]
    page = (tmp_path / "out" / "r.html").read_text()
    assert "<svg></svg>" in page and "a &lt;b&gt;" in page
    assert write_report(tmp_path, "e", text="x", hist=None, sections=[])[-1].name == "e.html"


@pytest.mark.parametrize(("values", "top"), [
    ([30.0], 50.0), ([9.0], 10.0), ([310.0], 500.0), ([600.0], 1000.0), ([0.4], 0.5),
    ([2.0], 2.5), ([], 1.0), ([0.0], 1.0), ([float("nan"), 45.0], 50.0), ([181.0], 200.0),
])  # fmt: skip
def test_axis_top_fits_the_data(values: list[float], top: float) -> None:
    assert axis_top(values) == top


def y_labels(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end" font-size="10">([^<]+)</text>', svg)


def test_a_fast_run_fills_its_plot_and_the_target_is_a_line_when_in_range() -> None:
    fast = [{"seq": i, "p50_ms": 10.0, "p99_ms": 25.0, "max_ms": 30.0} for i in range(1, 4)]
    svg = rounds_svg(fast, slo_ms=500, title="t")
    assert y_labels(svg) == ["12", "25", "38", "50"]  # 0-50 ms, not 0-550
    assert "target 500 ms: above this axis (top 50 ms)" in svg
    slow = [{"seq": i, "p50_ms": 300.0, "p99_ms": 650.0, "max_ms": 700.0} for i in (1, 2)]
    svg = rounds_svg(slow, slo_ms=500, title="t")
    assert y_labels(svg) == ["250", "500", "750", "1000"]
    assert "stroke-dasharray" in svg and ">target 500 ms</text>" in svg
    pooled = percentile_svg(histogram([20_000] * 99 + [30_000]), slo_ms=500, title="t")
    assert y_labels(pooled)[-1] == "50" and "above this axis" in pooled


def test_a_record_becomes_an_aligned_table() -> None:
    storm = {"workers_killed": 2, "recover_p99_ms": 2345.678, "all_back": True,
             "errors": {"reconnect_http_503": 12}, "peak_worker_rss_mb": [61.25, 63.5],
             "retry_after": [{"count": 3, "min": 1}, {"count": 0, "min": None}],
             "saturation_metrics": [], "ratio": 0.0123}
    assert table_lines("storm", storm) == [
        "== storm",
        "workers_killed             2",
        "recover_p99_ms             2,346",
        "all_back                   True",
        "errors.reconnect_http_503  12",
        "peak_worker_rss_mb         61.2, 63.5",
        "retry_after[0].count       3",
        "retry_after[0].min         1",
        "retry_after[1].count       0",
        "retry_after[1].min         None",
        "saturation_metrics         none",
        "ratio                      0.0123",
        "",
    ]
    many = table_lines("t", {"pids": list(range(25))})
    assert many[1] == "pids       " + ", ".join(str(i) for i in range(20))
    assert many[2] == "pids[...]  5 more"
