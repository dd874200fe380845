"""HTTP edges on a real node's three listeners, over raw sockets (issue 12, finding 6).

* hypercorn listeners (SDK, admin): a request with both Content-Length and Transfer-Encoding
  gets a 400 and its connection is closed (RFC 9112 §6.1); a body on a GET that arrives after
  the head does not stop the pipelined request behind it from being answered.
* the stream listener: more than 100 header lines is a 431; an error answer never repeats
  the client's bytes.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.node_proc import NodeProcess, addr, serve_argv

WAIT_S = 5.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data: Path = tmp_path_factory.mktemp("edges") / "data"
    proc = NodeProcess(serve_argv(data, workers=1), data).start()
    try:
        yield proc
    finally:
        proc.stop()


def exchange(url: str, parts: list[bytes], done: Callable[[bytes], bool]) -> tuple[bytes, bool]:
    """Send ``parts`` 50 ms apart; read until ``done(received)``, EOF or WAIT_S. Returns what
    came and whether the server closed the connection."""
    sock = socket.create_connection(addr(url), timeout=WAIT_S)
    received = b""
    try:
        for part in parts:
            sock.sendall(part)
            time.sleep(0.05)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not done(received):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return received, True
            received += chunk
        return received, False
    finally:
        sock.close()


def never(_: bytes) -> bool:
    return False


@pytest.mark.parametrize("listener", ["sdk", "admin"])
def test_content_length_with_transfer_encoding_is_refused_and_closed(
        node: NodeProcess, listener: str) -> None:
    head = (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    got, closed = exchange(node.urls[listener], [head, b"0\r\n\r\n"], never)
    assert got.startswith(b"HTTP/1.1 400 "), got
    assert b"ambiguous" in got
    assert closed, "the connection stayed open after an ambiguously framed request"


@pytest.mark.parametrize("listener", ["sdk", "admin"])
@pytest.mark.parametrize("body", [b"Content-Length: 5\r\n\r\n|hello",
                                  b"Transfer-Encoding: chunked\r\n\r\n|5\r\nhello\r\n0\r\n\r\n"],
                         ids=["length", "chunked"])
def test_a_get_body_does_not_stall_the_next_pipelined_request(
        node: NodeProcess, listener: str, body: bytes) -> None:
    framing, content = body.split(b"|")
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + framing
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    # The body comes after the head: the answer is decided before it arrives.
    got, _ = exchange(node.urls[listener], [first, content + second],
                      lambda b: b.count(b"HTTP/1.1 200 ") >= 2)
    assert got.count(b"HTTP/1.1 200 ") == 2, got


def lines_head(count: int) -> bytes:
    return (b"GET /all HTTP/1.1\r\nHost: x\r\nAuthorization: k\r\n"
            + b"".join(b"X-%d: y\r\n" % i for i in range(count - 2)) + b"\r\n")


def test_stream_listener_limits_header_lines(node: NodeProcess) -> None:
    got, closed = exchange(node.urls["stream"], [lines_head(101)], never)
    assert got.startswith(b"HTTP/1.1 431 "), got
    assert b"too many request header lines" in got and closed
    got, _ = exchange(node.urls["stream"], [lines_head(100)], never)
    assert got.startswith(b"HTTP/1.1 401 "), got  # read, routed: the key is unknown


@pytest.mark.parametrize("raw", [
    b"GET /all HTTP/1.1\r\nHost: x\r\n<script>MARK</script>\r\n\r\n",
    b"GET /<script>MARK</script> HTTP/1.1\r\nHost: x\r\nAuthorization: k\r\n\r\n",
    b"GET /all?filter=%3Cscript%3EMARK HTTP/1.1\r\nHost: x\r\nAuthorization: k\r\n\r\n",
], ids=["bad-header", "path", "filter"])
def test_stream_listener_errors_do_not_echo_the_request(node: NodeProcess, raw: bytes) -> None:
    got, closed = exchange(node.urls["stream"], [raw], never)
    assert got.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 404 ")), got
    assert b"MARK" not in got and closed
