"""The worker's periodic metrics snapshot on a disk that refuses writes: each failure is
counted and the loop goes on (an OSError used to end the worker every 5 s); the episode is
logged once, and its end once."""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from streamer.environments.directory import Directory
from streamer.fastpath.stream_gate import StreamGate
from streamer.metrics import SNAPSHOT_INTERVAL_S, WorkerMetrics


async def inline(fn: Callable[..., None], *args: Any) -> None:
    """Runs the snapshot's write on the event loop, so virtual time waits for it."""
    fn(*args)


async def test_a_snapshot_that_cannot_be_written_is_counted_and_retried(
        tmp_path: Path, autojump_clock: trio.testing.MockClock,
        caplog: pytest.LogCaptureFixture) -> None:
    where = tmp_path / "metrics"
    where.write_text("a file where the directory should be")  # every write fails: OSError
    metrics = WorkerMetrics(3, metrics_dir=where)
    metrics.register(Directory(gate=StreamGate(), heartbeat_interval=20.0))
    with caplog.at_level(logging.INFO, logger="streamer.metrics"):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(metrics.run_snapshots, run_sync=inline))
            await trio.sleep(SNAPSHOT_INTERVAL_S * 3 + 1)  # rounds at 0, 5, 10 and 15 s
            assert metrics.snapshot_errors == 4
            assert b'flagstream_io_errors_total{part="snapshot",worker="3"} 4.0' \
                in metrics.render()
            where.unlink()  # the disk is writable again
            await trio.sleep(SNAPSHOT_INTERVAL_S)  # the round at 20 s
            assert (where / "worker-3.prom").read_bytes().startswith(b"# HELP")
            assert metrics.snapshot_errors == 4
            nursery.cancel_scope.cancel()
    assert not (where / "worker-3.prom").exists()  # removed on exit
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "not written" in messages[0] and "again after 4 failures" in messages[1]


def test_merging_at_the_open_file_limit_answers_this_workers_figures(tmp_path: Path) -> None:
    # At the open-file limit the metrics directory cannot be listed: /metrics answers with
    # this worker's own figures instead of failing with a 500.
    (tmp_path / "worker-1.prom").write_text("# TYPE x counter\nx_total{worker=\"1\"} 1.0\n")
    metrics = WorkerMetrics(3, metrics_dir=tmp_path)
    metrics.register(Directory(gate=StreamGate(), heartbeat_interval=20.0))
    own = metrics.render()
    assert b'worker="1"' in metrics.render_merged(own)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)  # descriptors are handed out lowest first
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no open() succeeds
    try:
        merged = metrics.render_merged(own)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert b'worker="3"' in merged and b'worker="1"' not in merged
