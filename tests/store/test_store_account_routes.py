"""Users, tokens and sessions over real HTTP (run_store on 127.0.0.1 port 0): secrets shown once
and stored hashed, revocation at once, sessions ended by sign-out, password change and user
deletion, login rate limits, masked keys, and the actor of a change being who authenticated."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from store.db import DB_FILE
from tests.store.store_proc import open_store

BOOT = "account-routes-bootstrap-token"
PASSWORD = "correct horse battery staple"
FLAG = {"variations": [True, False], "on": True, "fallthrough": {"variation": 0}}
SEMANTIC = "application/json; domain-model=launchdarkly.semanticpatch"


@dataclass
class Node:
    c: httpx.AsyncClient
    data_dir: Path


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with open_store(tmp_path, BOOT) as c:
        for env in ("dev", "prod"):
            assert (await c.post("/api/v1/environments", json={"key": env})).status_code == 201
        yield Node(c, tmp_path / "data")


def rows(node: Node, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(node.data_dir / DB_FILE) as conn:
        return conn.execute(sql).fetchall()


async def add_user(c: httpx.AsyncClient, name: str, role: str = "editor",
                   environments: list[str] | None = None) -> None:
    body: dict[str, Any] = {"username": name, "password": PASSWORD, "role": role}
    if environments is not None:
        body["environments"] = environments
    r = await c.post("/api/v1/users", json=body)
    assert r.status_code == 201, r.text


async def sign_in(c: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await c.post("/api/v1/sessions", json={"username": name, "password": password},
                        headers={"Authorization": ""})


async def test_users_are_stored_with_argon2id_and_never_shown(node: Node) -> None:
    await add_user(node.c, "alice", "editor", ["dev"])
    r = await node.c.get("/api/v1/users")
    assert r.status_code == 200
    [alice] = r.json()["items"]
    assert set(alice) == {"username", "role", "environments", "createdAt", "updatedAt"}
    assert alice["role"] == "editor" and alice["environments"] == ["dev"]
    [(stored,)] = rows(node, "SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(stored, PASSWORD)
    for body, field in (({"username": "Bob!", "password": PASSWORD, "role": "viewer"}, "username"),
                        ({"username": "bob", "password": "short", "role": "viewer"}, "password"),
                        ({"username": "bob", "password": PASSWORD, "role": "owner"}, "role"),
                        ({"username": "bob", "password": PASSWORD, "role": "viewer",
                          "environments": ["dev"]}, "environments"),
                        ({"username": "bob", "password": PASSWORD}, "role")):
        r = await node.c.post("/api/v1/users", json=body)
        assert r.status_code == 400 and field in r.json()["error"]["message"], r.text
    r = await node.c.post("/api/v1/users", json={"username": "alice", "password": PASSWORD,
                                                 "role": "viewer"})
    assert r.status_code == 409


async def test_a_token_is_shown_once_stored_hashed_and_revoked_at_once(node: Node) -> None:
    r = await node.c.post("/api/v1/tokens", json={"name": "ci-deploy", "role": "editor",
                                                  "environments": ["dev"]})
    assert r.status_code == 201
    created = r.json()
    secret = created["token"]
    assert secret.startswith("fst_") and created["createdBy"] == "token:bootstrap"
    listed = (await node.c.get("/api/v1/tokens")).json()["items"]
    assert listed == [{k: v for k, v in created.items() if k != "token"}]
    assert "digest" not in listed[0] and listed[0]["lastUsedAt"] is None
    [(stored,)] = rows(node, "SELECT digest FROM tokens")
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.encode() not in (node.data_dir / DB_FILE).read_bytes()
    r = await node.c.put("/api/v1/environments/dev/flags/f", json=FLAG, headers=bearer(secret))
    assert r.status_code == 201
    assert (await node.c.get("/api/v1/tokens")).json()["items"][0]["lastUsedAt"] is not None
    assert (await node.c.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
    r = await node.c.get("/api/v1/environments/dev/flags/f", headers=bearer(secret))
    assert r.status_code == 401
    assert (await node.c.delete(f"/api/v1/tokens/{created['id']}")).status_code == 404


async def test_a_token_gets_no_more_rights_than_its_creator(node: Node) -> None:
    r = await node.c.post("/api/v1/tokens", json={"name": "ed", "role": "editor",
                                                  "environments": ["dev"]})
    ed = bearer(r.json()["token"])
    for body in ({"name": "x1", "role": "admin"}, {"name": "x2", "role": "editor"},
                 {"name": "x3", "role": "editor", "environments": ["dev", "prod"]}):
        r = await node.c.post("/api/v1/tokens", json=body, headers=ed)
        assert r.status_code == 403, r.text
        assert "more rights than its creator" in r.json()["error"]["message"]
    r = await node.c.post("/api/v1/tokens", json={"name": "x4", "role": "editor",
                                                  "environments": ["dev"]}, headers=ed)
    assert r.status_code == 201
    # A non-admin sees and revokes its own tokens only.
    mine = (await node.c.get("/api/v1/tokens", headers=ed)).json()["items"]
    assert [t["name"] for t in mine] == ["x4"]
    every = (await node.c.get("/api/v1/tokens")).json()["items"]
    ed_id = next(t["id"] for t in every if t["name"] == "ed")
    assert (await node.c.delete(f"/api/v1/tokens/{ed_id}", headers=ed)).status_code == 404
    r = await node.c.post("/api/v1/tokens", json={"name": "x5", "role": "viewer",
                                                  "expiresAt": "2020-01-01T00:00:00Z"})
    assert r.status_code == 400 and "future" in r.text
    r = await node.c.post("/api/v1/tokens", json={"name": "x4", "role": "viewer"})
    assert r.status_code == 409


async def test_sessions_end_on_sign_out_password_change_and_deletion(node: Node) -> None:
    await add_user(node.c, "alice", "editor", ["dev"])
    r = await sign_in(node.c, "alice")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["token"].startswith("fss_") and doc["expiresAt"].endswith("Z")
    alice = bearer(doc["token"])
    me = (await node.c.get("/api/v1/account", headers=alice)).json()
    assert me == {"name": "alice", "role": "editor", "kind": "session", "environments": ["dev"]}
    assert (await node.c.delete("/api/v1/sessions/current", headers=alice)).status_code == 204
    assert (await node.c.get("/api/v1/account", headers=alice)).status_code == 401

    alice = bearer((await sign_in(node.c, "alice")).json()["token"])
    r = await node.c.patch("/api/v1/users/alice", json={"password": PASSWORD + "!"})
    assert r.status_code == 200
    assert (await node.c.get("/api/v1/account", headers=alice)).status_code == 401
    assert (await sign_in(node.c, "alice")).status_code == 401  # the old password
    alice = bearer((await sign_in(node.c, "alice", PASSWORD + "!")).json()["token"])

    # A role change applies to the live session at once.
    await node.c.patch("/api/v1/users/alice", json={"role": "viewer"})
    r = await node.c.put("/api/v1/environments/dev/flags/f", json=FLAG, headers=alice)
    assert r.status_code == 403 and "role viewer may not write flags" in r.text

    # A user changes their own password: needs the current one; ends their sessions.
    r = await node.c.post("/api/v1/account/password", headers=alice,
                          json={"currentPassword": "wrong password!", "newPassword": PASSWORD})
    assert r.status_code == 403
    r = await node.c.post("/api/v1/account/password", headers=alice,
                          json={"currentPassword": PASSWORD + "!", "newPassword": PASSWORD})
    assert r.status_code == 204
    assert (await node.c.get("/api/v1/account", headers=alice)).status_code == 401
    alice = bearer((await sign_in(node.c, "alice")).json()["token"])
    assert (await node.c.delete("/api/v1/users/alice")).status_code == 204
    assert (await node.c.get("/api/v1/account", headers=alice)).status_code == 401
    assert rows(node, "SELECT COUNT(*) FROM sessions WHERE username = 'alice'") == [(0,)]


async def test_sign_in_is_rate_limited_per_account(node: Node) -> None:
    await add_user(node.c, "bob")
    for _ in range(5):
        r = await sign_in(node.c, "bob", "wrong password!")
        assert r.status_code == 401 and r.json()["error"]["message"] == \
            "invalid username or password"
    r = await sign_in(node.c, "bob")  # the right password, but too late
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 300
    assert r.json()["error"]["code"] == "too_many_requests"
    for _ in range(5):  # an unknown user answers exactly like a known one
        r = await sign_in(node.c, "nobody", "wrong password!")
        assert r.status_code == 401 and r.json()["error"]["message"] == \
            "invalid username or password"
    # 10 failures from this address so far; 10 more reach the per-address limit of 20.
    for i in range(10):
        assert (await sign_in(node.c, f"guess{i}", "wrong password!")).status_code == 401
    await add_user(node.c, "carol")
    assert (await sign_in(node.c, "carol")).status_code == 429


async def test_credentials_are_masked_for_who_may_not_write_there(node: Node) -> None:
    viewer = bearer((await node.c.post("/api/v1/tokens", json={"name": "v", "role": "viewer"})
                     ).json()["token"])
    ed = bearer((await node.c.post("/api/v1/tokens", json={
        "name": "e", "role": "editor", "environments": ["dev"]})).json()["token"])
    full = {e["key"]: e for e in (await node.c.get("/api/v1/environments")).json()["items"]}
    assert full["dev"]["sdkKey"].startswith("sdk-")
    for who, shown in ((viewer, set()), (ed, {"dev"})):
        for env in (await node.c.get("/api/v1/environments", headers=who)).json()["items"]:
            visible = env["key"] in shown
            assert (env["sdkKey"] == full[env["key"]]["sdkKey"]) is visible
            assert (env["mobileKey"] == full[env["key"]]["mobileKey"]) is visible
            assert env["clientSideId"] == full[env["key"]]["clientSideId"]  # public
            if not visible:
                assert env["sdkKey"] is None and env["mobileKey"] is None
        one = (await node.c.get("/api/v1/environments/prod", headers=who)).json()
        assert one["sdkKey"] is None


async def test_the_actor_is_who_authenticated_whatever_the_header_says(node: Node) -> None:
    await add_user(node.c, "alice", "admin")
    alice = bearer((await sign_in(node.c, "alice")).json()["token"])
    ci = bearer((await node.c.post("/api/v1/tokens", json={
        "name": "ci-deploy", "role": "editor"})).json()["token"])
    spoof = {"X-Flagstream-Actor": "mallory@corp"}
    base = "/api/v1/environments/dev"
    assert (await node.c.put(f"{base}/flags/f", json=FLAG, headers=spoof)).status_code == 201
    r = await node.c.patch(f"{base}/flags/f", headers={
        **ci, **spoof, "Content-Type": SEMANTIC}, content=b'{"comment": "ship it", '
        b'"instructions": [{"kind": "turnFlagOff"}]}')
    assert r.status_code == 200, r.text
    r = await node.c.post(f"{base}/rotate", json={"key": "sdk"}, headers={**alice, **spoof})
    assert r.status_code == 200
    r = await node.c.patch(base, json={"name": "Development"}, headers={**alice, **spoof})
    assert r.status_code == 200
    items = (await node.c.get(f"{base}/changes")).json()["items"]
    assert [(h["actor"], h["kind"], h.get("comment")) for h in items] == [
        ("alice", "environment", None), ("alice", "environment", None),
        ("token:ci-deploy", "flags", "ship it"), ("token:bootstrap", "flags", None),
        ("token:bootstrap", "environment", None)]
    r = await node.c.post("/api/v1/environments", json={"key": "qa"}, headers={**alice, **spoof})
    assert r.status_code == 201
    r = await node.c.delete("/api/v1/environments/qa", headers={**alice, **spoof})
    assert r.status_code == 204
    qa = (await node.c.get("/api/v1/environments/dev/changes")).json()  # qa is gone; dev stays
    assert all(h["actor"] != "mallory@corp" for h in qa["items"])
    assert rows(node, "SELECT DISTINCT actor FROM history WHERE env = 'qa'") == [("alice",)]


async def test_accounts_survive_a_restart_and_revocations_too(tmp_path: Path) -> None:
    async with open_store(tmp_path, BOOT) as c:
        await add_user(c, "alice", "viewer")
        kept = (await c.post("/api/v1/tokens", json={"name": "kept", "role": "viewer"})).json()
        gone = (await c.post("/api/v1/tokens", json={"name": "gone", "role": "viewer"})).json()
        assert (await c.delete(f"/api/v1/tokens/{gone['id']}")).status_code == 204
        session = (await sign_in(c, "alice")).json()["token"]
    async with open_store(tmp_path, BOOT) as c:  # the same data dir, a new process state
        assert (await c.get("/api/v1/account", headers=bearer(kept["token"]))).status_code == 200
        assert (await c.get("/api/v1/account", headers=bearer(gone["token"]))).status_code == 401
        me = await c.get("/api/v1/account", headers=bearer(session))
        assert me.status_code == 200 and me.json()["name"] == "alice"
        assert (await sign_in(c, "alice")).status_code == 201
