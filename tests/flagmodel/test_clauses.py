"""The operator table of go-server-sdk-evaluation (``evaluator_clause_operator_test.go``,
ported as data), run through whole flags."""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel import Evaluator, Flag, parse_context

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
