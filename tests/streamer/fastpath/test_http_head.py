"""Request-head parsing and stream routing on the stream listener."""

from __future__ import annotations

import h11
import pytest

from streamer.fastpath.http_head import (
    ErrorAnswer,
    HeadError,
    HeadReader,
    RequestHead,
    StreamKind,
    StreamRoute,
    error_response,
    route_stream,
    sdk_credential,
)


def head(target: str = "/all", *, method: str = "GET", auth: str | None = "sdk-1",
         version: str = "1.1") -> RequestHead:
    headers = (("host", "x"),) + ((("authorization", auth),) if auth is not None else ())
    return RequestHead(method, target, version, headers)


def test_reads_a_head_fed_in_pieces() -> None:
    raw = b"GET /all HTTP/1.1\r\nHost: a\r\nAuthorization: sdk-1\r\nLast-Event-ID: 3\r\n\r\n"
    reader = HeadReader()
    results = [reader.feed(raw[i : i + 7]) for i in range(0, len(raw), 7)]
    assert all(r is None for r in results[:-1])
    got = results[-1]
    assert got is not None
    assert (got.method, got.target, got.http_version) == ("GET", "/all", "1.1")
    assert got.header("authorization") == "sdk-1"
    assert got.header("last-event-id") == "3"
    assert got.header("missing") is None


BIG = b"GET /all HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 20000 + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "piece", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 4096, 400),
        (b"GET /all HTTP/1.1\r\nBad Header\r\n\r\n", 4096, 400),
        (b"GET /all HTTP/1.1\r\n\r\n", 4096, 400),  # HTTP/1.1 without Host
        (b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", 4096, 400),
        (BIG, 4096, 431),  # completes in one read after the limit
        (BIG, 1000, 431),  # exceeds the limit while incomplete
        (BIG, 100000, 431),  # arrives at once
    ],
    ids=["not-http", "bad-header", "no-host", "nul-in-target", "big-4k", "big-1k", "big-all"],
)
def test_malformed_or_oversized_heads(raw: bytes, piece: int, status: int) -> None:
    with pytest.raises(HeadError) as info:
        reader = HeadReader(max_head_bytes=16 * 1024)
        for i in range(0, len(raw), piece):
            reader.feed(raw[i : i + piece])
        reader.feed(b"")
    assert info.value.answer.status == status


def test_eof_in_the_middle_is_400() -> None:
    reader = HeadReader()
    assert reader.feed(b"GET /all HTTP/1.1\r\nHo") is None
    with pytest.raises(HeadError) as info:
        reader.feed(b"")
    assert info.value.answer.status == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sdk-1", "sdk-1"),
        ("api_key sdk-1", "sdk-1"),
        ("API_KEY sdk-1", "sdk-1"),
        ("  sdk-1  ", "sdk-1"),
        ("Bearer sdk-1", None),
        ("api_key a b", None),
        ("", None),
        (None, None),
    ],
)
def test_sdk_credential(value: str | None, expected: str | None) -> None:
    assert sdk_credential(value) == expected


@pytest.mark.parametrize(
    ("request_head", "expected"),
    [
        (head("/all"), StreamRoute(StreamKind.ALL, "sdk-1")),
        (head("/all/"), StreamRoute(StreamKind.ALL, "sdk-1")),
        (head("/flags"), StreamRoute(StreamKind.FLAGS, "sdk-1")),
        (head("/flags/?x=1"), StreamRoute(StreamKind.FLAGS, "sdk-1")),
        (head("/all?filter="), StreamRoute(StreamKind.ALL, "sdk-1")),
        (head("/all", auth="api_key sdk-1"), StreamRoute(StreamKind.ALL, "sdk-1")),
        (head("/all?filter=mine"), 404),
        (head("/nope"), 404),
        (head("/"), 404),
        (head("/all", method="POST"), 405),
        (head("/all", auth=None), 401),
        (head("/all", auth="a b"), 401),
        (head("/all", version="1.0"), 505),
    ],
)
def test_route_stream(request_head: RequestHead, expected: StreamRoute | int) -> None:
    got = route_stream(request_head)
    if isinstance(expected, int):
        assert isinstance(got, ErrorAnswer)
        assert got.status == expected
        assert (got.allow == "GET") == (expected == 405)
    else:
        assert got == expected


@pytest.mark.parametrize("answer", [ErrorAnswer(401, "unknown SDK key"),
                                    ErrorAnswer(405, "no", allow="GET"),
                                    ErrorAnswer(503, "later")])
