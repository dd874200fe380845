"""The operating options: precedence, validation with errors naming the key, cross-checks,
and the admin API's refusal to listen beyond loopback without a configured token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.cli import SERVE_OPTIONS, STORE_OPTIONS, STREAMER_OPTIONS
from node.config import ConfigError, resolve
from node.supervisor import NodeConfig, StartError, check_admin_exposure

NEW = ["drain-window", "max-connection-age", "max-connections",
       "max-connections-per-key", "max-connections-per-address", "header-timeout",
       "key-grace", "log-format", "drain-timeout", "heartbeat-interval"]
REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    got = resolve(NEW, {}, {}, {})
    assert got["heartbeat_interval"] <= 30
    assert got["drain_window"] < got["drain_timeout"]
    assert got["max_connection_age"] == 0.0 and got["max_connections"] == 0
    assert got["header_timeout"] == 10.0 and got["log_format"] == "json"


@pytest.mark.parametrize(
    ("cli", "env", "toml", "expected"),
    [
        ({}, {}, {"max-connections": 500}, {"max_connections": 500}),
        ({}, {"FLAGSTREAM_MAX_CONNECTIONS": "7"}, {"max-connections": 500},
         {"max_connections": 7}),
        ({"max-connections": "9"}, {"FLAGSTREAM_MAX_CONNECTIONS": "7"}, {},
         {"max_connections": 9}),
        ({}, {"FLAGSTREAM_LOG_FORMAT": "text"}, {"log-format": "json"}, {"log_format": "text"}),
        ({}, {}, {"max-connection-age": 600}, {"max_connection_age": 600.0}),
        ({"header-timeout": "2.5"}, {}, {}, {"header_timeout": 2.5}),
        ({}, {"FLAGSTREAM_KEY_GRACE": "0"}, {}, {"key_grace": 0.0}),
    ],
)
def test_precedence_of_new_options(cli: dict[str, str], env: dict[str, str],
                                   toml: dict[str, Any], expected: dict[str, Any]) -> None:
    got = resolve(NEW, cli, env, toml)
    for key, value in expected.items():
        assert got[key] == value


@pytest.mark.parametrize(
    ("cli", "env", "toml", "message"),
    [
        ({"heartbeat-interval": "60"}, {}, {}, "--heartbeat-interval: must be greater than 0 and"
         " less than 60"),
        ({}, {}, {"max-connections": -1}, "config key max_connections: must be 0 or more"),
        ({}, {"FLAGSTREAM_LOG_FORMAT": "xml"}, {}, "FLAGSTREAM_LOG_FORMAT: must be json or text"),
        ({}, {}, {"header-timeout": 0}, "config key header_timeout: must be greater than 0"),
        ({"max-connections-per-key": "lots"}, {}, {},
         "--max-connections-per-key: expected a whole number, got 'lots'"),
        ({"drain-window": "10"}, {}, {"drain-timeout": 10}, "drain_window (10.0 s) must be "
         "shorter than drain_timeout (10.0 s)"),
    ],
)
def test_errors_name_the_key(cli: dict[str, str], env: dict[str, str], toml: dict[str, Any],
                             message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(NEW, cli, env, toml)
    assert message in str(info.value)


def test_every_role_gets_its_options() -> None:
    for names in (SERVE_OPTIONS, STREAMER_OPTIONS):
        assert {"drain-window", "max-connections", "header-timeout", "log-format"} <= set(names)
    assert "key-grace" in STORE_OPTIONS and "key-grace" in SERVE_OPTIONS
    cfg = NodeConfig.from_settings("serve", resolve(SERVE_OPTIONS, {"max-connections": "3"},
                                                    {}, {}))
    assert cfg.max_connections == 3 and cfg.drain_window == 5.0


@pytest.mark.parametrize(
    ("host", "token", "stored", "error"),
    [
        ("127.0.0.1", None, False, None),
        ("::1", None, False, None),
        ("localhost", None, False, None),
        ("0.0.0.0", None, False, "not a loopback address and no admin token"),
        ("10.1.2.3", None, False, "not a loopback address and no admin token"),
        ("0.0.0.0", "short", False, "at least 16 characters"),
        ("0.0.0.0", "a-long-enough-admin-token", False, None),
        ("0.0.0.0", None, True, None),
    ],
)
def test_admin_exposure(tmp_path: Path, host: str, token: str | None, stored: bool,
                        error: str | None) -> None:
    if stored:
        (tmp_path / "admin-token").write_text("x" * 40 + "\n")
    if error is None:
        check_admin_exposure((host, 8070), token, tmp_path)
    else:
        with pytest.raises(StartError, match=error):
            check_admin_exposure((host, 8070), token, tmp_path)


def test_cli_refuses_public_admin_without_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "serve", "--data-dir", str(tmp_path / "d"),
         "--admin-bind", "0.0.0.0:0", "--stream-bind", "127.0.0.1:0",
         "--sdk-bind", "127.0.0.1:0", "--workers", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "not a loopback address and no admin token" in done.stderr
    assert not (tmp_path / "d" / "admin-token").exists()
