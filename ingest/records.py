"""Events payloads in, Kinesis records out: the pure core of ingest (no IO, no trio).

Record format (what a Lambda, Firehose or Flink consumer reads)
---------------------------------------------------------------
Each Kinesis record's data is UTF-8 newline-delimited JSON, every line ending in ``\n``. The
first line is a header that applies to the whole record; every following line is one SDK event
exactly as the SDK sent it (re-serialised compactly)::

    {"v":1,"env":"prod","src":"server","kind":"analytics","received":1718000000123,
     "payloadId":"6f1c…","first":0}
    {"kind":"feature","key":"f1","variation":1,…}
    {"kind":"summary","startDate":…,"features":{…}}

- ``env``: environment key; ``src``: ``server`` | ``client`` | ``mobile``; ``kind``:
  ``analytics`` (each line is one element of the posted array) or ``diagnostic`` (the one line is
  the posted object); ``received``: Unix ms when flagstream accepted the payload; ``payloadId``:
  ``X-LaunchDarkly-Payload-ID``, or a UUID flagstream generated when absent.
- ``first``: the index, in the SDK's payload, of the record's first event. The event on line
  ``n`` (0 = first after the header) has the stable ID ``"<payloadId>:<first+n>"``. An SDK retry
  carries the same payload ID and a record re-sent after a Kinesis timeout carries the same
  bytes, so consumers de-duplicate on that ID (delivery is at-least-once).
  ``decode_record`` returns each event *enriched* with these fields (``id``, ``env``, …, and
  the SDK's event under ``event``).

One payload becomes one or more records (split so that each stays under ``max_record_bytes``),
all with the payload ID as partition key: random UUIDs, so records spread evenly over shards.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
import zlib
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from ingest.errors import PayloadRejected
from ingest.ports import Record

FORMAT_VERSION = 1
# Kinesis allows 1 MiB per record including the partition key; keep a margin for the key.
MAX_RECORD_BYTES = 1_000_000
_PAYLOAD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class PayloadKind(Enum):
    ANALYTICS = "analytics"
    DIAGNOSTIC = "diagnostic"


class Source(Enum):
    SERVER = "server"
    CLIENT = "client"
    MOBILE = "mobile"


@dataclass(frozen=True, slots=True)
class Payload:
    """One accepted POST, validated."""

    env: str
    kind: PayloadKind
    source: Source
    payload_id: str
    received_ms: int
    events: tuple[dict[str, Any], ...]


def payload_id_or_new(header: str | None) -> str:
    """The SDK's payload ID when it is sane, else a fresh UUID (GIF, diagnostics, old SDKs)."""
    if header is not None and _PAYLOAD_ID.match(header):
        return header
    return str(uuid.uuid4())


