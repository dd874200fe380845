"""Attribute references: the path syntax with its ``~0``/``~1`` escapes, literal names, lookup."""

from __future__ import annotations

import pytest
from ldclient.impl.model.attribute_ref import AttributeRef

from flagmodel.attrref import AttrRef, literal_ref, lookup, parse_ref, ref_for

EMPTY = "attribute reference must not be empty"


def _empty_component(text: str) -> str:
    return f'attribute reference "{text}" has an empty path component'


def _bad_escape(text: str) -> str:
    return f'attribute reference "{text}" has a "~" not followed by 0 or 1'


PARSE = [  # text → (components, error)
    ("", ((), EMPTY)),
    ("/", ((), EMPTY)),
    ("a", (("a",), None)),
    ("a/b", (("a/b",), None)),  # no leading slash: a literal name, slash and all
    ("~0", (("~0",), None)),  # escapes mean nothing in a literal name
    ("/a", (("a",), None)),
    ("/a/b/c", (("a", "b", "c"), None)),
    ("/a~0b", (("a~b",), None)),
    ("/a~1b", (("a/b",), None)),
    ("/~0", (("~",), None)),
    ("/~1", (("/",), None)),
    ("/~01", (("~1",), None)),  # decoded once, left to right: "~0" then a plain "1"
    ("/~10", (("/0",), None)),
    ("/~0~1~1~0", (("~//~",), None)),
    ("/x/~1~0", (("x", "/~"), None)),
    ("/a~", ((), _bad_escape("/a~"))),  # "~" at the end
    ("/~", ((), _bad_escape("/~"))),
    ("/a~2", ((), _bad_escape("/a~2"))),
    ("/~a", ((), _bad_escape("/~a"))),
    ("/~X", ((), _bad_escape("/~X"))),
    ("/a~01~", ((), _bad_escape("/a~01~"))),  # good escapes first, then a bad one
    ("/a/~x/b", ((), _bad_escape("/a/~x/b"))),
    ("//a", ((), _empty_component("//a"))),
    ("/a/", ((), _empty_component("/a/"))),
    ("/a//b", ((), _empty_component("/a//b"))),
]


@pytest.mark.parametrize(("text", "expected"), PARSE)
def test_parse_ref(text: str, expected: tuple[tuple[str, ...], str | None]) -> None:
    components, error = expected
    assert parse_ref(text) == AttrRef(text, components, error)


@pytest.mark.parametrize(("text", "expected"), PARSE)
def test_parse_ref_agrees_with_the_sdk(text: str,
                                       expected: tuple[tuple[str, ...], str | None]) -> None:
    sdk = AttributeRef.from_path(text)
    assert sdk.valid is (expected[1] is None)
    assert tuple(sdk[i] for i in range(sdk.depth)) == (expected[0] if sdk.valid else ())


LITERAL = [  # the name is never decoded, even when it looks like a path
    ("", AttrRef("", (), EMPTY)),
    ("/", AttrRef("/", ("/",))),
    ("/a~2", AttrRef("/a~2", ("/a~2",))),
    ("name", AttrRef("name", ("name",))),
]


@pytest.mark.parametrize(("name", "expected"), LITERAL)
def test_literal_ref(name: str, expected: AttrRef) -> None:
    assert literal_ref(name) == expected


REF_FOR = [  # (text, contextKind) → reference; no contextKind is legacy data: a literal name
    (None, "user", None),
    ("", "user", None),
    ("", "", None),
    ("/a/b", "", AttrRef("/a/b", ("/a/b",))),
    ("/a/b", "user", AttrRef("/a/b", ("a", "b"))),
    ("/a~1b", "org", AttrRef("/a~1b", ("a/b",))),
    ("//", "org", AttrRef("//", (), _empty_component("//"))),
    ("plain", "", AttrRef("plain", ("plain",))),
]


@pytest.mark.parametrize(("text", "kind", "expected"), REF_FOR)
def test_ref_for(text: str | None, kind: str, expected: AttrRef | None) -> None:
    assert ref_for(text, kind) == expected


VALUES: dict[str, object] = {
    "key": "k", "a": {"b": {"c": 3}, "list": [1]}, "a/b": "slash", "~": "tilde", "n": None,
}
LOOKUP = [
    ("/key", "k"),
    ("/a/b/c", 3),
    ("/a/b", {"c": 3}),
    ("/a~1b", "slash"),  # a top-level name containing "/"
    ("/~0", "tilde"),
    ("/a/missing", None),
    ("/a/b/c/d", None),  # 3 is not an object
    ("/a/list/0", None),  # arrays are not indexed
    ("/n/x", None),
    ("/missing", None),
    ("/missing/x", None),
]


@pytest.mark.parametrize(("text", "expected"), LOOKUP)
def test_lookup(text: str, expected: object) -> None:
    assert lookup(VALUES, parse_ref(text)) == expected
