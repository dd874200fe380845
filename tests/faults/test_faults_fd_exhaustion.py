"""Idle connections at the open-file limit (issue 12, finding 4b): a real node under
``prlimit --nofile=320`` (the worker admits 64 streams and keeps the rest of its descriptors)
gets 400 connections that never send a request, on the stream or the SDK listener.

On the stream listener they count toward the worker's connection limit, so the worker closes
those past it at accept instead of holding them until ``accept`` fails with EMFILE and polls
and the metrics snapshot find no descriptor either. On the SDK listener hypercorn holds them
until its keep-alive timeout, and whatever fails meanwhile (accept, the snapshot) backs off.
Before, the worker ended within one snapshot round and the supervisor restarted it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.node_proc import NodeProcess, addr, create_env, open_stream, serve_argv, wait_until

IDLE = 400


def snapshot_written(path: Path, after: float) -> bool:
    try:
        return path.stat().st_mtime > after
    except FileNotFoundError:
        return False


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    data = tmp_path / "data"
    proc = NodeProcess(["prlimit", "--nofile=320:320", "--", *serve_argv(data, workers=1)],
                       data).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("listener", ["stream", "sdk"])
def test_idle_connections_past_the_open_file_limit_end_no_worker(
        node: NodeProcess, listener: str) -> None:
    env = create_env(node, "fds")
    workers = node.children()
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE):
            idle.append(socket.create_connection(addr(node.urls[listener]), timeout=5))
        if listener == "stream":
            # Descriptors are left for the rest of the worker: a poll is answered at once
            # (with every descriptor taken, hypercorn's accept waited until the idle heads
            # timed out).
            poll = httpx.get(node.urls["sdk"] + "/sdk/latest-all", timeout=5,
                             headers={"Authorization": env["sdkKey"]})
            assert poll.status_code == 200
        # On the SDK listener hypercorn takes idle connections until accept fails with
        # EMFILE and closes them after its keep-alive timeout (5 s); meanwhile the snapshot
        # fails and is skipped. Either way: two snapshots written since the idle connections
        # came, and the worker is the same process.
        snapshot = node.data_dir / "metrics" / "worker-0.prom"
        for _ in range(2):
            mark = snapshot.stat().st_mtime
            wait_until(lambda m=mark: snapshot_written(snapshot, m), 20,  # type: ignore[misc]
                       "a metrics snapshot", interval=0.2)
        assert node.children() == workers
        for sock in idle:
            sock.close()
        idle.clear()
        heads: list[bytes] = []

        def served() -> bool:
            sock, head = open_stream(node, env["sdkKey"])
            sock.close()
            heads.append(head)
            return b"event: put" in head

        wait_until(served, 15, "a stream served once the idle connections are gone",
                   interval=0.5)
        assert node.children() == workers
    finally:
        for sock in idle:
            sock.close()
