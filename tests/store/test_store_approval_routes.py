"""Change requests over real HTTP: run_store on 127.0.0.1 port 0, httpx as the client.

Every request made as a given identity goes through :func:`call`, signed in as that user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pynng
import pytest
import trio

from bus.envelope import Change, Heartbeat, decode
from store.service import StoreConfig, run_store
from tests.store.test_store_admin_api import FLAG, error_of

TOKEN = "approvals-token-123"
ENV = "/api/v1/environments/prod"
FLAG_URL = f"{ENV}/flags/f"
REQUESTS = f"{FLAG_URL}/change-requests"
SEMANTIC = "semantic"


def config(data: Path) -> StoreConfig:
    return StoreConfig(data_dir=data / "data", admin_bind=("127.0.0.1", 0), admin_token=TOKEN,
                       bus_address=f"ipc://{data}/bus", snapshot_address=f"ipc://{data}/snap",
                       heartbeat_interval_s=0.05)


@asynccontextmanager
async def store(data: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(run_store, config(data))
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            yield c
        nursery.cancel_scope.cancel()


PASSWORD = "correct horse battery staple"
_sessions: dict[tuple[int, str], str] = {}  # (client, username) -> its session's bearer


async def call(c: httpx.AsyncClient, who: str, method: str, url: str,
               **kw: Any) -> httpx.Response:
    """``method url`` as the user ``who`` (an admin, created on first use), signed in with a
    session of its own: the recorded identity is the authenticated one."""
    bearer = _sessions.get((id(c), who))
    if bearer is None:
        r = await c.post("/api/v1/users", json={"username": who, "password": PASSWORD,
                                                "role": "admin"})
        assert r.status_code in (201, 409), r.text  # 409: made before a store restart
        r = await c.post("/api/v1/sessions", json={"username": who, "password": PASSWORD})
        assert r.status_code == 201, r.text
        bearer = _sessions[(id(c), who)] = r.json()["token"]
    headers = {**kw.pop("headers", {}), "Authorization": f"Bearer {bearer}"}
    return await c.request(method, url, headers=headers, **kw)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with store(tmp_path) as c:
        yield c


async def setup(c: httpx.AsyncClient, *, require: bool = True) -> dict[str, Any]:
    """Environment prod with flag f (version 1), approval required if ``require``."""
    assert (await c.post("/api/v1/environments", json={"key": "prod"})).status_code == 201
    assert (await c.put(FLAG_URL, json=FLAG)).status_code == 201
    r = await call(c, "carol", "PATCH", ENV, json={"requireApproval": require})
    assert r.status_code == 200, r.text
    env: dict[str, Any] = r.json()
    return env


async def propose(c: httpx.AsyncClient, who: str = "alice", patch: Any = None,
                  **extra: Any) -> dict[str, Any]:
    body = {"patch": {"on": False} if patch is None else patch, "comment": "incident 7", **extra}
    r = await call(c, who, "POST", REQUESTS, json=body)
    assert r.status_code == 201, r.text
    cr: dict[str, Any] = r.json()
    return cr


def one(cr: dict[str, Any]) -> str:
    return f"{ENV}/change-requests/{cr['id']}"


async def test_the_setting_is_shown_and_recorded_as_a_settings_change(
        client: httpx.AsyncClient) -> None:
    env = await setup(client)
    assert env["requireApproval"] is True
    assert (await client.get(ENV)).json()["requireApproval"] is True
    r = await client.get(f"{ENV}/changes", params={"kind": "environment"})
    row = r.json()["items"][0]
    assert row["actor"] == "carol"
    assert row["before"]["requireApproval"] is False and row["after"]["requireApproval"] is True
    err = error_of(await client.patch(ENV, json={"requireApproval": "yes"}), 400)
    assert err["message"] == "requireApproval: expected boolean"
    r = await client.patch(ENV, json={"name": "Production"})  # other fields leave it alone
    assert r.json()["requireApproval"] is True and r.json()["name"] == "Production"


async def test_an_environment_can_be_created_with_the_rule(client: httpx.AsyncClient) -> None:
    r = await call(client, "carol", "POST", "/api/v1/environments",
                   json={"key": "prod", "requireApproval": True})
    assert r.status_code == 201 and r.json()["requireApproval"] is True
    row = (await client.get(f"{ENV}/changes")).json()["items"][0]
    assert row["actor"] == "carol" and row["after"]["requireApproval"] is True
    error_of(await client.put(FLAG_URL, json=FLAG), 403)  # from its first moment
    err = error_of(await client.post("/api/v1/environments",
                                     json={"key": "test", "requireApproval": 1}), 400)
    assert err["message"] == "requireApproval: expected boolean"


async def test_direct_writes_to_flags_are_refused_with_the_way_to_propose(
        client: httpx.AsyncClient) -> None:
    await setup(client)
    message = ("environment prod requires approval: propose the change with POST "
               "/api/v1/environments/prod/flags/f/change-requests")
    for r in (await client.put(FLAG_URL, json=FLAG),
              await client.patch(FLAG_URL, json={"on": False}),
              await client.delete(FLAG_URL)):
        assert error_of(r, 403) == {"code": "forbidden", "message": message}
    assert "/flags/g/change-requests" in error_of(
        await client.put(f"{ENV}/flags/g", json=FLAG), 403)["message"]  # a new flag too
    err = error_of(await client.post(f"{ENV}/import", json={"flags": {}}), 403)
    assert "an import would change flags directly" in err["message"]
    assert (await client.get(FLAG_URL)).json()["version"] == 1  # nothing was written
    # Segments do not need approval; reads never do.
    assert (await client.put(f"{ENV}/segments/s", json={"included": ["u"]})).status_code == 201
    assert (await client.get(f"{ENV}/flags")).status_code == 200
    assert (await client.patch(ENV, json={"requireApproval": False})).status_code == 200
    assert (await client.patch(FLAG_URL, json={"on": False})).status_code == 200


async def test_an_approved_change_is_applied_recorded_and_reaches_the_bus(
        tmp_path: Path) -> None:
    async with store(tmp_path) as c:
        await setup(c)
        cr = await propose(c)
        assert {k: cr[k] for k in ("env", "key", "baseVersion", "createdBy", "comment",
                                   "status", "format", "patch")} == {
            "env": "prod", "key": "f", "baseVersion": 1, "createdBy": "alice",
            "comment": "incident 7", "status": "pending", "format": "merge",
            "patch": {"on": False}}
        assert (await c.get(FLAG_URL)).json()["on"] is True  # proposing changes nothing
        with pynng.Sub0(dial=config(tmp_path).bus_address, topics=b"") as sub:
            with trio.fail_after(10):
                while not isinstance(decode(await sub.arecv()), Heartbeat):
                    pass
            r = await call(c, "bob", "POST", f"{one(cr)}/approve", json={"comment": "ok"})
            assert r.status_code == 200, r.text
            with trio.fail_after(10):
                while not isinstance(msg := decode(await sub.arecv()), Change):
                    pass
        done = r.json()
        assert done["status"] == "approved" and done["decidedBy"] == "bob"
        assert done["appliedVersion"] == 2 and done["decisionComment"] == "ok"
        flag = (await c.get(FLAG_URL)).json()
        assert flag["on"] is False and flag["version"] == 2
        assert msg.env == "prod" and msg.items[0].key == "f" and msg.items[0].version == 2
        row = (await c.get(f"{ENV}/changes", params={"key": "f"})).json()["items"][0]
        assert row["actor"] == "bob"
        assert row["comment"] == (f"change request {cr['id']} proposed by alice: incident 7"
                                  " | approved by bob: ok")
        assert (await c.get(one(cr))).json() == done
        err = error_of(await call(c, "dave", "POST", f"{one(cr)}/approve"), 409)
        assert err["message"] == f"change request {cr['id']} is approved, not pending"


@pytest.mark.parametrize(("fmt", "patch"), [
    ("json-patch", [{"op": "test", "path": "/on", "value": True},
                    {"op": "replace", "path": "/on", "value": False}]),
    (SEMANTIC, {"environmentKey": "prod", "instructions": [{"kind": "turnFlagOff"}]}),
    ("merge", {"on": False}),
])
async def test_every_patch_format_can_be_proposed(client: httpx.AsyncClient, fmt: str,
                                                  patch: Any) -> None:
    await setup(client)
    cr = await propose(client, patch=patch, format=fmt)
    assert cr["format"] == fmt
    r = await call(client, "bob", "POST", f"{one(cr)}/approve")  # no body: no comment
    assert r.status_code == 200, r.text
    assert (await client.get(FLAG_URL)).json()["on"] is False


async def test_nobody_approves_or_declines_their_own_request(client: httpx.AsyncClient) -> None:
    await setup(client)
    cr = await propose(client)
    err = error_of(await call(client, "alice", "POST", f"{one(cr)}/approve"), 403)
    assert err["message"] == "you cannot approve your own change request"
    err = error_of(await call(client, "alice", "POST", f"{one(cr)}/decline"), 403)
    assert err["message"].startswith("you cannot decline your own change request")
    err = error_of(await call(client, "bob", "DELETE", one(cr)), 403)
    assert err["message"] == f"only the proposer (alice) can withdraw change request {cr['id']}"
    assert (await client.get(one(cr))).json()["status"] == "pending"
    assert (await client.get(FLAG_URL)).json()["version"] == 1


async def test_decline_and_withdraw_close_the_request_without_a_change(
        client: httpx.AsyncClient) -> None:
    await setup(client)
    first, second = await propose(client), await propose(client)
    r = await call(client, "bob", "POST", f"{one(first)}/decline", json={"comment": "no"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "declined" and r.json()["decisionComment"] == "no"
    r = await call(client, "alice", "DELETE", one(second))
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    assert r.json()["decidedBy"] == "alice"
    assert (await client.get(FLAG_URL)).json()["version"] == 1
    for cr in (first, second):
        error_of(await call(client, "bob", "POST", f"{one(cr)}/approve"), 409)
        error_of(await call(client, "alice", "DELETE", one(cr)), 409)


async def test_approving_against_a_moved_flag_is_409_with_both_versions(
        client: httpx.AsyncClient) -> None:
    await setup(client)
    first = await propose(client)
    second = await propose(client, patch={"variations": [True, False, True]})
    assert (await call(client, "bob", "POST", f"{one(second)}/approve")).status_code == 200
    r = await call(client, "bob", "POST", f"{one(first)}/approve")
    err = error_of(r, 409)
    assert err["details"] == {"baseVersion": 1, "currentVersion": 2}
    assert "made against version 1" in err["message"]
    stale = (await client.get(one(first))).json()
    assert stale["status"] == "stale" and stale["currentVersion"] == 2
    assert (await client.get(FLAG_URL)).json()["on"] is True  # the stale patch never applied


async def test_listing_filters_by_status_and_flag_and_pages(client: httpx.AsyncClient) -> None:
    await setup(client)
    assert (await client.patch(ENV, json={"requireApproval": False})).status_code == 200
    assert (await client.put(f"{ENV}/flags/g", json=FLAG)).status_code == 201
    a, b = await propose(client), await propose(client)
    r = await call(client, "alice", "POST", f"{ENV}/flags/g/change-requests",
                   json={"patch": {"on": False}, "comment": "g too"})
    c = r.json()
    await call(client, "alice", "DELETE", one(b))
    ids = lambda r: [i["id"] for i in r.json()["items"]]  # noqa: E731
    assert ids(await client.get(f"{ENV}/change-requests")) == [c["id"], b["id"], a["id"]]
    assert ids(await client.get(REQUESTS)) == [b["id"], a["id"]]
    assert ids(await client.get(REQUESTS, params={"status": "pending"})) == [a["id"]]
    r = await client.get(f"{ENV}/change-requests", params={"limit": 2})
    assert ids(r) == [c["id"], b["id"]] and r.json()["next"] == b["id"]
    r = await client.get(f"{ENV}/change-requests", params={"before": r.json()["next"]})
    assert ids(r) == [a["id"]] and r.json()["next"] is None
    err = error_of(await client.get(REQUESTS, params={"status": "open"}), 400)
    assert "status must be one of pending, approved" in err["message"]
    error_of(await client.get(REQUESTS, params={"limit": "0"}), 400)


@pytest.mark.parametrize(("body", "status", "message"), [
    ([1], 400, "(root): expected an object"),
    ({"comment": "x"}, 400, "patch: required"),
    ({"patch": {"on": False}}, 400, "comment: expected a non-empty string"),
    ({"patch": {"on": False}, "comment": " "}, 400, "comment: expected a non-empty string"),
    ({"patch": {"on": False}, "comment": "x" * 1001}, 400, "at most 1000 characters"),
    ({"patch": {"on": False}, "comment": "x", "why": 1}, 400, "why: unknown field"),
    ({"patch": {"on": False}, "comment": "x", "format": "xml"}, 400, "format: expected one of"),
    ({"patch": {"on": False}, "comment": "x", "format": ["merge"]}, 400, "format: expected"),
    ({"patch": {"fallthrough": {"variation": 5}}, "comment": "x"}, 400,
     "the change would not validate"),
    ({"patch": {"op": "add"}, "comment": "x", "format": "json-patch"}, 400, ""),
    ({"patch": [{"op": "test", "path": "/on", "value": False}], "comment": "x",
      "format": "json-patch"}, 409, ""),
    ({"patch": {"instructions": [{"kind": "nope"}]}, "comment": "x", "format": SEMANTIC},
     400, ""),
    ({"patch": {"environmentKey": "test", "instructions": [{"kind": "turnFlagOn"}]},
      "comment": "x", "format": SEMANTIC}, 400, "is not the environment of the path"),
])
async def test_bad_proposals_are_refused_and_nothing_is_stored(
        client: httpx.AsyncClient, body: Any, status: int, message: str) -> None:
    await setup(client)
    err = error_of(await call(client, "alice", "POST", REQUESTS, json=body), status)
    assert message in err["message"]
    assert (await client.get(REQUESTS)).json()["items"] == []


async def test_unknown_things_are_404(client: httpx.AsyncClient) -> None:
    await setup(client)
    body = {"patch": {"on": False}, "comment": "x"}
    error_of(await client.post(f"{ENV}/flags/nope/change-requests", json=body), 404)
    error_of(await client.post("/api/v1/environments/nope/flags/f/change-requests",
                               json=body), 404)
    for bad in ("999", "x", "1" * 40, "-1"):
        error_of(await client.get(f"{ENV}/change-requests/{bad}"), 404)
        error_of(await client.post(f"{ENV}/change-requests/{bad}/approve"), 404)
    cr = await propose(client)
    await client.post("/api/v1/environments", json={"key": "test"})
    error_of(await client.get(f"/api/v1/environments/test/change-requests/{cr['id']}"), 404)
    err = error_of(await call(client, "bob", "POST", f"{one(cr)}/approve",
                              content=b"{", headers={"Content-Type": "application/json"}), 400)
    assert "malformed JSON" in err["message"]


async def test_requests_survive_a_restart_and_apply_after_it(tmp_path: Path) -> None:
    async with store(tmp_path) as c:
        await setup(c)
        cr = await propose(c)
    async with store(tmp_path) as c:
        assert (await c.get(one(cr))).json() == cr
        assert (await c.get(ENV)).json()["requireApproval"] is True
        error_of(await c.patch(FLAG_URL, json={"on": False}), 403)
        r = await call(c, "bob", "POST", f"{one(cr)}/approve")
        assert r.status_code == 200, r.text
    async with store(tmp_path) as c:
        assert (await c.get(one(cr))).json()["status"] == "approved"
        assert (await c.get(FLAG_URL)).json()["on"] is False


async def test_pending_requests_per_environment_are_bounded(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("store.approvals.MAX_PENDING_PER_ENV", 2)
    await setup(client)
    first = await propose(client)
    await propose(client)
    err = error_of(await call(client, "alice", "POST", REQUESTS,
                              json={"patch": {"on": False}, "comment": "x"}), 409)
    assert "pending change requests (the limit)" in err["message"]
    await call(client, "alice", "DELETE", one(first))  # closing one makes room
    await propose(client)


async def test_deleting_the_environment_forgets_its_requests(client: httpx.AsyncClient) -> None:
    await setup(client)
    cr = await propose(client)
    assert (await client.delete(ENV)).status_code == 204
    await setup(client)  # the same key again: a new environment, no old requests
    error_of(await client.get(one(cr)), 404)
    assert (await client.get(f"{ENV}/change-requests")).json()["items"] == []


async def test_racing_decisions_leave_the_request_and_the_flag_in_agreement(
        client: httpx.AsyncClient) -> None:
    """Approve against withdraw, and two approvals, at once: the flag changed exactly when
    the request says approved."""
    await setup(client)
    answers: dict[str, int] = {}

    async def send(name: str, who: str, method: str, url: str) -> None:
        answers[name] = (await call(client, who, method, url)).status_code

    for round_ in range(4):
        cr = await propose(client, patch={"offVariation": round_ % 2})
        answers.clear()
        before = (await client.get(FLAG_URL)).json()["version"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, "approve", "bob", "POST", f"{one(cr)}/approve")
            nursery.start_soon(send, "approve2", "dave", "POST", f"{one(cr)}/approve")
            nursery.start_soon(send, "withdraw", "alice", "DELETE", one(cr))
        status = (await client.get(one(cr))).json()["status"]
        applied = (await client.get(FLAG_URL)).json()["version"] - before
        assert sorted(answers.values()) in ([200, 409, 409],), answers
        assert (status, applied) in (("approved", 1), ("withdrawn", 0)), (status, applied)
        assert (answers["withdraw"] == 200) == (status == "withdrawn")
