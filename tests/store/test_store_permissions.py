"""The permission table against a real store: every role x every admin route x own and foreign
environment, over HTTP on loopback (run_store on port 0), expected statuses derived from the
table; and the table itself against the admin app's url_map, so a route without an entry
fails here.

Principals: a viewer token, an editor token scoped to ``dev`` (its own environment; ``prod``
is foreign), an unscoped editor token, an admin token and the bootstrap token.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from store.account_routes import RIGHTS as ACCOUNT_RIGHTS
from store.accounts import digest, new_secret
from store.accounts_db import AccountsDB
from store.db import DB_FILE, FlagDB
from store.permissions import CORE_RIGHTS, Right, build_table
from store.service import EXTRA_RIGHTS
from tests.store.store_proc import open_store
from tests.store.test_store_openapi import IMPLICIT, admin_app

BOOT = "permission-test-bootstrap-token"
FLAG = {"variations": [True, False], "on": True, "fallthrough": {"variation": 0}}
SEGMENT = {"included": ["u1"]}
PASSWORD = "correct horse battery staple"
TABLE = build_table([CORE_RIGHTS, ACCOUNT_RIGHTS, *EXTRA_RIGHTS])
ENV_PARAM = "<env>"
_unique = itertools.count()


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass(frozen=True)
class Who:
    label: str
    role: str
    environments: tuple[str, ...] | None
    secret: str = ""


WHO = [Who("viewer", "viewer", None), Who("editor-dev", "editor", ("dev", "dev-gone")),
       Who("editor", "editor", None), Who("admin", "admin", None),
       Who("bootstrap", "admin", None)]
OWN, FOREIGN = "dev", "prod"


def allowed(who: Who, right: Right, env: str | None) -> bool:
    """The table's meaning, written out independently of store/permissions.py."""
    if right in ("public", "authenticated", "read") or who.role == "admin":
        return True
    if right == "admin" or who.role == "viewer":
        return False
    return who.environments is None or (env is not None and env in who.environments)


@dataclass
class Node:
    client: httpx.AsyncClient  # authenticates as the bootstrap token
    data_dir: Path
    who: list[Who]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with open_store(tmp_path, BOOT) as c:
        who = []
        for w in WHO:
            if w.label == "bootstrap":
                who.append(Who(w.label, w.role, w.environments, BOOT))
                continue
            body: dict[str, Any] = {"name": w.label, "role": w.role}
            if w.environments is not None:
                body["environments"] = list(w.environments)
            r = await c.post("/api/v1/tokens", json=body)
            assert r.status_code == 201, r.text
            who.append(Who(w.label, w.role, w.environments, r.json()["token"]))
        for env in (OWN, FOREIGN):
            assert (await c.post("/api/v1/environments", json={"key": env})).status_code == 201
            assert (await c.put(f"/api/v1/environments/{env}/flags/f", json=FLAG)).is_success
            assert (await c.put(f"/api/v1/environments/{env}/segments/s",
                                json=SEGMENT)).is_success
        r = await c.post("/api/v1/users", json={"username": "victim", "password": PASSWORD,
                                                "role": "viewer"})
        assert r.status_code == 201, r.text
        yield Node(c, tmp_path / "data", who)


# -- one request per route: (path, body, expected status when allowed, setup as bootstrap) ----

Setup = Callable[[httpx.AsyncClient, str, Who], Awaitable[str]]


async def _none(c: httpx.AsyncClient, path: str, who: Who) -> str:
    return path


async def _env_to_delete(c: httpx.AsyncClient, path: str, who: Who) -> str:
    env = path.rsplit("/", 1)[1]
    await c.post("/api/v1/environments", json={"key": env})
    return path


async def _item_to_delete(c: httpx.AsyncClient, path: str, who: Who) -> str:
    body = FLAG if "/flags/" in path else SEGMENT
    assert (await c.put(path, json=body)).is_success
    return path


async def _user_to_delete(c: httpx.AsyncClient, path: str, who: Who) -> str:
    await c.post("/api/v1/users", json={"username": "gone", "password": PASSWORD,
                                        "role": "viewer"})
    return path


async def _own_token(c: httpx.AsyncClient, path: str, who: Who) -> str:
    # The principal's own token: every principal may revoke what it created.
    r = await c.post("/api/v1/tokens", json={"name": f"t{next(_unique)}", "role": "viewer"},
                     headers=auth(who.secret))
    assert r.status_code == 201, r.text
    return path.replace("<token_id>", r.json()["id"])


