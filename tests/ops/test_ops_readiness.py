"""The SDK port's /readyz on a real node: 200 only when every worker has its data (issue 12,
finding 7). The seam: a worker that keeps crashing waits out a restart backoff with its
listeners closed, so every /readyz goes to the other, ready worker, which used to answer 200
for a node with a slot that has no worker, let alone data."""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import httpx

from tests.e2e.node_proc import NodeProcess, serve_argv, wait_until

BACKOFF = re.compile(r'"ts":"([^"]+)".*"worker (\d+) exited with code -9; restarting in (\d+) s"')
MARGIN_S = 0.2  # a request starts this long before the window ends, or it is not made


def readyz(node: NodeProcess) -> tuple[int, str]:
    # a connection of its own each time, so the kernel picks a worker each time
    with httpx.Client(timeout=10) as c:
        r = c.get(node.urls["sdk"] + "/readyz", headers={"Connection": "close"})
    return r.status_code, r.text.strip()


def all_ready(node: NodeProcess, n: int = 20) -> bool:
    return all(readyz(node)[0] == 200 for _ in range(n))


def exited_since(node: NodeProcess, seen: int) -> bool:
    return any("exited with code -9" in line for line in node.output[seen:])


def new_workers(node: NodeProcess, known: set[int]) -> set[int]:
    return set(node.children()) - known


def answers_while_a_worker_backs_off(node: NodeProcess) -> tuple[str, list[tuple[int, str]]]:
    """SIGKILL a worker slot's processes until the supervisor delays a restart (the second
    death in a minute of one slot waits 1 s, then 2 s, 4 s, ...); while it waits, the slot's
    listeners are closed, so every /readyz reaches the other worker. Returns the slot and the
    answers of the requests made before the restart was due (by the log line's own clock)."""
    seen = len(node.output)
    known = set(node.children())
    victim = min(known)
    answers: list[tuple[int, str]] = []
    for _ in range(6):
        os.kill(victim, signal.SIGKILL)
        wait_until(partial(exited_since, node, seen), 10, "the supervisor to see the exit")
        for line in node.output[seen:]:
            if m := BACKOFF.search(line):
                slot, delay = m.group(2), int(m.group(3))
                restart_at = datetime.fromisoformat(m.group(1)).timestamp() + delay
                while time.time() < restart_at - MARGIN_S:
                    answers.append(readyz(node))
                if len(answers) >= 3:
                    return slot, answers
        seen = len(node.output)
        # the slot is restarted (at once or after its delay): kill the new process before it
        # has run a minute, so the next delay is longer
        wait_until(partial(new_workers, node, known), 40, "the restarted worker")
        (victim,) = new_workers(node, known)
        known.add(victim)
    raise AssertionError(f"too few answers during the restart delays: {answers}")


def test_readyz_waits_for_every_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = NodeProcess(serve_argv(data, workers=2), data).start()
    try:
        wait_until(lambda: all_ready(node), 30, "both workers to be ready")
        slot, answers = answers_while_a_worker_backs_off(node)
        # The worker that has its data answers for the node: it waits for the other slot.
        assert set(answers) == {(503, f"waiting for worker {slot} to have its data")}, answers
        # once the restarted worker has its data, the node is ready again
        wait_until(lambda: all_ready(node), 30, "the node to be ready again")
    finally:
        node.stop()
