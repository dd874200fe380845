"""History routes over real HTTP (store/history_routes.py): filters and paging of
``.../changes``, versions, diffs and revert, and a revert reaching the bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pynng
import trio

from bus.envelope import Change, Heartbeat, decode
from store.service import StoreConfig, run_store
from tests.store.test_store_admin_api import AUTH, FLAG, client, error_of, make_env

__all__ = ["client"]  # the fixture, shared with test_store_admin_api
BASE = "/api/v1/environments/prod"


async def put(c: httpx.AsyncClient, path: str, body: Any, who: str = "admin") -> dict[str, Any]:
    r = await c.put(f"{BASE}/{path}", json=body, headers={"X-Flagstream-Actor": who})
    assert r.status_code in (200, 201), r.text
    out: dict[str, Any] = r.json()
    return out


async def test_versions_list_get_and_diff(client: httpx.AsyncClient) -> None:
    await make_env(client)
    await put(client, "flags/f", FLAG)  # v1
    await put(client, "flags/f", {**FLAG, "on": False})  # v2
    rule = {"clauses": [{"attribute": "email", "op": "in", "values": ["a"]}], "variation": 1}
    await put(client, "flags/f", {**FLAG, "on": False, "rules": [rule]})  # v3
    assert (await client.delete(f"{BASE}/flags/f")).status_code == 204  # v4
    v5 = await put(client, "flags/f", FLAG)
    assert v5["version"] == 5
    page = (await client.get(f"{BASE}/flags/f/versions")).json()
    assert [(v["version"], v["previous"], v["deleted"]) for v in page["items"]] == [
        (5, None, False), (4, 3, True), (3, 2, False), (2, 1, False), (1, None, False)]
    assert page["next"] is None
    first = (await client.get(f"{BASE}/flags/f/versions", params={"limit": 2})).json()
    rest = (await client.get(f"{BASE}/flags/f/versions",
                             params={"limit": 2, "before": first["next"]})).json()
    assert [v["version"] for v in first["items"] + rest["items"]] == [5, 4, 3, 2]
    v2 = (await client.get(f"{BASE}/flags/f/versions/2")).json()
    assert v2["version"] == 2 and v2["on"] is False and v2["rules"] == []
    assert (await client.get(f"{BASE}/flags/f/versions/4")).json() == {
        "key": "f", "version": 4, "deleted": True}
    d = (await client.get(f"{BASE}/flags/f/diff", params={"from": 1, "to": 3})).json()
    assert d["from"] == 1 and d["to"] == 3 and d["kind"] == "flags"
    assert [(o["op"], o["field"]) for o in d["operations"]] == [("replace", "on"),
                                                                ("add", "rules[0]")]
    back = (await client.get(f"{BASE}/flags/f/diff", params={"from": 3, "to": 2})).json()
    assert back["operations"] == [{"op": "remove", "path": "/rules/0", "field": "rules[0]",
                                   "old": v2_rule(await client.get(f"{BASE}/flags/f/versions/3"))}]
    error_of(await client.get(f"{BASE}/flags/f/versions/6"), 404)
    error_of(await client.get(f"{BASE}/flags/nope/versions"), 404)
    error_of(await client.get(f"{BASE}/flags/f/diff", params={"from": 1, "to": 9}), 404)
    for bad in ("0", "abc", "-1", "99999999999999999999"):
        error_of(await client.get(f"{BASE}/flags/f/versions/{bad}"), 400)
        error_of(await client.get(f"{BASE}/flags/f/diff", params={"from": bad, "to": 1}), 400)
    error_of(await client.get(f"{BASE}/flags/f/diff", params={"from": 1}), 400)
    error_of(await client.get(f"{BASE}/flags/f/versions", params={"limit": 501}), 400)
    error_of(await client.get("/api/v1/environments/nope/flags/f/versions"), 404)


def v2_rule(r: httpx.Response) -> Any:
    return r.json()["rules"][0]


async def test_a_version_an_import_wrote_and_a_recreated_environment(
        client: httpx.AsyncClient) -> None:
    await make_env(client)
    r = await client.post(f"{BASE}/import", json={"flags": {"f": {**FLAG, "on": False}}})
    assert r.status_code == 200, r.text
    assert (await client.get(f"{BASE}/flags/f/versions/1")).json()["on"] is False  # current
    await put(client, "flags/f", FLAG)  # v2: its before is the imported v1
    assert (await client.get(f"{BASE}/flags/f/versions/1")).json()["on"] is False
    assert (await client.delete(BASE)).status_code == 204
    await make_env(client)
    await put(client, "flags/f", {**FLAG, "offVariation": 1})
    v1 = (await client.get(f"{BASE}/flags/f/versions/1")).json()
    assert v1["offVariation"] == 1 and v1["on"] is True  # the new environment's, not the old
    error_of(await client.get(f"{BASE}/flags/f/versions/2"), 404)
    assert len((await client.get(f"{BASE}/flags/f/versions")).json()["items"]) == 1


async def test_changes_carry_a_diff_and_filter_by_time(client: httpx.AsyncClient) -> None:
    await make_env(client)
    for i in range(6):
        await put(client, f"flags/{'ab'[i % 2]}", {**FLAG, "offVariation": i // 2 % 2})
    items = (await client.get(f"{BASE}/changes")).json()["items"]
    assert items[0]["diff"] == [{"op": "replace", "path": "/offVariation",
                                 "field": "offVariation", "old": 1, "value": 0}]
    created = items[5]["diff"]
    assert {"op": "add", "path": "/on", "field": "on", "value": True} in created
    assert "diff" not in items[6]  # the environment's creation
    at = [i["atMs"] for i in items]
    got = (await client.get(f"{BASE}/changes", params={"until": at[2], "kind": "flags"})).json()
    assert [i["seq"] for i in got["items"]] == [i["seq"] for i in items[:6]
                                                if i["atMs"] <= at[2]]
    assert items[2]["seq"] in [i["seq"] for i in got["items"]]  # inclusive
    assert (await client.get(f"{BASE}/changes", params={"until": "1970-01-01"})).json() == {
        "items": [], "next": None}
    # paging under filters: every change of flag b once, newest first, one per page
    seen: list[int] = []
    params: dict[str, Any] = {"kind": "flags", "key": "b", "limit": 1, "until": at[0],
                              "since": at[-1]}
    for _ in range(10):
        page = (await client.get(f"{BASE}/changes", params=params)).json()
        seen += [i["seq"] for i in page["items"]]
        if page["next"] is None:
            break
        params["before"] = page["next"]
    assert seen == [i["seq"] for i in items if i["key"] == "b"] and len(seen) == 3
    for query, name in (("until=tomorrow", "until"), (f"since={at[0] + 1}&until={at[0]}",
                                                       "since")):
        assert name in error_of(await client.get(f"{BASE}/changes?{query}"), 400)["message"]


async def test_revert(client: httpx.AsyncClient) -> None:
    await make_env(client)
    v1 = await put(client, "flags/f", {**FLAG, "offVariation": 1})
    await put(client, "flags/f", {**FLAG, "on": False, "variations": [True, False, True]},
              who="ann")
    r = await client.post(f"{BASE}/flags/f/revert", json={"version": 1, "comment": "bad rollout"},
                          headers={"X-Flagstream-Actor": "ann"})
    assert r.status_code == 200, r.text
    v3 = r.json()
    assert v3["version"] == 3 and {**v3, "version": 1} == v1  # v1's content, the salt too
    assert (await client.get(f"{BASE}/flags/f")).json() == v3
    change, put_change = (await client.get(f"{BASE}/changes")).json()["items"][:2]
    # the revert records actor() as a write does (sent the same way: the same actor)
    assert change["revertOf"] == 1 and change["actor"] == put_change["actor"] != ""
    assert "revertOf" not in put_change
    assert change["comment"] == "bad rollout" and change["after"] == v3
    listed = (await client.get(f"{BASE}/flags/f/versions")).json()["items"][0]
    assert listed["version"] == 3 and listed["revertOf"] == 1
    # a deleted flag comes back
    assert (await client.delete(f"{BASE}/flags/f")).status_code == 204
    r = await client.post(f"{BASE}/flags/f/revert", json={"version": 2})
    assert r.status_code == 200 and r.json()["version"] == 5 and r.json()["on"] is False
    # refusals write nothing
    err = error_of(await client.post(f"{BASE}/flags/f/revert", json={"version": 4}), 400)
    assert "deletion" in err["message"]
    error_of(await client.post(f"{BASE}/flags/f/revert", json={"version": 9}), 404)
    for body in ({}, {"version": "1"}, {"version": True}, {"version": 0}, [1],
                 {"version": 1, "why": "x"}, {"version": 1, "comment": 5}):
        error_of(await client.post(f"{BASE}/flags/f/revert", json=body), 400)
    error_of(await client.post(f"{BASE}/flags/nope/revert", json={"version": 1}), 404)
    assert (await client.get(f"{BASE}/flags/f")).json()["version"] == 5


async def test_revert_refuses_a_version_whose_references_are_gone(
        client: httpx.AsyncClient) -> None:
    await make_env(client)
    await put(client, "segments/beta", {"included": ["u1"]})
    await put(client, "flags/dep", FLAG)
    rule = {"clauses": [{"attribute": "", "op": "segmentMatch", "values": ["beta"]}],
            "variation": 1}
    await put(client, "flags/f", {**FLAG, "rules": [rule],
                                  "prerequisites": [{"key": "dep", "variation": 0}]})
    await put(client, "flags/f", FLAG)  # v2
    assert (await client.delete(f"{BASE}/segments/beta")).status_code == 204
    assert (await client.delete(f"{BASE}/flags/dep")).status_code == 204
    err = error_of(await client.post(f"{BASE}/flags/f/revert", json={"version": 1}), 409)
    assert 'prerequisite flag "dep"' in err["message"] and 'segment "beta"' in err["message"]
    assert (await client.get(f"{BASE}/flags/f")).json()["version"] == 2
    # restore them (the segment by a revert of its own), then the flag's revert applies
    r = await client.post(f"{BASE}/segments/beta/revert", json={"version": 1})
    assert r.status_code == 200 and r.json()["included"] == ["u1"] and r.json()["version"] == 3
    await put(client, "flags/dep", FLAG)
    r = await client.post(f"{BASE}/flags/f/revert", json={"version": 1})
    assert r.status_code == 200 and r.json()["version"] == 3, r.text


async def test_revert_refuses_a_version_that_no_longer_validates(
        client: httpx.AsyncClient) -> None:
    await make_env(client)
    bad = {**FLAG, "fallthrough": {"variation": 7}}  # out of range: only a lenient import
    r = await client.post(f"{BASE}/import?lenient=true", json={"flags": {"f": bad}})
    assert r.status_code == 200, r.text
    err = error_of(await client.post(f"{BASE}/flags/f/revert", json={"version": 1}), 409)
    assert "no longer validates" in err["message"] and "fallthrough.variation" in err["message"]


async def test_a_revert_reaches_the_bus(tmp_path: Path) -> None:
    cfg = StoreConfig(data_dir=tmp_path / "data", admin_bind=("127.0.0.1", 0),
                      admin_token=AUTH["Authorization"].split()[1],
                      bus_address=f"ipc://{tmp_path}/bus",
                      snapshot_address=f"ipc://{tmp_path}/snap", heartbeat_interval_s=0.05)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(run_store, cfg)
        with pynng.Sub0(dial=cfg.bus_address, topics=b"") as sub:
            with trio.fail_after(10):  # a bound, not a measurement: the subscription is live
                while not isinstance(decode(await sub.arecv()), Heartbeat):
                    pass
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}", headers=AUTH) as c:
                await make_env(c)
                await put(c, "flags/f", FLAG)
                await put(c, "flags/f", {**FLAG, "on": False})
                r = await c.post(f"{BASE}/flags/f/revert", json={"version": 1})
                assert r.status_code == 200, r.text
            changes: list[Change] = []
            with trio.fail_after(10):
                while len(changes) < 3:
                    msg = decode(await sub.arecv())
                    if isinstance(msg, Change):
                        changes.append(msg)
        assert changes[-1].items[0].version == 3 and changes[-1].items[0].data == r.content
        nursery.cancel_scope.cancel()
