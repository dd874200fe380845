"""The scheduled-change routes over real HTTP (run_store on port 0, httpx), real time."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import trio

from store import schedule_db
from store.schedule_routes import RIGHTS
from tests.store.test_store_admin_api import FLAG, client, error_of, make_env

__all__ = ["client"]  # the fixture
HOUR_MS = 3_600_000
FLAGS = "/api/v1/environments/prod/flags"
ENV = "/api/v1/environments/prod/scheduled-changes"


def now_ms() -> int:
    return int(time.time() * 1000)


async def ready(c: httpx.AsyncClient) -> None:
    await make_env(c)
    r = await c.put(f"{FLAGS}/f", json={**FLAG, "offVariation": 1})
    assert r.status_code == 201, r.text


async def schedule(c: httpx.AsyncClient, body: dict[str, Any], key: str = "f") -> httpx.Response:
    return await c.post(f"{FLAGS}/{key}/scheduled-changes", json=body)


async def test_create_list_get_cancel(client: httpx.AsyncClient) -> None:
    await ready(client)
    # createdBy is whoever the API records as the actor of this client's changes.
    r = await client.patch(f"{FLAGS}/f", json={"on": True})
    who = (await client.get("/api/v1/environments/prod/changes")).json()["items"][0]["actor"]
    at = now_ms() + HOUR_MS
    r = await schedule(client, {"at": at, "patch": {"on": False}, "comment": "night"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["status"] == "pending" and made["createdBy"] == who
    assert (made["env"], made["key"], made["atMs"], made["format"]) == ("prod", "f", at, "merge")
    assert made["patch"] == {"on": False} and made["comment"] == "night"
    rfc = await schedule(client, {"at": "2030-01-01T10:00:00Z", "format": "semantic",
                                  "patch": {"instructions": [{"kind": "turnFlagOff"}]}})
    assert rfc.status_code == 201 and rfc.json()["at"] == "2030-01-01T10:00:00.000Z"
    items = (await client.get(ENV)).json()["items"]
    assert [i["id"] for i in items] == [made["id"], rfc.json()["id"]]  # soonest first
    per_flag = (await client.get(f"{FLAGS}/f/scheduled-changes?status=pending")).json()
    assert len(per_flag["items"]) == 2
    assert (await client.get(f"{ENV}/{made['id']}")).json() == made
    r = await client.delete(f"{ENV}/{made['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["cancelledBy"] == who
    again = error_of(await client.delete(f"{ENV}/{made['id']}"), 409)
    assert "is cancelled, not pending" in again["message"]
    assert [i["id"] for i in (await client.get(f"{ENV}?status=cancelled")).json()["items"]] \
        == [made["id"]]
    error_of(await client.get(f"{ENV}/999999"), 404)
    error_of(await client.get(f"{ENV}/{2**63}"), 404)
    error_of(await client.delete("/api/v1/environments/nope/scheduled-changes/1"), 404)
    assert (await client.get(f"{FLAGS}/f")).json()["on"] is True  # nothing applied


async def test_applied_by_the_running_store(client: httpx.AsyncClient) -> None:
    await ready(client)
    r = await schedule(client, {"at": now_ms() + 300, "patch": {"on": False}})
    assert r.status_code == 201, r.text
    change_id = r.json()["id"]
    for _ in range(200):  # bounded: up to about 20 s
        done = (await client.get(f"{ENV}/{change_id}")).json()
        if done["status"] != "pending":
            break
        await trio.sleep(0.1)
    assert done["status"] == "applied", done
    assert isinstance(done["lateByMs"], int) and "appliedAt" in done
    flag = (await client.get(f"{FLAGS}/f")).json()
    assert flag["on"] is False and flag["version"] == 2
    last = (await client.get("/api/v1/environments/prod/changes")).json()["items"][0]
    assert last["seq"] == done["seq"]
    assert last["comment"].startswith(f"scheduled change {change_id}")
    metrics = (await client.get("/metrics")).text
    assert "flagstream_scheduled_changes_applied_total 1.0" in metrics
    assert "flagstream_scheduled_changes_pending 0.0" in metrics


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"at": 1_000, "patch": {"on": False}}, 400, "in the past"),
    ({"at": "2000-01-01T00:00:00Z", "patch": {"on": False}}, 400, "in the past"),
    ({"at": "tomorrow", "patch": {"on": False}}, 400, "at:"),
    ({"at": True, "patch": {"on": False}}, 400, "at:"),
    ({"patch": {"on": False}}, 400, "at:"),
    ({"at": "9999-01-01T00:00:00Z", "patch": {"on": False}}, 400, "ten years"),
    ({"at": "2030-01-01T00:00:00Z"}, 400, "patch: required"),
    ({"at": "2030-01-01T00:00:00Z", "patch": {}, "when": 1}, 400, "unknown field"),
    ({"at": "2030-01-01T00:00:00Z", "patch": {}, "format": "xml"}, 400, "format"),
    ({"at": "2030-01-01T00:00:00Z", "patch": {}, "comment": 5}, 400, "comment"),
    ({"at": "2030-01-01T00:00:00Z", "patch": {"offVariation": 7}}, 400, "offVariation"),
    ({"at": "2030-01-01T00:00:00Z", "patch": {"on": "yes"}}, 400, "on"),
    ({"at": "2030-01-01T00:00:00Z", "format": "json-patch", "patch": {"op": "add"}}, 400, ""),
    ({"at": "2030-01-01T00:00:00Z", "format": "semantic",
      "patch": {"instructions": [{"kind": "fly"}]}}, 400, ""),
    ({"at": "2030-01-01T00:00:00Z", "format": "semantic", "patch": {
        "environmentKey": "test", "instructions": [{"kind": "turnFlagOff"}]}}, 400, "environment"),
    ({"at": "2030-01-01T00:00:00Z", "format": "json-patch",
      "patch": [{"op": "test", "path": "/on", "value": False}]}, 409, ""),
])
async def test_refused_at_creation(client: httpx.AsyncClient, body: dict[str, Any],
                                   status: int, words: str) -> None:
    await ready(client)
    err = error_of(await schedule(client, body), status)
    assert words in err["message"], err
    assert (await client.get(ENV)).json()["items"] == []


async def test_not_found_and_bad_queries(client: httpx.AsyncClient) -> None:
    await ready(client)
    body = {"at": "2030-01-01T00:00:00Z", "patch": {"on": False}}
    error_of(await schedule(client, body, key="missing"), 404)
    error_of(await client.post("/api/v1/environments/nope/flags/f/scheduled-changes",
                               json=body), 404)
    error_of(await client.get(f"{ENV}?status=done"), 400)
    error_of(await client.get(f"{ENV}?limit=0"), 400)
    error_of(await client.post(f"{FLAGS}/f/scheduled-changes", content=b"{",
                               headers={"Content-Type": "application/json"}), 400)


async def test_bounds(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule_db, "MAX_PENDING_PER_ENV", 3)
    monkeypatch.setattr(schedule_db, "KEEP_DONE_PER_ENV", 2)
    await ready(client)
    body = {"at": "2030-01-01T00:00:00Z", "patch": {"on": False}}
    ids = [(await schedule(client, body)).json()["id"] for _ in range(3)]
    err = error_of(await schedule(client, body), 409)
    assert "3 pending scheduled changes" in err["message"]
    for change_id in ids:
        assert (await client.delete(f"{ENV}/{change_id}")).status_code == 200
    assert (await schedule(client, body)).status_code == 201  # room again
    # The oldest finished row was dropped: two kept.
    kept = (await client.get(f"{ENV}?status=cancelled")).json()["items"]
    assert [i["id"] for i in kept] == ids[1:]


def test_rights() -> None:
    assert RIGHTS == {
        ("POST", "/api/v1/environments/<env>/flags/<key>/scheduled-changes"): "write",
        ("GET", "/api/v1/environments/<env>/flags/<key>/scheduled-changes"): "read",
        ("GET", "/api/v1/environments/<env>/scheduled-changes"): "read",
        ("GET", "/api/v1/environments/<env>/scheduled-changes/<int:change_id>"): "read",
        ("DELETE", "/api/v1/environments/<env>/scheduled-changes/<int:change_id>"): "write",
    }
