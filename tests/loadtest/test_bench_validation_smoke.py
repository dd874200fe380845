"""loadtest.bench_validation runs and times valid items only (else it would time refusals)."""

from __future__ import annotations

import pytest

from loadtest.bench_validation import main


def test_bench_validation_prints_figures_for_valid_items(
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["--flags", "20", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "items: 25 (20 flags, 5 segments), with problems: 0" in out
    assert "µs per item (best of 1)" in out
