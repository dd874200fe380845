"""Coverage-guided fuzzing (atheris) of the network-facing parsers.

``python3 -m tests.badinput.fuzz_atheris TARGET [libFuzzer flags, e.g. -runs=100000] [DIR]``
with TARGET one of: sse, chunked, events, gzip, context_b64, context_json, flag. Each input
must either parse or raise the parser's own bad-input error; anything else is a crash that
atheris reports (the input is saved as crash-*). Without a corpus DIR a fresh one is seeded
with valid documents, so the JSON targets get past the JSON parser. libFuzzer's last line
(``#N DONE``) gives the number of inputs tried.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports():
    import orjson

    from flagmodel.validation import check_item
    from ingest.errors import PayloadRejected
    from ingest.records import PayloadKind, decode_body, parse_events
    from streamer.clientside.client_request import BadRequest, decode_context_b64, request_context
    from streamer.fastpath.sse import ChunkedDecoder, FramingError, SSEDecoder

_CTX = b'{"kind":"multi","user":{"key":"u","name":"N","custom":{"a":[1,2]}},"org":{"key":"o"}}'
_FLAG = (b'{"on":true,"variations":[false,true],"offVariation":0,"fallthrough":{"rollout":'
         b'{"variations":[{"variation":0,"weight":50000},{"variation":1,"weight":50000}]}},'
         b'"rules":[{"id":"r","clauses":[{"attribute":"email","op":"endsWith","values":["@x"]}],'
         b'"variation":1}],"targets":[{"values":["u"],"variation":1}],"prerequisites":[],'
         b'"salt":"s","included":["a"],"excluded":[]}')
_EVENTS = (b'[{"kind":"feature","key":"f","creationDate":1,"value":true,"variation":1},'
           b'{"kind":"summary","startDate":1,"endDate":2,"features":{"f":{"default":false,'
           b'"counters":[{"value":true,"variation":1,"version":3,"count":2}]}}}]')
SEEDS: dict[str, list[bytes]] = {
    "sse": [b"event: put\ndata: {}\n\n:hb\n\nretry: 1000\nid: 1\ndata: a\r\n\r\n"],
    "chunked": [b"5\r\nhello\r\n0;ext\r\n\r\n"],
    "events": [_EVENTS, b'{"kind":"diagnostic"}'],
    "gzip": [gzip.compress(_EVENTS)],
    "context_b64": [base64.urlsafe_b64encode(_CTX)],
    "context_json": [_CTX, b'{"key":"u","anonymous":true}'],
    "flag": [_FLAG],
}


def _sse(data: bytes) -> None:
    dec = SSEDecoder(max_line=4096)
    mid = len(data) // 2
    try:
        dec.feed(data[:mid])
        dec.feed(data[mid:])
    except FramingError:
        pass


def _chunked(data: bytes) -> None:
    with contextlib.suppress(FramingError):
        ChunkedDecoder().feed(data)


def _events(data: bytes) -> None:
    for kind in PayloadKind:
        with contextlib.suppress(PayloadRejected):
            parse_events(data, kind)


def _gzip(data: bytes) -> None:
    try:
        out = decode_body(data, "gzip", 4096)
        assert len(out) <= 4096
    except PayloadRejected:
        pass


def _context_b64(data: bytes) -> None:
    with contextlib.suppress(BadRequest):
        decode_context_b64(data.decode("latin-1"))


def _context_json(data: bytes) -> None:
    with contextlib.suppress(BadRequest):
        request_context(body=data)


def _flag(data: bytes) -> None:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    for kind in ("flags", "segments"):
        errors = check_item(kind, "k", doc)
        assert all(isinstance(e, str) for e in errors)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "sse": _sse, "chunked": _chunked, "events": _events, "gzip": _gzip,
    "context_b64": _context_b64, "context_json": _context_json, "flag": _flag,
}


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in TARGETS:
        sys.exit(f"usage: fuzz_atheris {{{','.join(TARGETS)}}} [libFuzzer flags] [DIR]")
    flags = [a for a in sys.argv[2:] if a.startswith("-")]
    corpus = [a for a in sys.argv[2:] if not a.startswith("-")]
    if not corpus:
        seeds = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        for i, seed in enumerate(SEEDS[name]):
            (seeds / f"seed{i}").write_bytes(seed)
        corpus = [str(seeds)]
    atheris.Setup([sys.argv[0], *flags, *corpus], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
