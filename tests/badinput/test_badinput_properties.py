"""Property tests of the parsers that take bytes from the network (hypothesis).

For each: arbitrary input raises only the parser's own "bad input" error (which the HTTP layer
turns into a 4xx), never anything else; and well-formed input round-trips exactly, however it
is split across reads. Example counts: ``FLAGSTREAM_PROPERTY_EXAMPLES`` (default 150 each).
"""

from __future__ import annotations

import base64
import gzip
import os
import re
import string
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flagmodel.validation import check_item
from ingest.errors import PayloadRejected
from ingest.records import PayloadKind, decode_body, decode_gif_data, parse_events
from streamer.clientside.client_request import BadRequest, decode_context_b64, request_context
from streamer.fastpath.sse import (
    ChunkedDecoder,
    FramingError,
    SSEComment,
    SSEDecoder,
    SSEEvent,
    chunk,
    encode_comment,
    encode_event,
)

N = int(os.environ.get("FLAGSTREAM_PROPERTY_EXAMPLES", "150"))
SETTINGS = settings(max_examples=N, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20) \
    | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=5),
    max_leaves=25)
event_names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
payloads = st.binary(max_size=300).filter(lambda b: b"\r" not in b)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


# -- SSE decoder and chunked framing ---------------------------------------------------------

@SETTINGS
@given(st.lists(st.tuples(event_names, payloads), max_size=6), st.lists(st.integers(0, 10**6),
                                                                        max_size=8))
def test_sse_roundtrip_any_split(events: list[tuple[str, bytes]], cuts: list[int]) -> None:
    wire = b"".join(encode_event(name, data) + encode_comment(b"hb") for name, data in events)
    body = b"".join(chunk(wire[i:i + 7]) for i in range(0, len(wire), 7)) + b"0\r\n\r\n"
    framing, sse = ChunkedDecoder(), SSEDecoder()
    got: list[SSEEvent | SSEComment] = []
    for piece in _split(body, cuts):
        got += sse.feed(framing.feed(piece))
    assert framing.finished
    want = [e for name, data in events for e in (
        SSEEvent(name, data.decode("utf-8", "replace")), SSEComment("hb"))]
    assert got == want


