"""SSE and chunked framing: one table drives the encoder and the decoder."""

from __future__ import annotations

import pytest

from streamer.fastpath.sse import (
    HEARTBEAT,
    HEARTBEAT_CHUNK,
    ChunkedDecoder,
    FramingError,
    SSEComment,
    SSEDecoder,
    SSEEvent,
    chunk,
    encode_comment,
    encode_event,
    encode_retry,
    event_chunk,
    retry_chunk,
)

# (event, data bytes, wire bytes, the data string a decoder yields)
EVENTS = [
    ("put", b'{"path":"/","data":{}}', b'event: put\ndata: {"path":"/","data":{}}\n\n',
     '{"path":"/","data":{}}'),
    ("patch", b"a\nb", b"event: patch\ndata: a\ndata: b\n\n", "a\nb"),
    ("delete", b"", b"event: delete\ndata: \n\n", ""),
    ("patch", b"x\r\ny\rz", b"event: patch\ndata: x\ndata: y\ndata: z\n\n", "x\ny\nz"),
    ("ping", b" lead", b"event: ping\ndata:  lead\n\n", " lead"),
    ("patch", "é".encode(), "event: patch\ndata: é\n\n".encode(), "é"),
]


@pytest.mark.parametrize(("event", "data", "wire", "decoded"), EVENTS)
def test_event_round_trip(event: str, data: bytes, wire: bytes, decoded: str) -> None:
    assert encode_event(event, data) == wire
    assert SSEDecoder().feed(wire) == [SSEEvent(event, decoded)]


@pytest.mark.parametrize(("event", "data", "wire", "decoded"), EVENTS)
def test_event_decodes_fed_byte_by_byte(event: str, data: bytes, wire: bytes, decoded: str) -> None:
    dec = SSEDecoder()
    out = []
    for i in range(len(wire)):
        out += dec.feed(wire[i : i + 1])
    assert out == [SSEEvent(event, decoded)]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b":\n\n", [SSEComment("")]),
        (b":hi there\r\n\r\n", [SSEComment("hi there")]),
        (b"event: a\r\ndata: 1\r\n\r\n", [SSEEvent("a", "1")]),
        (b"event: a\rdata: 1\r\r", [SSEEvent("a", "1")]),
        (b"data: no name\n\n", [SSEEvent("message", "no name")]),
        (b"event: only-a-name\n\n", []),  # no data: nothing is dispatched
        (b"id: 7\nevent: e\ndata: d\n\n", [SSEEvent("e", "d", id="7")]),
        (b"retry: 1500\ndata: d\n\n", [SSEEvent("message", "d", retry=1500)]),
        (b"unknown: x\ndata\n\n", [SSEEvent("message", "")]),
        (b"data: a\n\ndata: b\n\n", [SSEEvent("message", "a"), SSEEvent("message", "b")]),
        (b"data: incomplete\n", []),
    ],
)
def test_decoder_table(wire: bytes, expected: list[object]) -> None:
    assert SSEDecoder().feed(wire) == expected


@pytest.mark.parametrize("split", range(1, 12))
def test_crlf_split_between_cr_and_lf(split: int) -> None:
    wire = b"data: 12\r\n\r\ndata: 34\r\n\r\n"
    dec = SSEDecoder()
    out = dec.feed(wire[:split]) + dec.feed(wire[split:])
    assert out == [SSEEvent("message", "12"), SSEEvent("message", "34")]


def test_decoder_remembers_last_event_id_and_retry() -> None:
    dec = SSEDecoder()
    dec.feed(b"id: 5\ndata: x\n\nretry: 900\n\n")
    assert (dec.last_event_id, dec.retry) == ("5", 900)


def test_heartbeat_and_comment() -> None:
    assert HEARTBEAT == b":\n\n"
    assert encode_comment(b"a\nb") == b":a b\n\n"
    assert HEARTBEAT_CHUNK == b"3\r\n:\n\n\r\n"


CHUNKS = [
    (b"abc", b"3\r\nabc\r\n"),
    (b"x" * 16, b"10\r\n" + b"x" * 16 + b"\r\n"),
    (b"x" * 255, b"ff\r\n" + b"x" * 255 + b"\r\n"),
]


@pytest.mark.parametrize(("frame", "wire"), CHUNKS)
def test_chunk_round_trip(frame: bytes, wire: bytes) -> None:
    assert chunk(frame) == wire
    dec = ChunkedDecoder()
    assert b"".join(dec.feed(wire[i : i + 1]) for i in range(len(wire))) == frame
    assert not dec.finished


def test_chunked_stream_of_events_and_end() -> None:
    wire = event_chunk("put", b"{}") + HEARTBEAT_CHUNK + b"4;ext=1\r\nabcd\r\n" + b"0\r\n\r\n"
    dec = ChunkedDecoder()
    body = dec.feed(wire)
    assert body == b"event: put\ndata: {}\n\n:\n\nabcd"
    assert dec.finished
    assert SSEDecoder().feed(body) == [SSEEvent("put", "{}"), SSEComment("")]


