"""The adversarial suite's own judge, without a node: which bytes make a complete answer,
what a hang looks like, and that hostile inputs render to the JSON text they claim."""

from __future__ import annotations

import socket

import orjson
import pytest

from tests.security.hostile_inputs import CANON_VALUES, Nest, Raw, context_with, render
from tests.security.hostile_node import _complete, exchange
from tests.security.routes import ROUTES, Cred, accepts

HEAD_200 = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"


@pytest.mark.parametrize(("data", "complete"), [
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nab", False),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc", True),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n", False),
    (HEAD_200, False),  # a stream: its head alone is not enough, the first event must come
    (HEAD_200 + b"5\r\n:\n\n\r\n", True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", False),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", False),  # no framing: read until the server closes
])  # fmt: skip
def test_complete_answers(data: bytes, complete: bool) -> None:
    assert _complete(data) is complete


@pytest.mark.parametrize(("value", "text"), [
    (Raw(b"1e400"), b"1e400"),
    (float("nan"), b"NaN"),
    (float("-inf"), b"-Infinity"),
    (2**70, b"1180591620717411303424"),
    ("\ud800", b'"\\ud800"'),
    (b"\xff", b'"\xff"'),
    (Nest(2), b'{"a":{"a":1}}'),
    (Nest(2, [], array=True), b"[[[]]]"),
    ({"k": ["\u00e9"]}, '{"k":["\u00e9"]}'.encode()),
])  # fmt: skip
def test_render(value: object, text: bytes) -> None:
    assert render(value) == text


def test_every_category_is_there_and_the_deep_context_parses() -> None:
    """The deep context of issue 12 is small enough to reach the server's context parser."""
    raw = render(context_with(CANON_VALUES["deep object 300"], "attribute"))
    assert len(raw) < 32 * 1024 and orjson.loads(raw)["key"] == "k"
    names = " ".join(CANON_VALUES)
    for word in ("deep", "1e400", "2**200", "NaN", "Infinity", "surrogate", "UTF-8", "long"):
        assert word in names


def test_every_listener_has_routes_and_each_route_one_credential_kind() -> None:
    listeners = {r.listener for r in ROUTES}
    assert listeners == {"stream", "sdk", "admin"}
    for route in ROUTES:
        kinds = ["sdk", "mobile", "client-side ID", "admin", "old sdk", "old mobile", "garbage"]
        taken = [k for k in kinds if accepts(route, k)]
        assert route.cred is Cred.NONE or ("garbage" not in taken and taken), route


def test_a_silent_server_is_a_hang_and_a_closed_port_refuses() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        where = server.getsockname()[:2]
        assert exchange(where, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=0.5).verdict == "hang"
    assert exchange(where, b"GET / HTTP/1.1\r\n\r\n", timeout=0.5).verdict == "refused"