async def _webhook(c: httpx.AsyncClient, path: str, who: Who) -> str:
    # A webhook registered by the bootstrap admin; its URL refuses connections (port 9).
    r = await c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201, r.text
    return path.replace("<hook_id>", r.json()["id"])


def _new_webhook() -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:9/hook{next(_unique)}"}


_proposers: dict[int, str] = {}  # client -> the bearer of an admin token that proposes


async def _proposed(c: httpx.AsyncClient, env_path: str, bearer: str) -> str:
    """The id of a new change request to flag f of the environment ``env_path``."""
    r = await c.post(f"{env_path}/flags/f/change-requests",
                     json={"patch": {"on": False}, "comment": "sample"}, headers=auth(bearer))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _request_of_another(c: httpx.AsyncClient, path: str, who: Who) -> str:
    # Proposed by a token of its own, so every principal may approve or decline it.
    if id(c) not in _proposers:
        r = await c.post("/api/v1/tokens", json={"name": "proposer", "role": "admin"})
        assert r.status_code == 201, r.text
        _proposers[id(c)] = r.json()["token"]
    env_path = path.split("/change-requests/")[0]
    return path.replace("<request_id>", await _proposed(c, env_path, _proposers[id(c)]))


async def _own_request(c: httpx.AsyncClient, path: str, who: Who) -> str:
    # Only the proposer may withdraw: a principal that may write proposes it itself.
    env_path = path.split("/change-requests/")[0]
    if not allowed(who, "write", env_path.split("/")[4]):
        return await _request_of_another(c, path, who)
    return path.replace("<request_id>", await _proposed(c, env_path, who.secret))


def _far_ahead() -> dict[str, Any]:
    """A scheduled change a year ahead (epoch ms), so that it stays pending."""
    return {"at": int(time.time() * 1000) + 365 * 86_400_000, "patch": {"on": False}}


async def _scheduled(c: httpx.AsyncClient, path: str, who: Who) -> str:
    # A change scheduled by the bootstrap admin, far ahead so that it stays pending.
    env_path = path.split("/scheduled-changes/")[0]
    r = await c.post(f"{env_path}/flags/f/scheduled-changes", json=_far_ahead())
    assert r.status_code == 201, r.text
    return path.replace("<int:change_id>", str(r.json()["id"]))


def _new_env() -> dict[str, Any]:
    return {"key": f"new{next(_unique)}"}


def _new_user() -> dict[str, Any]:
    return {"username": f"u{next(_unique)}", "password": PASSWORD, "role": "viewer"}


def _new_token() -> dict[str, Any]:
    return {"name": f"n{next(_unique)}", "role": "viewer"}


