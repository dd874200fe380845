"""Log lines that cannot be written (a full disk under stderr, a reader gone) are counted, not
raised and not answered with a traceback each; the first line written afterwards says how
many were lost."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import orjson
import pytest

from streamer.logging_setup import JsonFormatter, LossCountingHandler, RepeatFilter


def record(msg: str) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "t", "levelno": logging.INFO, "levelname": "INFO",
                                  "msg": msg})


def test_lines_the_stream_refuses_are_counted_and_reported_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    full = open("/dev/full", "w")  # noqa: SIM115 (closed below) every write: ENOSPC
    handler = LossCountingHandler(full)
    handler.setFormatter(JsonFormatter("worker0"))
    for i in range(3):
        handler.emit(record(f"lost {i}"))  # raises nothing
    assert handler.lost == 3
    assert capsys.readouterr().err == ""  # no traceback per lost line
    handler.stream = written = io.StringIO()  # the disk has room again
    handler.emit(record("back"))
    handler.emit(record("again"))
    with contextlib.suppress(OSError):  # its buffer still holds a line it could not write
        full.close()
    lines = [orjson.loads(x) for x in written.getvalue().splitlines()]
    assert [x["msg"] for x in lines] == [
        "3 log lines were lost: the log stream was not writable", "back", "again"]
    assert lines[0]["level"] == "warning" and handler.lost == 3


def test_a_bad_format_string_is_still_shown(capsys: pytest.CaptureFixture[str]) -> None:
    handler = LossCountingHandler(io.StringIO())
    bad = logging.makeLogRecord({"msg": "%d", "args": ("x",)})
    handler.emit(bad)
    assert "TypeError" in capsys.readouterr().err and handler.lost == 0


def test_repeats_of_a_line_are_dropped_within_the_window_and_then_counted() -> None:
    handler = LossCountingHandler(written := io.StringIO())
    handler.addFilter(RepeatFilter(window_s=60.0))
    emfile = {"name": "trio.serve_listeners", "levelno": logging.ERROR,
              "msg": "accept returned %s (%s); retrying in %s seconds",
              "args": ("EMFILE", "Too many open files", 0.1)}
    for i in range(600):  # a minute at ten a second, then one more
        handler.handle(logging.makeLogRecord({**emfile, "created": 1000.0 + i / 10}))
    handler.handle(logging.makeLogRecord({**emfile, "created": 1060.0}))
    handler.handle(logging.makeLogRecord({"name": "t", "msg": "other", "created": 1000.5}))
    lines = written.getvalue().splitlines()
    assert lines == [
        "accept returned EMFILE (Too many open files); retrying in 0.1 seconds",
        "accept returned EMFILE (Too many open files); retrying in 0.1 seconds "
        "(599 more like it in the last 60 s)",
        "other",
    ]
