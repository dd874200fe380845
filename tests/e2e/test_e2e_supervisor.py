"""The supervisor's process management, on a real node."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.e2e.node_proc import NodeProcess, create_env, open_stream, wait_until

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_idle_workers_are_not_restarted_and_streams_stay_open(node: NodeProcess) -> None:
    # Regression: PR_SET_PDEATHSIG set from trio's cached spawning thread killed every worker
    # when that thread idled out after 10 s, dropping all streams.
    env = create_env(node)
    workers = node.children()
    with httpx.stream("GET", node.urls["stream"] + "/all", timeout=30,
                      headers={"Authorization": env["sdkKey"]}) as stream:
        assert stream.status_code == 200
        chunks = stream.iter_raw()
        first = b""
        while b"event: put" not in first:  # the stream opens with its retry: block, then put
            first += next(chunks)
        # Keep the stream past trio's 10 s idle-thread timeout, reading the heartbeats (5 s in
        # the test node) as they come: each shows the same connection still served. The read
        # timeout (30 s) is the deadline for each; the third, about 15 s in, ends the wait.
        opened = time.monotonic()
        for _ in range(4):
            assert next(chunks).startswith(b":")
            if time.monotonic() - opened >= 10.5:
                break
        else:
            raise AssertionError("the heartbeats did not span 10.5 s")
        assert node.children() == workers


def test_workers_exit_when_the_supervisor_is_killed(node: NodeProcess) -> None:
    workers = node.children()
    assert workers
    assert node.proc is not None
    os.kill(node.proc.pid, 9)
    node.proc.wait(5)
    wait_until(lambda: not any(alive(p) for p in workers), 10, "orphaned workers to exit")


def test_a_stream_opened_while_every_worker_is_dead_waits_for_the_restarted_one(
    node: NodeProcess,
) -> None:
    # The supervisor holds each worker's listening sockets across a restart: a connection
    # made while the old worker is gone and the new one is starting is queued, not refused.
    env = create_env(node)
    workers = node.children()
    for pid in workers:
        os.kill(pid, 9)
    wait_until(lambda: not any(alive(p) for p in workers), 5, "the workers to die")
    sock, got = open_stream(node, env["sdkKey"])  # taken by the listener while none runs
    sock.close()
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"event: put" in got, got
    assert not set(node.children()) & set(workers)  # served by a new worker


def test_one_listening_line_per_listener(node: NodeProcess) -> None:
    # The node says where it listens, once per listener; hypercorn's own "Running on" line
    # (once per worker, and twice each through its own handler) is not printed.
    lines = [line for line in node.output if "listening on" in line or "Running on" in line]
    assert [line.split(" listening on ")[0] for line in lines] == [
        "flagstream: admin", "flagstream: stream", "flagstream: sdk"], "\n".join(node.output)
