"""RFC 6902 JSON Patch and RFC 6901 pointers: the RFC's appendix A, then edge cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from store.json_patch import MAX_COPIED_VALUES, MAX_OPERATIONS, apply_json_patch, parse_pointer
from store.patch_errors import PatchConflictError, PatchError

# RFC 6902 Appendix A, example by example: (section, document, patch, result).
RFC_APPENDIX_A: list[tuple[str, Any, list[Any], Any]] = [
    ("A.1", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A.2", {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ("A.3", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A.5", {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ("A.6", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.10", {"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
     {"foo": "bar", "baz": "qux"}),
    ("A.14", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
     {"/": 9, "~1": 10}),
    ("A.16", {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
]
# A.13 (an operation object with two "op" members) is left out: JSON parsers disagree on
# duplicate names and orjson keeps the last one, so the document never reaches this module.

def nest(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels - 1):
        value = {"x": value}
    return value


# Patches that must fail: (name, document, patch, error type, words the message contains).
FAILURES: list[tuple[str, Any, Any, type[PatchError], str]] = [
    ("A.9 test fails", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}],
     PatchConflictError, "operation 0 (test /baz): test failed"),
    ("A.12 add under a missing member", {"foo": "bar"},
     [{"op": "add", "path": "/baz/bat", "value": "qux"}], PatchError, 'operation 0 (add /baz/bat)'),
    ("A.15 string is not number", {"/": 9, "~1": 10},
     [{"op": "test", "path": "/~01", "value": "10"}], PatchConflictError, "test failed"),
    ("test true is not 1", {"a": 1}, [{"op": "test", "path": "/a", "value": True}],
     PatchConflictError, "test failed"),
    ("test of a missing member", {"a": 1}, [{"op": "test", "path": "/b", "value": 1}],
     PatchConflictError, 'member "b" does not exist'),
    ("not an array", {}, {"op": "add"}, PatchError, "must be an array"),
    ("operation not an object", {}, ["add"], PatchError, "operation 0: expected an object"),
    ("unknown op", {}, [{"op": "merge", "path": "/a"}], PatchError, "operation 0: op must be"),
    ("op not a string", {}, [{"op": {}, "path": "/a"}], PatchError, "operation 0: op must be"),
    ("missing path", {}, [{"op": "remove"}], PatchError, "operation 0 (remove): path must be"),
    ("pointer without slash", {"a": 1}, [{"op": "remove", "path": "a"}], PatchError,
     'must be empty or start with "/"'),
    ("bad escape", {"a": 1}, [{"op": "remove", "path": "/~2"}], PatchError, '"~" not followed'),
    ("missing value", {}, [{"op": "add", "path": "/a"}], PatchError, "value is required"),
    ("missing from", {}, [{"op": "copy", "path": "/a"}], PatchError, "from must be a string"),
    ("remove missing", {"a": 1}, [{"op": "remove", "path": "/b"}], PatchError,
     'member "b" does not exist'),
    ("replace missing", {"a": 1}, [{"op": "replace", "path": "/b", "value": 2}], PatchError,
     'member "b" does not exist'),
    ("leading zero index", {"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], PatchError,
     '"01" is not an array index'),
    ("dash only appends", {"a": [1]}, [{"op": "remove", "path": "/a/-"}], PatchError,
     '"-" is not an array index'),
    ("index past the end", {"a": [1]}, [{"op": "add", "path": "/a/2", "value": 0}], PatchError,
     "index 2 is out of range"),
    ("into a scalar", {"a": 1}, [{"op": "add", "path": "/a/b", "value": 0}], PatchError,
     "not an object or an array"),
    ("move into own child", {"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}],
     PatchError, "into one of its own children"),
    ("remove the root", {"a": 1}, [{"op": "remove", "path": ""}], PatchError, "whole document"),
    ("index names the second op", {"a": 1},
     [{"op": "replace", "path": "/a", "value": 2}, {"op": "remove", "path": "/zz"}], PatchError,
     "operation 1 (remove /zz)"),
    ("too many", {}, [{"op": "test", "path": "", "value": {}}] * (MAX_OPERATIONS + 1), PatchError,
     f"at most {MAX_OPERATIONS}"),
    ("a copy bomb", {"a": list(range(10))}, [{"op": "copy", "from": "", "path": "/a/0"}] * 30,
     PatchError, f"copies would add more than {MAX_COPIED_VALUES} values"),
    ("nesting too deep to store", {"a": nest(60)},
     [{"op": "add", "path": "/a" + "/x" * 58 * i, "value": nest(60)} for i in range(1, 5)],
     PatchError, "nests too deeply to be stored"),
    ("an index of 5000 digits", {"a": [1]}, [{"op": "remove", "path": "/a/" + "9" * 5000}],
     PatchError, "is out of range"),
]

MORE: list[tuple[str, Any, list[Any], Any]] = [
    ("copy", {"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}],
     {"a": {"b": [1]}, "c": {"b": [1]}}),
    ("copy then change the copy only", {"a": {"b": 1}},
     [{"op": "copy", "from": "/a", "path": "/c"}, {"op": "replace", "path": "/c/b", "value": 2}],
     {"a": {"b": 1}, "c": {"b": 2}}),
    ("replace the root", {"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
    ("add at the end index", {"a": [1]}, [{"op": "add", "path": "/a/1", "value": 2}],
     {"a": [1, 2]}),
    ("add replaces a member", {"a": 1}, [{"op": "add", "path": "/a", "value": 2}], {"a": 2}),
    ("empty member name", {"": 1}, [{"op": "replace", "path": "/", "value": 2}], {"": 2}),
    ("move to itself", {"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
    ("test a whole array and object", {"a": [1, {"b": None}]},
     [{"op": "test", "path": "/a", "value": [1.0, {"b": None}]}], {"a": [1, {"b": None}]}),
    ("sequence sees earlier ops", {"rules": []},
     [{"op": "add", "path": "/rules/-", "value": {"id": "r1"}},
      {"op": "test", "path": "/rules/0/id", "value": "r1"},
      {"op": "remove", "path": "/rules/0"}], {"rules": []}),
]


@pytest.mark.parametrize(("section", "doc", "patch", "result"), RFC_APPENDIX_A + MORE,
                         ids=[c[0] for c in RFC_APPENDIX_A + MORE])
def test_applies(section: str, doc: Any, patch: list[Any], result: Any) -> None:
    before = copy.deepcopy(doc)
    assert apply_json_patch(doc, patch) == result
    assert doc == before  # the caller's document is never changed


@pytest.mark.parametrize(("name", "doc", "patch", "error", "words"), FAILURES,
                         ids=[c[0] for c in FAILURES])
def test_refuses(name: str, doc: Any, patch: Any, error: type[PatchError], words: str) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(error) as caught:
        apply_json_patch(doc, patch)
    assert type(caught.value) is error
    assert words in caught.value.message
    assert doc == before  # all or nothing


@pytest.mark.parametrize(("pointer", "tokens"), [
    ("", []), ("/", [""]), ("/a/b", ["a", "b"]), ("/a~1b", ["a/b"]), ("/m~0n", ["m~n"]),
    ("/~01", ["~1"]), ("/ ", [" "]), ("/c%d", ["c%d"]),  # RFC 6901 §5 and §4's ordering
])
def test_pointer(pointer: str, tokens: list[str]) -> None:
    assert parse_pointer(pointer) == tokens
