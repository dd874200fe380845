"""The webhook admin routes (store/webhooks/routes.py): validation, bounds, the secret shown
once, edits, deletes and the delivery records, on a real store."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from store.webhooks.policy import MAX_URL_LENGTH, WebhookPolicy
from store.webhooks.routes import RIGHTS
from tests.store.webhook_helpers import FAST, FLAG, store

BAD_BODIES = [
    ({}, "url: required string"),
    ([], "(root): expected an object"),
    ({"url": "ftp://example.com/"}, "only http:// and https://"),
    ({"url": "https://example.com/" + "a" * MAX_URL_LENGTH}, "at most"),
    ({"url": "https://u:p@example.com/"}, "credentials"),
    ({"url": "https://example.com/", "secret": "short"}, "secret: 16 to 256"),
    ({"url": "https://example.com/", "enabled": "yes"}, "enabled: expected boolean"),
    ({"url": "https://example.com/", "environments": []}, "environments: expected null"),
    ({"url": "https://example.com/", "environments": ["bad key!"]}, "invalid environment key"),
    ({"url": "https://example.com/", "environments": "prod"}, "environments: expected null"),
    ({"url": "https://example.com/", "kinds": ["users"]}, "kinds: 'users' is not one of"),
    ({"url": "https://example.com/", "kinds": ["flags"] * 101}, "a list of 1 to 100"),
    ({"url": "https://example.com/", "headers": {}}, "headers: unknown field"),
]


async def test_bad_bodies_get_a_400_naming_the_field(tmp_path: Path) -> None:
    async with store(tmp_path) as c:
        for body, message in BAD_BODIES:
            r = await c.post("/api/v1/webhooks", json=body)
            assert r.status_code == 400, (body, r.text)
            assert message in r.json()["error"]["message"], (body, r.text)
        r = await c.post("/api/v1/webhooks", content=b"url=x",
                         headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        assert (await c.get("/api/v1/webhooks")).json() == {"items": []}


async def test_create_shows_the_secret_once_and_edits_and_deletes(tmp_path: Path) -> None:
    async with store(tmp_path) as c:
        r = await c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/a",
                                                   "secret": "my-own-secret-1234"})
        assert r.status_code == 201
        made = r.json()
        assert made["secret"] == "my-own-secret-1234"
        assert made["id"].startswith("wh_") and made["createdBy"] == "token:bootstrap"
        assert made["environments"] is None and made["kinds"] is None and made["enabled"]
        r = await c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/b",
                                                   "enabled": False})
        generated = r.json()["secret"]
        assert generated.startswith("whsec_") and len(generated) > 40
        listed = (await c.get("/api/v1/webhooks")).json()["items"]
        assert [h["url"] for h in listed] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
        assert all("secret" not in h for h in listed)
        one = (await c.get(f"/api/v1/webhooks/{made['id']}")).json()
        assert "secret" not in one and one["url"] == made["url"]

        r = await c.patch(f"/api/v1/webhooks/{made['id']}", json={
            "environments": ["prod", "prod", "test"], "kinds": ["flags"], "enabled": False})
        assert r.status_code == 200, r.text
        assert (r.json()["environments"], r.json()["kinds"], r.json()["enabled"]) == (
            ["prod", "test"], ["flags"], False)
        r = await c.patch(f"/api/v1/webhooks/{made['id']}", json={"environments": None})
        assert r.json()["environments"] is None and r.json()["kinds"] == ["flags"]
        r = await c.patch(f"/api/v1/webhooks/{made['id']}", json={"url": "gopher://x"})
        assert r.status_code == 400
        r = await c.patch(f"/api/v1/webhooks/{made['id']}", json={"secret": "rotated-secret-xyz"})
        assert r.status_code == 200 and "secret" not in r.json()

        assert (await c.delete(f"/api/v1/webhooks/{made['id']}")).status_code == 204
        assert (await c.get(f"/api/v1/webhooks/{made['id']}")).status_code == 404
        assert (await c.delete(f"/api/v1/webhooks/{made['id']}")).status_code == 404
        assert len((await c.get("/api/v1/webhooks")).json()["items"]) == 1


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/webhooks/wh_nope"), ("PATCH", "/api/v1/webhooks/wh_nope"),
    ("DELETE", "/api/v1/webhooks/wh_nope"), ("GET", "/api/v1/webhooks/wh_nope/deliveries"),
    ("GET", "/api/v1/webhooks/" + "x" * 300)])
async def test_unknown_webhooks_are_404(tmp_path: Path, method: str, path: str) -> None:
    async with store(tmp_path) as c:
        r = await c.request(method, path, json={"enabled": True})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_the_number_of_webhooks_is_bounded(tmp_path: Path) -> None:
    policy = WebhookPolicy(max_webhooks=2, backoff_base_s=FAST.backoff_base_s)
    async with store(tmp_path, policy) as c:
        for n in range(2):
            r = await c.post("/api/v1/webhooks", json={"url": f"http://127.0.0.1:9/{n}"})
            assert r.status_code == 201
        r = await c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/3"})
        assert r.status_code == 409 and "at most 2 webhooks" in r.json()["error"]["message"]


async def test_deliveries_show_the_retrying_change(tmp_path: Path) -> None:
    policy = WebhookPolicy(deliveries_kept=3, backoff_base_s=0.01, backoff_cap_s=0.02)
    async with store(tmp_path, policy) as c:
        await c.post("/api/v1/environments", json={"key": "prod"})
        # nothing listens on port 9 of loopback: the change is retried
        hook = (await c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x"})).json()
        for bad in ("0", "4", "x", "-1"):
            r = await c.get(f"/api/v1/webhooks/{hook['id']}/deliveries", params={"limit": bad})
            assert r.status_code == 400 and "from 1 to 3" in r.text
        r = await c.get(f"/api/v1/webhooks/{hook['id']}/deliveries")
        assert r.status_code == 200 and r.json()["items"] == []
        assert r.json()["webhook"]["id"] == hook["id"]
        await c.put("/api/v1/environments/prod/flags/f", json=FLAG)
        with trio.fail_after(30):
            while True:
                doc = (await c.get(f"/api/v1/webhooks/{hook['id']}/deliveries")).json()
                if doc["items"] and doc["items"][0]["attempts"] >= 2:
                    break
                await trio.sleep(0.02)
        [record] = doc["items"]
        assert record["seq"] == hook["cursor"] + 1 and record["status"] == "retrying"
        assert record["httpStatus"] is None and "ConnectError" in record["error"]
        assert record["nextRetryAt"] is not None
        assert doc["webhook"]["state"] == "failing"
        assert doc["webhook"]["lastError"].startswith(f"change {record['seq']}: ConnectError")


def test_every_webhook_route_needs_admin() -> None:
    assert set(RIGHTS.values()) == {"admin"}
    assert len(RIGHTS) == 6
