"""Issue 12, finding 1, against a real node: the inputs that used to end a worker get a 4xx.

Each attack is sent several times, so that both workers of the node (the kernel spreads
connections over them with ``SO_REUSEPORT``) receive it. Before the fix the stream listener's
worker exited on each of them (no answer at all, and a new worker pid) and the SDK listener
answered 500.
"""

from __future__ import annotations

import base64
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.node_proc import (
    NodeProcess,
    addr,
    bool_flag,
    create_env,
    open_stream,
    serve_argv,
)

pytestmark = pytest.mark.e2e

REPEAT = 4  # per attack: with two workers, the chance that one never sees it is 1/8
DEPTH = 300  # fits the 32 KiB head and orjson.loads; orjson.dumps stops at 254 levels
BAD_HASH = "%C3%A9"  # "é": not ASCII, so hmac.compare_digest refused the str


def deep_context() -> bytes:
    body = b'{"kind":"user","key":"deep","custom":' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
    return body + b"}"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


PLAIN = orjson.dumps({"kind": "user", "key": "bob"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = Path(tmp_path_factory.mktemp("contain")) / "data"
    node = NodeProcess(serve_argv(data), data).start()
    try:
        envs = {"test": create_env(node, "test"), "secure": create_env(node, "secure",
                                                                     secureMode=True)}
        both = {"usingEnvironmentId": True, "usingMobileKey": True}
        with node.admin as admin:
            for key in envs:
                r = admin.put(f"/api/v1/environments/{key}/flags/f",
                              json=bool_flag(clientSideAvailability=both))
                assert r.status_code == 201, r.text
        yield {"node": node, "envs": envs}
    finally:
        node.stop()


def stream_status(node: NodeProcess, request: bytes) -> int | None:
    """The status of a request on the stream listener; None when the connection closed
    without an answer (what a worker that exits does to it)."""
    buf = b""
    try:
        with socket.create_connection(addr(node.urls["stream"]), timeout=10) as sock:
            sock.sendall(request)
            deadline = time.monotonic() + 10
            while b"\r\n" not in buf and time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
    except OSError:  # refused (no worker listening) or reset
        return None
    line = buf.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) >= 2 and line[1].isdigit() else None


def stream_attacks(envs: dict[str, Any]) -> list[tuple[str, bytes]]:
    cid, mob = envs["test"]["clientSideId"], envs["test"]["mobileKey"]
    scid = envs["secure"]["clientSideId"]
    deep = deep_context()
    head = "Host: x\r\nConnection: close\r\n"
    return [
        ("GET /eval deep", f"GET /eval/{cid}/{b64(deep)} HTTP/1.1\r\n{head}\r\n".encode()),
        ("REPORT /eval deep", f"REPORT /eval/{cid} HTTP/1.1\r\n{head}Content-Type: "
         f"application/json\r\nContent-Length: {len(deep)}\r\n\r\n".encode() + deep),
        ("GET /meval deep", f"GET /meval/{b64(deep)} HTTP/1.1\r\n{head}Authorization: "
         f"{mob}\r\n\r\n".encode()),
        ("GET /eval bad hash", f"GET /eval/{scid}/{b64(PLAIN)}?h={BAD_HASH} HTTP/1.1\r\n"
         f"{head}\r\n".encode()),
    ]


def sdk_attacks(envs: dict[str, Any]) -> list[tuple[str, str, str, dict[str, str], bytes]]:
    cid, mob = envs["test"]["clientSideId"], envs["test"]["mobileKey"]
    scid = envs["secure"]["clientSideId"]
    deep = deep_context()
    json_type = {"Content-Type": "application/json"}
    return [
        ("GET evalx deep", "GET", f"/sdk/evalx/{cid}/contexts/{b64(deep)}", {}, b""),
        ("REPORT evalx deep", "REPORT", f"/sdk/evalx/{cid}/context", json_type, deep),
        ("GET msdk deep", "GET", f"/msdk/evalx/contexts/{b64(deep)}", {"Authorization": mob},
         b""),
        ("GET evalx bad hash", "GET",
         f"/sdk/evalx/{scid}/contexts/{b64(PLAIN)}?h={urllib.parse.unquote(BAD_HASH)}", {}, b""),
    ]


def wait_patch(sock: socket.socket, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(1.0)
    while b"event: patch" not in buf and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        buf += data
    return buf


def assert_contained(world: dict[str, Any], answers: Callable[[], dict[str, list[int | None]]],
                     flag_on: bool) -> None:
    """Every attack answered 400 each time, the same worker pids before and after, and a
    bystander ``/all`` stream opened before the attacks gets the patch of a later change."""
    node: NodeProcess = world["node"]
    pids = sorted(node.children())
    bystander, got = open_stream(node, world["envs"]["test"]["sdkKey"])
    try:
        assert b"event: put" in got
        got_answers = answers()
        assert got_answers == {name: [400] * REPEAT for name in got_answers}, got_answers
        with node.admin as admin:
            r = admin.patch("/api/v1/environments/test/flags/f", json={"on": flag_on})
            assert r.status_code == 200, r.text
        assert b"event: patch" in wait_patch(bystander, 10.0)
    finally:
        bystander.close()
    assert sorted(node.children()) == pids


# The SDK listener's test runs first: on the old code the stream listener's attacks end the
# workers, which serve both listeners.
def test_sdk_listener_answers_400(world: dict[str, Any]) -> None:
    def answers() -> dict[str, list[int | None]]:
        out: dict[str, list[int | None]] = {}
        with httpx.Client(base_url=world["node"].urls["sdk"], timeout=10) as sdk:
            for name, method, path, headers, body in sdk_attacks(world["envs"]):
                out[name] = [sdk.request(method, path, headers=headers, content=body)
                             .status_code for _ in range(REPEAT)]
        return out

    assert_contained(world, answers, flag_on=False)


def test_stream_listener_answers_400(world: dict[str, Any]) -> None:
    def answers() -> dict[str, list[int | None]]:
        return {name: [stream_status(world["node"], raw) for _ in range(REPEAT)]
                for name, raw in stream_attacks(world["envs"])}

    assert_contained(world, answers, flag_on=True)