E = "/api/v1/environments/<env>"
# (method, rule) -> list of (path with <env>, body or a maker, status when allowed, setup)
Sample = tuple[str, Any, int, Setup]
SAMPLES: dict[tuple[str, str], list[Sample]] = {
    ("GET", "/healthz"): [("/healthz", None, 200, _none)],
    ("GET", "/readyz"): [("/readyz", None, 200, _none)],
    ("GET", "/metrics"): [("/metrics", None, 200, _none)],
    ("GET", "/api/v1/openapi.yaml"): [("/api/v1/openapi.yaml", None, 200, _none)],
    ("POST", "/api/v1/environments"): [("/api/v1/environments", _new_env, 201, _none)],
    ("GET", "/api/v1/environments"): [("/api/v1/environments", None, 200, _none)],
    ("GET", E): [(E, None, 200, _none)],
    ("PATCH", E): [(E, {"name": "Renamed"}, 200, _none)],
    ("DELETE", E): [(E + "-gone", None, 204, _env_to_delete)],
    ("POST", f"{E}/rotate"): [(f"{E}/rotate", {"key": "clientSide"}, 200, _none)],
    ("GET", f"{E}/<any(flags, segments):kind>"): [
        (f"{E}/flags", None, 200, _none), (f"{E}/segments", None, 200, _none)],
    ("GET", f"{E}/<any(flags, segments):kind>/<key>"): [
        (f"{E}/flags/f", None, 200, _none), (f"{E}/segments/s", None, 200, _none)],
    ("PUT", f"{E}/<any(flags, segments):kind>/<key>"): [
        (f"{E}/flags/f", FLAG, 200, _none), (f"{E}/segments/s", SEGMENT, 200, _none)],
    ("PATCH", f"{E}/<any(flags, segments):kind>/<key>"): [
        (f"{E}/flags/f", {"on": False}, 200, _none),
        (f"{E}/segments/s", {"included": ["u2"]}, 200, _none)],
    ("DELETE", f"{E}/<any(flags, segments):kind>/<key>"): [
        (f"{E}/flags/gone", None, 204, _item_to_delete),
        (f"{E}/segments/gone", None, 204, _item_to_delete)],
    ("GET", f"{E}/changes"): [(f"{E}/changes", None, 200, _none)],
    ("GET", f"{E}/<any(flags, segments):kind>/<key>/versions"): [
        (f"{E}/flags/f/versions", None, 200, _none),
        (f"{E}/segments/s/versions", None, 200, _none)],
    ("GET", f"{E}/<any(flags, segments):kind>/<key>/versions/<version>"): [
        (f"{E}/flags/f/versions/1", None, 200, _none),
        (f"{E}/segments/s/versions/1", None, 200, _none)],
    ("GET", f"{E}/<any(flags, segments):kind>/<key>/diff"): [
        (f"{E}/flags/f/diff?from=1&to=1", None, 200, _none),
        (f"{E}/segments/s/diff?from=1&to=1", None, 200, _none)],
    ("POST", f"{E}/<any(flags, segments):kind>/<key>/revert"): [
        (f"{E}/flags/f/revert", {"version": 1}, 200, _none),
        (f"{E}/segments/s/revert", {"version": 1}, 200, _none)],
    ("POST", f"{E}/import"): [(f"{E}/import", {"flags": {"imp": FLAG}}, 200, _none)],
    ("GET", f"{E}/flags/<key>/insights"): [(f"{E}/flags/f/insights", None, 200, _none)],
    ("GET", f"{E}/insights/stale"): [(f"{E}/insights/stale", None, 200, _none)],
    ("POST", "/api/v1/sessions"): [
        ("/api/v1/sessions", {"username": "victim", "password": PASSWORD}, 201, _none)],
    # Tokens are not users: signing out and changing a password need a session (400).
    ("DELETE", "/api/v1/sessions/current"): [("/api/v1/sessions/current", None, 400, _none)],
    ("GET", "/api/v1/account"): [("/api/v1/account", None, 200, _none)],
    ("POST", "/api/v1/account/password"): [
        ("/api/v1/account/password", {"currentPassword": PASSWORD, "newPassword": PASSWORD},
         400, _none)],
    ("GET", "/api/v1/users"): [("/api/v1/users", None, 200, _none)],
    ("POST", "/api/v1/users"): [("/api/v1/users", _new_user, 201, _none)],
    ("GET", "/api/v1/users/<username>"): [("/api/v1/users/victim", None, 200, _none)],
    ("PATCH", "/api/v1/users/<username>"): [
        ("/api/v1/users/victim", {"role": "viewer"}, 200, _none)],
    ("DELETE", "/api/v1/users/<username>"): [("/api/v1/users/gone", None, 204, _user_to_delete)],
    ("GET", "/api/v1/tokens"): [("/api/v1/tokens", None, 200, _none)],
    ("POST", "/api/v1/tokens"): [("/api/v1/tokens", _new_token, 201, _none)],
    ("DELETE", "/api/v1/tokens/<token_id>"): [("/api/v1/tokens/<token_id>", None, 204, _own_token)],
    ("POST", f"{E}/flags/<key>/change-requests"): [
        (f"{E}/flags/f/change-requests", {"patch": {"on": True}, "comment": "c"}, 201, _none)],
    ("GET", f"{E}/flags/<key>/change-requests"): [(f"{E}/flags/f/change-requests", None, 200,
                                                   _none)],
    ("GET", f"{E}/change-requests"): [(f"{E}/change-requests", None, 200, _none)],
    ("GET", f"{E}/change-requests/<request_id>"): [
        (f"{E}/change-requests/<request_id>", None, 200, _request_of_another)],
    ("POST", f"{E}/change-requests/<request_id>/approve"): [
        (f"{E}/change-requests/<request_id>/approve", {}, 200, _request_of_another)],
    ("POST", f"{E}/change-requests/<request_id>/decline"): [
        (f"{E}/change-requests/<request_id>/decline", {}, 200, _request_of_another)],
    ("DELETE", f"{E}/change-requests/<request_id>"): [
        (f"{E}/change-requests/<request_id>", None, 200, _own_request)],
    ("POST", f"{E}/flags/<key>/scheduled-changes"): [
        (f"{E}/flags/f/scheduled-changes", _far_ahead, 201, _none)],
    ("GET", f"{E}/flags/<key>/scheduled-changes"): [
        (f"{E}/flags/f/scheduled-changes", None, 200, _none)],
    ("GET", f"{E}/scheduled-changes"): [(f"{E}/scheduled-changes", None, 200, _none)],
    ("GET", f"{E}/scheduled-changes/<int:change_id>"): [
        (f"{E}/scheduled-changes/<int:change_id>", None, 200, _scheduled)],
    ("DELETE", f"{E}/scheduled-changes/<int:change_id>"): [
        (f"{E}/scheduled-changes/<int:change_id>", None, 200, _scheduled)],
    ("POST", "/api/v1/webhooks"): [("/api/v1/webhooks", _new_webhook, 201, _none)],
    ("GET", "/api/v1/webhooks"): [("/api/v1/webhooks", None, 200, _none)],
    ("GET", "/api/v1/webhooks/<hook_id>"): [("/api/v1/webhooks/<hook_id>", None, 200, _webhook)],
    ("PATCH", "/api/v1/webhooks/<hook_id>"): [
        ("/api/v1/webhooks/<hook_id>", {"enabled": False}, 200, _webhook)],
    ("DELETE", "/api/v1/webhooks/<hook_id>"): [
        ("/api/v1/webhooks/<hook_id>", None, 204, _webhook)],
    ("GET", "/api/v1/webhooks/<hook_id>/deliveries"): [
        ("/api/v1/webhooks/<hook_id>/deliveries", None, 200, _webhook)],
}


