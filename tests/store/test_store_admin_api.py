"""The admin API over real HTTP: run_store on 127.0.0.1 port 0, httpx as the client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from quart_trio import QuartTrio

from store.service import StoreConfig, run_store

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLAG = {"variations": [True, False], "on": True, "fallthrough": {"variation": 0}}
MAX_BODY = 20_000


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    cfg = StoreConfig(
        data_dir=tmp_path / "data",
        admin_bind=("127.0.0.1", 0),
        admin_token=TOKEN,
        bus_address=f"ipc://{tmp_path}/bus",
        snapshot_address=f"ipc://{tmp_path}/snap",
        max_body_bytes=MAX_BODY,
    )
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(run_store, cfg)
        async with httpx.AsyncClient(
            base_url=f"http://{host}:{port}", headers=AUTH, timeout=10
        ) as c:
            yield c
        nursery.cancel_scope.cancel()


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["code"], str)
    err: dict[str, Any] = body["error"]
    return err


async def token_headers(c: httpx.AsyncClient, name: str, role: str = "editor") -> dict[str, str]:
    """Headers that authenticate as a new API token ``name`` (actor ``token:<name>``)."""
    r = await c.post("/api/v1/tokens", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def make_env(c: httpx.AsyncClient, key: str = "prod") -> dict[str, Any]:
    r = await c.post("/api/v1/environments", json={"key": key, "name": key.title()})
    assert r.status_code == 201, r.text
    env: dict[str, Any] = r.json()
    return env


async def test_environments(client: httpx.AsyncClient) -> None:
    env = await make_env(client)
    assert set(env) == {"key", "name", "sdkKey", "mobileKey", "clientSideId", "secureMode",
                        "requireApproval"}
    assert env["key"] == "prod" and env["name"] == "Prod" and env["sdkKey"].startswith("sdk-")
    assert env["mobileKey"].startswith("mob-") and len(env["clientSideId"]) == 24
    err = error_of(await client.post("/api/v1/environments", json={"key": "prod"}), 409)
    assert err["code"] == "conflict" and "already exists" in err["message"]
    await make_env(client, "test")
    r = await client.get("/api/v1/environments")
    assert r.status_code == 200 and [e["key"] for e in r.json()["items"]] == ["prod", "test"]
    r = await client.get("/api/v1/environments/prod")
    assert r.status_code == 200 and r.json() == env
    error_of(await client.get("/api/v1/environments/nope"), 404)


@pytest.mark.parametrize("kind", ["flags", "segments"])
async def test_item_lifecycle(client: httpx.AsyncClient, kind: str) -> None:
    await make_env(client)
    base = f"/api/v1/environments/prod/{kind}"
    body = FLAG if kind == "flags" else {"included": ["u1"]}
    r = await client.put(f"{base}/x", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["key"] == "x" and created["version"] == 1 and created["deleted"] is False
    assert created["rules"] == [] and isinstance(created["salt"], str)
    r = await client.put(f"{base}/x", json={**body, "version": 99})
    assert r.status_code == 200 and r.json()["version"] == 2  # the server assigns versions
    assert r.json()["salt"] == created["salt"]
    patch = {"on": False} if kind == "flags" else {"excluded": ["u2"]}
    for ctype in ("application/json", "application/merge-patch+json"):
        r = await client.patch(
            f"{base}/x",
            content=httpx.Response(200, json=patch).content,
            headers={"Content-Type": ctype},
        )
        assert r.status_code == 200, r.text
    assert r.json()["version"] == 4
    r = await client.get(f"{base}/x")
    assert r.status_code == 200 and r.json()["version"] == 4
    await client.put(f"{base}/y", json=body)
    r = await client.get(base)
    assert [i["key"] for i in r.json()["items"]] == ["x", "y"]
    r = await client.delete(f"{base}/x")
    assert r.status_code == 204 and r.content == b""
    error_of(await client.get(f"{base}/x"), 404)
    error_of(await client.delete(f"{base}/x"), 404)
    error_of(await client.patch(f"{base}/x", json=patch), 404)
    r = await client.get(base)
    assert [i["key"] for i in r.json()["items"]] == ["y"]  # tombstones left out
    r = await client.put(f"{base}/x", json=body)
    assert r.status_code == 201 and r.json()["version"] == 6  # after the tombstone's 5


async def test_validation_errors_name_the_path(client: httpx.AsyncClient) -> None:
    await make_env(client)
    bad = {
        **FLAG,
        "rules": [
            {
                "variation": 0,
                "clauses": [
                    {"attribute": "a", "op": "in", "values": [1]},
                    {"attribute": "a", "op": "foo", "values": []},
                ],
            }
        ],
    }
    err = error_of(await client.put("/api/v1/environments/prod/flags/f", json=bad), 400)
    assert err["code"] == "invalid"
    assert 'rules[0].clauses[1].op: unknown operator "foo"' in err["message"]
    assert err["details"] == ['rules[0].clauses[1].op: unknown operator "foo"']
    err = error_of(
        await client.put("/api/v1/environments/prod/flags/f", json={**FLAG, "key": "g"}), 400
    )
    assert "does not match the key in the path" in err["message"]
    await client.put("/api/v1/environments/prod/flags/f", json=FLAG)
    err = error_of(
        await client.patch(
            "/api/v1/environments/prod/flags/f", json={"fallthrough": {"variation": 3}}
        ),
        400,
    )
    assert err["message"].startswith("fallthrough.variation: variation index 3 is out of range")


async def test_changes_are_newest_first_and_paginated(client: httpx.AsyncClient) -> None:
    await make_env(client)
    for i in range(5):
        await client.put(
            "/api/v1/environments/prod/flags/f",
            json={**FLAG, "offVariation": i % 2},
            headers=await token_headers(client, f"user{i}"),
        )
    r = await client.get("/api/v1/environments/prod/changes", params={"limit": 2})
    page = r.json()
    assert [c["actor"] for c in page["items"]] == ["token:user4", "token:user3"]
    assert page["items"][0]["after"]["version"] == 5 and page["items"][0]["before"]["version"] == 4
    seen = [c["seq"] for c in page["items"]]
    for _ in range(10):
        if page["next"] is None:
            break
        page = (
            await client.get(
                "/api/v1/environments/prod/changes", params={"limit": 2, "before": page["next"]}
            )
        ).json()
        seen += [c["seq"] for c in page["items"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == 6  # 5 writes + env creation
    for q in ("limit=0", "limit=501", "limit=x", "before=-1", "before=abc"):
        error_of(await client.get(f"/api/v1/environments/prod/changes?{q}"), 400)


async def test_changes_filters(client: httpx.AsyncClient) -> None:
    await make_env(client)
    base = "/api/v1/environments/prod"
    who = {name: await token_headers(client, name) for name in ("alice", "bob")}
    for key, name in (("a", "alice"), ("b", "bob"), ("a", "bob")):
        r = await client.put(f"{base}/flags/{key}", json=FLAG, headers=who[name])
        assert r.status_code in (200, 201), r.text

    async def seen(**params: str) -> list[tuple[str, str, str]]:
        r = await client.get(f"{base}/changes", params=params)
        assert r.status_code == 200, r.text
        return [(c["kind"], c["key"], c["actor"]) for c in r.json()["items"]]

    assert await seen(kind="flags", key="a") == [("flags", "a", "token:bob"),
                                                 ("flags", "a", "token:alice")]
    assert await seen(actor="token:alice") == [("flags", "a", "token:alice")]
    assert await seen(kind="environment") == [("environment", "prod", "token:bootstrap")]
    first = (await client.get(f"{base}/changes")).json()["items"][0]
    assert first["at"].endswith("Z") and isinstance(first["atMs"], int)
    assert await seen(since=first["at"], actor="token:bob") == [("flags", "a", "token:bob")]
    assert await seen(since=str(first["atMs"] + 1)) == []
    assert len(await seen(since="2020-01-01")) == 4
    for query, name in (("kind=flag", "kind"), ("key=a%20b", "key"), ("since=yesterday", "since"),
                        ("since=-5", "since"), ("actor=%07", "actor")):
        err = error_of(await client.get(f"{base}/changes?{query}"), 400)
        assert name in err["message"], (query, err)


async def test_audit_lines_for_writes_and_auth_failures(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    alice = await token_headers(client, "alice")  # before the capture: its line is not tested
    caplog.set_level(logging.INFO, logger="flagstream.audit")
    await make_env(client)
    r = await client.put("/api/v1/environments/prod/flags/f", json=FLAG, headers={
        **alice, "X-Flagstream-Actor": "mallory",  # ignored: the token says who
        "X-Flagstream-Comment": 'launch "day" actor=mallory'})
    assert r.status_code == 201
    await client.get("/api/v1/environments/prod/flags/f")  # a read: no line
    r = await client.get("/api/v1/environments", headers={"Authorization": "Bearer guess-123"})
    assert r.status_code == 401
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "flagstream.audit"]
    assert lines == [
        'admin write: actor="token:bootstrap" method=POST path="/api/v1/environments" env=prod '
        "kind=- key=- version=- status=201",
        'admin write: actor="token:alice" method=PUT path="/api/v1/environments/prod/flags/f" '
        'env=prod kind=flags key=f version=1 status=201 comment="launch \\"day\\" actor=mallory"',
        'auth failed: addr=127.0.0.1 method=GET path="/api/v1/environments"',
    ]


async def test_import_strict_and_lenient(client: httpx.AsyncClient) -> None:
    await make_env(client)
    data = {
        "flags": {"good": FLAG, "bad": {**FLAG, "offVariation": 7}},
        "segments": {"s": {"included": ["u"]}},
    }
    err = error_of(await client.post("/api/v1/environments/prod/import", json=data), 400)
    assert "flags.bad.offVariation: variation index 7" in err["message"]
    assert (await client.get("/api/v1/environments/prod/flags")).json()["items"] == []
    r = await client.post("/api/v1/environments/prod/import?lenient=true", json=data)
    assert r.status_code == 200, r.text
    assert r.json()["flags"] == 2 and r.json()["segments"] == 1
    assert r.json()["invalid"] == [
        "flags.bad.offVariation: variation index 7 is out of range (the flag has 2 variations)"
    ]
    items = (await client.get("/api/v1/environments/prod/flags")).json()["items"]
    assert [(i["key"], i["version"]) for i in items] == [("bad", 1), ("good", 1)]
    changes = (await client.get("/api/v1/environments/prod/changes")).json()["items"]
    assert changes[0]["kind"] == "import" and changes[0]["seq"] == r.json()["seq"]
    error_of(await client.post("/api/v1/environments/prod/import?lenient=maybe", json=data), 400)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ],
)
async def test_auth_is_required(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    client.headers.pop("Authorization")
    for method, path in [
        ("GET", "/api/v1/environments"),
        ("POST", "/api/v1/environments"),
        ("PUT", "/api/v1/environments/prod/flags/f"),
        ("GET", "/api/v1/environments/prod/changes"),
        ("GET", "/nope"),
    ]:
        r = await client.request(method, path, headers=headers, json={"key": "x"})
        assert error_of(r, 401)["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    for path in ("/healthz", "/readyz"):
        assert (await client.get(path, headers=headers)).status_code == 200


async def test_error_statuses(client: httpx.AsyncClient) -> None:
    await make_env(client)
    url = "/api/v1/environments/prod/flags/f"
    assert error_of(
        await client.put(url, content=b"{", headers={"Content-Type": "application/json"}), 400
    )["message"].startswith("malformed JSON")
    error_of(await client.put(url, content=b"{}", headers={"Content-Type": "text/plain"}), 415)
    error_of(await client.put(url, content=b"{}"), 415)
    error_of(
        await client.patch(url, content=b"{}", headers={"Content-Type": "application/xml"}), 415
    )
    big = b'{"variations": ["' + b"x" * MAX_BODY + b'"]}'
    assert (
        error_of(
            await client.put(url, content=big, headers={"Content-Type": "application/json"}), 413
        )["code"]
        == "too_large"
    )
    error_of(await client.get("/api/v1/nothing"), 404)
    error_of(await client.post("/api/v1/environments/prod/flags/f", json=FLAG), 405)
    error_of(await client.put("/api/v1/environments/nope/flags/f", json=FLAG), 404)
    error_of(await client.get("/api/v1/environments/prod/widgets"), 404)


async def test_body_too_large_without_content_length(client: httpx.AsyncClient) -> None:
    await make_env(client)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"variations": ["'
        for _ in range(30):
            yield b"y" * 1000
        yield b'"]}'

    r = await client.put(
        "/api/v1/environments/prod/flags/f",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    error_of(r, 413)


JUNK_BODIES: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b"42",
    b'"str"',
    b"true",
    b"{]",
    b"\xff\xfe",
    b'{"a": "\xed\xa0\x80"}',
    b'{"variations": [NaN]}',
    b'{"variations": [1e999999]}',
    b'{"on": 1' + b"0" * 400 + b"}",
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 100 + b"1" + b"}" * 100,
    b'{"\\ud800": 1}',
    b'{"rules": [{"clauses": [{"op": {"$ne": 1}}]}]}',
    b'{"fallthrough": {"rollout": "x"}}',
    b'{"prerequisites": [null]}',
    b'{"targets": [{"values": null, "variation": null}]}',
    '{"variations": ["\u202e\U0001f4a9"], "salt": "\u0000"}'.encode(),
]
BAD_PATHS = [
    "/api/v1/environments/prod/flags/a%20b",
    "/api/v1/environments/prod/flags/%00",
    "/api/v1/environments/pr%C3%B6d/flags/f",
    "/api/v1/environments/prod/flags/" + "k" * 300,
    "/api/v1/environments/prod/flags/%E2%80%AE",
    "/api/v1/environments/prod/flags/..%2F..",
    "/api/v1/environments/%FF/flags/f",
]


async def test_never_500_for_bad_input(client: httpx.AsyncClient) -> None:
    await make_env(client)
    await client.put("/api/v1/environments/prod/flags/f", json=FLAG)
    statuses = []
    for body in JUNK_BODIES:
        for method, url, ctype in [
            ("PUT", "/api/v1/environments/prod/flags/g", "application/json"),
            ("PATCH", "/api/v1/environments/prod/flags/f", "application/merge-patch+json"),
            ("PUT", "/api/v1/environments/prod/segments/s", "application/json"),
            ("POST", "/api/v1/environments", "application/json"),
            ("POST", "/api/v1/environments/prod/import", "application/json"),
        ]:
            r = await client.request(method, url, content=body, headers={"Content-Type": ctype})
            statuses.append(r.status_code)
            assert r.status_code < 500, (method, url, body[:60], r.text)
            if r.status_code >= 400:
                error_of(r, r.status_code)
    assert statuses.count(400) > len(statuses) // 2
    for path in BAD_PATHS:
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            r = await client.request(method, path, json=FLAG)
            assert r.status_code in (400, 404), (method, path, r.text)
            error_of(r, r.status_code)
    # the store still works afterwards, and the junk never changed the good flag
    r = await client.get("/api/v1/environments/prod/flags/f")
    assert r.status_code == 200 and r.json()["version"] == 1


async def test_extra_routes_inherit_auth(tmp_path: Path) -> None:
    from store.admin_app import create_admin_app
    from store.db import FlagDB
    from store.writer import Writer

    def register(app: QuartTrio) -> None:
        @app.get("/api/v1/insights")
        async def insights() -> dict[str, Any]:
            return {"ok": True}

        @app.get("/api/v1/unlisted")  # no permission entry: refused to everyone
        async def unlisted() -> dict[str, Any]:
            return {"ok": True}

    class NoPublisher:
        async def publish(self, msg: Any) -> None:
            pass

    db = FlagDB(tmp_path)
    app = create_admin_app(
        writer=Writer(db, NoPublisher()), db=db, token=TOKEN, extra_routes=[register],
        extra_rights=[{("GET", "/api/v1/insights"): "read"}],
    )
    test_client = app.test_client()
    assert (await test_client.get("/api/v1/insights")).status_code == 401
    r = await test_client.get("/api/v1/insights", headers=AUTH)
    assert r.status_code == 200 and await r.get_json() == {"ok": True}
    r = await test_client.get("/api/v1/unlisted", headers=AUTH)
    assert r.status_code == 403 and "no entry in the permission table" in (await r.get_json())[
        "error"]["message"]
    db.close()
