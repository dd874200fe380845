"""The malformed-HTTP battery (tests/badinput/malformed.py) against a real node's three
listeners (stream, SDK, admin), all cases at once: every answer is a 4xx (or what the RFC
prescribes, see ``Case.also``) or a closed connection; never a 5xx, never a hang. Meanwhile
an SSE client stays connected, and afterwards it still receives a flag change and every
listener still answers."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.badinput.malformed import Case, cases, passed, run_case
from tests.e2e.node_proc import NodeProcess, bool_flag, create_env, serve_argv, wait_for_bytes

HEADER_TIMEOUT = "2"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data = tmp_path_factory.mktemp("badhttp") / "data"
    n = NodeProcess(serve_argv(data, workers=1, extra=["--header-timeout", HEADER_TIMEOUT]),
                    data).start()
    try:
        yield n
    finally:
        n.stop()


def _addr(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def _open_stream(addr: tuple[str, int], sdk_key: str) -> socket.socket:
    sock = socket.create_connection(addr, timeout=10)
    sock.sendall(f"GET /all HTTP/1.1\r\nHost: x\r\nAuthorization: {sdk_key}\r\n\r\n".encode())
    buf = b""
    deadline = time.monotonic() + 10
    while b"event: put" not in buf and time.monotonic() < deadline:
        buf += sock.recv(65536)
    assert b" 200 " in buf.split(b"\r\n", 1)[0] and b"event: put" in buf, buf[:300]
    return sock


def test_malformed_http_battery(node: NodeProcess) -> None:
    env = create_env(node, "bad")
    listeners = {
        "stream": (_addr(node.urls["stream"]), "/all", "/all", env["sdkKey"]),
        "sdk": (_addr(node.urls["sdk"]), "/sdk/latest-all", "/bulk", env["sdkKey"]),
        "admin": (_addr(node.urls["admin"]), "/api/v1/environments", "/api/v1/environments",
                  f"Bearer {node.token}"),
    }
    bystander = _open_stream(listeners["stream"][0], env["sdkKey"])
    jobs: list[tuple[str, tuple[str, int], Case]] = []
    for name, (addr, get_path, post_path, auth) in listeners.items():
        hostport = f"{addr[0]}:{addr[1]}"
        jobs += [(name, addr, c) for c in cases(hostport, get_path, post_path, auth)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        verdicts = list(pool.map(lambda j: run_case(j[1], j[2]), jobs))
    failures = [f"{name}: {c.name}: {v}" for (name, _, c), v in zip(jobs, verdicts, strict=True)
                if not passed(c, v)]
    tally = Counter((name, v) for (name, _, _), v in zip(jobs, verdicts, strict=True))
    print(f"\nmalformed HTTP: {len(jobs)} requests, verdicts {dict(sorted(tally.items()))}")
    assert not failures, failures

    # Everyone else is still served: the bystander stream gets the next change ...
    with node.admin as admin:
        r = admin.put("/api/v1/environments/bad/flags/after-battery", json=bool_flag())
        assert r.status_code == 201, r.text
    try:
        assert wait_for_bytes(bystander, b"after-battery", 10.0), "bystander stream got no patch"
    finally:
        bystander.close()
    # ... and every listener answers a new, well-formed request.
    _open_stream(listeners["stream"][0], env["sdkKey"]).close()
    r = httpx.get(node.urls["sdk"] + "/sdk/latest-all", headers={"Authorization": env["sdkKey"]})
    assert r.status_code == 200 and "after-battery" in r.text
    assert httpx.get(node.urls["admin"] + "/healthz").status_code == 200


def test_battery_detects_a_hang() -> None:
    """The verdict "hang" is real: a listener that accepts and never answers gets it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        verdict = run_case(server.getsockname()[:2],
                           Case("silence", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), hang_after=1.0)
    assert verdict == "hang"
    assert not passed(Case("x", b""), "500") and not passed(Case("x", b""), "hang")
