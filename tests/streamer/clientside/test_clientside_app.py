"""Routing and validation of client-side streams on the fast path, and REPORT bodies (pure)."""

from __future__ import annotations

import pytest

from bus.envelope import EnvironmentInfo
from flagmodel import parse_context, secure_mode_hash
from streamer.clientside.client_streams import (
    ClientStreamRequest,
    Preflight,
    client_stream_head,
    preflight_response,
    resolve,
    route_any,
)
from streamer.fastpath.http_head import (
    ErrorAnswer,
    HeadError,
    HeadReader,
    RequestHead,
    StreamKind,
    StreamRoute,
)

ENV = EnvironmentInfo("prod", "Prod", "sdk-1", "mob-1", "cid-1", secure_mode=True)
CTX_B64 = "eyJraW5kIjoidXNlciIsImtleSI6ImJvYiJ9"  # {"kind":"user","key":"bob"}


def head(method: str, target: str, *headers: tuple[str, str]) -> RequestHead:
    return RequestHead(method, target, "1.1", tuple(headers))


@pytest.mark.parametrize(("req", "expected"), [
    (head("GET", "/eval/cid-1/abc?withReasons=true"), (StreamKind.EVAL, "cid-1", "abc", False)),
    (head("REPORT", "/eval/cid-1", ("content-type", "application/json")),
     (StreamKind.EVAL, "cid-1", None, True)),
    (head("GET", "/meval/abc", ("authorization", "api_key mob-1")),
     (StreamKind.MEVAL, "mob-1", "abc", False)),
    (head("REPORT", "/meval/", ("authorization", "mob-1"), ("content-type", "application/json")),
     (StreamKind.MEVAL, "mob-1", None, True)),
    (head("GET", "/ping/cid-1"), (StreamKind.PING, "cid-1", None, False)),
    (head("GET", "/mping", ("authorization", "mob-1")), (StreamKind.MPING, "mob-1", None, False)),
])
def test_routes(req: RequestHead, expected: tuple[StreamKind, str, str | None, bool]) -> None:
    got = route_any(req)
    assert isinstance(got, ClientStreamRequest)
    assert (got.kind, got.credential, got.context_b64, got.report) == expected


@pytest.mark.parametrize(("req", "status"), [
    (head("POST", "/eval/cid-1/abc"), 405),
    (head("GET", "/eval/cid-1"), 405),
    (head("REPORT", "/eval/cid-1"), 415),
    (head("REPORT", "/eval/cid-1", ("content-type", "application/json"),
          ("content-length", "999999")), 413),
    (head("GET", "/meval/abc"), 401),
    (head("GET", "/mping", ("authorization", "Bearer x y")), 401),
    (head("GET", "/eval"), 404),
    (head("GET", "/pingx/cid-1"), 404),
])
def test_route_errors(req: RequestHead, status: int) -> None:
    got = route_any(req)
    assert isinstance(got, ErrorAnswer) and got.status == status, got


def test_server_side_routes_and_preflight() -> None:
    assert isinstance(route_any(head("GET", "/all", ("authorization", "sdk-1"))), StreamRoute)
    pre = route_any(head("OPTIONS", "/eval/anything/x", ("origin", "http://a")))
    assert pre == Preflight("http://a", "GET, REPORT, OPTIONS")
    assert isinstance(pre, Preflight)
    raw = preflight_response(pre)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Access-Control-Allow-Origin: http://a" in raw
    assert raw.endswith(b"Content-Length: 0\r\nConnection: close\r\n\r\n")


def test_heads() -> None:
    js = client_stream_head(StreamKind.EVAL, "http://a")
    assert b"Access-Control-Allow-Origin: http://a\r\n" in js and js.endswith(b"\r\n\r\n")
    assert b"Access-Control-Allow-Origin: *" not in js
    assert b"Access-Control-Allow-Origin: *" in client_stream_head(StreamKind.MEVAL, None)


def test_resolve_secure_mode_and_context_errors() -> None:
    req = route_any(head("GET", f"/eval/cid-1/{CTX_B64}"))
    assert isinstance(req, ClientStreamRequest)
    bad = resolve(req, None, ENV)
    assert isinstance(bad, ErrorAnswer) and bad.status == 400 and "secure mode" in bad.message
    good_h = secure_mode_hash("sdk-1", parse_context({"kind": "user", "key": "bob"}))
    req = route_any(head("GET", f"/eval/cid-1/{CTX_B64}?h={good_h}&withReasons=true"))
    assert isinstance(req, ClientStreamRequest)
    target = resolve(req, None, ENV)
    assert not isinstance(target, ErrorAnswer)
    assert target.group == (b'{"key":"bob","kind":"user"}', True, False)
    req = route_any(head("REPORT", "/meval", ("authorization", "mob-1"),
                         ("content-type", "application/json")))
    assert isinstance(req, ClientStreamRequest)
    answer = resolve(req, b'{"kind":"user"}', ENV)  # mobile: no secure mode, but a key is needed
    assert isinstance(answer, ErrorAnswer) and answer.status == 400 and "key" in answer.message


def test_report_body_reading() -> None:
    reader = HeadReader()
    assert reader.feed(b"REPORT /meval HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"key\"") \
        is not None
    assert reader.feed_body(None, max_bytes=100) is None
    assert reader.feed_body(b':"a"}', max_bytes=100) == b'{"key":"a"}'
    reader = HeadReader()
    assert reader.feed(b"REPORT /meval HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n") \
        is not None
    with pytest.raises(HeadError) as exc:
        reader.feed_body(b"x" * 50, max_bytes=10)
    assert exc.value.answer.status == 413
    reader = HeadReader()
    assert reader.feed(b"REPORT /meval HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab") \
        is not None
    with pytest.raises(HeadError) as exc:
        reader.feed_body(b"", max_bytes=10)  # the client left half-way
    assert exc.value.answer.status == 400
