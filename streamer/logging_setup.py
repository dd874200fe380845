"""Log configuration for every flagstream process: one JSON object per line (default) or
plain text, on stderr (journald keeps it). Each JSON line has ``ts`` (ISO 8601, UTC),
``level``, ``logger``, ``msg``, the process role (``supervisor``, ``worker3``...), ``pid``,
and ``exc`` with the traceback when there is one.

Writing a log line must never end a process nor flood it: stderr can be a file on a full disk
or a pipe whose reader is gone. :class:`LossCountingHandler` counts each line it could not
write (``lost``, read by the worker's ``/metrics``), prints no traceback for it, and once
writing works again first writes one line saying how many were lost: the episode is reported
once, on the stream that failed, when it can be read again.

A condition that repeats must not flood the log either: ``trio.serve_listeners`` (under
hypercorn) logs every failed ``accept`` at the open-file limit with a traceback, ten times a
second. :class:`RepeatFilter` lets the first of identical lines (same logger, message and
arguments) through, drops the repeats within ``window_s`` and adds their number to the next
one it lets through."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "role": self.role,
            "pid": os.getpid(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class LossCountingHandler(logging.StreamHandler[TextIO]):
    """A stream handler that counts the lines the stream refused instead of raising or
    printing a traceback per line."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.lost = 0  # lines not written, since the process started
        self._noted = 0  # of those, how many a written line has reported

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a bad format string is a bug to show, as logging does
            self.handleError(record)
            return
        if self.lost > self._noted:
            note = logging.makeLogRecord({
                "name": "flagstream.logging", "levelno": logging.WARNING,
                "levelname": "WARNING", "args": (self.lost - self._noted,),
                "msg": "%d log lines were lost: the log stream was not writable"})
            text = self.format(note) + self.terminator + text
        try:
            self.stream.write(text + self.terminator)
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            self.lost += 1
            return
        self._noted = self.lost


class RepeatFilter(logging.Filter):
    """Drop a line identical to one let through less than ``window_s`` ago (record time);
    remembers at most ``max_keys`` lines (overflow: the oldest is forgotten)."""

    def __init__(self, window_s: float = 60.0, max_keys: int = 256) -> None:
        super().__init__()
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: dict[tuple[str, object, str], tuple[float, int]] = {}
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg, repr(record.args))
        last = self._seen.get(key)
        if last is not None and record.created - last[0] < self.window_s:
            self._seen[key] = (last[0], last[1] + 1)
            self.dropped += 1
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} ({last[1]} more like it in the last {self.window_s:g} s)"
        self._seen.pop(key, None)
        self._seen[key] = (record.created, 0)
        if len(self._seen) > self.max_keys:
            del self._seen[next(iter(self._seen))]
        return True


_handler: LossCountingHandler | None = None


def lost_log_lines() -> int:
    """Log lines this process could not write (0 before :func:`setup_logging`)."""
    return 0 if _handler is None else _handler.lost


def setup_logging(role: str, fmt: str = "json", level: int = logging.INFO) -> None:
    global _handler
    handler = _handler = LossCountingHandler(sys.stderr)
    handler.addFilter(RepeatFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(role))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {role} %(name)s %(levelname)s "
                                               "%(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
