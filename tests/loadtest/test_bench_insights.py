"""The insights benchmark (loadtest/bench_insights.py) at a tiny size: it runs and prints its
figures, and only the catalog's flags are counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import bench_insights


def test_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench_insights.main(["--events", "2000", "--runs", "2", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    for what in ("ingest:", "stale-flags query: median", "per-flag query: median", "database:"):
        assert what in out
    assert "(200 flags answered)" in out
