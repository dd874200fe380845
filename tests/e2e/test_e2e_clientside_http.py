"""Client-side and mobile endpoints over real HTTP against a running node: polls on the SDK
listener, streams on the stream listener (raw sockets), CORS, secure mode, error answers."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flagmodel import parse_context, secure_mode_hash
from streamer.fastpath.sse import ChunkedDecoder, SSEDecoder, SSEEvent
from tests.e2e.node_proc import NodeProcess, bool_flag, serve_argv

pytestmark = pytest.mark.e2e

JS_ONLY = {"clientSideAvailability": {"usingEnvironmentId": True, "usingMobileKey": False}}
MOBILE_ONLY = {"clientSideAvailability": {"usingEnvironmentId": False, "usingMobileKey": True}}


def b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


BOB = {"kind": "user", "key": "bob"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = Path(tmp_path_factory.mktemp("cs")) / "data"
    node = NodeProcess(serve_argv(data), data).start()
    try:
        envs = {}
        with node.admin as admin:
            for key, secure in (("test", False), ("secure", True)):
                r = admin.post("/api/v1/environments", json={"key": key, "name": key,
                                                             "secureMode": secure})
                assert r.status_code == 201, r.text
                envs[key] = r.json()
                for fkey, extra in (("js", JS_ONLY), ("mob", MOBILE_ONLY), ("srv", {})):
                    r = admin.put(f"/api/v1/environments/{key}/flags/{fkey}", json=bool_flag(
                        targets=[{"values": ["bob"], "variation": 1}], **extra))
                    assert r.status_code == 201, r.text
        with httpx.Client(base_url=node.urls["sdk"]) as sdk:
            yield {"node": node, "envs": envs, "sdk": sdk}
    finally:
        node.stop()


def test_polls_filter_by_availability_and_answer_reasons(world: dict[str, Any]) -> None:
    env, sdk = world["envs"]["test"], world["sdk"]
    cid = env["clientSideId"]
    r = sdk.get(f"/sdk/evalx/{cid}/contexts/{b64(BOB)}", headers={"Origin": "http://app"})
    assert r.status_code == 200
    assert r.json() == {"js": {"value": True, "variation": 1, "version": 1, "flagVersion": 1}}
    assert r.headers["access-control-allow-origin"] == "http://app"
    r = sdk.get(f"/sdk/evalx/{cid}/users/{b64({'key': 'amy'})}?withReasons=true")
    assert r.json() == {"js": {"value": False, "variation": 0, "version": 1, "flagVersion": 1,
                               "reason": {"kind": "FALLTHROUGH"}}}
    for path in ("/msdk/evalx/context", "/msdk/evalx/user"):
        r = sdk.request("REPORT", path, content=json.dumps(BOB),
                        headers={"Authorization": env["mobileKey"],
                                 "Content-Type": "application/json"})
        assert sorted(r.json()) == ["mob", "srv"], r.text
    r = sdk.get(f"/msdk/evalx/contexts/{b64(BOB)}", headers={"Authorization": env["mobileKey"]})
    assert sorted(r.json()) == ["mob", "srv"]
    r = sdk.request("REPORT", f"/sdk/evalx/{cid}/context", content=json.dumps(BOB),
                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert list(r.json()) == ["js"]
    r = sdk.get(f"/sdk/evalx/contexts/{b64(BOB)}", headers={"Authorization": env["sdkKey"]})
    assert sorted(r.json()) == ["js", "mob", "srv"]
    assert sdk.get(f"/sdk/goals/{cid}").json() == []


@pytest.mark.parametrize(("method", "path", "headers", "body", "status", "message"), [
    ("GET", "/sdk/evalx/nope/contexts/{ctx}", {}, None, 404, "unknown environment ID"),
    ("GET", "/sdk/goals/nope", {}, None, 404, "unknown environment ID"),
    ("GET", "/sdk/evalx/{cid}/contexts/%%%", {}, None, 400, "base64"),
    ("GET", "/sdk/evalx/{cid}/contexts/" + b64({"kind": "user"}), {}, None, 400, "key"),
    ("GET", "/sdk/evalx/{cid}/contexts/" + b64([1]), {}, None, 400, "JSON object"),
    ("REPORT", "/sdk/evalx/{cid}/context", {"Content-Type": "text/plain"}, "{}", 415, "json"),
    ("REPORT", "/sdk/evalx/{cid}/context", {"Content-Type": "application/json"}, "{", 400,
     "not valid JSON"),
    ("GET", "/msdk/evalx/contexts/{ctx}", {"Authorization": "mob-wrong"}, None, 401, "mobile"),
    ("GET", "/msdk/evalx/contexts/{ctx}", {}, None, 401, "mobile"),
    ("GET", "/sdk/evalx/contexts/{ctx}", {"Authorization": "sdk-wrong"}, None, 401, "SDK"),
])
def test_poll_errors(world: dict[str, Any], method: str, path: str, headers: dict[str, str],
                     body: str | None, status: int, message: str) -> None:
    cid = world["envs"]["test"]["clientSideId"]
    url = path.replace("{cid}", cid).replace("{ctx}", b64(BOB))
    r = world["sdk"].request(method, url, headers=headers, content=body)
    assert r.status_code == status, r.text
    assert message in r.json()["message"]


def test_secure_mode_on_polls(world: dict[str, Any]) -> None:
    env, sdk = world["envs"]["secure"], world["sdk"]
    url = f"/sdk/evalx/{env['clientSideId']}/contexts/{b64(BOB)}"
    assert "missing" in sdk.get(url).json()["message"]
    assert sdk.get(url + "?h=00ff").status_code == 400
    good = secure_mode_hash(env["sdkKey"], parse_context(BOB))
    r = sdk.get(f"{url}?h={good}")
    assert r.status_code == 200 and list(r.json()) == ["js"]
    # mobile and server-side keys are secrets already: no hash needed
    r = sdk.get(f"/msdk/evalx/contexts/{b64(BOB)}", headers={"Authorization": env["mobileKey"]})
    assert r.status_code == 200


@pytest.mark.parametrize("path", ["/sdk/evalx/{cid}/contexts/x", "/sdk/evalx/{cid}/users/x",
                                  "/sdk/evalx/{cid}/context", "/sdk/evalx/{cid}/user",
                                  "/sdk/goals/{cid}"])
def test_preflight_on_sdk_listener(world: dict[str, Any], path: str) -> None:
    url = path.replace("{cid}", world["envs"]["test"]["clientSideId"])
    r = world["sdk"].request("OPTIONS", url, headers={
        "Origin": "http://app", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://app"
    assert "X-LaunchDarkly-User-Agent" in r.headers["access-control-allow-headers"]
    assert "GET" in r.headers["access-control-allow-methods"]


class Stream:
    """A raw socket on the stream listener."""

    def __init__(self, node: NodeProcess, raw: bytes) -> None:
        host, port = node.urls["stream"].removeprefix("http://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.sendall(raw)
        self.head = b""
        self._rest = b""
        self._chunks, self._sse = ChunkedDecoder(), SSEDecoder()
        self.events: list[tuple[str, Any]] = []
        while b"\r\n\r\n" not in self.head:
            data = self.sock.recv(65536)
            if not data:
                break
            self.head += data
        self.head, _, rest = self.head.partition(b"\r\n\r\n")
        self._feed(rest)

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name:
                return v.strip()
        return None

    def _feed(self, data: bytes) -> None:
        if self.status != 200:
            self._rest += data
            return
        for item in self._sse.feed(self._chunks.feed(data)):
            if isinstance(item, SSEEvent):
                self.events.append((item.event, json.loads(item.data) if item.data.strip()
                                    else item.data))

    def wait_events(self, count: int, timeout: float = 10.0) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            self._feed(data)
        return self.events

    def body(self) -> bytes:
        self.sock.settimeout(5)
        while data := self.sock.recv(65536):
            self._rest += data
        return self._rest

    def close(self) -> None:
        self.sock.close()


def get(path: str, *headers: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: t\r\n" + "".join(h + "\r\n" for h in headers)
            + "\r\n").encode()


def report(path: str, body: bytes, *headers: str) -> bytes:
    return (f"REPORT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
            + "".join(h + "\r\n" for h in headers) + "\r\n").encode() + body


def _put_flag(world: dict[str, Any], key: str, **flag: Any) -> None:
    with world["node"].admin as admin:
        r = admin.put(f"/api/v1/environments/test/flags/{key}", json=bool_flag(**flag))
        assert r.status_code in (200, 201), r.text


def test_eval_stream_put_patch_delete(world: dict[str, Any]) -> None:
    node, env = world["node"], world["envs"]["test"]
    cid = env["clientSideId"]
    s = Stream(node, get(f"/eval/{cid}/{b64(BOB)}?withReasons=true", "Origin: http://app"))
    m = Stream(node, report("/meval", json.dumps(BOB).encode(), "Content-Type: application/json",
                            f"Authorization: api_key {env['mobileKey']}"))
    try:
        assert s.status == 200 and m.status == 200
        assert s.header("access-control-allow-origin") == "http://app"
        (event, body), = s.wait_events(1)
        assert event == "put" and list(body) == ["js"]
        assert body["js"]["reason"] == {"kind": "TARGET_MATCH"}
        assert sorted(m.wait_events(1)[0][1]) == ["mob", "srv"]
        _put_flag(world, "js", targets=[], **JS_ONLY)
        assert s.wait_events(2)[1] == ("patch", {
            "key": "js", "value": False, "variation": 0, "version": 2, "flagVersion": 2,
            "reason": {"kind": "FALLTHROUGH"}})
        _put_flag(world, "js", **MOBILE_ONLY)  # no longer for environment-ID clients
        assert s.wait_events(3)[2] == ("delete", {"key": "js", "version": 3})
        assert m.wait_events(2)[1][0] == "patch"
        assert m.events[1][1]["key"] == "js"
    finally:
        s.close()
        m.close()
        _put_flag(world, "js", targets=[{"values": ["bob"], "variation": 1}], **JS_ONLY)


def test_ping_streams_ping_on_connect_and_on_change(world: dict[str, Any]) -> None:
    node, env = world["node"], world["envs"]["test"]
    p = Stream(node, get(f"/ping/{env['clientSideId']}", "Origin: http://app"))
    mp = Stream(node, get("/mping", f"Authorization: {env['mobileKey']}"))
    try:
        assert p.header("access-control-allow-origin") == "http://app"
        assert [e for e, _ in p.wait_events(1)] == ["ping"]
        assert [e for e, _ in mp.wait_events(1)] == ["ping"]
        _put_flag(world, "srv", on=False)
        assert [e for e, _ in p.wait_events(2)] == ["ping", "ping"]  # jittered, <= 0.5 s
        assert [e for e, _ in mp.wait_events(2)] == ["ping", "ping"]
    finally:
        p.close()
        mp.close()


@pytest.mark.parametrize(("raw", "status", "message"), [
    (get("/eval/nope/{ctx}"), 404, b"unknown environment ID"),
    (get("/ping/nope"), 404, b"unknown environment ID"),
    (get("/meval/{ctx}", "Authorization: mob-wrong"), 401, b"unknown mobile key"),
    (get("/mping"), 401, b"Authorization"),
    (get("/eval/{cid}/%%%"), 400, b"base64"),
    (get("/eval/{cid}/" + b64({"kind": "user", "key": ""})), 400, b"key"),
    (report("/eval/{cid}", b"{}", "Content-Type: application/json"), 400, b"key"),
    (report("/eval/{cid}", b"{nope", "Content-Type: application/json"), 400, b"JSON"),
    (report("/eval/{cid}", b"{}", "Content-Type: text/plain"), 415, b"application/json"),
    (report("/eval/{cid}", b"x" * 40_000, "Content-Type: application/json"), 413, b"too large"),
    (get("/eval/{cid}"), 405, b"not allowed"),
    (get("/eval/{scid}/{ctx}"), 400, b"secure mode"),
])
def test_stream_errors(world: dict[str, Any], raw: bytes, status: int, message: bytes) -> None:
    envs = world["envs"]
    raw = (raw.replace(b"{cid}", envs["test"]["clientSideId"].encode())
           .replace(b"{scid}", envs["secure"]["clientSideId"].encode())
           .replace(b"{ctx}", b64(BOB).encode()))
    s = Stream(world["node"], raw)
    try:
        assert s.status == status, s.head
        assert message in s.body()
        assert s.header("access-control-allow-origin") == "*"
    finally:
        s.close()


def test_stream_secure_mode_accepts_the_right_hash(world: dict[str, Any]) -> None:
    env = world["envs"]["secure"]
    good = secure_mode_hash(env["sdkKey"], parse_context(BOB))
    s = Stream(world["node"], get(f"/eval/{env['clientSideId']}/{b64(BOB)}?h={good}"))
    try:
        assert s.status == 200 and s.wait_events(1)[0][0] == "put"
    finally:
        s.close()


@pytest.mark.parametrize("path", ["/eval/{cid}/x", "/eval/{cid}", "/ping/{cid}"])
def test_preflight_on_stream_listener(world: dict[str, Any], path: str) -> None:
    cid = world["envs"]["test"]["clientSideId"]
    s = Stream(world["node"], (f"OPTIONS {path.replace('{cid}', cid)} HTTP/1.1\r\nHost: t\r\n"
                               "Origin: http://app\r\n\r\n").encode())
    try:
        assert s.status == 200
        assert s.header("access-control-allow-origin") == "http://app"
        assert s.header("access-control-max-age") == "300"
        assert "GET" in (s.header("access-control-allow-methods") or "")
        assert s.body() == b""
    finally:
        s.close()


@pytest.mark.parametrize(("path", "ctype", "status"), [
    ("/sdk/evalx/{cid}/context", "text/plain", 415),  # refused from the head alone
    ("/sdk/evalx/nope/context", "application/json", 404),
    ("/bulk", "application/json", 401),
])
def test_keep_alive_survives_a_body_sent_after_the_answer(
        world: dict[str, Any], path: str, ctype: str, status: int) -> None:
    # Regression: when a refused request's body reached hypercorn after the answer, the
    # connection's next request was never answered.
    cid = world["envs"]["test"]["clientSideId"]
    host, port = world["node"].urls["sdk"].split("//")[1].rsplit(":", 1)
    method = "POST" if path == "/bulk" else "REPORT"
    body = json.dumps(BOB).encode()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"{method} {path.replace('{cid}', cid)} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        time.sleep(0.05)  # the answer is decided before the body arrives
        sock.sendall(body)
        first = _read_response(sock)
        assert first.startswith(f"HTTP/1.1 {status} ".encode()), first
        sock.sendall(f"GET /sdk/evalx/{cid}/contexts/{b64(BOB)} HTTP/1.1\r\nHost: x\r\n\r\n"
                     .encode())
        second = _read_response(sock)  # a socket timeout (5 s) here is the regression
        assert second.startswith(b"HTTP/1.1 200 "), second


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length body, from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, f"connection closed after {buf!r}"
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head
