"""Log configuration for every flagstream process: one JSON object per line (default) or
plain text, on stderr (journald keeps it). Each JSON line has ``ts`` (ISO 8601, UTC),
``level``, ``logger``, ``msg``, the process role (``supervisor``, ``worker3``...), ``pid``,
and ``exc`` with the traceback when there is one."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime

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


def setup_logging(role: str, fmt: str = "json", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
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
