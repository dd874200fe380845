"""The report files: .hgrm text, the SVG plots, the HTML page."""

from __future__ import annotations

import math
from pathlib import Path

from loadtest.report import hgrm_text, percentile_svg, rounds_svg, write_report
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
    assert "500 ms" in svg
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
