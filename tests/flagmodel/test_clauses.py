"""The operator table of go-server-sdk-evaluation (``evaluator_clause_operator_test.go``,
ported as data), run through whole flags."""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel import Evaluator, Flag, parse_context
from flagmodel.attrref import AttrRef
from flagmodel.clauses import MalformedFlagError, compile_clause, compile_test, json_equal
from flagmodel.context import Context

# -- the operator table of go-server-sdk-evaluation ------------------------------------------

D1, D2 = "2017-12-06T00:00:00.000-07:00", "2017-12-06T00:01:01.000-07:00"
M1, M2 = 10000000, 10000001
OPERATOR_TABLE: list[tuple[str, Any, Any, list[Any], bool]] = [
    ("in", 99, 99, [], True), ("in", 99, 99, [98, 97, 96], True),
    ("in", 99.0001, 99.0001, [], True), ("in", 99.0001, 99.0001, [98, 97, 96], True),
    ("lessThan", 1, 1.99999, [], True), ("lessThan", 1.99999, 1, [], False),
    ("lessThan", 1, 2, [], True), ("lessThanOrEqual", 1, 1.0, [], True),
    ("greaterThan", 2, 1.99999, [], True), ("greaterThan", 1.99999, 2, [], False),
    ("greaterThan", 2, 1, [], True), ("greaterThanOrEqual", 1, 1.0, [], True),
    ("in", "x", "x", [], True), ("in", "x", "x", ["a", "b", "c"], True),
    ("in", "x", "xyz", [], False), ("startsWith", "xyz", "x", [], True),
    ("startsWith", "x", "xyz", [], False), ("endsWith", "xyz", "z", [], True),
    ("endsWith", "z", "xyz", [], False), ("contains", "xyz", "y", [], True),
    ("contains", "y", "xyz", [], False),
    ("in", "99", 99, [], False), ("in", 99, "99", [], False),
    ("contains", "99", 99, [], False), ("startsWith", "99", 99, [], False),
    ("endsWith", "99", 99, [], False), ("lessThanOrEqual", "99", 99, [], False),
    ("lessThanOrEqual", 99, "99", [], False), ("greaterThanOrEqual", "99", 99, [], False),
    ("greaterThanOrEqual", 99, "99", [], False),
    ("in", True, True, [], True), ("in", False, False, [], True),
    ("in", True, False, [], False), ("in", False, True, [], False),
    ("in", True, False, [True], True),
    ("matches", "hello world", "hello.*rld", [], True),
    ("matches", "hello world", "hello.*orl", [], True),
    ("matches", "hello world", "l+", [], True),
    ("matches", "hello world", "(world|planet)", [], True),
    ("matches", "hello world", "aloha", [], False),
    ("matches", "hello world", "***bad regex", [], False),
    ("before", D1, D2, [], True), ("before", M1, M2, [], True),
    ("before", D2, D1, [], False), ("before", M2, M1, [], False),
    ("before", D1, D1, [], False), ("before", M1, M1, [], False),
    ("before", None, D1, [], False), ("before", D1, "hey what's this?", [], False),
    ("after", D2, D1, [], True), ("after", M2, M1, [], True),
    ("after", D1, D2, [], False), ("after", M1, M2, [], False),
    ("after", D1, D1, [], False), ("after", M1, M1, [], False),
    ("after", None, D1, [], False), ("after", D1, "hey what's this?", [], False),
    ("semVerEqual", "2.0.0", "2.0.0", [], True), ("semVerEqual", "2.0", "2.0.0", [], True),
    ("semVerEqual", "2-rc1", "2.0.0-rc1", [], True),
    ("semVerEqual", "2+build2", "2.0.0+build2", [], True),
    ("semVerEqual", "2.0.0", "2.0.1", [], False),
    ("semVerLessThan", "2.0.0", "2.0.1", [], True), ("semVerLessThan", "2.0", "2.0.1", [], True),
    ("semVerLessThan", "2.0.1", "2.0.0", [], False), ("semVerLessThan", "2.0.1", "2.0", [], False),
    ("semVerLessThan", "2.0.1", "xbad%ver", [], False),
    ("semVerLessThan", "2.0.0-rc", "2.0.0-rc.beta", [], True),
    ("semVerGreaterThan", "2.0.1", "2.0", [], True),
    ("semVerGreaterThan", "10.0.1", "2.0", [], True),
    ("semVerGreaterThan", "2.0.0", "2.0.1", [], False),
    ("semVerGreaterThan", "2.0", "2.0.1", [], False),
    ("semVerGreaterThan", "2.0.1", "xbad%ver", [], False),
    ("semVerGreaterThan", "2.0.0-rc.1", "2.0.0-rc.0", [], True),
    ("whatever", "x", "x", [], False),
    # additions: type strictness and deep equality that Python's == would get wrong
    ("in", 1, True, [], False), ("in", True, 1, [], False), ("in", 0, False, [], False),
    ("in", [1, "a"], [1, "a"], [], False),  # an array value is tested element by element
    ("in", {"a": [1]}, {"a": [1.0]}, [], True), ("in", {"a": [True]}, {"a": [1]}, [], False),
    ("greaterThan", True, 0, [], False), ("before", True, M2, [], False),
]


