"""RFC 7386 JSON merge patch: the RFC's appendix A examples plus edge cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from store.merge_patch import merge_patch

# RFC 7386 Appendix A, row by row: (original, patch, result).
RFC_APPENDIX_A: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]

# RFC 7386 section 3's example document.
RFC_EXAMPLE = (
    {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    },
    {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    },
    {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    },
)

EXTRA: list[tuple[Any, Any, Any]] = [
    ({"a": 1}, {}, {"a": 1}),
    (None, {"a": None}, {}),
    ("text", {"a": 1}, {"a": 1}),
    ({"rules": [{"id": "r"}], "on": False}, {"on": True}, {"rules": [{"id": "r"}], "on": True}),
    ({"a": {"b": 1}}, {"a": {"c": {"d": 2}}}, {"a": {"b": 1, "c": {"d": 2}}}),
    ({"a": {"b": 1}}, {"a": None, "x": False}, {"x": False}),
]


@pytest.mark.parametrize(("original", "patch", "result"), [*RFC_APPENDIX_A, RFC_EXAMPLE, *EXTRA])
def test_merge_patch(original: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy((original, patch))
    assert merge_patch(original, patch) == result
    assert (original, patch) == before  # neither argument is mutated
