"""The client-side memory benchmark, small: its layout comparison in-process and its scenario
on a real node. Asserts what was delivered and that the figures are there, never their size."""

from __future__ import annotations

import pytest

from loadtest import bench_clientside_memory as bench
from loadtest.node import Node


def test_layouts_prints_one_line_per_layout() -> None:
    lines = bench.layouts(20, n_groups=5).splitlines()
    assert len(lines) == 5 and lines[-1].startswith("interned shared entries")


@pytest.mark.e2e
def test_scenario_on_a_real_node() -> None:
    args = bench.build_parser().parse_args(
        ["--flags", "20", "--streams", "20", "--after-s", "2", "--during-s", "0.2",
         "--connect-timeout", "30", "--round-timeout", "15"])
    out = bench.scenario("smoke", Node(workers=1), args)
    assert out["connect"] == {"held": 20, "failed": 0, "wall_s": out["connect"]["wall_s"]}
    assert out["change_all_connecting"]["received"] == 5
    assert (out["change_all"]["received"], out["change_eval"]["received"]) == (5, 20)
    for key in ("rss_loaded_mb", "rss_open_mb", "rss_closed_2s_mb", "rss_closed_late_mb"):
        assert out[key] > 0
    assert bench.render(args, [out]).splitlines()[-1].startswith("smoke")
