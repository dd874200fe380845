"""Context JSON: invalid forms, fully-qualified keys, legacy users."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from flagmodel import ContextError, fully_qualified_key, parse_context, secure_mode_hash

# -- contexts --------------------------------------------------------------------------------

BAD_CONTEXTS: list[Any] = [
    None, [], "x", {"kind": "user"}, {"kind": "user", "key": ""}, {"kind": "", "key": "a"},
    {"kind": 3, "key": "a"}, {"kind": "kind", "key": "a"}, {"kind": "a b", "key": "a"},
    {"kind": "user", "key": None}, {"kind": "user", "key": 5}, {"kind": "user", "key": "a",
                                                                "anonymous": "yes"},
    {"kind": "user", "key": "a", "name": 5}, {"kind": "user", "key": "a", "_meta": 1},
    {"kind": "user", "key": "a", "_meta": {"privateAttributes": [1]}},
    {"kind": "multi"}, {"kind": "multi", "user": "u"}, {"kind": "multi", "user": {"key": ""}},
    {"kind": "multi", "a": {"key": "1"}, "b": {"key": "2", "kind": "a"}},
    {"name": "no key"}, {"key": None}, {"key": "a", "email": 5}, {"key": "a", "custom": []},
]


@pytest.mark.parametrize("obj", BAD_CONTEXTS)
def test_invalid_contexts_raise_context_error(obj: Any) -> None:
    with pytest.raises(ContextError):
        parse_context(obj)


FQ_KEYS = [
    ({"kind": "user", "key": "a:b"}, "a:b"), ({"key": ""}, ""),
    ({"kind": "org", "key": "a:b%c"}, "org:a%3Ab%25c"),
    ({"kind": "multi", "user": {"key": "u"}, "org": {"key": "o:1"}}, "org:o%3A1:user:u"),
    ({"kind": "multi", "org": {"key": "o"}}, "org:o"),
]


@pytest.mark.parametrize(("obj", "fq"), FQ_KEYS)
def test_fully_qualified_key_and_secure_mode_hash(obj: Any, fq: str) -> None:
    ctx = parse_context(obj)
    assert fully_qualified_key(ctx) == fq
    expected = hmac.new(b"sdk-key", fq.encode(), hashlib.sha256).hexdigest()
    assert secure_mode_hash("sdk-key", ctx) == expected == secure_mode_hash("sdk-key", fq)


def test_legacy_user_attributes() -> None:
    ctx = parse_context({"key": "", "name": "N", "email": "e@x", "anonymous": None, "ip": None,
                         "secondary": "s", "unknownTop": 1,
                         "custom": {"plan": "pro", "key": "ignored", "nothing": None},
                         "privateAttributeNames": ["email", "/odd"]})
    assert (ctx.kind, ctx.key, ctx.name, ctx.anonymous) == ("user", "", "N", False)
    assert ctx.attributes() == {"email": "e@x", "plan": "pro"}
    assert ctx.private_attributes == ("email", "/~1odd")
