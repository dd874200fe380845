"""`flagstream users|tokens|login` against a real node over loopback."""

from __future__ import annotations

import io
import json

import pytest

from node.cli import main
from tests.e2e.node_proc import NodeProcess
from tests.ops import conftest as ops_conftest

node = ops_conftest.node  # the fixture: one real node that this module's tests share
PASSWORD = "correct horse battery staple"


def run(capsys: pytest.CaptureFixture[str], node: NodeProcess, *args: str,
        token: str | None = None) -> tuple[int, str, str]:
    code = main([*args, "--admin-url", node.urls["admin"], "--token", token or node.token])
    out, err = capsys.readouterr()
    return code, out, err


def test_users_tokens_and_login(node: NodeProcess, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = run(capsys, node, "users", "add", "clia", "--role", "editor", "--env",
                         "dev", "--password-stdin")
    assert code == 0, err
    assert out.splitlines()[1].split()[:3] == ["clia", "editor", "dev"]
    code, out, _ = run(capsys, node, "users", "set-role", "clia", "--role", "viewer")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["clia", "viewer", "*"]
    code, out, _ = run(capsys, node, "users", "list", "--json")
    assert code == 0 and [u["username"] for u in json.loads(out)["items"]] == ["clia"]

    # login: the session token alone on stdout, usable as the CLI's token at once.
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = main(["login", "--username", "clia", "--password-stdin", "--admin-url",
                           node.urls["admin"]]), *capsys.readouterr()
    assert code == 0 and "signed in as clia (viewer)" in err
    session = out.strip()
    assert session.startswith("fss_") and len(out.splitlines()) == 1
    code, _, err = run(capsys, node, "envs", "create", "clienv", token=session)
    assert code == 1 and "role viewer may not" in err and "admin role" in err

    code, out, _ = run(capsys, node, "tokens", "create", "cli-ci", "--role", "editor")
    secret = out.splitlines()[0]
    assert code == 0 and secret.startswith("fst_") and "shown only now" in out
    code, out, _ = run(capsys, node, "tokens", "list")
    assert code == 0 and "cli-ci" in out and secret not in out
    token_id = out.splitlines()[1].split()[0]
    code, out, _ = run(capsys, node, "tokens", "list", token=secret)
    assert code == 0 and "(none)" in out  # a non-admin sees the tokens it created: none
    code, out, _ = run(capsys, node, "tokens", "revoke", token_id)
    assert code == 0 and f"revoked token {token_id}" in out
    code, _, err = run(capsys, node, "tokens", "list", token=secret)
    assert code == 1 and "HTTP 401" in err

    code, out, _ = run(capsys, node, "users", "delete", "clia")
    assert code == 0 and "deleted user clia" in out
    code, _, err = run(capsys, node, "users", "list", token=session)
    assert code == 1 and "HTTP 401" in err  # the deleted user's session ended
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong password!\n"))
    code = main(["login", "--username", "clia", "--password-stdin", "--admin-url",
                 node.urls["admin"]])
    err = capsys.readouterr().err
    assert code == 1 and "invalid username or password" in err
