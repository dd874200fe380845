"""The operator's commands (`flagstream flags|envs|history`) against a real node over loopback,
and the command line's help, version and option errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.admin_client import DEFAULT_ADMIN_URL, TargetError, resolve_target
from node.cli import build_parser, main
from tests.e2e.node_proc import NodeProcess
from tests.ops import conftest as ops_conftest

REPO = Path(__file__).resolve().parents[2]
node = ops_conftest.node  # the fixture: one real node that this module's tests share
FLAG = {"variations": [True, False], "on": False, "offVariation": 1,
        "fallthrough": {"variation": 0}}


def cli(node: NodeProcess, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*args, "--admin-url", node.urls["admin"], "--token", node.token])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(node: NodeProcess, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = cli(node, capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_envs_and_flags_round_trip(node: NodeProcess, capsys: pytest.CaptureFixture[str],
                                   tmp_path: Path) -> None:
    created = cli_json(node, capsys, "envs", "create", "opcli", "--name", "Op CLI")
    assert created["key"] == "opcli" and created["sdkKey"].startswith("sdk-")
    code, out, _ = cli(node, capsys, "envs", "list")
    assert code == 0 and out.splitlines()[0].split() == ["KEY", "NAME", "SECURE-MODE",
                                                         "CLIENT-SIDE-ID"]
    assert "opcli" in out and created["sdkKey"] not in out  # keys only with --json

    flag_file = tmp_path / "flag.json"
    flag_file.write_text(json.dumps(FLAG))
    code, out, _ = cli(node, capsys, "flags", "set", "f1", "--env", "opcli", "--file",
                       str(flag_file))
    assert code == 0 and out.splitlines()[1].split() == ["f1", "off", "1", "2", "1"]
    code, out, _ = cli(node, capsys, "flags", "set", "f2", "--env", "opcli", "--json",
                       json.dumps({**FLAG, "on": True}))
    assert code == 0 and out.splitlines()[1].split()[:3] == ["f2", "on", "1"]

    code, out, _ = cli(node, capsys, "flags", "on", "f1", "--env", "opcli", "--comment",
                       "launch day")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["f1", "on", "2"]
    assert cli_json(node, capsys, "flags", "off", "f1", "--env", "opcli")["on"] is False
    got = cli_json(node, capsys, "flags", "get", "f1", "--env", "opcli")
    assert got["version"] == 3 and got["on"] is False
    listed = cli_json(node, capsys, "flags", "list", "--env", "opcli")
    assert [f["key"] for f in listed["items"]] == ["f1", "f2"]

    code, out, _ = cli(node, capsys, "history", "--env", "opcli", "--flag", "f1")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["SEQ", "AT", "ACTOR", "KIND", "KEY", "VERSION"]
    assert [r[5] for r in rows[1:]] == ["3", "2", "1"] and all(r[4] == "f1" for r in rows[1:])
    assert rows[1][1].endswith("Z")
    comments = {h["after"]["version"]: h.get("comment") for h in cli_json(
        node, capsys, "history", "--env", "opcli", "--flag", "f1")["items"]}
    assert comments == {3: None, 2: "launch day", 1: None}  # on --comment: in the history
    hist = cli_json(node, capsys, "history", "--env", "opcli", "--kind", "environment")
    assert [h["kind"] for h in hist["items"]] == ["environment"]

    code, out, _ = cli(node, capsys, "flags", "delete", "f2", "--env", "opcli")
    assert code == 0 and "deleted flag f2" in out
    rotated = cli_json(node, capsys, "envs", "rotate", "opcli", "--which", "sdk", "--grace", "0")
    assert rotated["sdkKey"] != created["sdkKey"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["flags", "get", "nope", "--env", "nowhere"], 1, 'environment "nowhere" not found (HTTP 404)'),
    (["envs", "create", "bad key!"], 1, "invalid environment key"),
    (["flags", "set", "x", "--env", "opcli", "--json", "{not json"], 2, "--json is not JSON"),
    (["flags", "set", "x", "--env", "opcli", "--file", "/nonexistent.json"], 2,
     "cannot read /nonexistent.json"),
    (["history", "--env", "opcli", "--since", "yesterday"], 1, "query parameter since"),
    (["history", "--env", "opcli", "--flag", "f", "--kind", "segments"], 2, "--flag"),
])
def test_errors_are_one_line(node: NodeProcess, capsys: pytest.CaptureFixture[str],
                             args: list[str], code: int, message: str) -> None:
    got, out, err = cli(node, capsys, *args)
    assert got == code and out == ""
    assert err.startswith("flagstream: ") and err.count("\n") == 1 and message in err, err


def test_bad_token_and_unreachable_node(node: NodeProcess,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "list", "--admin-url", node.urls["admin"], "--token", "wrong"]) == 1
    assert "missing or invalid bearer token (HTTP 401)" in capsys.readouterr().err
    assert main(["envs", "list", "--admin-url", "http://127.0.0.1:1", "--token", "t"]) == 2
    assert "cannot reach the admin API at http://127.0.0.1:1" in capsys.readouterr().err
    assert main(["envs", "list", "--admin-url", "ftp://x", "--token", "t"]) == 2


def test_target_precedence(tmp_path: Path) -> None:
    (tmp_path / "admin-token").write_text("from-file\n")
    table = [
        ((None, None, {}), (DEFAULT_ADMIN_URL, "from-file")),
        ((None, None, {"FLAGSTREAM_ADMIN_URL": "http://h:1/", "FLAGSTREAM_ADMIN_TOKEN": "env"}),
         ("http://h:1", "env")),
        (("http://flag:2", "flag", {"FLAGSTREAM_ADMIN_URL": "http://h:1",
                                    "FLAGSTREAM_ADMIN_TOKEN": "env"}), ("http://flag:2", "flag")),
        ((None, None, {"FLAGSTREAM_ADMIN_TOKEN": ""}), (DEFAULT_ADMIN_URL, "from-file")),
    ]
    for (url, token, environ), expected in table:
        got = resolve_target(url, token, tmp_path, environ)
        assert (got.url, got.token) == expected
    with pytest.raises(TargetError, match="no admin token"):
        resolve_target(None, None, tmp_path / "missing", {})


def test_token_from_the_data_dir_env_var(node: NodeProcess, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "admin-token").write_text(node.token)
    monkeypatch.setenv("FLAGSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLAGSTREAM_ADMIN_URL", node.urls["admin"])
    monkeypatch.delenv("FLAGSTREAM_ADMIN_TOKEN", raising=False)
    assert main(["envs", "list", "--json"]) == 0
    assert "items" in json.loads(capsys.readouterr().out)


# -- the command line itself -------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTREAM_")}
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


SUBCOMMANDS = [["serve"], ["store"], ["streamer"], ["import"], ["history"],
               *(["flags", a] for a in ("list", "get", "on", "off", "set", "delete")),
               *(["envs", a] for a in ("list", "create", "rotate"))]


def test_every_subcommand_has_help_with_defaults() -> None:
    for cmd in SUBCOMMANDS:
        code = None
        try:
            build_parser().parse_args([*cmd, "--help"])
        except SystemExit as exc:
            code = exc.code
        assert code == 0, cmd
    serve = " ".join(run_cli("serve", "--help").stdout.split())
    assert "(default: 127.0.0.1:8030)" in serve and "(default: ./flagstream-data)" in serve
    assert "(default: None)" not in serve
    top = run_cli("--help").stdout
    assert "``" not in top and "history" in top and "envs" in top


def test_version() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("flagstream ")
    assert r.stdout.strip()[-1].isdigit()


def test_insights_help_lists_its_subcommands() -> None:
    r = run_cli("insights", "--help")
    assert r.returncode == 0
    for name in ("run", "replay", "show", "stale"):
        assert f"    {name} " in r.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["serve", "--workers", "abc"], "--workers: expected a whole number, got 'abc'"),
    (["serve", "--heartbeat-interval", "soon"],
     "--heartbeat-interval: expected a number, got 'soon'"),
    (["serve", "--data-dir", "/etc/passwd"], "--data-dir: /etc/passwd is not a directory"),
])
def test_option_errors_are_friendly(args: list[str], message: str) -> None:
    r = run_cli(*args)
    assert r.returncode == 2 and r.stderr.strip() == f"flagstream: {message}", r.stderr


def test_read_only_insights_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for args in (["show", "prod", "f"], ["stale", "prod"]):
        r = run_cli("insights", *args, "--data-dir", str(missing))
        assert r.returncode == 2 and f"data dir {missing} does not exist" in r.stderr
        assert "Traceback" not in r.stderr
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("insights", "show", "prod", "f", "--data-dir", str(empty))
    assert r.returncode == 1 and "no insights" in r.stderr and list(empty.iterdir()) == []
