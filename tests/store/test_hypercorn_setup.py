"""hypercorn as flagstream configures it: a reason phrase on every status line, and no
``Running on`` lines of its own (the node prints one ``listening`` line per listener)."""

from __future__ import annotations

import logging
from functools import partial
from http import HTTPStatus

import h11
import pytest
import trio
from hypercorn.trio import serve
from quart import Response
from quart_trio import QuartTrio

from store.hypercorn_setup import HTTP_LOG, base_config, reason_phrase, with_reason

STATUSES = [100, 200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422,
            429, 431, 500, 503, 505]


@pytest.mark.parametrize("status", STATUSES)
def test_with_reason_fills_the_standard_phrase(status: int) -> None:
    cls = h11.InformationalResponse if status < 200 else h11.Response
    event = with_reason(cls(status_code=status, headers=[("content-length", "0")]))
    assert event.reason == HTTPStatus(status).phrase.encode()
    assert event.headers == cls(status_code=status, headers=[("content-length", "0")]).headers


@pytest.mark.parametrize(("event", "reason"), [
    (h11.Response(status_code=503, headers=[], reason="Busy"), b"Busy"),  # a given one stays
    (h11.Response(status_code=599, headers=[]), b""),  # no standard phrase: none
])  # fmt: skip
def test_with_reason_keeps_what_it_cannot_improve(event: h11.Response, reason: bytes) -> None:
    assert with_reason(event).reason == reason
    assert reason_phrase(599) == b""


def test_other_events_pass_unchanged() -> None:
    data = h11.Data(data=b"x")
    assert with_reason(data) is data


async def exchange(port: int, request: bytes) -> bytes:
    """The status line of the answer to ``request`` on 127.0.0.1:``port``."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        buf = b""
        with trio.fail_after(10):
            while b"\r\n" not in buf:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                buf += chunk
    return buf.split(b"\r\n", 1)[0]


async def test_hypercorn_answers_carry_their_reason_phrase(nursery: trio.Nursery) -> None:
    app = QuartTrio("test-reasons")

    @app.route("/status/<int:code>")
    async def status(code: int) -> Response:
        return Response("x", status=code)

    config = base_config(graceful_timeout_s=0.1)
    config.bind = ["127.0.0.1:0"]
    stop = trio.Event()
    binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
    port = int(binds[0].rsplit(":", 1)[1])
    for code in (200, 201, 401, 404, 409, 413, 415, 429, 503):
        line = await exchange(port, f"GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert line == f"HTTP/1.1 {code} {HTTPStatus(code).phrase}".encode()
    # hypercorn's own answers: an unknown route, and a head h11 cannot parse
    assert await exchange(port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n") == (
        b"HTTP/1.1 404 Not Found")
    assert await exchange(port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n") == (
        b"HTTP/1.1 400 Bad Request")
    stop.set()


def test_running_on_lines_are_dropped_and_the_rest_kept(
        caplog: pytest.LogCaptureFixture) -> None:
    config = base_config(graceful_timeout_s=1.0)
    assert config.errorlog is HTTP_LOG
    with caplog.at_level(logging.INFO, logger=HTTP_LOG.name):
        HTTP_LOG.info("Running on http://127.0.0.1:1 (CTRL + C to quit)")
        HTTP_LOG.error("Error in ASGI Framework")
    assert [r.getMessage() for r in caplog.records] == ["Error in ASGI Framework"]