def decode_body(raw: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (identity or gzip) without ever holding more than
    ``max_bytes`` of output, so a gzip bomb costs at most that much memory."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        # 400, never 415: an SDK stops sending events for good on an unexpected 4xx.
        raise PayloadRejected(f"unsupported Content-Encoding {encoding!r}; use gzip or identity")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise PayloadRejected(f"body is not valid gzip: {exc}") from None
    if len(out) > max_bytes:
        raise PayloadRejected(
            f"decompressed body exceeds the limit of {max_bytes} bytes", status=413
        )
    if not inflater.eof:
        raise PayloadRejected("gzip body is truncated")
    return out


def decode_gif_data(d: str | None) -> bytes:
    """The ``d`` query parameter of ``/a/{envId}.gif``: base64 (standard or URL-safe, padding
    optional) of a JSON array of events."""
    if not d:
        raise PayloadRejected("missing query parameter 'd'")
    padded = d + "=" * (-len(d) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadRejected("query parameter 'd' is not valid base64") from None


def parse_events(body: bytes, kind: PayloadKind) -> tuple[dict[str, Any], ...]:
    """Validate the JSON shape: an array of event objects for analytics, one object for
    diagnostics. Unknown event kinds pass (newer SDKs add kinds); known ones are checked only
    for the fields the insights consumer relies on."""
    if not body.strip():
        raise PayloadRejected("empty body")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadRejected(f"body is not valid JSON: {exc}") from None
    if kind is PayloadKind.DIAGNOSTIC:
        if not isinstance(doc, dict):
            raise PayloadRejected("diagnostic body must be a JSON object")
        return (doc,)
    if not isinstance(doc, list):
        raise PayloadRejected("analytics body must be a JSON array of events")
    for i, event in enumerate(doc):
        problem = _event_problem(event)
        if problem is not None:
            raise PayloadRejected(f"event {i}: {problem}")
    return tuple(doc)


def _event_problem(event: object) -> str | None:
    if not isinstance(event, dict):
        return "must be a JSON object"
    kind = event.get("kind")
    if not isinstance(kind, str) or not kind:
        return "'kind' must be a non-empty string"
    if kind in ("feature", "debug") and not isinstance(event.get("key"), str):
        return f"{kind} event needs a string 'key'"
    if kind == "summary":
        features = event.get("features", {})
        if not isinstance(features, dict):
            return "summary 'features' must be an object"
        for key, summary in features.items():
            if not isinstance(summary, dict) or not isinstance(summary.get("counters", []), list):
                return f"summary of flag {key!r} must be an object with a 'counters' array"
    return None


def _header(payload: Payload, first: int) -> bytes:
    return (
        orjson.dumps(
            {
                "v": FORMAT_VERSION,
                "env": payload.env,
                "src": payload.source.value,
                "kind": payload.kind.value,
                "received": payload.received_ms,
                "payloadId": payload.payload_id,
                "first": first,
            }
        )
        + b"\n"
    )


def encode_records(payload: Payload, max_record_bytes: int = MAX_RECORD_BYTES) -> list[Record]:
    """Pack the events, after a header line, into as few records as fit the size limit."""
    pid = payload.payload_id
    records: list[Record] = []
    head = _header(payload, 0)
    chunk: list[bytes] = [head]
    size = len(head)
    for i, event in enumerate(payload.events):
        try:
            line = orjson.dumps(event) + b"\n"
        except orjson.JSONEncodeError:
            # orjson reads deeper nesting (1024 levels) than it writes (254): such an event
            # parsed, but cannot go into a record. Bad input, not a server error.
            raise PayloadRejected(f"event {i} is nested too deeply") from None
        if len(line) + 200 + len(pid) > max_record_bytes:
            raise PayloadRejected(
                f"event {i} is {len(line)} bytes; the limit per event is {max_record_bytes}",
                status=413,
            )
        if size + len(line) > max_record_bytes:
            records.append(Record(pid, b"".join(chunk)))
            head = _header(payload, i)
            chunk, size = [head], len(head)
        chunk.append(line)
        size += len(line)
    if len(chunk) > 1:
        records.append(Record(pid, b"".join(chunk)))
    return records


def decode_record(data: bytes) -> list[dict[str, Any]]:
    """The enriched events of one record: ``{"v","id","env","src","kind","received",
    "payloadId","event"}`` each. A record without a valid header yields nothing and lines that
    are not JSON objects are skipped (a consumer must survive a foreign writer)."""
    lines = data.split(b"\n")
    try:
        header = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return []
    if not isinstance(header, dict) or not isinstance(header.get("payloadId"), str):
        return []
    first = header.get("first", 0)
    if not isinstance(first, int):
        return []
    base = {k: header.get(k) for k in ("v", "env", "src", "kind", "received", "payloadId")}
    prefix = header["payloadId"] + ":"
    out: list[dict[str, Any]] = []
    for n, line in enumerate(lines[1:]):
        if not line:
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            out.append({**base, "id": prefix + str(first + n), "event": event})
    return out
