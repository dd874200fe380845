"""``flagstream schedule add|list|cancel`` against a real node over loopback."""

from __future__ import annotations

import json

import pytest

from tests.e2e.node_proc import NodeProcess
from tests.node.test_admin_cli import FLAG, cli, cli_json, node

__all__ = ["node"]  # the fixture


def test_schedule_add_list_cancel(node: NodeProcess, capsys: pytest.CaptureFixture[str]) -> None:
    cli_json(node, capsys, "envs", "create", "sched")
    assert cli(node, capsys, "flags", "set", "--env", "sched", "f", "--json",
               json.dumps(FLAG))[0] == 0
    made = cli_json(node, capsys, "schedule", "add", "--env", "sched", "f",
                    "--at", "2030-01-01T00:00:00Z", "--on", "--comment", "launch")
    assert made["status"] == "pending" and made["format"] == "semantic"
    assert made["patch"] == {"instructions": [{"kind": "turnFlagOn"}]}
    other = cli_json(node, capsys, "schedule", "add", "--env", "sched", "f", "--at",
                     "1900000000000", "--patch", '{"offVariation": 0}')
    assert other["format"] == "merge" and other["atMs"] == 1_900_000_000_000
    code, out, _ = cli(node, capsys, "schedule", "list", "--env", "sched")
    assert code == 0 and out.splitlines()[0].split() == ["ID", "AT", "FLAG", "STATUS", "BY",
                                                          "NOTE"]
    rows = [line.split() for line in out.splitlines()[1:]]
    assert rows[0][:4] == [str(made["id"]), "2030-01-01T00:00:00.000Z", "f", "pending"]
    assert rows[1][0] == str(other["id"])
    code, out, _ = cli(node, capsys, "schedule", "cancel", "--env", "sched", str(made["id"]))
    assert code == 0 and "cancelled" in out
    listed = cli_json(node, capsys, "schedule", "list", "--env", "sched", "--flag", "f",
                      "--status", "cancelled")
    assert [i["id"] for i in listed["items"]] == [made["id"]]
    # The API's refusal is exit 1 with its message; a usage error is exit 2.
    code, _, err = cli(node, capsys, "schedule", "cancel", "--env", "sched", str(made["id"]))
    assert code == 1 and "not pending" in err
    code, _, err = cli(node, capsys, "schedule", "add", "--env", "sched", "f", "--at",
                       "2001-01-01T00:00:00Z", "--off")
    assert code == 1 and "in the past" in err
    code, _, err = cli(node, capsys, "schedule", "add", "--env", "sched", "f", "--at",
                       "2030-01-01T00:00:00Z", "--patch", "{")
    assert code == 2 and "--patch is not JSON" in err
