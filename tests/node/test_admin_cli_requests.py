"""`flagstream requests ...` against a real node over loopback.

The CLI acts as the identity of its token; another identity is made with :func:`as_user`
(a user of that name, signed in with a session of its own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.node_proc import NodeProcess, create_env
from tests.node.test_admin_cli import FLAG, cli, cli_json
from tests.ops import conftest as ops_conftest

node = ops_conftest.node  # the fixture: one real node that this module's tests share


PASSWORD = "correct horse battery staple"
_sessions: dict[tuple[int, str], str] = {}  # (node, username) -> its session's bearer


def as_user(node: NodeProcess, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """``method path`` on the admin API as the user ``who`` (an admin, created on first use,
    signed in with a session of its own), not as the CLI's token."""
    with node.admin as admin:
        bearer = _sessions.get((id(node), who))
        if bearer is None:
            r = admin.post("/api/v1/users", json={"username": who, "password": PASSWORD,
                                                  "role": "admin"})
            assert r.status_code in (201, 409), r.text
            r = admin.post("/api/v1/sessions", json={"username": who, "password": PASSWORD})
            assert r.status_code == 201, r.text
            bearer = _sessions[(id(node), who)] = r.json()["token"]
        return admin.request(method, path, headers={"Authorization": f"Bearer {bearer}"}, **kw)


def test_propose_list_approve_and_decline(node: NodeProcess, capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    create_env(node, "appr")
    base = "/api/v1/environments/appr"
    assert as_user(node, "carol", "PUT", f"{base}/flags/f", json=FLAG).status_code == 201
    assert as_user(node, "carol", "PATCH", base, json={"requireApproval": True}).status_code \
        == 200
    code, _, err = cli(node, capsys, "flags", "on", "f", "--env", "appr")
    assert code == 1 and "environment appr requires approval" in err

    # The CLI proposes; it cannot approve its own request; someone else can.
    patch_file = tmp_path / "patch.json"
    patch_file.write_text(json.dumps([{"op": "replace", "path": "/on", "value": True}]))
    mine = cli_json(node, capsys, "requests", "propose", "f", "--env", "appr", "--file",
                    str(patch_file), "--format", "json-patch", "--comment", "launch")
    assert mine["status"] == "pending" and mine["baseVersion"] == 1
    code, _, err = cli(node, capsys, "requests", "approve", str(mine["id"]), "--env", "appr")
    assert code == 1 and "you cannot approve your own change request (HTTP 403)" in err

    # Someone else proposes; the CLI approves and declines.
    theirs = as_user(node, "alice", "POST", f"{base}/flags/f/change-requests",
                     json={"patch": {"offVariation": 0}, "comment": "off is the old page"})
    assert theirs.status_code == 201, theirs.text
    code, out, _ = cli(node, capsys, "requests", "list", "--env", "appr", "--status",
                       "pending")
    assert code == 0 and out.splitlines()[0].split() == [
        "ID", "STATUS", "FLAG", "BASE-VERSION", "BY", "COMMENT"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == [
        str(theirs.json()["id"]), str(mine["id"])]
    done = cli_json(node, capsys, "requests", "approve", str(theirs.json()["id"]), "--env",
                    "appr", "--comment", "fine")
    assert done["status"] == "approved" and done["appliedVersion"] == 2
    with node.admin as admin:
        assert admin.get(f"{base}/flags/f").json()["offVariation"] == 0

    # Mine was made against version 1: approving it now is 409 and it becomes stale.
    code, _, err = cli(node, capsys, "requests", "approve", str(mine["id"]), "--env", "appr")
    assert code == 1 and "(HTTP 403)" in err  # still mine: refused before the version check
    r = as_user(node, "bob", "POST", f"{base}/change-requests/{mine['id']}/approve")
    assert r.status_code == 409 and r.json()["error"]["details"] == {
        "baseVersion": 1, "currentVersion": 2}

    other = as_user(node, "alice", "POST", f"{base}/flags/f/change-requests",
                    json={"patch": {"on": True}, "comment": "again"}).json()
    code, out, _ = cli(node, capsys, "requests", "decline", str(other["id"]), "--env", "appr",
                       "--comment", "not today")
    assert code == 0 and out.splitlines()[1].split()[:2] == [str(other["id"]), "declined"]
    flag_rows = cli_json(node, capsys, "requests", "list", "--env", "appr", "--flag", "f")
    assert [r["status"] for r in flag_rows["items"]] == ["declined", "approved", "stale"]

    code, _, err = cli(node, capsys, "requests", "propose", "f", "--env", "appr", "--patch",
                       "{nope", "--comment", "x")
    assert code == 2 and "--patch is not JSON" in err
