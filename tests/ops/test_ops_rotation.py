"""SDK and mobile key rotation in the store and the admin API: a new key at once, the old one
carried in ``oldKeys`` (and on the bus) until its grace period ends, then gone."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from store.db import FlagDB
from store.service import StoreConfig, run_store
from tests.e2e.node_proc import NodeProcess, addr, bool_flag, create_env

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


def test_db_keeps_the_kind_of_each_rotated_key(tmp_path: Path) -> None:
    clock = Clock()
    db = FlagDB(tmp_path, clock=clock)
    try:
        env = db.create_environment("prod", "Prod").env
        db.rotate_key("prod", "mobile", 30_000)
        msg = db.rotate_key("prod", "sdk", 60_000)
        assert msg is not None
        expected = ((env.sdk_key, 1_000_060_000),), ((env.mobile_key, 1_000_030_000),)
        assert (msg.env.old_sdk_keys, msg.env.old_mobile_keys) == expected
        for got in (db.get_environment("prod"), db.list_environments()[0],
                    db.snapshot("prod").envs[0].env):
            assert got is not None and (got.old_sdk_keys, got.old_mobile_keys) == expected
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
        ({"key": "client"}, 400, 'key: must be "sdk", "mobile" or "clientSide"'),
        ({}, 400, 'key: must be "sdk", "mobile" or "clientSide"'),
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


# -- on a real node: each rotated key authenticates only as the kind of key it was ----------

CONTEXT = base64.urlsafe_b64encode(b'{"kind": "user", "key": "u1"}').decode().rstrip("=")


def stream_status(node: NodeProcess, path: str, key: str | None) -> int:
    """The status of a stream request on the stream listener (the stream is then closed)."""
    auth = f"Authorization: {key}\r\n" if key is not None else ""
    with socket.create_connection(addr(node.urls["stream"]), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
        head = b""
        deadline = time.monotonic() + 10
        while b"\r\n" not in head and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def sdk_status(node: NodeProcess, method: str, path: str, key: str | None) -> int:
    """The status of a request on the SDK listener (an empty event payload for a POST)."""
    headers = {"Authorization": key} if key is not None else {}
    body = None if method != "POST" else b"{}" if "diagnostic" in path else b"[]"
    if body is not None:
        headers["Content-Type"] = "application/json"
    return httpx.request(method, node.urls["sdk"] + path, headers=headers, content=body,
                         timeout=10).status_code


# What each kind of credential may open: (listener, method, path-with-{key}, key in header).
SERVER_SIDE = [("stream", "GET", "/all", True), ("stream", "GET", "/flags", True),
               ("sdk", "GET", "/sdk/latest-all", True), ("sdk", "GET", "/sdk/latest-flags", True),
               ("sdk", "GET", f"/sdk/evalx/contexts/{CONTEXT}", True),
               ("sdk", "POST", "/bulk", True), ("sdk", "POST", "/diagnostic", True)]
MOBILE = [("stream", "GET", f"/meval/{CONTEXT}", True), ("stream", "GET", "/mping", True),
          ("sdk", "GET", f"/msdk/evalx/contexts/{CONTEXT}", True),
          ("sdk", "POST", "/mobile/events/bulk", True)]
ENV_ID = [("stream", "GET", f"/eval/{{key}}/{CONTEXT}", False),
          ("sdk", "GET", f"/sdk/evalx/{{key}}/contexts/{CONTEXT}", False)]


def statuses_keys(routes: list[tuple[str, str, str, bool]]) -> list[str]:
    return [f"{m} {p}" for _, m, p, _ in routes]


def statuses(node: NodeProcess, key: str, routes: list[tuple[str, str, str, bool]]
             ) -> dict[str, int]:
    """The status of every route with ``key``, in parallel (each refusal waits for the
    workers' unknown-credential hold, one second)."""
    def one(route: tuple[str, str, str, bool]) -> int:
        listener, method, path, in_header = route
        path = path.replace("{key}", key)
        header = key if in_header else None
        if listener == "stream":
            return stream_status(node, path, header)
        return sdk_status(node, method, path, header)

    with ThreadPoolExecutor(len(routes)) as pool:
        return dict(zip(statuses_keys(routes), pool.map(one, routes), strict=True))


def rotate(node: NodeProcess, which: str) -> dict[str, Any]:
    with node.admin as c:
        r = c.post("/api/v1/environments/rot/rotate", json={"key": which, "graceSeconds": 600})
    assert r.status_code == 200, r.text
    fresh: dict[str, Any] = r.json()
    new_key = fresh["sdkKey" if which == "sdk" else "mobileKey"]
    path = "/sdk/latest-all" if which == "sdk" else f"/msdk/evalx/contexts/{CONTEXT}"
    # Both workers apply the rotation from the same bus message: once the new key has
    # worked on ten fresh connections (spread over the workers), the rotation is there.
    ok = 0
    deadline = time.monotonic() + 20
    while ok < 10 and time.monotonic() < deadline:
        ok = ok + 1 if sdk_status(node, "GET", path, new_key) == 200 else 0
    assert ok == 10, f"the new {which} key does not work"
    return fresh


def test_rotated_keys_open_only_their_own_kind_on_a_node(node: NodeProcess) -> None:
    env = create_env(node, "rot")
    with node.admin as c:
        assert c.put("/api/v1/environments/rot/flags/f", json=bool_flag()).status_code == 201
    old_mobile, old_sdk = env["mobileKey"], env["sdkKey"]

    rotate(node, "mobile")
    got = statuses(node, old_mobile, SERVER_SIDE + MOBILE + ENV_ID)
    # In its grace period the old mobile key still serves the mobile endpoints, and never the
    # server-side payload (every rule and segment member list) or /bulk.
    assert got == {**{k: 401 for k in statuses_keys(SERVER_SIDE)},
                   **{k: 202 if k.startswith("POST") else 200 for k in statuses_keys(MOBILE)},
                   **{k: 404 for k in statuses_keys(ENV_ID)}}, got

    rotate(node, "sdk")
    got = statuses(node, old_sdk, SERVER_SIDE + MOBILE + ENV_ID)
    # The old SDK key serves the server-side endpoints in its grace period, and is no mobile key.
    assert got == {**{k: 202 if k.startswith("POST") else 200 for k in statuses_keys(SERVER_SIDE)},
                   **{k: 401 for k in statuses_keys(MOBILE)},
                   **{k: 404 for k in statuses_keys(ENV_ID)}}, got
    # The client-side ID is public and opens the environment-ID routes only.
    got = statuses(node, env["clientSideId"], SERVER_SIDE + MOBILE + ENV_ID)
    assert {k for k, v in got.items() if v == 200} == set(statuses_keys(ENV_ID)), got
