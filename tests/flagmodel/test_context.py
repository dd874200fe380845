"""Context JSON: invalid forms, fully-qualified keys, legacy users."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from flagmodel import ContextError, fully_qualified_key, parse_context, secure_mode_hash
from flagmodel.context import Context

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


ERROR_MESSAGES: list[tuple[Any, str]] = [  # every refusal says why, for the 400 answer
    (None, "context must be a JSON object"),
    ({"kind": 3, "key": "a"}, "context kind must be a string"),
    ({"kind": "", "key": "a"}, "context kind must not be empty"),
    ({"kind": "kind", "key": "a"}, '"kind" is not a valid context kind'),
    ({"kind": "a b", "key": "a"}, "context kind 'a b' contains disallowed characters"),
    ({"kind": "a\n", "key": "a"}, "context kind 'a\\n' contains disallowed characters"),
    ({"kind": "user"}, "context key is missing"),
    ({"kind": "user", "key": ""}, "context key must not be empty"),
    ({"kind": "user", "key": 5}, "context key must be a string"),
    ({"kind": "user", "key": "a", "name": 5}, "context name must be a string"),
    ({"kind": "user", "key": "a", "anonymous": "yes"}, "context anonymous must be a boolean"),
    ({"kind": "user", "key": "a", "_meta": 1}, "context _meta must be an object"),
    ({"kind": "user", "key": "a", "_meta": {"privateAttributes": "x"}},
     "privateAttributes must be an array of strings"),
    ({"kind": "multi"}, "multi-kind context must contain at least one kind"),
    ({"kind": "multi", "user": "u"}, "multi-kind context part 'user' must be an object"),
    ({"kind": "multi", "user": {"key": "u", "kind": 1}}, "context kind must be a string"),
    ({"kind": "multi", "multi": {"key": "u"}}, 'a single context cannot have kind "multi"'),
    ({"kind": "multi", "a": {"key": "1"}, "b": {"key": "2", "kind": "a"}},
     "multi-kind context cannot have the same kind more than once"),
    ({"name": "no key"}, "user key is missing"),
    ({"key": 5}, "user key must be a string"),
    ({"key": "a", "name": 5}, "user name must be a string"),
    ({"key": "a", "anonymous": "yes"}, "user anonymous must be a boolean"),
    ({"key": "a", "email": 5}, "user email must be a string"),
    ({"key": "a", "ip": 5}, "user ip must be a string"),
    ({"key": "a", "custom": []}, "user custom must be an object"),
    ({"key": "a", "privateAttributeNames": [1]}, "privateAttributeNames must be an array of "
                                                 "strings"),
    ({"key": "a", "secondary": 5}, "user secondary must be a string"),
]


@pytest.mark.parametrize(("obj", "message"), ERROR_MESSAGES)
def test_context_error_messages(obj: Any, message: str) -> None:
    with pytest.raises(ContextError) as raised:
        parse_context(obj)
    assert str(raised.value) == message


def test_multi_of_no_parts_is_refused() -> None:
    with pytest.raises(ContextError) as raised:
        Context.multi([])
    assert str(raised.value) == "multi-kind context must contain at least one kind"


ROUND_TRIP: list[tuple[Any, dict[str, Any]]] = [  # accepted JSON → the SDK's JSON of it
    ({"kind": "user", "key": "a"}, {"kind": "user", "key": "a"}),
    ({"kind": "org", "key": "a", "name": "N", "anonymous": True, "x": 1, "y": None, "": 2,
      "_meta": {"privateAttributes": ["x", "/y/z"]}},
     {"kind": "org", "key": "a", "name": "N", "anonymous": True, "x": 1,
      "_meta": {"privateAttributes": ["x", "/y/z"]}}),
    ({"kind": "org", "key": "a", "name": None, "anonymous": False, "_meta": None, "z": False},
     {"kind": "org", "key": "a", "z": False}),
    ({"kind": "org", "key": "a", "_meta": {}, "z": 0}, {"kind": "org", "key": "a", "z": 0}),
    ({"key": "a", "name": None, "anonymous": True, "email": None, "country": "NZ",
      "firstName": "F", "lastName": "L", "avatar": "av", "ip": "1.2.3.4", "custom": None,
      "secondary": None, "privateAttributeNames": None},
     {"kind": "user", "key": "a", "anonymous": True, "country": "NZ", "firstName": "F",
      "lastName": "L", "avatar": "av", "ip": "1.2.3.4"}),
    ({"key": "a", "anonymous": False, "custom": {"": 1, "name": "n", "anonymous": True,
                                                 "kind": "k", "_meta": 1, "c": [1]}},
     {"kind": "user", "key": "a", "c": [1]}),
    ({"kind": "multi", "org": {"key": "o", "name": "On", "anonymous": True},
      "user": {"key": "u", "kind": "user", "a": 1}},
     {"kind": "multi", "org": {"key": "o", "name": "On", "anonymous": True},
      "user": {"key": "u", "a": 1}}),
]


@pytest.mark.parametrize(("obj", "expected"), ROUND_TRIP)
def test_context_to_dict(obj: Any, expected: dict[str, Any]) -> None:
    ctx = parse_context(obj)
    assert ctx.to_dict() == expected
    assert parse_context(expected) == ctx


def test_single_context_fields() -> None:
    ctx = parse_context({"kind": "org", "key": "o", "name": "N", "anonymous": True,
                         "plan": "pro", "_meta": {"privateAttributes": ["plan"]}})
    assert (ctx.kind, ctx.key, ctx.name, ctx.anonymous, ctx.multiple) == (
        "org", "o", "N", True, False)
    assert ctx.values == {"kind": "org", "key": "o", "name": "N", "anonymous": True,
                          "plan": "pro"}
    assert ctx.attributes() == {"plan": "pro"}
    assert ctx.private_attributes == ("plan",)
    assert ctx.contexts == (ctx,)
    assert ctx.individual("org") is ctx
    assert ctx.individual("user") is None and ctx.individual("") is None
    plain = parse_context({"kind": "user", "key": "u"})
    assert (plain.name, plain.anonymous, plain.values) == (
        None, False, {"kind": "user", "key": "u", "anonymous": False})
    assert plain.individual("") is plain
    assert repr(ctx) == "Context('org:o')"


def test_multi_context_fields() -> None:
    ctx = parse_context({"kind": "multi", "user": {"key": "u"}, "org": {"key": "o"}})
    org, user = ctx.individual("org"), ctx.individual("user")
    assert org is not None and user is not None
    assert (ctx.kind, ctx.key, ctx.name, ctx.anonymous, ctx.multiple) == (
        "multi", "", None, False, True)
    assert ctx.values == {"kind": "multi"}
    assert ctx.attributes() == {}
    assert ctx.private_attributes == ()
    assert ctx.contexts == (org, user)  # sorted by kind
    assert (org.key, user.key) == ("o", "u")
    assert ctx.individual("") is user and ctx.individual("device") is None


EQUALITY = [  # (a, b, equal)
    ({"kind": "user", "key": "a"}, {"key": "a"}, True),
    ({"kind": "user", "key": "a"}, {"kind": "user", "key": "b"}, False),
    ({"kind": "user", "key": "a", "x": 1}, {"kind": "user", "key": "a"}, False),
    ({"kind": "multi", "user": {"key": "a"}, "org": {"key": "o"}},
     {"kind": "multi", "org": {"key": "o"}, "user": {"key": "a"}}, True),
]


@pytest.mark.parametrize(("a", "b", "equal"), EQUALITY)
def test_context_equality_and_hash(a: Any, b: Any, equal: bool) -> None:
    ca, cb = parse_context(a), parse_context(b)
    assert (ca == cb) is equal
    if equal:
        assert hash(ca) == hash(cb)
    assert ca != a  # a dict is not a context
    assert hash(ca) == hash(ca.fully_qualified_key)


def test_defaults_when_properties_are_absent() -> None:
    made = Context.single("user", "u")
    assert (made.name, made.anonymous, made.private_attributes) == (None, False, ())
    for obj in ({"kind": "org", "key": "o"}, {"key": "u"}):
        ctx = parse_context(obj)
        assert ctx.anonymous is False and ctx.private_attributes == ()


def test_legacy_user_reads_on_after_a_null_custom() -> None:
    ctx = parse_context({"key": "u", "custom": None, "email": "e", "name": "N"})
    assert (ctx.attributes(), ctx.name) == ({"email": "e"}, "N")


def test_legacy_private_names_are_escaped_as_references() -> None:
    ctx = parse_context({"key": "u", "privateAttributeNames": ["/a~b/c", "~x", "plain/y"]})
    assert ctx.private_attributes == ("/~1a~0b~1c", "~x", "plain/y")
