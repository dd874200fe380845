"""``flagstream history diff|revert`` (node/admin_cli_history.py) against a real node."""

from __future__ import annotations

import json

import pytest

from node.admin_cli_history import render_operation
from node.cli import build_parser
from tests.e2e.node_proc import NodeProcess
from tests.node.test_admin_cli import FLAG, cli, cli_json
from tests.ops import conftest as ops_conftest

node = ops_conftest.node  # the fixture: one real node that this module's tests share


def test_diff_and_revert(node: NodeProcess, capsys: pytest.CaptureFixture[str]) -> None:
    cli_json(node, capsys, "envs", "create", "histcli")
    code, _, err = cli(node, capsys, "flags", "set", "f1", "--env", "histcli", "--json",
                       json.dumps(FLAG))
    assert code == 0, err
    cli_json(node, capsys, "flags", "on", "f1", "--env", "histcli")
    code, out, err = cli(node, capsys, "history", "diff", "histcli", "f1", "1", "2")
    assert code == 0, err
    assert out.splitlines() == ["flag f1 in histcli, version 1 -> 2", "~ on: false -> true"]
    doc = cli_json(node, capsys, "history", "diff", "histcli", "f1", "2", "2")
    assert doc["operations"] == []
    code, out, err = cli(node, capsys, "history", "revert", "histcli", "f1", "1",
                         "--comment", "too early")
    assert code == 0, err
    assert out.strip() == "flag f1 in histcli now has the content of version 1 (new version 3)"
    flag = cli_json(node, capsys, "flags", "get", "f1", "--env", "histcli")
    assert flag["version"] == 3 and {k: flag[k] for k in FLAG} == FLAG
    last = cli_json(node, capsys, "history", "--env", "histcli", "--flag", "f1")["items"][0]
    assert last["revertOf"] == 1 and last["comment"] == "too early"
    code, out, err = cli(node, capsys, "history", "diff", "histcli", "f1", "1", "99")
    assert code == 1 and out == "" and "version 99" in err and "(HTTP 404)" in err
    at = last["at"]
    assert cli_json(node, capsys, "history", "--env", "histcli", "--flag", "f1", "--until",
                    at)["items"][0]["seq"] == last["seq"]
    code, out, err = cli(node, capsys, "history", "--env", "histcli", "--until", "soon")
    assert code == 1 and "query parameter until" in err
    code, out, err = cli(node, capsys, "history")
    assert code == 2 and "--env is required" in err


def test_help_and_rendering() -> None:
    for cmd in (["history", "diff"], ["history", "revert"]):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([*cmd, "--help"])
        assert exc.value.code == 0
    assert render_operation({"op": "replace", "field": "rules[1].clauses[0].values",
                             "old": ["a"], "value": ["a", "b"]}) \
        == '~ rules[1].clauses[0].values: ["a"] -> ["a", "b"]'
    assert render_operation({"op": "add", "field": "rules[2]", "value": {"id": "x"}}) \
        == '+ rules[2]: {"id": "x"}'
    assert render_operation({"op": "remove", "field": "offVariation", "old": 1}) \
        == "- offVariation: 1"