def _sse_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines of an event stream and its unfinished tail (WHATWG line ends)."""
    *lines, tail = re.split(rb"\r\n|\r|\n", data)
    return lines, tail


@SETTINGS
@given(st.binary(max_size=2000) | st.lists(st.sampled_from(
    [b"data: x", b"data:", b":c", b"event: e", b"id: 1", b"retry: 7", b"\r", b"\n", b"\r\n",
     b"\xff", b"x" * 40]), max_size=40).map(b"".join), st.lists(st.integers(0, 10**6), max_size=8))
def test_sse_decoder_accepts_every_stream_of_short_lines(data: bytes, cuts: list[int]) -> None:
    # No line over max_line: however the bytes are split, the decoder never refuses them and
    # yields what one read of the whole input yields, with one comment per ':' line.
    lines, tail = _sse_lines(data)
    assume(all(len(line) <= 512 for line in [*lines, tail]))
    whole = SSEDecoder(max_line=512).feed(data)
    dec = SSEDecoder(max_line=512)
    got = [item for piece in _split(data, cuts) for item in dec.feed(piece)]
    assert got == whole
    comments = [line for line in lines if line.startswith(b":")]
    assert [c for c in got if isinstance(c, SSEComment)] == [
        SSEComment(c[1:].decode("utf-8", "replace")) for c in comments]
    assert sum(isinstance(e, SSEEvent) for e in got) <= sum(not line for line in lines)


@SETTINGS
@given(st.binary(max_size=600), st.integers(513, 2000))
def test_sse_decoder_rejects_an_unfinished_line_over_max_line(data: bytes, extra: int) -> None:
    dec = SSEDecoder(max_line=512)
    with pytest.raises(FramingError, match=r"^SSE line too long$"):
        dec.feed(data + b"x" * extra)


chunk_bodies = st.lists(st.binary(min_size=1, max_size=300), max_size=6)
extensions = st.sampled_from([b"", b";a=1", b";a=1;b=two", b" ;x"])


def _chunked(frames: list[bytes], ext: bytes) -> bytes:
    return b"".join(b"%x%b\r\n%b\r\n" % (len(f), ext, f) for f in frames) + b"0\r\n\r\n"


@SETTINGS
@given(chunk_bodies, extensions, st.lists(st.integers(0, 10**6), max_size=8))
def test_chunked_decoder_accepts_every_well_formed_body(
    frames: list[bytes], ext: bytes, cuts: list[int],
) -> None:
    dec = ChunkedDecoder()
    body = b"".join(dec.feed(piece) for piece in _split(_chunked(frames, ext), cuts))
    assert body == b"".join(frames) and dec.finished


@SETTINGS
@given(st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=4), st.data())
def test_chunked_decoder_rejects_a_broken_frame(frames: list[bytes], data: st.DataObject) -> None:
    # Break one chunk: its size line is not hex, or its data is not followed by CRLF.
    i = data.draw(st.integers(0, len(frames) - 1))
    broken = [chunk(f) for f in frames]
    if data.draw(st.booleans()):
        broken[i] = b"g" + broken[i]
        message = r"^bad chunk size b'g"
    else:
        broken[i] = broken[i][:-2] + b"XY"
        message = r"^chunk data not followed by CRLF$"
    with pytest.raises(FramingError, match=message):
        ChunkedDecoder().feed(b"".join(broken) + b"0\r\n\r\n")


def _chunked_outcome(pieces: list[bytes]) -> tuple[bytes, bool] | None:
    """What a decoder makes of the pieces: (body, finished), or None if it refused them."""
    dec, out = ChunkedDecoder(), b""
    try:
        for piece in pieces:
            out += dec.feed(piece)
    except FramingError:
        return None
    return out, dec.finished


@SETTINGS
@given(st.binary(max_size=1000), st.lists(st.integers(0, 10**6), max_size=8))
def test_chunked_decoder_decides_any_bytes_the_same_however_split(
    data: bytes, cuts: list[int],
) -> None:
    # Arbitrary input (shorter than the 1,024-byte size-line limit, which is checked per read):
    # accepted or refused alike whether it comes in one read or many, never more body than input.
    whole = _chunked_outcome([data])
    assert _chunked_outcome(_split(data, cuts)) == whole
    if whole is not None:
        assert len(whole[0]) <= len(data)
    if b"\r\n" in data and data[:1] not in b"0123456789abcdefABCDEF+- \t\n\r\x0b\x0c":
        assert whole is None  # a complete size line that cannot start a hex number


# -- analytics events --------------------------------------------------------------------------

@SETTINGS
@given(json_values, st.sampled_from(list(PayloadKind)))
def test_parse_events_any_json(doc: Any, kind: PayloadKind) -> None:
    # Refused only when the shape is wrong: a diagnostic that is not an object, an analytics
    # body that is not an array, or one with an event that is not an object with a non-empty
    # string kind or whose kind has fields of its own to check (feature, debug, summary).
    try:
        events = parse_events(orjson.dumps(doc), kind)
    except PayloadRejected as exc:
        assert exc.status in (400, 413) and exc.message
        if kind is PayloadKind.DIAGNOSTIC:
            assert not isinstance(doc, dict)
        else:
            assert not isinstance(doc, list) or any(
                not isinstance(e, dict) or not isinstance(e.get("kind"), str) or not e["kind"]
                or e["kind"] in ("feature", "debug", "summary") for e in doc)
        return
    assert all(isinstance(e, dict) for e in events)
    if kind is PayloadKind.ANALYTICS:
        assert list(events) == doc


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_JSON


_NOT_JSON = object()


@SETTINGS
@given(st.binary(max_size=500) | json_values.map(orjson.dumps), st.sampled_from(list(PayloadKind)))
def test_parse_events_any_bytes(body: bytes, kind: PayloadKind) -> None:
    # Accepted only if the body is JSON of the kind's shape, and then exactly as sent;
    # anything that is not JSON is a 400 with a message.
    doc = _json_or_none(body)
    try:
        events = parse_events(body, kind)
    except PayloadRejected as exc:
        assert exc.status == 400 and exc.message
        return
    assert doc is not _NOT_JSON
    if kind is PayloadKind.DIAGNOSTIC:
        assert isinstance(doc, dict) and events == (doc,)
    else:
        assert isinstance(doc, list) and list(events) == doc


@SETTINGS
@given(st.binary(max_size=3000), st.sampled_from([None, "gzip", "identity", "br", "x-gzip"]),
       st.booleans())
def test_decode_body_never_exceeds_limit(raw: bytes, encoding: str | None, zipped: bool) -> None:
    limit = 1000
    body = gzip.compress(raw) if zipped and encoding in ("gzip", "x-gzip") else raw
    # Identity is never refused; gzip of at most the limit is never refused; an unknown
    # encoding always is. What is accepted is the bytes that were sent (or compressed).
    try:
        out = decode_body(body, encoding, limit)
    except PayloadRejected as exc:
        assert exc.status in (400, 413)
        assert encoding not in (None, "identity")
        assert not (zipped and encoding in ("gzip", "x-gzip") and len(raw) <= limit)
        assert exc.status == 400 or len(raw) > limit
        return
    assert encoding != "br"
    if encoding in ("gzip", "x-gzip"):
        assert out == raw and len(out) <= limit
    else:
        assert out == raw


BASE64_CHARS = set(string.ascii_letters + string.digits + "+/-_=")


@SETTINGS
@given(st.text(max_size=300) | st.binary(max_size=200).map(
    lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")))
def test_gif_data_any_text(d: str) -> None:
    # Accepted exactly when ``d`` is base64 (either alphabet, padding optional), and then it
    # decodes to the bytes that were encoded; otherwise a 400 that names the parameter.
    try:
        raw = decode_gif_data(d)
    except PayloadRejected as exc:
        assert exc.status == 400 and "'d'" in exc.message
        return
    assert d and set(d) <= BASE64_CHARS
    assert len(raw) == len(d.rstrip("=")) * 3 // 4
    assert decode_gif_data(base64.b64encode(raw).decode()) == raw


# -- client-side context decoding (base64 and JSON) ---------------------------------------------

@SETTINGS
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), st.booleans(),
       st.booleans())
def test_context_b64_roundtrip(obj: dict[str, Any], urlsafe: bool, padded: bool) -> None:
    raw = orjson.dumps(obj)
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    if not padded:
        text = text.rstrip("=")
    assert decode_context_b64(text) == orjson.loads(raw)


@SETTINGS
@given(st.text(max_size=400))
def test_context_b64_any_text(segment: str) -> None:
    # What is accepted is the JSON object the text encodes (test_context_b64_roundtrip: every
    # encoded object is accepted).
    try:
        value = decode_context_b64(segment)
    except BadRequest as exc:
        assert str(exc)
        return
    assert isinstance(value, dict)
    text = segment.strip().replace("+", "-").replace("/", "_").rstrip("=")
    assert value == orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


@SETTINGS
@given(json_values | st.builds(lambda k, v: {"kind": k, "key": v},
                                st.text(max_size=8), json_scalars))
def test_request_context_any_json(doc: Any) -> None:
    body = orjson.dumps(doc)
    try:
        raw, _ = request_context(body=body)
    except BadRequest as exc:
        assert str(exc)
        return
    assert raw == doc
    b64 = base64.urlsafe_b64encode(body).decode()
    assert request_context(b64=b64)[0] == doc


@SETTINGS
@given(st.sampled_from(["user", "org", "device-1", "a.b_c"]), st.text(min_size=1, max_size=20),
       st.dictionaries(st.sampled_from(["email", "tier", "plan"]), json_scalars, max_size=3))
def test_request_context_accepts_every_single_kind_context(
    kind: str, key: str, attributes: dict[str, Any],
) -> None:
    doc = {"kind": kind, "key": key, **attributes}
    raw, context = request_context(body=orjson.dumps(doc))
    assert raw == doc and (context.kind, context.key) == (kind, key)
    b64 = base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")
    assert request_context(b64=b64)[0] == doc


@SETTINGS
@given(st.binary(max_size=400))
def test_request_context_any_bytes(body: bytes) -> None:
    # Bytes that are not a JSON object are refused with a reason; what is accepted is the
    # object that was sent.
    doc = _json_or_none(body)
    try:
        raw, _ = request_context(body=body)
    except BadRequest as exc:
        assert str(exc)
        return
    assert isinstance(doc, dict) and raw == doc


# -- flag and segment validation ---------------------------------------------------------------

flag_like = st.fixed_dictionaries(
    {},
    optional={
        "on": json_scalars, "variations": st.lists(json_scalars, max_size=4),
        "offVariation": json_scalars, "fallthrough": json_values, "rules": json_values,
        "targets": json_values, "prerequisites": json_values, "salt": json_scalars,
        "contextTargets": json_values, "clientSideAvailability": json_values,
        "included": json_values, "excluded": json_values, "version": json_scalars,
    })


@SETTINGS
@given(st.sampled_from(["flags", "segments", "other"]), st.text(max_size=30),
       json_values | flag_like)
def test_check_item_any_document(kind: str, key: str, data: Any) -> None:
    errors = check_item(kind, key, data)
    assert isinstance(errors, list) and all(isinstance(e, str) and e for e in errors)
    assert check_item(kind, key, data) == errors  # pure and deterministic


@SETTINGS
@given(st.integers(1, 5), st.data())
def test_check_item_accepts_valid_flags(n: int, data: st.DataObject) -> None:
    variations = data.draw(st.lists(json_scalars, min_size=n, max_size=n))
    flag = {"on": data.draw(st.booleans()), "variations": variations,
            "offVariation": data.draw(st.integers(0, n - 1)),
            "fallthrough": {"variation": data.draw(st.integers(0, n - 1))},
            "targets": [], "rules": [], "prerequisites": [], "salt": "s"}
    assert check_item("flags", "f", flag) == []
    flag["offVariation"] = n  # out of range: named in the errors
    assert any("offVariation" in e for e in check_item("flags", "f", flag))
