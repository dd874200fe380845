"""`flagstream webhooks add|list|deliveries|delete` against a real node over loopback."""

from __future__ import annotations

import json
import time

import pytest

from node.cli import build_parser
from tests.e2e.node_proc import NodeProcess
from tests.node.test_admin_cli import cli, cli_json
from tests.ops import conftest as ops_conftest

node = ops_conftest.node  # the fixture: one real node that this module's tests share


def test_add_list_deliveries_delete(node: NodeProcess,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_json(node, capsys, "envs", "create", "hookcli")["key"] == "hookcli"
    # nothing listens on port 9: the change below is retried and shows in the deliveries
    code, out, err = cli(node, capsys, "webhooks", "add", "http://127.0.0.1:9/hook",
                         "--env", "hookcli", "--kind", "flags")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "URL", "ENABLED", "STATE", "ENVS", "KINDS", "CURSOR",
                                "LAST-ERROR"]
    hook_id, url, enabled, state, envs, kinds = lines[1].split()[:6]
    assert (url, enabled, state, envs, kinds) == ("http://127.0.0.1:9/hook", "yes", "ok",
                                                  "hookcli", "flags")
    assert lines[2].startswith("secret: whsec_")
    secret = lines[2].removeprefix("secret: ")

    code, out, _ = cli(node, capsys, "webhooks", "list")
    assert code == 0 and hook_id in out and secret not in out
    code, out, _ = cli(node, capsys, "webhooks", "deliveries", hook_id)
    assert code == 0 and out.splitlines()[1] == "(none)"

    code, _, err = cli(node, capsys, "flags", "set", "f", "--env", "hookcli", "--json",
                       json.dumps({"variations": [1], "fallthrough": {"variation": 0}}))
    assert code == 0, err
    for _ in range(300):  # bounded wait for the first failed attempt to be recorded
        doc = cli_json(node, capsys, "webhooks", "deliveries", hook_id)
        if doc["items"]:
            break
        time.sleep(0.05)
    assert doc["items"][0]["status"] == "retrying" and doc["webhook"]["state"] == "failing"
    code, out, _ = cli(node, capsys, "webhooks", "deliveries", hook_id)
    head, row = (line.split() for line in out.splitlines()[:2])
    assert head == ["SEQ", "STATUS", "ATTEMPTS", "HTTP", "ERROR", "LAST-ATTEMPT", "NEXT-RETRY"]
    assert row[0] == str(doc["items"][0]["seq"]) and row[1] == "retrying" and row[3] == "-"
    assert "ConnectError" in out

    code, out, _ = cli(node, capsys, "webhooks", "delete", hook_id)
    assert code == 0 and f"deleted webhook {hook_id}" in out
    code, _, err = cli(node, capsys, "webhooks", "delete", hook_id)
    assert code == 1 and "not found" in err and "(HTTP 404)" in err


def test_a_bad_url_is_one_line_and_exit_1(node: NodeProcess,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(node, capsys, "webhooks", "add", "ftp://example.com/")
    assert code == 1 and out == ""
    assert err.strip() == ("flagstream: url: only http:// and https:// URLs can receive "
                           "webhooks (HTTP 400)")


@pytest.mark.parametrize("action", [["add", "http://x/"], ["list"], ["deliveries", "wh_x"],
                                    ["delete", "wh_x"]])
def test_every_webhooks_action_has_help(action: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["webhooks", *action, "--help"])
    assert exc.value.code == 0
