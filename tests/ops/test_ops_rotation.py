"""SDK and mobile key rotation in the store and the admin API: a new key at once, the old one
carried in ``oldKeys`` (and on the bus) until its grace period ends, then gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from store.db import FlagDB
from store.service import StoreConfig, run_store

TOKEN = "rotation-test-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_db_rotation_grace_and_expiry(tmp_path: Path) -> None:
    clock = Clock()
    db = FlagDB(tmp_path, clock=clock)
    try:
        env = db.create_environment("prod", "Prod").env
        msg = db.rotate_key("prod", "sdk", 60_000)
        assert msg is not None
        new = msg.env
        assert new.sdk_key != env.sdk_key and new.sdk_key.startswith("sdk-")
        assert new.mobile_key == env.mobile_key and new.client_side_id == env.client_side_id
        assert new.old_keys == ((env.sdk_key, 1_000_000_000 + 60_000),)
        assert msg.seq == db.latest_seq() == 2
        snap = db.snapshot(None)
        assert snap.envs[0].env == new  # snapshots carry the grace list too
        m = db.rotate_key("prod", "mobile", 0)  # no grace: the old mobile key stops at once
        assert m is not None and m.env.mobile_key != env.mobile_key
        assert [k for k, _ in m.env.old_keys] == [env.sdk_key]
        clock.now += 60.0  # the SDK key's grace has ended
        got = db.get_environment("prod")
        assert got is not None and got.old_keys == () and got.sdk_key == new.sdk_key
        assert db.rotate_key("nope", "sdk", 1) is None
        with pytest.raises(ValueError):
            db.rotate_key("prod", "client", 1)
        assert db.revisions() == {"prod": 3}
    finally:
        db.close()


def test_rotation_survives_reopen(tmp_path: Path) -> None:
    clock = Clock()
    db = FlagDB(tmp_path, clock=clock)
    old = db.create_environment("prod", "Prod").env.sdk_key
    db.rotate_key("prod", "sdk", 10_000)
    db.close()
    db = FlagDB(tmp_path, clock=clock)
    try:
        got = db.get_environment("prod")
        assert got is not None and [k for k, _ in got.old_keys] == [old]
    finally:
        db.close()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    cfg = StoreConfig(data_dir=tmp_path / "data", admin_bind=("127.0.0.1", 0),
                      admin_token=TOKEN, bus_address=f"ipc://{tmp_path}/bus",
                      snapshot_address=f"ipc://{tmp_path}/snap", key_grace_s=120.0,
                      insights=False)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(run_store, cfg)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            yield c
        nursery.cancel_scope.cancel()


async def test_admin_rotate(client: httpx.AsyncClient) -> None:
    env = (await client.post("/api/v1/environments", json={"key": "prod"})).json()
    r = await client.post("/api/v1/environments/prod/rotate", json={"key": "sdk"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["sdkKey"] != env["sdkKey"] and body["mobileKey"] == env["mobileKey"]
    (old,) = body["oldKeys"]
    assert old["key"] == env["sdkKey"]
    r = await client.post("/api/v1/environments/prod/rotate",
                          json={"key": "mobile", "graceSeconds": 5})
    assert r.status_code == 200
    olds = {o["key"]: o["expiresAt"] for o in r.json()["oldKeys"]}
    assert set(olds) == {env["sdkKey"], env["mobileKey"]}
    # the default grace (120 s) versus the requested 5 s
    assert 114_000 <= olds[env["sdkKey"]] - olds[env["mobileKey"]] <= 116_000
    assert (await client.get("/api/v1/environments/prod")).json()["oldKeys"] == r.json()["oldKeys"]
    hist = (await client.get("/api/v1/environments/prod/changes")).json()["items"]
    assert hist[0]["kind"] == "environment"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"key": "client"}, 400, 'key: must be "sdk" or "mobile"'),
        ({}, 400, 'key: must be "sdk" or "mobile"'),
        ([], 400, "expected an object"),
        ({"key": "sdk", "graceSeconds": -1}, 400, "graceSeconds"),
        ({"key": "sdk", "graceSeconds": True}, 400, "graceSeconds"),
        ({"key": "sdk", "graceSeconds": 10**9}, 400, "graceSeconds"),
    ],
)
async def test_admin_rotate_bad_input(client: httpx.AsyncClient, body: Any, status: int,
                                      message: str) -> None:
    await client.post("/api/v1/environments", json={"key": "prod"})
    r = await client.post("/api/v1/environments/prod/rotate", json=body)
    assert r.status_code == status and message in r.json()["error"]["message"], r.text


async def test_admin_rotate_unknown_env_and_auth(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/environments/nope/rotate", json={"key": "sdk"})
    assert r.status_code == 404
    env = (await client.post("/api/v1/environments", json={"key": "prod"})).json()
    # an SDK key, a mobile key or a client-side ID is never an admin credential
    for cred in (env["sdkKey"], env["mobileKey"], env["clientSideId"]):
        for header in (f"Bearer {cred}", cred, f"api_key {cred}"):
            r = await client.post("/api/v1/environments/prod/rotate", json={"key": "sdk"},
                                  headers={"Authorization": header})
            assert r.status_code == 401
            r = await client.get("/api/v1/environments", headers={"Authorization": header})
            assert r.status_code == 401
