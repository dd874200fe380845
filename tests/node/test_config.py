"""Configuration precedence and validation (pure: dicts in, values out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.config import ConfigError, load_toml, parse_hostport, resolve

NAMES = ["admin-bind", "workers", "admin-token", "heartbeat-interval"]


@pytest.mark.parametrize(
    ("cli", "env", "toml", "expected"),
    [
        ({}, {}, {}, {"admin_bind": ("127.0.0.1", 8070), "admin_token": None,
                      "heartbeat_interval": 20.0}),
        ({}, {}, {"admin-bind": "0.0.0.0:9000"}, {"admin_bind": ("0.0.0.0", 9000)}),
        ({}, {"FLAGSTREAM_ADMIN_BIND": "127.0.0.2:9001"}, {"admin-bind": "0.0.0.0:9000"},
         {"admin_bind": ("127.0.0.2", 9001)}),
        ({"admin-bind": "127.0.0.3:9002"}, {"FLAGSTREAM_ADMIN_BIND": "127.0.0.2:9001"},
         {"admin-bind": "0.0.0.0:9000"}, {"admin_bind": ("127.0.0.3", 9002)}),
        ({}, {"FLAGSTREAM_WORKERS": "3"}, {"workers": 5}, {"workers": 3}),
        ({}, {}, {"workers": 5}, {"workers": 5}),
        ({}, {"FLAGSTREAM_ADMIN_TOKEN": "t0k"}, {}, {"admin_token": "t0k"}),
        ({}, {"FLAGSTREAM_ADMIN_TOKEN": ""}, {"admin-token": "file"}, {"admin_token": "file"}),
        ({}, {}, {"heartbeat-interval": 5}, {"heartbeat_interval": 5.0}),
        ({"admin-bind": "[::1]:8070"}, {}, {}, {"admin_bind": ("::1", 8070)}),
    ],
)
def test_precedence(cli: dict[str, str], env: dict[str, str], toml: dict[str, Any],
                    expected: dict[str, Any]) -> None:
    got = resolve(NAMES, cli, env, toml)
    for key, value in expected.items():
        assert got[key] == value


@pytest.mark.parametrize(
    ("cli", "env", "toml", "message"),
    [
        ({"admin-bind": "nohost"}, {}, {}, "--admin-bind: expected HOST:PORT"),
        ({}, {"FLAGSTREAM_ADMIN_BIND": "h:99999"}, {}, "FLAGSTREAM_ADMIN_BIND: port out of range"),
        ({}, {}, {"admin-bind": "h:x"}, "config key admin_bind: port is not a number"),
        ({"workers": "0"}, {}, {}, "--workers: must be at least 1"),
        ({}, {}, {"workers": "many"}, "config key workers: expected a whole number, got 'many'"),
        ({}, {}, {"heartbeat-interval": -1}, "config key heartbeat_interval: must be greater"),
    ],
)
def test_errors_name_the_option(cli: dict[str, str], env: dict[str, str], toml: dict[str, Any],
                                message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(NAMES, cli, env, toml)
    assert message in str(info.value)


def test_toml_unknown_key_is_named(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('admin_bind = "127.0.0.1:1"\nadmin_tokn = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'admin_tokn'"):
        load_toml(f)


def test_toml_syntax_error(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("admin_bind = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(f)


def test_toml_keys_map_to_options(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('admin_bind = "127.0.0.1:1"\nheartbeat_interval = 3\n')
    assert load_toml(f) == {"admin-bind": "127.0.0.1:1", "heartbeat-interval": 3}


@pytest.mark.parametrize("text", ["", ":80", "host", "host:", "host:-1"])
def test_bad_hostport(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(text)
