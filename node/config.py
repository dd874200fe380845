"""Node configuration: command-line flags, ``FLAGSTREAM_<NAME>`` environment variables and a
TOML file, merged with a documented precedence.

Precedence, highest first: a command-line flag, then the environment variable
``FLAGSTREAM_<NAME>`` (``--admin-bind`` reads ``FLAGSTREAM_ADMIN_BIND``), then the key in the
``--config`` TOML file (``admin_bind = "127.0.0.1:8070"``), then the built-in default. The TOML
file is read from ``--config`` or ``FLAGSTREAM_CONFIG``. Every value is validated when the node
starts; an error names the option and where it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.clientside.client_groups import MAX_WARM_GROUPS
from streamer.fastpath.load_monitor import DEFAULT_WORKER_MEMORY_BUDGET_MIB


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the option."""


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port is not a number in {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host, port


def _int(text: str) -> int:
    # int()'s own message ("invalid literal for int() with base 10") means nothing to an operator.
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text[:64]!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text[:64]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {text[:64]!r}")
    return value


def _data_dir(text: str) -> Path:
    # Checked here, before anything is created: mkdir's "File exists" would hide the reason.
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{text} is not a directory")
    return path


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return value


def _nonneg_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def _nonneg_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def _heartbeat(text: str) -> float:
    value = _float(text)
    if not 0 < value < 60:
        # Load balancers commonly idle a connection out at 60 s: the heartbeat must beat them.
        raise ValueError(f"must be greater than 0 and less than 60 seconds, got {value}")
    return value


def _log_format(text: str) -> str:
    if text not in ("json", "text"):
        raise ValueError(f"must be json or text, got {text!r}")
    return text


def _text(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # CLI spelling without dashes, e.g. "admin-bind"
    parse: Callable[[str], Any]
    default: Any
    help: str

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env_var(self) -> str:
        return "FLAGSTREAM_" + self.attr.upper()


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("data-dir", _data_dir, Path("./flagstream-data"), "SQLite store, spool and token"),
        Option("stream-bind", parse_hostport, ("127.0.0.1", 8030), "SSE stream listener"),
        Option("sdk-bind", parse_hostport, ("127.0.0.1", 8031), "polling and events listener"),
        Option("admin-bind", parse_hostport, ("127.0.0.1", 8070), "admin API listener"),
        Option("workers", _positive_int, None, "streamer worker processes (default: CPUs)"),
        Option("admin-token", _text, None, "admin API bearer token (default: generated)"),
        Option("bus", _text, None, "bus PUB address, e.g. tcp://10.0.0.5:7100"),
        Option("bus-snapshot", _text, None, "snapshot REP address (default: bus port + 1)"),
        Option("kinesis-stream", _text, None, "Kinesis stream for analytics events"),
        Option("kinesis-endpoint", _text, None, "Kinesis endpoint URL (emulators)"),
        Option("heartbeat-interval", _heartbeat, 20.0, "SSE heartbeat comment, seconds (< 60)"),
        Option("coalesce-window", _nonneg_float, 0.005, "write coalescing window, seconds"),
        Option("drain-timeout", _positive_float, 10.0, "graceful shutdown deadline, seconds"),
        Option("drain-window", _nonneg_float, 5.0,
               "on shutdown, spread closing the streams over this many seconds"),
        Option("max-connection-age", _nonneg_float, 0.0,
               "close a stream after this many seconds (jittered down by a quarter); 0: never"),
        Option("max-connections", _nonneg_int, 0,
               "streams per worker before new ones get 503 + Retry-After; 0: as many as the "
               "open-file limit allows (it less a twentieth, at least 256, which also caps a "
               "higher setting)"),
        Option("max-loop-lag", _nonneg_float, 0.0,
               "a worker whose event loop wakes this many seconds late refuses new streams "
               "(503 + Retry-After) for 2 s; 0: never (the default)"),
        Option("worker-memory-budget", _nonneg_int, DEFAULT_WORKER_MEMORY_BUDGET_MIB,
               "MiB of RSS per worker past which it refuses new streams (503 + Retry-After); "
               "0: no budget"),
        Option("max-context-groups", _positive_int, MAX_WARM_GROUPS,
               "client-side context groups per environment (per worker) that keep their "
               "evaluated flags cached; past it the least recently connected group's cache is "
               "dropped and re-evaluated on demand (8-26 bytes per flag per group)"),
        Option("max-connections-per-key", _nonneg_int, 0,
               "streams per SDK key per worker; 0: no limit"),
        Option("max-connections-per-address", _nonneg_int, 0,
               "streams per client IP address per worker; 0: no limit"),
        Option("header-timeout", _positive_float, 10.0,
               "seconds a client has to send its request head (against slowloris)"),
        Option("key-grace", _nonneg_float, 86400.0,
               "default grace period of a rotated SDK or mobile key, seconds"),
        Option("log-format", _log_format, "json", "log lines: json (one object a line) or text"),
    )
}


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("_", "-")
        if name not in OPTIONS or name == "config":
            raise ConfigError(f"--config {path}: unknown key {key!r}")
        out[name] = value
    return out


def resolve(
    names: list[str],
    cli: Mapping[str, str | None],
    env: Mapping[str, str],
    toml: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge the sources for ``names``; returns ``{attr: value}``. Pure: tests pass dicts."""
    out: dict[str, Any] = {}
    for name in names:
        opt = OPTIONS[name]
        raw: Any
        where: str
        if cli.get(name) is not None:
            raw, where = cli[name], f"--{name}"
        elif env.get(opt.env_var) not in (None, ""):
            raw, where = env[opt.env_var], opt.env_var
        elif name in toml:
            raw, where = toml[name], f"config key {opt.attr}"
        else:
            out[opt.attr] = _default_workers() if name == "workers" else opt.default
            continue
        try:
            out[opt.attr] = opt.parse(str(raw))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    check_together(out)
    return out


def check_together(settings: Mapping[str, Any]) -> None:
    """Checks that involve two options; the error names both."""
    timeout, window = settings.get("drain_timeout"), settings.get("drain_window")
    if timeout is not None and window is not None and window >= timeout:
        raise ConfigError(
            f"drain_window ({window} s) must be shorter than drain_timeout ({timeout} s): "
            "streams are closed over the window, and the node must exit within the timeout")