def test_error_response_is_valid_http(answer: ErrorAnswer) -> None:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.receive_data(error_response(answer, retry_after=3))
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == answer.status
    headers = dict(response.headers)
    assert headers[b"connection"] == b"close"
    assert headers[b"retry-after"] == b"3"
    assert (b"allow" in headers) == (answer.allow is not None)
    body = client.next_event()
    assert isinstance(body, h11.Data)
    assert body.data == answer.message.encode() + b"\n"


def lines_head(count: int) -> bytes:
    return (b"GET /all HTTP/1.1\r\nHost: a\r\n"
            + b"".join(b"X-%d: y\r\n" % i for i in range(count - 1)) + b"\r\n")


@pytest.mark.parametrize(("raw", "status"), [
    (lines_head(100), None),  # Host plus 99: at the limit, read
    (lines_head(101), 431),
    (lines_head(1500), 431),  # tiny lines within the byte limit
])
def test_header_line_limit(raw: bytes, status: int | None) -> None:
    reader = HeadReader()
    if status is None:
        got = reader.feed(raw)
        assert got is not None and len(got.headers) == 100
        return
    with pytest.raises(HeadError) as info:
        reader.feed(raw)
    assert info.value.answer.status == status
    assert b"too many request header lines" in error_response(info.value.answer)


MARK = b"<script>MARK</script>"


@pytest.mark.parametrize("raw", [
    b"GET /all HTTP/1.1\r\nHost: a\r\n" + MARK + b"\r\n\r\n",  # an illegal header line
    b"GET /all HTTP/1.1\r\nHost: a\r\nX: " + MARK + b"\x00\r\n\r\n",  # an illegal value
    b"GET /" + MARK + b"\x00 HTTP/1.1\r\nHost: a\r\n\r\n",  # an illegal target
    MARK + b" / HTTP/1.1\r\nHost: a\r\n\r\n",  # an illegal method
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: " + MARK + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + MARK + b"\r\n\r\n",
], ids=["header-line", "header-value", "target", "method", "content-length", "te"])
def test_a_malformed_head_is_answered_without_its_bytes(raw: bytes) -> None:
    with pytest.raises(HeadError) as info:
        HeadReader().feed(raw)
    assert info.value.answer.status in (400, 501)  # 501: an unknown transfer coding
    assert b"MARK" not in error_response(info.value.answer)


@pytest.mark.parametrize("body", [b"zz\r\n" + MARK + b"\r\n", b"5\r\nab" + MARK])
def test_a_malformed_body_is_answered_without_its_bytes(body: bytes) -> None:
    reader = HeadReader()
    assert reader.feed(b"REPORT /eval/e HTTP/1.1\r\nHost: a\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n") is not None
    with pytest.raises(HeadError) as info:
        reader.feed_body(body, max_bytes=1 << 16)
        reader.feed_body(b"", max_bytes=1 << 16)
    assert info.value.answer.status == 400
    assert b"MARK" not in error_response(info.value.answer)


@pytest.mark.parametrize("request_head", [
    head("/" + MARK.decode()), head("/all?filter=" + MARK.decode()),
    head("/all", method="MARK"),
])
def test_routing_errors_do_not_repeat_the_request(request_head: RequestHead) -> None:
    got = route_stream(request_head)
    assert isinstance(got, ErrorAnswer) and got.status in (404, 405)
    assert b"MARK" not in error_response(got)


# Every status the stream listener answers with itself (http_head, stream_actor, acceptor,
# stream_gate, client_streams): each status line carries its standard reason phrase.
OWN_STATUSES = [400, 401, 403, 404, 405, 408, 413, 415, 429, 431, 503, 505]


@pytest.mark.parametrize("status", OWN_STATUSES)
def test_error_status_lines_carry_their_reason_phrase(status: int) -> None:
    from http import HTTPStatus

    raw = error_response(ErrorAnswer(status, "why"), retry_after=2)
    assert raw.split(b"\r\n", 1)[0] == f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()


def test_success_heads_carry_their_reason_phrase() -> None:
    from streamer.clientside.client_streams import Preflight, client_stream_head, preflight_response
    from streamer.fastpath.http_head import STREAM_RESPONSE_HEAD

    heads = [STREAM_RESPONSE_HEAD, client_stream_head(StreamKind.PING, None),
             preflight_response(Preflight(origin=None, methods="GET"))]
    assert [h.split(b"\r\n", 1)[0] for h in heads] == [b"HTTP/1.1 200 OK"] * 3
