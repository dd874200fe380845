"""Node readiness (streamer/node_readiness.py): the supervisor's file, the workers' reports,
and the SDK port's /readyz that reads them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing
from streamer_testkit import ENV, snapshot

from node.supervisor import WorkerSupervisor
from streamer.environments.directory import Directory
from streamer.fastpath.stream_gate import StreamGate
from streamer.node_readiness import (
    MAX_REPORT_LINE,
    NodeReadiness,
    node_waiting,
    parse_report,
    report_line,
    report_readiness,
)
from streamer.sdk_app import create_sdk_app

# (what happens, in order), the node's answer after it
SEQUENCES: list[tuple[str, list[tuple[str, int, bool]], str | None]] = [
    ("nothing reported yet", [], "waiting for worker 0, 1, 2 to have its data"),
    ("one of three", [("set", 1, True)], "waiting for worker 0, 2 to have its data"),
    ("all three", [("set", 0, True), ("set", 1, True), ("set", 2, True)], None),
    ("one exits again", [("set", 0, True), ("set", 1, True), ("set", 2, True),
                         ("set", 2, False)], "waiting for worker 2 to have its data"),
    ("draining", [("set", 0, True), ("set", 1, True), ("set", 2, True), ("drain", 0, False)],
     "node is draining"),
    ("a report after the drain", [("drain", 0, False), ("set", 0, True), ("set", 1, True),
                                  ("set", 2, True)], "node is draining"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "steps", "waiting"), SEQUENCES,
                         ids=[n for n, _, _ in SEQUENCES])
def test_the_node_is_ready_when_every_worker_is(
    tmp_path: Path, name: str, steps: list[tuple[str, int, bool]], waiting: str | None
) -> None:
    path = tmp_path / "node-readiness"
    path.write_text('{"ready": true}')  # left by an earlier run: overwritten at once
    readiness = NodeReadiness(path, 3)
    for op, worker, ready in steps:
        if op == "set":
            readiness.set(worker, ready)
        else:
            readiness.drain()
    assert node_waiting(path) == waiting
    assert readiness.ready is (waiting is None)
    assert [p.name for p in tmp_path.iterdir()] == ["node-readiness"]  # no temporary left


@pytest.mark.parametrize("content", [None, b"", b"{", b"[]", b'{"ready": "yes"}',
                                     b'{"ready": 1, "workers": [true]}'])
def test_a_missing_or_unreadable_file_is_not_ready(tmp_path: Path, content: bytes | None
                                                   ) -> None:
    path = tmp_path / "node-readiness"
    if content is not None:
        path.write_bytes(content)
    assert node_waiting(path) is not None


def test_a_file_that_cannot_be_written_is_removed(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flagstream.readiness")
    path = tmp_path / "node-readiness"
    readiness = NodeReadiness(path, 1)
    readiness.set(0, True)
    assert node_waiting(path) is None
    blocker = tmp_path / ".node-readiness.tmp"
    blocker.mkdir()  # the temporary cannot be written (also not by root, unlike a chmod)
    readiness.set(0, False)
    readiness.set(0, True)
    # The "ready" of before is gone, not left standing: the workers answer 503. The failure
    # is logged once for the episode.
    assert node_waiting(path) == "node readiness unknown"
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
    blocker.rmdir()
    readiness.set(0, False)
    readiness.set(0, True)
    assert node_waiting(path) is None
    assert any("is written again" in r.getMessage() for r in caplog.records)


REPORTS: list[tuple[bytes, bool | None]] = [
    (report_line(True).encode(), True),
    (report_line(False).encode(), False),
    (b'{"event": "data", "ready": 1}', None),
    (b'{"event": "ready", "worker": 0}', None),  # the start line
    (b"plain text", None),
    (b"[1, 2]", None),
    (b'{"event": "data", "ready": true, "pad": "' + b"x" * MAX_REPORT_LINE + b'"}', None),
]


@pytest.mark.parametrize(("line", "expected"), REPORTS)
def test_parse_report(line: bytes, expected: bool | None) -> None:
    assert parse_report(line) is expected


async def test_a_worker_reports_each_change_once(autojump_clock: trio.testing.MockClock
                                                 ) -> None:
    states = iter([False, False, True, True, True, False])
    lines: list[tuple[float, str]] = []
    with trio.move_on_after(1.4):
        await report_readiness(lambda: next(states, False),
                               lambda line: lines.append((trio.current_time(), line)),
                               interval=0.25)
    assert lines == [(0.0, report_line(False)), (0.5, report_line(True)),
                     (1.25, report_line(False))]


async def test_the_supervisor_reads_reports_from_a_worker_process(tmp_path: Path) -> None:
    readiness = NodeReadiness(tmp_path / "node-readiness", 2)
    sup = WorkerSupervisor(1, [], readiness=readiness)
    lines = [report_line(True), "x" * (3 * MAX_REPORT_LINE), report_line(False),
             "log noise", report_line(True)]
    script = "import sys; sys.stdout.write(sys.argv[1]); sys.stdout.flush()"
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", script, "\n".join(lines[1:]) + "\n"], stdout=subprocess.PIPE)
    seen: list[bool] = []
    readiness.set = lambda worker, ready: seen.append(ready)  # type: ignore[method-assign]
    with trio.fail_after(10):
        # the first report came in the same read as the start line
        await sup._read_reports(proc, (lines[0] + "\n").encode())
        await proc.wait()
    assert seen == [True, False, True]


async def test_readyz_answers_for_the_node(tmp_path: Path, nursery: trio.Nursery) -> None:
    path = tmp_path / "node-readiness"
    directory = Directory(gate=StreamGate())
    await nursery.start(directory.run)
    client = create_sdk_app(directory, node_readiness=path).test_client()
    response = await client.get("/readyz")
    assert (response.status_code, await response.get_data()) == (503, b"loading\n")
    await directory.apply_snapshot(snapshot(1, (ENV, ())), full=True)
    response = await client.get("/readyz")  # this worker is ready, the node's file is missing
    assert (response.status_code, await response.get_data()) == (503,
                                                                 b"node readiness unknown\n")
    readiness = NodeReadiness(path, 2)
    readiness.set(0, True)
    response = await client.get("/readyz")
    assert (response.status_code, await response.get_data()) == (
        503, b"waiting for worker 1 to have its data\n")
    readiness.set(1, True)
    assert json.loads(path.read_text())["ready"] is True
    response = await client.get("/readyz")
    assert (response.status_code, await response.get_data()) == (200, b"ready\n")
