"""Webhooks against a real store (run_store on port 0) and a real HTTP receiver on loopback:
every change arrives signed, in order, at least once, across receiver outages and a restart
of the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

from store.webhooks.signing import SIGNATURE_HEADER, verify_signature
from tests.store.webhook_helpers import FLAG, Receiver, store


async def wait_for(receiver: Receiver, done: Callable[[], bool]) -> None:
    with trio.fail_after(30):  # a hang guard, not a timing assertion
        while not done():
            await receiver.arrived.wait()


async def all_changes(c: httpx.AsyncClient, envs: list[str], after: int) -> list[Any]:
    out = []
    for env in envs:
        r = await c.get(f"/api/v1/environments/{env}/changes", params={"limit": 500})
        out += [h for h in r.json()["items"] if h["seq"] > after]
    return sorted(out, key=lambda h: h["seq"])


async def make_changes(c: httpx.AsyncClient, env: str) -> None:
    """One of every kind of change with a history row."""
    assert (await c.put(f"/api/v1/environments/{env}/flags/a", json=FLAG)).status_code == 201
    r = await c.patch(f"/api/v1/environments/{env}/flags/a", json={"on": False})
    assert r.status_code == 200
    r = await c.put(f"/api/v1/environments/{env}/segments/s",
                    json={"included": ["u1"], "excluded": [], "rules": []})
    assert r.status_code == 201
    assert (await c.delete(f"/api/v1/environments/{env}/flags/a")).status_code == 204
    r = await c.post(f"/api/v1/environments/{env}/rotate", json={"key": "sdk"})
    assert r.status_code == 200
    r = await c.patch(f"/api/v1/environments/{env}", json={"name": "Renamed"})
    assert r.status_code == 200
    r = await c.post(f"/api/v1/environments/{env}/import",
                     json={"flags": {"b": {**FLAG, "key": "b", "version": 1}}, "segments": {}})
    assert r.status_code == 200


async def settled(c: httpx.AsyncClient, hook_id: str, last_seq: int) -> dict[str, Any]:
    """The webhook once its cursor reached ``last_seq`` (the receiver can see a delivery a
    moment before the store records it)."""
    with trio.fail_after(30):
        while True:
            hook: dict[str, Any] = (await c.get(f"/api/v1/webhooks/{hook_id}")).json()
            if hook["cursor"] >= last_seq:
                return hook
            await trio.sleep(0.02)


def check_signed(receiver: Receiver, secret: str) -> None:
    for got in receiver.received:
        assert verify_signature(secret, got.headers[SIGNATURE_HEADER.lower()], got.body,
                                time.time(), 300), got.headers


async def test_every_change_arrives_signed_as_the_history_shows_it(tmp_path: Path) -> None:
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        async with store(tmp_path) as c:
            assert (await c.post("/api/v1/environments", json={"key": "prod"})).status_code \
                == 201
            r = await c.post("/api/v1/webhooks", json={"url": receiver.url})
            assert r.status_code == 201, r.text
            hook = r.json()
            assert hook["secret"].startswith("whsec_") and hook["state"] == "ok"
            assert (await c.post("/api/v1/environments", json={"key": "test"})).status_code \
                == 201
            await make_changes(c, "prod")
            await make_changes(c, "test")
            want = await all_changes(c, ["prod", "test"], hook["cursor"])
            assert len(want) == 15
            await wait_for(receiver, lambda: len(receiver.delivered()) >= len(want))
            got = [r.doc() for r in receiver.delivered()]
            assert [{k: v for k, v in g.items() if k not in ("webhookId", "deliveryId")}
                    for g in got] == want
            assert all(g["webhookId"] == hook["id"] for g in got)
            assert [g["deliveryId"] for g in got] == [f"{hook['id']}-{w['seq']}" for w in want]
            check_signed(receiver, hook["secret"])
            assert all(r.headers["x-flagstream-delivery"] == r.doc()["deliveryId"]
                       for r in receiver.received)
            await settled(c, hook["id"], want[-1]["seq"])
            r = await c.get(f"/api/v1/webhooks/{hook['id']}/deliveries")
            records = r.json()["items"]
            assert [d["seq"] for d in records] == [w["seq"] for w in reversed(want)]
            assert {(d["status"], d["attempts"], d["httpStatus"]) for d in records} == {
                ("delivered", 1, 200)}
        nursery.cancel_scope.cancel()


async def test_filters_send_only_matching_changes(tmp_path: Path) -> None:
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        async with store(tmp_path) as c:
            for env in ("prod", "test"):
                await c.post("/api/v1/environments", json={"key": env})
            r = await c.post("/api/v1/webhooks", json={
                "url": receiver.url, "environments": ["prod"], "kinds": ["flags"]})
            hook = r.json()
            await make_changes(c, "test")
            await make_changes(c, "prod")
            want = [h for h in await all_changes(c, ["prod"], hook["cursor"])
                    if h["kind"] == "flags"]
            assert len(want) == 3
            await wait_for(receiver, lambda: len(receiver.delivered()) >= len(want))
            await trio.sleep(0.2)  # room for a wrong extra delivery to show up
            assert [r.doc()["seq"] for r in receiver.delivered()] == [w["seq"] for w in want]
            last = (await all_changes(c, ["prod", "test"], 0))[-1]["seq"]
            assert last > want[-1]["seq"]
            await settled(c, hook["id"], last)  # skipped changes move the cursor too
        nursery.cancel_scope.cancel()


async def hook_then_changes(c: httpx.AsyncClient, receiver: Receiver) -> Any:
    """An environment, a webhook to ``receiver``, then every kind of change in "prod"."""
    await c.post("/api/v1/environments", json={"key": "prod"})
    hook = (await c.post("/api/v1/webhooks", json={"url": receiver.url})).json()
    await make_changes(c, "prod")
    return hook


def first_seen_order(receiver: Receiver) -> list[int]:
    seen: list[int] = []
    for r in receiver.received:
        seq = int(r.doc()["seq"])  # type: ignore[call-overload]
        if seq not in seen:
            seen.append(seq)
    return seen


async def test_a_failing_then_refusing_receiver_gets_every_change_in_order(
        tmp_path: Path) -> None:
    # The first requests get a 500; then the receiver is down (connections refused) for a
    # while; then it is back and answers 200.
    receiver = Receiver(lambda n: 500)
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        async with store(tmp_path) as c:
            hook = await hook_then_changes(c, receiver)
            await wait_for(receiver, lambda: len(receiver.received) >= 6)
            receiver.stop()
            r = await c.get(f"/api/v1/webhooks/{hook['id']}")
            assert r.json()["state"] == "failing"
            with trio.fail_after(30):  # retries meet a closed port
                while True:
                    r = await c.get(f"/api/v1/webhooks/{hook['id']}/deliveries")
                    head = r.json()["items"][0]
                    if head["attempts"] > 7:
                        break
                    await trio.sleep(0.02)
            assert head["status"] == "retrying" and head["nextRetryAt"] is not None
            assert head["httpStatus"] is None and "Connect" in head["error"]
            receiver.respond = lambda n: 200
            await nursery.start(receiver.serve)  # back on the same port
            want = [h["seq"] for h in await all_changes(c, ["prod"], hook["cursor"])]
            await wait_for(receiver, lambda: len(receiver.delivered()) >= len(want))
            assert first_seen_order(receiver) == want
            assert [r.doc()["seq"] for r in receiver.delivered()] == want
            check_signed(receiver, hook["secret"])
            got = await settled(c, hook["id"], want[-1])
            assert got["state"] == "ok" and got["lastError"] is None
        nursery.cancel_scope.cancel()


async def test_a_restart_with_deliveries_pending_loses_none(tmp_path: Path) -> None:
    receiver = Receiver(lambda n: 503)
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        async with store(tmp_path) as c:
            hook = await hook_then_changes(c, receiver)
            want = [h["seq"] for h in await all_changes(c, ["prod"], hook["cursor"])]
            await wait_for(receiver, lambda: len(receiver.received) >= 3)
        # the store is down; changes wait in the history. The receiver recovers.
        assert receiver.delivered() == []
        receiver.respond = lambda n: 200
        async with store(tmp_path) as c:
            await wait_for(receiver, lambda: len(receiver.delivered()) >= len(want))
            assert [r.doc()["seq"] for r in receiver.delivered()] == want
            await settled(c, hook["id"], want[-1])
            r = await c.get(f"/api/v1/webhooks/{hook['id']}/deliveries")
            first = r.json()["items"][-1]
            assert first["seq"] == want[0] and first["attempts"] >= 4  # 3+ failed, 1 ok
            assert first["status"] == "delivered"
        nursery.cancel_scope.cancel()