@pytest.mark.parametrize("wire", [b"zz\r\nabc\r\n", b"3\r\nabcXY", b"-1\r\n", b"1" * 2000])
def test_chunked_rejects_garbage(wire: bytes) -> None:
    with pytest.raises(FramingError):
        ChunkedDecoder().feed(wire)


def test_empty_chunk_refused() -> None:
    with pytest.raises(ValueError):
        chunk(b"")


# -- exact behaviour that a mutation of streamer/fastpath/sse.py changes (docs/MUTATION.md) ---


def test_encoders_exact_bytes() -> None:
    assert encode_event("put", b"{}", event_id="7") == b"event: put\nid: 7\ndata: {}\n\n"
    assert encode_comment() == b":\n\n"
    assert encode_comment(b"a\rb\r\nc") == b":a b  c\n\n"
    assert encode_retry(1500) == b"retry: 1500\n\n"


def test_retry_block_spans_half_a_second_to_one_and_a_half_mean_one() -> None:
    # The documented figures, written out rather than computed from the module's constants.
    assert retry_chunk(0.0) == chunk(b"retry: 500\n\n")
    assert retry_chunk(0.5) == chunk(b"retry: 1000\n\n")
    assert retry_chunk(0.9999999) == chunk(b"retry: 1499\n\n")
    draws = [int(ChunkedDecoder().feed(retry_chunk(i / 1000))[7:-2]) for i in range(1000)]
    assert draws == list(range(500, 1500)) and sum(draws) / len(draws) == 999.5


def test_empty_chunk_refused_with_its_reason() -> None:
    with pytest.raises(ValueError, match=r"^an empty chunk would terminate the chunked body$"):
        chunk(b"")


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\r\n", "bad chunk size b''"),  # an empty size line: refused, not waited on
        (b"zz\r\n", "bad chunk size b'zz'"),
        (b"-1\r\n", "negative chunk size"),
        (b"3\r\nabcXY", "chunk data not followed by CRLF"),
        (b"1" * 1025, "chunk size line too long"),
    ],
)
def test_chunked_rejects_with_a_reason(wire: bytes, message: str) -> None:
    with pytest.raises(FramingError) as info:
        ChunkedDecoder().feed(wire)
    assert str(info.value) == message


def test_chunk_size_line_limit_is_1024_bytes() -> None:
    dec = ChunkedDecoder()
    assert dec.feed(b"0" * 1023 + b"3") == b""  # 1,024 bytes without CRLF yet: waits for more
    assert dec.feed(b"\r\nabc\r\n") == b"abc"
    with pytest.raises(FramingError):
        ChunkedDecoder().feed(b"0" * 1025)


def test_chunk_extensions_are_skipped_however_many() -> None:
    dec = ChunkedDecoder()
    assert dec.finished is False
    assert dec.feed(b"4;a=1;b=2\r\nabcd\r\n0\r\n\r\n") == b"abcd"
    assert dec.finished is True


def test_fresh_decoder_state() -> None:
    dec = SSEDecoder()
    assert dec.last_event_id is None and dec.retry is None


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        # CR ends one feed and its LF starts the next, mid-event: one line end, one event
        ([b"data: a\r", b"\ndata: b\n\n"], [SSEEvent("message", "a\nb")]),
        ([b"data: a\r", b"\n", b"\n"], [SSEEvent("message", "a")]),
        # a CR at the end of a feed followed by something other than LF
        ([b"data: a\r", b"data: b\r\r"], [SSEEvent("message", "a\nb")]),
        # LF-ended line before a CR-ended one: each line ends at its own terminator
        ([b"data: a\ndata: b\r\n\r\n"], [SSEEvent("message", "a\nb")]),
        ([b"\ndata: x\r\n\r\n"], [SSEEvent("message", "x")]),
        ([b"data: \xff\xfeok\n\n"], [SSEEvent("message", "\ufffd\ufffdok")]),
        ([b"id: a\x00b\ndata: d\n\n"], [SSEEvent("message", "d")]),
        ([b"foo: 42\nretry: 1.5\nretry: x\ndata: d\n\n"], [SSEEvent("message", "d")]),
        ([b"data:x\ndata:  y\n\n"], [SSEEvent("message", "x\n y")]),
    ],
)
def test_decoder_line_ends_and_fields(pieces: list[bytes], expected: list[object]) -> None:
    dec = SSEDecoder()
    got = [item for piece in pieces for item in dec.feed(piece)]
    assert got == expected
    assert dec.retry is None


def test_sse_line_limit_is_max_line_bytes() -> None:
    dec = SSEDecoder(max_line=8)
    assert dec.feed(b"data: ab") == []  # exactly max_line bytes of an unfinished line
    assert dec.feed(b"\n\n") == [SSEEvent("message", "ab")]
    with pytest.raises(FramingError, match=r"^SSE line too long$"):
        SSEDecoder(max_line=8).feed(b"data: abc")
