"""The whole benchmark, small: a real `flagstream serve` node, the lean client, 200 streams.

Asserts delivery (every stream got every change, in order, exactly once), never timing.
"""

from __future__ import annotations

import pytest

from loadtest import bench_streams


@pytest.mark.e2e
def test_every_stream_gets_every_change_from_a_real_node() -> None:
    args = bench_streams.build_parser().parse_args(
        ["--connections", "200", "--workers", "1", "--changes", "2", "--warmup", "0",
         "--round-timeout", "15", "--connect-timeout", "30", "--pace", "0.2"]
    )  # fmt: skip
    out = bench_streams.run(args)
    assert out["connect"]["held"] == 200
    assert out["connect"]["failed"] == 0
    assert [(r["seq"], r["received"], r["expected"]) for r in out["rounds"]] == [
        (1, 200, 200),
        (2, 200, 200),
    ]
    assert out["all_delivered"] is True
    assert out["pooled_ms"]["count"] == 400
    for stats in out["final_client_stats"]:
        assert (stats["live"], stats["duplicates"], stats["unmarked_patches"]) == (200, 0, 0)
        assert stats["patches"] == 400  # exactly the two changes, to each stream