def _clause_matches(op: str, user_value: Any, values: list[Any], negate: bool = False) -> bool:
    ctx: dict[str, Any] = {"kind": "user", "key": "key"}
    if user_value is not None:
        ctx["attr"] = user_value
    flag = Flag.from_json({"key": "f", "version": 1, "on": True, "variations": [False, True],
                           "fallthrough": {"variation": 0}, "rules": [{"id": "r",
                           "variation": 1, "clauses": [{"attribute": "attr", "op": op,
                                                        "values": values, "negate": negate}]}]})
    detail = Evaluator(lambda k: None, lambda k: None).evaluate(flag, parse_context(ctx))
    assert detail.variation_index is not None, detail.reason
    return bool(detail.value)


@pytest.mark.parametrize(("op", "user_value", "clause_value", "more", "expected"), OPERATOR_TABLE)
def test_operator_table(op: str, user_value: Any, clause_value: Any, more: list[Any],
                        expected: bool) -> None:
    assert _clause_matches(op, user_value, [*more, clause_value]) is expected
    if user_value is not None:  # negation inverts, except for a missing attribute
        assert _clause_matches(op, user_value, [*more, clause_value], negate=True) is not expected
    else:
        assert _clause_matches(op, user_value, [*more, clause_value], negate=True) is False


# -- the clause compiler, directly ------------------------------------------------------------

JSON_EQUAL: list[tuple[Any, Any, bool]] = [
    (True, True, True), (False, False, True), (True, False, False), (True, 1, False),
    (1, True, False), (1, 1.0, True), (1, 2, False), (1, "1", False), ("a", "a", True),
    ("a", "b", False), ("1", 1, False), ([1, "a"], [1.0, "a"], True), ([1], [1, 1], False),
    ([1, 2], [2, 1], False), ([], [], True), ([1], {"0": 1}, False),
    ({"a": 1}, {"a": 1.0}, True), ({"a": 1}, {"b": 1}, False), ({"a": 1}, {"a": 2}, False),
    ({}, [], False), (None, None, True), (None, 0, False), (None, "", False),
    (None, [], False),
]


