"""The lean client's pure wire pieces: response head, de-chunking, SSE events, markers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.lean_wire import (
    DECODERS,
    Dechunker,
    EventSplitter,
    FastDecoder,
    HeadParser,
    ProtocolError,
    SharedDecoder,
    build_request,
    find_mark,
    mark_value,
    one_event_chunk,
    one_patch_mark,
    parse_event,
    reconnect_delay,
    retry_after_s,
)
from streamer.fastpath import sse

CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def splits(data: bytes) -> list[list[bytes]]:
    """`data` whole, byte by byte, and cut in two at every position."""
    out = [[data], [data[i : i + 1] for i in range(len(data))]]
    out += [[data[:i], data[i:]] for i in range(1, len(data))]
    return out


# -- response head -------------------------------------------------------------------------

HEAD_CASES = [
    # (raw, status, chunked, rest)
    (CHUNKED_HEAD + b"5\r\nhello", 200, True, b"5\r\nhello"),
    (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\n\r\nno\n", 401, False, b"no\n"),
    (b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", 200, False, b""),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n", 200, True, b""),
]


@pytest.mark.parametrize(("raw", "status", "chunked", "rest"), HEAD_CASES)
def test_head_parsed_at_every_split(raw: bytes, status: int, chunked: bool, rest: bytes) -> None:
    for pieces in splits(raw):
        parser = HeadParser()
        heads = [h for h in (parser.feed(p) for p in pieces) if h is not None]
        assert len(heads) == 1
        head = heads[0]
        assert (head.status, head.chunked) == (status, chunked)
        # bytes after the head that arrived with it, plus those fed later, are the body
        later = b"".join(pieces)[len(raw) - len(rest) :]
        assert later.startswith(head.rest)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "bad_status_line"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "bad_status_line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad_header_line"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 5000, "head_too_large"),
    ],
)
def test_bad_heads_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        HeadParser().feed(raw)
    assert info.value.reason == reason


def test_request_carries_headers() -> None:
    req = build_request("/all", "127.0.0.2", {"Authorization": "sdk-123"})
    assert req == (
        b"GET /all HTTP/1.1\r\nHost: 127.0.0.2\r\nAccept: text/event-stream\r\n"
        b"Authorization: sdk-123\r\n\r\n"
    )


# -- de-chunking ---------------------------------------------------------------------------

BODIES = [
    [b"event: put\ndata: {}\n\n"],
    [b"a", b"bc", b"x" * 300],
    [sse.HEARTBEAT, b"event: patch\ndata: " + b"y" * 5000 + b"\n\n", sse.HEARTBEAT],
]


@pytest.mark.parametrize("frames", BODIES)
def test_dechunk_at_every_split(frames: list[bytes]) -> None:
    wire = b"".join(sse.chunk(f) for f in frames)
    for pieces in splits(wire):
        d = Dechunker()
        assert b"".join(d.feed(p) for p in pieces) == b"".join(frames)
        assert not d.finished


def test_dechunk_extensions_and_end_of_body() -> None:
    d = Dechunker()
    assert d.feed(b"3;name=v\r\nabc\r\n0\r\n\r\n") == b"abc"
    assert d.finished
    assert d.feed(b"ignored after the last chunk") == b""


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"zz\r\nabc\r\n", "bad_chunk_size"),
        (b"3\r\nabcX\r\n", "missing_chunk_crlf"),
        (b"1" * 2000, "chunk_size_line_too_long"),
        (b"-3\r\nabc\r\n", "bad_chunk_size"),
    ],
)
def test_dechunk_refuses_bad_framing(wire: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        Dechunker().feed(wire)
    assert info.value.reason == reason


# -- SSE events ----------------------------------------------------------------------------

EVENT_CASES: list[tuple[bytes, list[tuple[bytes, bytes]]]] = [
    (b"event: put\ndata: {}\n\n", [(b"put", b"{}")]),
    (b':\n\n:hb\n\nevent: patch\ndata: {"a":1}\n\n', [(b"patch", b'{"a":1}')]),
    (b"event: put\r\ndata: x\r\n\r\n", [(b"put", b"x")]),
    (b"event: put\rdata: x\r\r", [(b"put", b"x")]),
    (b"data: one\ndata: two\n\n", [(b"message", b"one\ntwo")]),
    (b"event:patch\ndata:nospace\n\n", [(b"patch", b"nospace")]),
    (b"event: ping\n\nevent: put\ndata: 1\n\n", [(b"put", b"1")]),  # no data: not dispatched
    (b"id: 7\nevent: delete\ndata: d\n\n\n\n", [(b"delete", b"d")]),
    (b"event: patch\ndata: incomplete", []),
]


@pytest.mark.parametrize(("text", "events"), EVENT_CASES)
def test_events_at_every_split(text: bytes, events: list[tuple[bytes, bytes]]) -> None:
    for pieces in splits(text):
        splitter = EventSplitter()
        got = [parse_event(b) for p in pieces for b in splitter.feed(p)]
        assert [e for e in got if e is not None] == events


def test_event_buffer_is_bounded() -> None:
    splitter = EventSplitter(max_buffer=100)
    with pytest.raises(ProtocolError):
        splitter.feed(b"data: " + b"x" * 200)


# what a stream may carry, marked patches included (one of them with two data lines)
FRAMES = st.lists(
    st.sampled_from(
        [
            sse.HEARTBEAT,
            sse.encode_event("put", b'{"path":"/","data":{}}'),
            sse.encode_event("patch", b'{"path":"/flags/f","data":{"v":"fsmark:1:2:a"}}'),
            sse.encode_event("patch", b'{"data":{"v":"fsmark:2:5:a"}}'),
            sse.encode_event("patch", b"fsmark:3:7\nfsmark:4:8"),
            sse.encode_event("delete", b"line1\nline2"),
            sse.encode_comment(b"keepalive"),
        ]
    ),
    max_size=8,
)


@given(frames=FRAMES, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6))
@settings(max_examples=150, deadline=None)
def test_fast_decoder_agrees_with_shared_decoder(frames: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(sse.chunk(f) for f in frames)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    pieces = [wire[a:b] for a, b in itertools.pairwise(points)]
    fast, shared = FastDecoder(chunked=True), SharedDecoder(chunked=True)
    got_fast = [e for p in pieces for e in fast.feed(p)]
    got_shared = [e for p in pieces for e in shared.feed(p)]
    assert got_fast == got_shared
    assert len(got_fast) == sum(1 for f in frames if f.startswith(b"event:"))


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (sse.event_chunk("patch", b'{"x":1}'), (b"patch", b'{"x":1}')),
        (sse.chunk(sse.encode_event("a", b"1") + sse.encode_event("b", b"2")), None),  # two
        (sse.event_chunk("delete", b"l1\nl2"), None),  # two data lines
        (sse.chunk(b"event: put\r\ndata: {}\r\n\r\n"), None),  # CRLF inside
        (sse.HEARTBEAT_CHUNK, None),
        (sse.event_chunk("patch", b'{"x":1}')[:-1], None),  # incomplete
        (sse.event_chunk("patch", b'{"x":1}') + b"1\r\n", None),  # more than one chunk
        (b'1b;ext=1\r\nevent: patch\ndata: {"x":1}\n\n\r\n', None),  # extension
    ],
)
def test_one_event_chunk_takes_only_its_exact_shape(
    wire: bytes, expected: tuple[bytes, bytes] | None
) -> None:
    assert one_event_chunk(wire) == expected


MARKED = b'{"path":"/flags/f","data":{"variations":["fsmark:3:123456789:a","fsmark:3:1:b"]}}'


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (sse.event_chunk("patch", MARKED), (3, 123456789)),
        (sse.event_chunk("patch", b'{"path":"/flags/f","data":{"version":4}}'), None),  # no mark
        (sse.event_chunk("put", MARKED), None),  # not a patch
        (sse.event_chunk("patchy", MARKED), None),
        (sse.chunk(sse.encode_event("patch", MARKED) * 2), None),  # two events
        (sse.event_chunk("patch", b"fsmark:1:2\nfsmark:3:4"), None),  # two data lines
        (sse.chunk(b"event: patch\r\ndata: " + MARKED + b"\r\n\r\n"), None),  # CRLF inside
        (sse.event_chunk("patch", MARKED)[:-1], None),  # incomplete
        (sse.event_chunk("patch", MARKED) + b"1\r\n", None),  # more than one chunk
        (b"ff" + sse.event_chunk("patch", MARKED), None),  # size line disagrees with the data
        (b"zz\r\nevent: patch\ndata: fsmark:1:2\n\n\r\n", None),  # size is not hex
        (b"15;x=1\r\nevent: patch\ndata: fsmark:1:2\n\n\r\n", None),  # extension
        (sse.HEARTBEAT_CHUNK, None),
    ],
)
def test_one_patch_mark_takes_only_a_whole_marked_patch(
    wire: bytes, expected: tuple[int, int] | None
) -> None:
    assert one_patch_mark(wire) == expected
    if expected is not None:  # the general path reads the same mark from the same bytes
        assert [find_mark(d) for n, d in FastDecoder(chunked=True).feed(wire)] == [expected]


@given(frames=FRAMES, cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=6))
@settings(max_examples=150, deadline=None)
def test_patch_mark_first_gives_the_marks_feed_gives(frames: list[bytes], cuts: list[int]) -> None:
    """The clients try `patch_mark` on each piece and `feed` it only on None: whatever the
    pieces, the marks they see are the ones the full decoder sees."""
    pieces = [sse.chunk(f) for f in frames]  # one chunk per frame, as a fan-out writes
    wire = b"".join(pieces)
    for cut in cuts:  # some pieces also cut anywhere
        i = cut % (len(pieces) + 1)
        if i < len(pieces) and len(pieces[i]) > 1:
            j = 1 + cut % (len(pieces[i]) - 1)
            pieces[i : i + 1] = [pieces[i][:j], pieces[i][j:]]
    fast, oracle = FastDecoder(chunked=True), SharedDecoder(chunked=True)
    got: list[tuple[int, int] | None] = []
    for p in pieces:
        mark = fast.patch_mark(p)
        if mark is not None:
            got.append(mark)
        else:
            got += [find_mark(d) for n, d in fast.feed(p) if n == b"patch"]
    assert got == [find_mark(d) for n, d in oracle.feed(wire) if n == b"patch"]
    assert SharedDecoder(chunked=True).patch_mark(sse.chunk(frames[0]) if frames else b"") is None


# -- markers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mark"),
    [
        (b'{"variations":["fsmark:3:123456789:a","fsmark:3:123456789:b"]}', (3, 123456789)),
        (b'{"variations":[true,false],"version":4}', None),
        (b'"fsmark:x:1"', None),
        (mark_value(12, 98765, "a").encode(), (12, 98765)),
    ],
)
def test_find_mark(data: bytes, mark: tuple[int, int] | None) -> None:
    assert find_mark(data) == mark


# -- reconnect backoff and Retry-After ------------------------------------------------------

BACKOFF_CASES = [
    # (attempt, rand, expected seconds) with base 1 s, max 30 s, jitter 0.5
    (0, 0.0, 1.0),
    (0, 0.999999, 0.5000005),
    (1, 0.0, 2.0),
    (3, 0.5, 6.0),
    (4, 0.0, 16.0),
    (5, 0.0, 30.0),  # 32 capped at 30
    (60, 0.0, 30.0),  # no overflow for a long outage
    (60, 0.5, 22.5),
]


@pytest.mark.parametrize(("attempt", "rand", "expected"), BACKOFF_CASES)
def test_reconnect_delay_follows_the_sdks(attempt: int, rand: float, expected: float) -> None:
    assert reconnect_delay(attempt, rand) == pytest.approx(expected)


def test_reconnect_delay_options() -> None:
    assert reconnect_delay(2, 0.0, base_s=0.5, max_s=1.5, jitter=0.0) == 1.5
    assert reconnect_delay(0, 0.5, base_s=2.0, jitter=1.0) == 1.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\r\n", 7.0),
        (b"HTTP/1.1 503 Service Unavailable\r\nretry-after:  2.5 \r\n\r\n", 2.5),
        (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: -3\r\n\r\n", 0.0),
        (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n\r\n",
         None),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", None),
    ],
)
def test_retry_after(raw: bytes, expected: float | None) -> None:
    head = HeadParser().feed(raw)
    assert head is not None
    assert retry_after_s(head) == expected


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize(
    ("wire", "retry_ms", "events"),
    [
        # the fast path's opening: a retry-only chunk, then the put
        (sse.chunk(sse.encode_retry(1234)) + sse.chunk(b"event: put\ndata: {}\n\n"), 1234,
         [(b"put", b"{}")]),
        (sse.chunk(b"event: put\ndata: {}\n\n"), None, [(b"put", b"{}")]),
        # a later retry: replaces the first; a non-numeric one is ignored
        (sse.chunk(sse.encode_retry(900)) + sse.chunk(sse.encode_retry(1500))
         + sse.chunk(b"retry: soon\n\n"), 1500, []),
    ],
)
def test_decoders_keep_the_streams_retry_field(name: str, wire: bytes, retry_ms: int | None,
                                              events: list[tuple[bytes, bytes]]) -> None:
    decoder = DECODERS[name](chunked=True)
    got = []
    for i in range(len(wire)):  # one byte at a time: the field may arrive split anywhere
        got += decoder.feed(wire[i:i + 1])
    assert got == events and decoder.retry_ms == retry_ms