def test_the_table_has_exactly_the_admin_apps_routes(tmp_path: Path) -> None:
    db = FlagDB(tmp_path)
    try:
        app = admin_app(db)
        routes = {(m, rule.rule) for rule in app.url_map.iter_rules()
                  if rule.endpoint != "static" for m in set(rule.methods or ()) - IMPLICIT}
    finally:
        db.close()
    assert sorted(routes - set(TABLE)) == []  # a route without a permission entry
    assert sorted(set(TABLE) - routes) == []  # an entry for a route the app does not have
    assert sorted(set(TABLE) ^ set(SAMPLES)) == []  # every route is exercised below


async def _request(c: httpx.AsyncClient, method: str, path: str, body: Any,
                   headers: dict[str, str]) -> httpx.Response:
    value = body() if callable(body) else body
    return await c.request(method, path, json=value, headers=headers)


async def test_every_role_on_every_route_in_own_and_foreign_environments(node: Node) -> None:
    c = node.client
    checked = 0
    for (method, rule), samples in SAMPLES.items():
        right = TABLE[(method, rule)]
        for (template, body, ok_status, setup), who in itertools.product(samples, node.who):
            envs: list[str | None] = [OWN, FOREIGN] if ENV_PARAM in template else [None]
            for env in envs:
                path = template if env is None else template.replace(ENV_PARAM, env)
                path = await setup(c, path, who)
                scope_env = None if env is None else path.split("/")[4]
                r = await _request(c, method, path, body, auth(who.secret))
                case = (method, path, who.label, r.text[:300])
                if allowed(who, right, scope_env):
                    assert r.status_code == ok_status, case
                else:
                    assert r.status_code == 403, case
                    message = r.json()["error"]["message"]
                    assert ("needs the admin role" if right == "admin" else "may not write") \
                        in message, case
                    assert (f"role {who.role}" if who.environments is None
                            else "editor of [dev, dev-gone]") in message, case
                checked += 1
    assert checked > 250


async def test_without_a_valid_credential_every_route_but_the_public_ones_is_401(
        node: Node) -> None:
    c = node.client
    r = await c.post("/api/v1/tokens", json={"name": "revoked", "role": "admin"})
    revoked = r.json()
    assert (await c.delete(f"/api/v1/tokens/{revoked['id']}")).status_code == 204
    # An expired token, written straight into the node's database (its clock is the wall's).
    expired = new_secret("fst_")
    accounts = AccountsDB(node.data_dir / DB_FILE)
    try:
        accounts.add_token("expired1", "expired", digest(expired), "admin", None, "test",
                           int(time.time() * 1000) - 1)
    finally:
        accounts.close()
    credentials: list[dict[str, str]] = [
        {}, auth("nope"), auth(revoked["token"]), auth(expired), {"Authorization": BOOT}]
    for (method, rule), samples in SAMPLES.items():
        template, body, ok_status, _ = samples[0]
        path = (template.replace(ENV_PARAM, OWN).replace("<token_id>", "x")
                .replace("<hook_id>", "x").replace("<request_id>", "1")
                .replace("<int:change_id>", "1"))
        for headers in credentials:
            r = await _request(c, method, path, body, {"Authorization": "", **headers})
            if TABLE[(method, rule)] == "public":
                assert r.status_code == ok_status, (method, path, r.text)
            else:
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
