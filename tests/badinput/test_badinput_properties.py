"""Property tests of the parsers that take bytes from the network (hypothesis).

For each: arbitrary input raises only the parser's own "bad input" error (which the HTTP layer
turns into a 4xx), never anything else; and well-formed input round-trips exactly, however it
is split across reads. Example counts: ``FLAGSTREAM_PROPERTY_EXAMPLES`` (default 150 each).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import os
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagmodel.validation import check_item
from ingest.errors import PayloadRejected
from ingest.records import PayloadKind, decode_body, decode_gif_data, parse_events
from streamer.client_request import BadRequest, decode_context_b64, request_context
from streamer.sse import (
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


@SETTINGS
@given(st.binary(max_size=2000), st.lists(st.integers(0, 10**6), max_size=8))
def test_sse_decoder_takes_any_bytes(data: bytes, cuts: list[int]) -> None:
    dec = SSEDecoder(max_line=512)
    try:
        for piece in _split(data, cuts):
            for item in dec.feed(piece):
                assert isinstance(item, SSEEvent | SSEComment)
    except FramingError:
        pass


@SETTINGS
@given(st.binary(max_size=2000))
def test_chunked_decoder_takes_any_bytes(data: bytes) -> None:
    dec = ChunkedDecoder()
    try:
        out = dec.feed(data)
        assert len(out) <= len(data)
    except FramingError:
        pass


# -- analytics events --------------------------------------------------------------------------

@SETTINGS
@given(json_values, st.sampled_from(list(PayloadKind)))
def test_parse_events_any_json(doc: Any, kind: PayloadKind) -> None:
    try:
        events = parse_events(orjson.dumps(doc), kind)
    except PayloadRejected as exc:
        assert exc.status in (400, 413) and exc.message
        return
    assert all(isinstance(e, dict) for e in events)
    if kind is PayloadKind.ANALYTICS:
        assert list(events) == doc


@SETTINGS
@given(st.binary(max_size=500), st.sampled_from(list(PayloadKind)))
def test_parse_events_any_bytes(body: bytes, kind: PayloadKind) -> None:
    with contextlib.suppress(PayloadRejected):
        parse_events(body, kind)


@SETTINGS
@given(st.binary(max_size=3000), st.sampled_from([None, "gzip", "identity", "br", "x-gzip"]),
       st.booleans())
def test_decode_body_never_exceeds_limit(raw: bytes, encoding: str | None, zipped: bool) -> None:
    limit = 1000
    body = gzip.compress(raw) if zipped and encoding in ("gzip", "x-gzip") else raw
    try:
        out = decode_body(body, encoding, limit)
    except PayloadRejected as exc:
        assert exc.status in (400, 413)
        return
    if encoding in ("gzip", "x-gzip"):
        assert out == raw and len(out) <= limit


@SETTINGS
@given(st.text(max_size=300))
def test_gif_data_any_text(d: str) -> None:
    with contextlib.suppress(PayloadRejected):
        decode_gif_data(d)


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
    try:
        value = decode_context_b64(segment)
    except BadRequest as exc:
        assert str(exc)
        return
    assert isinstance(value, dict)


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
@given(st.binary(max_size=400))
def test_request_context_any_bytes(body: bytes) -> None:
    with contextlib.suppress(BadRequest):
        request_context(body=body)


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