@pytest.mark.parametrize(("a", "b", "equal"), JSON_EQUAL)
def test_json_equal(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal


COMPILE_TEST: list[tuple[str, list[Any], Any, bool]] = [  # (op, clause values, value, match)
    ("startsWith", ["ab"], "abc", True), ("startsWith", ["bc"], "abc", False),
    ("endsWith", ["bc"], "abc", True), ("endsWith", ["ab"], "abc", False),
    ("contains", ["b"], "abc", True), ("contains", ["x"], "abc", False),
    ("startsWith", ["x", "a"], "abc", True),
    ("lessThan", [5], 5, False), ("lessThan", [5], 4.9, True), ("lessThan", [1, 5], 3, True),
    ("lessThanOrEqual", [5], 5, True), ("lessThanOrEqual", [5], 5.1, False),
    ("lessThanOrEqual", [1, 5], 5, True),
    ("greaterThan", [5], 5, False), ("greaterThan", [5], 5.1, True),
    ("greaterThan", [1, 5], 3, True),
    ("greaterThanOrEqual", [5], 5, True), ("greaterThanOrEqual", [5], 4.9, False),
    ("greaterThanOrEqual", [1, 5], 1, True),
    ("before", [1000, 3000], 2000, True), ("before", [3000], 3000, False),
    ("after", [1000, 3000], 2000, True), ("after", [1000], 1000, False),
    ("semVerLessThan", ["2.0.0"], "2.0.0", False), ("semVerLessThan", ["1.0.0", "3.0.0"],
                                                   "2.0.0", True),
    ("semVerGreaterThan", ["2.0.0"], "2.0.0", False), ("semVerGreaterThan", ["1.0.0", "3.0.0"],
                                                      "2.0.0", True),
    ("semVerGreaterThan", ["3.0.0"], "2.0.0", False), ("semVerLessThan", ["1.0.0"], "2.0.0",
                                                        False),
    ("semVerEqual", ["1.0.0", "2.0"], "2.0.0", True), ("semVerEqual", ["2.0.0"], "2.0.1", False),
    ("semVerEqual", ["2.0.0"], "bad", False),
    ("matches", ["^b", "c$"], "abc", True), ("matches", ["^b"], "abc", False),
    ("matches", ["a"], 1, False),
    ("in", [[1, 2]], [1, 2], True), ("in", [{"a": None}], {"a": None}, True),
    ("in", [None], None, False),
    ("segmentMatch", ["s"], "s", False), ("unknownOp", ["x"], "x", False),
]


@pytest.mark.parametrize(("op", "values", "value", "match"), COMPILE_TEST)
def test_compile_test(op: str, values: list[Any], value: Any, match: bool) -> None:
    assert compile_test(op, values)(value) is match


def _ctx(obj: dict[str, Any]) -> Context:
    return parse_context(obj)


USER = {"kind": "user", "key": "u", "a": {"b": {"c": "deep"}}, "list": ["x", "y"], "n": None}
MULTI = {"kind": "multi", "user": {"key": "u"}, "org": {"key": "o", "a": "x"}}
MATCHER: list[tuple[str, str | None, str, list[Any], bool, dict[str, Any], bool]] = [
    # (contextKind, attribute, op, values, negate, context, match)
    ("user", "/a/b/c", "in", ["deep"], False, USER, True),
    ("user", "/a/b/c", "in", ["deep"], True, USER, False),
    ("user", "/a/b/c", "in", ["x"], True, USER, True),
    ("user", "/a/b", "in", ["deep"], False, USER, False),
    ("user", "/a/x/c", "in", ["deep"], True, USER, False),  # missing: no match, even negated
    ("user", "/list/x", "in", ["x"], True, USER, False),  # a path through an array: missing
    ("user", "/n", "in", [None], True, USER, False),  # null is missing
    ("user", "list", "in", ["y"], False, USER, True),  # any element of an array
    ("user", "list", "in", ["y"], True, USER, False),
    ("user", "list", "in", ["z"], True, USER, True),
    ("", "/a/b/c", "in", ["deep"], False, {**USER, "/a/b/c": "lit"}, False),  # legacy: literal
    ("", "/a/b/c", "in", ["lit"], False, {**USER, "/a/b/c": "lit"}, True),
    ("org", "a", "in", ["x"], False, MULTI, True),
    ("org", "a", "in", ["x"], True, MULTI, False),
    ("device", "key", "in", ["o"], True, MULTI, False),  # no part of that kind: no match
    ("", "kind", "in", ["user"], False, USER, True),
    ("", "kind", "in", ["user"], True, USER, False),
    ("", "kind", "in", ["org"], False, USER, False),
    ("", "kind", "in", ["org"], True, USER, True),
    ("org", "kind", "in", ["org"], False, MULTI, True),  # any kind of a multi-kind context
    ("", "kind", "in", ["user"], False, MULTI, True),
    ("", "kind", "in", ["multi"], False, MULTI, False),
    ("", "kind", "in", ["user"], True, MULTI, False),
    ("", "kind", "in", ["device"], True, MULTI, True),
    # "kind" is every kind of the context, whatever kind the clause names
    ("org", "kind", "in", ["user"], False, MULTI, True),
    ("device", "kind", "in", ["user"], False, USER, True),
]


@pytest.mark.parametrize(("kind", "attribute", "op", "values", "negate", "ctx", "match"),
                         MATCHER)
def test_clause_match(kind: str, attribute: str | None, op: str, values: list[Any],
                      negate: bool, ctx: dict[str, Any], match: bool) -> None:
    clause = compile_clause(op, kind, attribute, negate, values)
    assert clause.match(_ctx(ctx)) is match


@pytest.mark.parametrize(("kind", "attribute", "message"), [
    ("user", None, "clause has no attribute"), ("user", "", "clause has no attribute"),
    ("user", "/a~2", "invalid attribute '/a~2'"), ("org", "//", "invalid attribute '//'"),
])
def test_clause_without_a_valid_attribute_is_malformed_when_reached(
        kind: str, attribute: str | None, message: str) -> None:
    clause = compile_clause("in", kind, attribute, False, ["x"])
    with pytest.raises(MalformedFlagError) as raised:
        clause.match(_ctx(USER))
    assert str(raised.value) == message


def test_compiled_clause_fields() -> None:
    plain = compile_clause("in", "", "/a", True, ["x", 1])
    assert (plain.op, plain.context_kind, plain.attribute, plain.negate, plain.values,
            plain.segment_keys, plain.is_segment) == (
        "in", "user", AttrRef("/a", ("/a",)), True, ("x", 1), (), False)
    seg = compile_clause("segmentMatch", "org", "/a/b", False, ["s1", 2, "s2"])
    assert (seg.op, seg.context_kind, seg.attribute, seg.negate, seg.values, seg.segment_keys,
            seg.is_segment) == (
        "segmentMatch", "org", AttrRef("/a/b", ("a", "b")), False, ("s1", 2, "s2"),
        ("s1", "s2"), True)
    assert seg.match(_ctx(USER)) is False  # the evaluator decides segment clauses
