"""One definition of a usable clause value: the validation, the evaluator and the official SDK.

``flagmodel.clause_values`` parses clause values for the evaluator and for the validation. These
tests hold the three together:

- a table of the values where the engine (which follows the Go evaluator) and the official
  Python SDK used to disagree, each refused by the validation and ignored by the evaluator;
- a hypothesis test per operator that generates clause values (well-formed, nearly well-formed
  and of the wrong type) and asserts (a) the validation accepts a value exactly when the
  evaluator can use it: an accepted value matches its witness context value, a refused one
  matches no context value; (b) on every accepted value the evaluator answers as the SDK does.

Context values in (b) are the clause values themselves, their witnesses and values near them,
kept to those on which the Go rules the engine follows for context values and the Python SDK's
agree (a context value is not a clause value: the validation does not see it). Inside objects
no booleans are generated: the Python SDK compares nested values with ``==``, where ``True ==
1`` (Go and the engine do not).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldclient.versioned_data_kind import FEATURES, SEGMENTS

from flagmodel import Evaluator, Flag, Segment, parse_context
from flagmodel.clause_values import OPERANDS, Unusable
from flagmodel.validation import check_item
from flagmodel.values import NS_PER_MS, parse_semver
from tests.flagmodel.harness_data import sdk_normalized_flag, sdk_normalized_segment
from tests.flagmodel.sdk_oracle import sdk_result

SEGMENT_KEY_CONTEXT = "member"


def _flag(op: str, values: list[Any]) -> dict[str, Any]:
    clause = {"attribute": "attr", "op": op, "values": values, "negate": False}
    if op == "segmentMatch":
        clause["attribute"] = ""
    return {"key": "f", "version": 1, "on": True, "salt": "s", "variations": [False, True],
            "fallthrough": {"variation": 0},
            "rules": [{"id": "r", "variation": 1, "clauses": [clause]}]}


def _segments(op: str, values: list[Any]) -> dict[str, dict[str, Any]]:
    # segmentMatch: a segment for every string value, holding the context key "member".
    if op != "segmentMatch":
        return {}
    return {v: {"key": v, "version": 1, "salt": "", "included": [SEGMENT_KEY_CONTEXT]}
            for v in values if isinstance(v, str)}


def _context(op: str, value: Any) -> dict[str, Any]:
    if op == "segmentMatch":
        return {"kind": "user", "key": SEGMENT_KEY_CONTEXT}
    return {"kind": "user", "key": "k", "attr": value}


def _ours(op: str, values: list[Any], context_value: Any) -> bool:
    segments = {k: Segment.from_json(s) for k, s in _segments(op, values).items()}
    flag = Flag.from_json(_flag(op, values))
    detail = Evaluator(lambda k: None, segments.get).evaluate(
        flag, parse_context(_context(op, context_value)))
    assert detail.variation_index is not None, detail.reason
    return bool(detail.value)


def _theirs(oracle: tuple[Any, Any], op: str, values: list[Any], context_value: Any) -> bool:
    client, store = oracle
    store.init({FEATURES: {"f": sdk_normalized_flag(_flag(op, values))},
                SEGMENTS: {k: sdk_normalized_segment(s)
                           for k, s in _segments(op, values).items()}})
    value, index, reason = sdk_result(client, "f", _context(op, context_value))
    assert index is not None, reason
    return bool(value)


def _refusals(op: str, values: list[Any]) -> list[str]:
    return check_item("flags", "f", _flag(op, values))


# -- the values the engine and the SDK disagreed on ----------------------------------------

DISAGREEMENTS: list[tuple[str, Any, Any, bool, str]] = [
    # (op, clause value, context value, does the SDK match, the validation's reason)
    ("before", "2020-01-01T1:00:00Z", "2019-01-01T00:00:00Z", False, "two digits"),
    ("before", "2020-02-30T00:00:00Z", "2020-01-01T00:00:00Z", False, "has 29 days"),
    ("after", "2020-01-01T00:00:60Z", "2021-01-01T00:00:00Z", False, "second 60"),
    ("before", "2020-01-01T00:00:00+99:00", "2000-01-01T00:00:00Z", False, "offset hour"),
    ("after", "0000-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False, "year 0"),
    ("before", "2020-01-01T00:00:00.0000001Z", "2020-01-01T00:00:00Z", False, "microsecond"),
    # Go truncates 1.5 ms to 1 ms, the Python SDK keeps 1.5: a value the SDKs read differently
    ("before", 1.5, 1, True, "whole number"),
    ("semVerEqual", "1.2.3-01", "1.2.3-01", False, "not a semantic version"),
]


@pytest.mark.parametrize(("op", "value", "context_value", "sdk_matches", "reason"),
                         DISAGREEMENTS)
def test_values_the_sdks_do_not_share_are_refused_and_never_match(
        oracle: tuple[Any, Any], op: str, value: Any, context_value: Any, sdk_matches: bool,
        reason: str) -> None:
    assert _theirs(oracle, op, [value], context_value) is sdk_matches
    refusals = _refusals(op, [value])
    assert any(reason in r for r in refusals), refusals
    assert _ours(op, [value], context_value) is False


# -- generated clause values --------------------------------------------------------------

def _digits(lo: int, hi: int, n: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda i: str(i).zfill(n))


@st.composite
def _rfc3339(draw: st.DrawFn) -> str:
    """Near RFC 3339: every Go leniency and a few shapes neither SDK reads."""
    year = draw(st.sampled_from(["0000", "0001", "1970", "2017", "2020", "2024", "9999"]))
    month = draw(_digits(1, 12, 2))
    day = draw(st.one_of(_digits(1, 28, 2), _digits(29, 31, 2)))
    hour = draw(st.one_of(_digits(0, 23, 2), st.integers(0, 9).map(str)))
    minute, second = draw(_digits(0, 59, 2)), draw(st.one_of(_digits(0, 59, 2), st.just("60")))
    frac = draw(st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=10)
                          .map(lambda f: "." + f)))
    offset = draw(st.one_of(st.sampled_from(["Z", "z", "", "+00:00"]),
                            st.tuples(st.sampled_from("+-"), _digits(0, 30, 2), _digits(0, 59, 2))
                            .map(lambda t: f"{t[0]}{t[1]}:{t[2]}")))
    sep = draw(st.sampled_from(["T", "t", " "]))
    return f"{year}-{month}-{day}{sep}{hour}:{minute}:{second}{frac}{offset}"


@st.composite
def _semver(draw: st.DrawFn) -> str:
    """Near SemVer 2.0: missing parts, leading zeros, empty and odd identifiers."""
    ident = st.one_of(st.sampled_from(["0", "01", "1", "rc", "0a", "-"]),
                      st.text("abrc-01", min_size=1, max_size=4), st.just(""))
    num = st.one_of(st.sampled_from(["0", "1", "2", "10"]), st.text("0123456789", max_size=2))
    nums = draw(st.lists(num, min_size=1, max_size=4))
    out = ".".join(nums)
    if draw(st.booleans()):
        out += "-" + ".".join(draw(st.lists(ident, min_size=1, max_size=3)))
    if draw(st.booleans()):
        out += "+" + ".".join(draw(st.lists(ident, min_size=1, max_size=2)))
    return draw(st.sampled_from(["", "v", " "])) + out + draw(st.sampled_from(["", "", "\n"]))


_leaf = st.one_of(st.text("ab", max_size=2), st.integers(-3, 3), st.just(2.5))
_nested = st.recursive(_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(st.sampled_from("xy"), inner, max_size=2)),
    max_leaves=4)
_wrong = st.one_of(st.none(), st.booleans(), st.just([]), st.just({}))
_numbers = st.one_of(st.integers(-10**16, 10**16), st.floats(allow_nan=False, allow_infinity=False,
                                                           width=64))

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "in": st.one_of(_nested, st.booleans(), st.none(), st.floats(-5, 5)),
    "startsWith": st.one_of(st.text("ab", max_size=3), _numbers, _wrong),
    "matches": st.one_of(st.text("ab.*+?()[]^$|\\{}1", max_size=5), _numbers, _wrong),
    "lessThan": st.one_of(_numbers, st.text("12", max_size=2), _wrong),
    "before": st.one_of(_rfc3339(), _numbers, st.text("0123456789-:TZ", max_size=8), _wrong),
    "semVerEqual": st.one_of(_semver(), st.text("0123456789.-+a", max_size=6), _numbers, _wrong),
    "segmentMatch": st.one_of(st.text("ab", max_size=2), _numbers, _wrong),
}
# Operators that share a parser share a strategy.
SHARED = {"endsWith": "startsWith", "contains": "startsWith", "lessThanOrEqual": "lessThan",
          "greaterThan": "lessThan", "greaterThanOrEqual": "lessThan", "after": "before",
          "semVerLessThan": "semVerEqual", "semVerGreaterThan": "semVerEqual"}


def _ms(ns: int, *, up: bool) -> int:
    return -(-ns // NS_PER_MS) if up else ns // NS_PER_MS


def _witness(op: str, value: Any, operand: Any) -> Any:
    """A context value that a clause holding only ``value`` must match."""
    if op == "in":
        return [value] if isinstance(value, list) else value
    if op in ("startsWith", "endsWith", "contains", "semVerEqual", "segmentMatch"):
        return value
    if op == "matches":
        return None  # no general witness; (b) covers the semantics
    if op in ("lessThanOrEqual", "greaterThanOrEqual"):
        return value
    if op == "lessThan":
        return math.nextafter(operand, -math.inf)
    if op == "greaterThan":
        return math.nextafter(operand, math.inf)
    if op == "before":
        return _ms(operand, up=False) - 1
    if op == "after":
        return _ms(operand, up=True) + 1
    major, minor, patch = operand[:3]
    if op == "semVerLessThan":
        return None if operand == parse_semver("0.0.0-0") else "0.0.0-0"
    return f"{major + 1}.{minor}.{patch}"


def _context_values(op: str, values: list[Any], witnesses: list[Any]) -> list[Any]:
    """Values to evaluate with, kept to those the Go rules and the Python SDK read alike."""
    near: list[Any] = ["a", "", 0, 1, -1.5, True, [], {"x": 1}, "1.2.3", "2020-01-01T00:00:00Z",
                       1577836800000, *values, *witnesses]
    parse = OPERANDS[SHARED.get(op, op)]
    usable = [v for v in near if v is not None and (isinstance(v, bool | list | dict)
                                                      or not isinstance(parse(v), Unusable)
                                                      or op in ("in", "matches"))]
    # A Python float is a JSON number; the SDK compares a date number as float milliseconds,
    # Go (and the engine) truncate it: only whole milliseconds are shared.
    if op in ("before", "after"):
        usable = [v for v in usable if not (isinstance(v, float) and v != int(v))]
    return usable


OPS = sorted(OPERANDS)


@pytest.mark.parametrize("op", OPS)
@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_validation_accepts_exactly_what_the_evaluator_uses_and_agrees_with_the_sdk(
        oracle: tuple[Any, Any], op: str, data: st.DataObject) -> None:
    strategy = STRATEGIES[SHARED.get(op, op)]
    values = data.draw(st.lists(strategy, min_size=1, max_size=3), label="values")
    accepted, witnesses = [], []
    for v in values:
        operand = OPERANDS[op](v)
        refused = _refusals(op, [v])
        if isinstance(operand, Unusable):
            # (a) refused, and a clause holding only this value matches nothing
            assert refused, v
            for c in _context_values(op, [v], []):
                assert _ours(op, [v], c) is False, (v, c)
        else:
            # (a) accepted, and a clause holding only this value matches its witness
            assert refused == [], (v, refused)
            witness = _witness(op, v, operand)
            if witness is not None:
                assert _ours(op, [v], witness) is True, (v, witness)
                witnesses.append(witness)
            accepted.append(v)
    if not accepted:
        return
    # (b) the engine answers as the official SDK on the clause of every accepted value
    for c in _context_values(op, accepted, witnesses):
        assert _ours(op, accepted, c) is _theirs(oracle, op, accepted, c), (accepted, c)


# -- each operator's reading of one value, exactly (message included) ------------------------

U = Unusable
MIN_MS, MAX_MS = -62_135_596_800_000, 253_402_300_799_999  # years 1 and 9999, to the ms
EXACT_OPERANDS: list[tuple[str, Any, Any]] = [
    ("in", None, U('clause values for "in" must not be null (a null attribute never matches)')),
    ("in", 0, 0), ("in", "x", "x"), ("in", [1], [1]),
    ("startsWith", "a", "a"), ("startsWith", 1, U("expected a string")),
    ("contains", None, U("expected a string")),
    ("lessThan", 1, 1.0), ("lessThan", -2.5, -2.5), ("lessThan", "1", U("expected a number")),
    ("lessThan", True, U("expected a number")), ("lessThan", math.inf, U("expected a number")),
    ("matches", 1, U("expected a regular expression string")),
    ("before", 0, 0), ("before", MIN_MS, MIN_MS * NS_PER_MS),
    ("before", MAX_MS, MAX_MS * NS_PER_MS),
    ("before", MIN_MS - 1, U("Unix milliseconds must fall in the years 1 to 9999")),
    ("before", MAX_MS + 1, U("Unix milliseconds must fall in the years 1 to 9999")),
    ("before", 1.5, U("Unix milliseconds must be a whole number (SDKs round differently)")),
    ("before", 2.0, 2 * NS_PER_MS),
    ("before", True, U("expected a date (Unix milliseconds or an RFC 3339 string)")),
    ("after", None, U("expected a date (Unix milliseconds or an RFC 3339 string)")),
    ("before", "1970-01-01T00:00:00Z", 0),
    ("before", "1970-01-31T00:00:00Z", 30 * 86400 * 10**9),  # the last day of its month
    ("before", "1970-01-01T00:00:00.000001Z", 1000),  # a whole microsecond
    ("before", "1970-01-01T00:00:00.0000001Z",
     U('"1970-01-01T00:00:00.0000001Z" is not a valid date: it is more precise than a '
       "microsecond, which not every SDK keeps")),
    ("before", "1970-01-01T23:00:00+23:00", 0),
    ("before", "1970-01-01T00:00:00+24:00",
     U('"1970-01-01T00:00:00+24:00" is not a valid date: the offset hour is above 23')),
    ("before", "0000-01-01T00:00:00Z",
     U('"0000-01-01T00:00:00Z" is not a valid date: year 0 does not exist')),
    ("before", "1970-02-29T00:00:00Z",
     U('"1970-02-29T00:00:00Z" is not a valid date: month 2 of 1970 has 28 days')),
    ("before", "1970-01-01T1:00:00Z",
     U('"1970-01-01T1:00:00Z" is not a valid date: the hour needs two digits')),
    ("before", "1970-01-01T00:00:60Z",
     U('"1970-01-01T00:00:60Z" is not a valid date: second 60 (a leap second) is not read by '
       "every SDK")),
    ("before", "1970-01-01", U('"1970-01-01" is not an RFC 3339 date')),
    ("semVerEqual", "1.2.3", parse_semver("1.2.3")), ("semVerEqual", "2", (2, 0, 0, 1, ())),
    ("semVerEqual", 1, U("expected a semantic version string")),
    ("semVerLessThan", "x", U('"x" is not a semantic version')),
    ("segmentMatch", "s", "s"), ("segmentMatch", "", U("expected a segment key")),
    ("segmentMatch", 1, U("expected a segment key")),
]


@pytest.mark.parametrize(("op", "value", "expected"), EXACT_OPERANDS)
def test_exact_operand(op: str, value: Any, expected: Any) -> None:
    assert OPERANDS[op](value) == expected
