"""The Locust scripts, distributed (a master and two worker processes), against a real node.

Runs `locust` headless as a subprocess (importing locust here would monkey-patch the test
process with gevent). Asserts delivery: lean users on both workers hold their streams, every
change after they connected reaches every stream exactly once, and the master's merged figures
say so. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.node import Node

REPO = Path(__file__).resolve().parents[2]
STREAMS_PER_USER = 150


@pytest.mark.e2e
def test_lean_users_on_two_workers_get_every_change(tmp_path: Path) -> None:
    with Node(workers=1, stream_host="0.0.0.0") as node:
        assert node.listeners is not None
        ls = node.listeners
        out = tmp_path / "prop.json"
        argv = [
            sys.executable, "-m", "locust", "-f", "loadtest/locustfile.py", "--headless",
            "--processes", "2", "-u", "3", "-r", "10", "-t", "9s", "--only-summary",
            "--fs-admin", f"http://127.0.0.1:{ls.admin[1]}", "--fs-admin-token", node.admin_token,
            "--fs-stream", f"http://127.0.0.1:{ls.stream[1]}",
            "--fs-sdk", f"http://127.0.0.1:{ls.sdk[1]}",
            "--fs-addresses", "127.0.0.1,127.0.0.2",
            "--fs-lean-streams", str(STREAMS_PER_USER), "--fs-change-interval", "0.7",
            "--fs-json", str(out), "--fs-hgrm", str(tmp_path / "prop.hgrm"),
            "LeanStreamUser", "FlagWriterUser",
        ]  # fmt: skip
        run = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=60)
    log = (run.stdout + run.stderr).decode(errors="replace")
    assert run.returncode == 0, log[-3000:]
    changes = json.loads(out.read_text())["changes"]
    total = 2 * STREAMS_PER_USER  # two lean users (one per worker) and the writer
    counts = [c["count"] for c in changes]
    assert max(counts) == total, counts  # never more: no duplicates
    assert counts.count(total) >= 3, counts  # changes after the connect reached every stream
    assert "SSE      propagation" in log  # Locust's own statistics table has the row
    assert (tmp_path / "prop.hgrm").read_text().startswith("       Value")
