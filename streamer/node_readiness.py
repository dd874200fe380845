"""Node readiness: the SDK port's ``/readyz`` is 200 only when every worker has its data.

Theory of operation
-------------------
The workers of a node share the SDK port (``SO_REUSEPORT``), so a load balancer's ``/readyz``
reaches one of them, chosen by the kernel. A worker's own readiness (its first snapshot
applied, its bus subscriber in sync) says nothing about its siblings: a node with one ready
worker and one that has no data yet (just started, restarted, or backing off after crashes)
would answer 200 from the first and then send clients to the second.

The supervisor knows its workers, so it owns the node's answer:

* Each worker reports its own readiness on stdout, the pipe that already carries its start
  line: one line ``{"event": "data", "ready": true|false}`` each time it changes (it looks
  every ``REPORT_INTERVAL_S``; the bus-sync half of readiness is a probe, not an event).
* The supervisor keeps one flag per worker slot: false from the spawn until the worker says
  it is ready, false again as soon as its process exits, false for every slot once the node
  drains. On each change it writes ``DATA_DIR/node-readiness`` (a temporary file renamed over
  it, so a reader never sees half of it): ``{"ready": bool, "workers": [bool, ...]}``.
* A worker's ``/readyz`` is 200 when the worker is ready itself and that file says the node
  is ready; otherwise 503 naming what is missing. A missing or unreadable file is "not
  ready" (fail closed). A worker started without a supervisor (tests, tools) is given no
  file and answers for itself alone.

Readers and the writer share only the file: no socket, no lock, and a dead supervisor takes
its workers with it (they exit on stdin EOF), so a stale file is never served.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger("flagstream.readiness")

READINESS_FILE = "node-readiness"
REPORT_INTERVAL_S = 0.25
# Lines a worker writes on stdout are short; anything longer is not a report and is dropped.
MAX_REPORT_LINE = 4096


def report_line(ready: bool) -> str:
    return json.dumps({"event": "data", "ready": ready})


def parse_report(line: bytes) -> bool | None:
    """The readiness a worker reports in one stdout line, or None if the line is no report."""
    if len(line) > MAX_REPORT_LINE:
        return None
    try:
        msg: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(msg, dict) or msg.get("event") != "data":
        return None
    ready = msg.get("ready")
    return ready if isinstance(ready, bool) else None


class NodeReadiness:
    """The supervisor's side: one flag per worker slot, written to ``path`` on each change."""

    def __init__(self, path: Path, workers: int) -> None:
        self.path = path
        self._ready = [False] * workers
        self._draining = False
        self._write_failed = False
        self._write()  # a file left by an earlier run must not say "ready"

    def set(self, worker: int, ready: bool) -> None:
        if self._ready[worker] != ready:
            self._ready[worker] = ready
            self._write()

    def drain(self) -> None:
        """The node is shutting down: not ready from now on, whatever the workers say."""
        self._draining = True
        self._write()

    @property
    def ready(self) -> bool:
        return not self._draining and all(self._ready)

    def _write(self) -> None:
        state = {"ready": self.ready, "workers": list(self._ready), "draining": self._draining}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(json.dumps(state) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            # The disk is full or the dir is gone: the workers must not keep reading an old
            # "ready". Without the file they answer 503, which is the truth we cannot write.
            if not self._write_failed:
                log.warning("cannot write %s (%s); /readyz answers 503 until it can",
                            self.path, exc)
            self._write_failed = True
            for path in (tmp, self.path):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            return
        if self._write_failed:
            log.info("%s is written again", self.path)
        self._write_failed = False


def node_waiting(path: Path) -> str | None:
    """What the node still waits for, per the supervisor's file at ``path``; None if ready."""
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return "node readiness unknown"
    if not isinstance(state, dict):
        return "node readiness unknown"
    if state.get("ready") is True:
        return None
    if state.get("draining") is True:
        return "node is draining"
    workers = state.get("workers")
    if isinstance(workers, list):
        missing = [str(i) for i, ok in enumerate(workers) if ok is not True]
        if missing:
            return f"waiting for worker {', '.join(missing)} to have its data"
    return "node is not ready"


async def report_readiness(is_ready: Callable[[], bool], write_line: Callable[[str], None],
                           *, interval: float = REPORT_INTERVAL_S) -> None:
    """The worker's side: write a report line each time ``is_ready()`` changes (the first
    one at once). Runs until cancelled."""
    last: bool | None = None
    while True:
        now = is_ready()
        if now != last:
            write_line(report_line(now))
            last = now
        await trio.sleep(interval)
