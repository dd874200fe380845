from __future__ import annotations

import base64
from typing import Any

import pytest

from flagmodel import parse_context, secure_mode_hash
from streamer.clientside.client_request import (
    BadRequest,
    check_secure_mode,
    cors_headers,
    decode_context_b64,
    decode_context_json,
    parse_query,
    strip_credential,
)

CTX = b'{"kind":"user","key":"user-plain"}'


def b64(raw: bytes, *, pad: bool, urlsafe: bool = True) -> str:
    enc = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    text = enc.decode()
    return text if pad else text.rstrip("=")


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("eyJraW5kIjoidXNlciIsImtleSI6InVzZXItcGxhaW4ifQ", {"kind": "user", "key": "user-plain"}),
        (b64(CTX, pad=True), {"kind": "user", "key": "user-plain"}),
        (b64(b'{"key":"\xc3\xa9??>"}', pad=False), {"key": "é??>"}),
        (b64(b'{"key":"\xc3\xa9??>"}', pad=True, urlsafe=False), {"key": "é??>"}),
    ],
)
def test_decode_context_b64(segment: str, expected: Any) -> None:
    assert decode_context_b64(segment) == expected


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("!!!!", "not valid base64url"),
        ("a", "not valid base64url"),
        (b64(b"not json", pad=False), "not valid JSON"),
        (b64(b"[1,2]", pad=False), "must be a JSON object"),
        (b64(b'"s"', pad=False), "must be a JSON object"),
        ("A" * 50_000, "too large"),
        # orjson decodes it, but cannot encode it again (254 levels): refused up front
        (b64(b'{"kind":"user","key":"k","c":' + b"[" * 300 + b"]" * 300 + b"}", pad=False),
         "nested deeper than 32 levels"),
    ],
)
def test_decode_context_b64_errors(segment: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_context_b64(segment)


@pytest.mark.parametrize("given", ["\u00e9", "\ud800", "0" * 64, ""])
def test_secure_mode_hash_mismatch_is_a_bad_request(given: str) -> None:
    context = parse_context({"kind": "user", "key": "bob"})
    with pytest.raises(BadRequest, match="h parameter is missing" if not given else
                       "does not match"):
        check_secure_mode(True, "sdk-key", context, given or None)
    check_secure_mode(True, "sdk-key", context, secure_mode_hash("sdk-key", context).upper())


def test_decode_context_json_limit() -> None:
    with pytest.raises(BadRequest, match="too large"):
        decode_context_json(b'{"key":"' + b"x" * 40_000 + b'"}')
    assert decode_context_json(CTX) == {"kind": "user", "key": "user-plain"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None), ("", None), ("mob-123", "mob-123"), ("api_key mob-123", "mob-123"),
        ("API_KEY  sdk-1 ", "sdk-1"), ("Bearer sdk-1", None), ("api_key a b", None),
    ],
)
def test_strip_credential(header: str | None, expected: str | None) -> None:
    assert strip_credential(header) == expected


@pytest.mark.parametrize(
    ("args", "with_reasons", "h"),
    [({}, False, None), ({"withReasons": "true"}, True, None), ({"withReasons": "false"}, False,
     None), ({"withReasons": "TRUE", "h": "abc"}, True, "abc"), ({"h": ""}, False, None)],
)
def test_parse_query(args: dict[str, str], with_reasons: bool, h: str | None) -> None:
    q = parse_query(args)
    assert (q.with_reasons, q.secure_hash) == (with_reasons, h)


def test_cors_headers_echo_origin() -> None:
    headers = dict(cors_headers("http://app.example", "GET, REPORT, OPTIONS"))
    assert headers["Access-Control-Allow-Origin"] == "http://app.example"
    assert headers["Access-Control-Max-Age"] == "300"
    assert "X-LaunchDarkly-User-Agent" in headers["Access-Control-Allow-Headers"]
    assert dict(cors_headers(None, "GET"))["Access-Control-Allow-Origin"] == "*"
