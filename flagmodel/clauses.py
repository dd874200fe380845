"""Clause compilation: each clause becomes one closure ``match(context) -> bool``.

Theory of operation. A clause matches when any context value matches any clause value
(PROTOCOL.md §4.3). Every operator reduces the clause values once, at compile time, to the
cheapest structure that answers "does any clause value match this context value":

- ``in``: sets of strings, floats and booleans (kept apart so ``1`` never equals ``true``),
  plus a list of arrays/objects compared by deep JSON equality;
- ``startsWith``/``endsWith``: one tuple for ``str.startswith``; ``contains``/``matches``: lists;
- numeric and date comparisons: "v < any clause value" is "v < the largest", so one number;
- semver: parsed sort keys; equality is set membership.

Only the clause values ``clause_values`` finds usable take part (the validation refuses the
others); context values of the wrong type never match and never raise. What does raise
(``MalformedFlagError``) are the data errors the SDKs report as ``MALFORMED_FLAG``: a clause
with no attribute or with an invalid attribute reference. A missing attribute, or a context
without the clause's kind, is a non-match whether or not the clause is negated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flagmodel.attrref import AttrRef, ref_for
from flagmodel.clause_values import usable_operands
from flagmodel.context import DEFAULT_KIND, MULTI_KIND, Context
from flagmodel.values import (
    Semver,
    is_number,
    parse_semver,
    to_timestamp_ns,
)

SEGMENT_MATCH = "segmentMatch"

Test = Callable[[object], bool]


class MalformedFlagError(Exception):
    """Flag or segment data that the SDKs evaluate to ERROR/MALFORMED_FLAG."""


def json_equal(a: object, b: object) -> bool:
    """JSON equality: type-strict, numbers by value, arrays and objects deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float):
        return isinstance(b, int | float) and float(a) == float(b)
    if isinstance(a, str):
        return isinstance(b, str) and a == b
    if isinstance(a, list):
        return (isinstance(b, list) and len(a) == len(b)
                and all(json_equal(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(json_equal(a[k], b[k]) for k in a))
    return a is None and b is None


def _never(value: object) -> bool:
    return False


def _in_test(values: list[object]) -> Test:
    strs = frozenset(v for v in values if isinstance(v, str))
    bools = frozenset(v for v in values if isinstance(v, bool))
    nums = frozenset(float(v) for v in values if is_number(v))
    others = [v for v in values if isinstance(v, list | dict)]

    def test(v: object) -> bool:
        if isinstance(v, str):
            return v in strs
        if isinstance(v, bool):
            return v in bools
        if isinstance(v, int | float):
            return float(v) in nums
        return any(json_equal(v, o) for o in others)

    return test


def _string_test(op: str, strs: tuple[str, ...]) -> Test:
    if op == "startsWith":
        return lambda v: isinstance(v, str) and v.startswith(strs)
    if op == "endsWith":
        return lambda v: isinstance(v, str) and v.endswith(strs)
    return lambda v: isinstance(v, str) and any(s in v for s in strs)


def _matches_test(patterns: list[re.Pattern[str]]) -> Test:
    return lambda v: isinstance(v, str) and any(p.search(v) is not None for p in patterns)


def _numeric_test(op: str, nums: list[float]) -> Test:
    hi, lo = max(nums), min(nums)
    if op == "lessThan":
        return lambda v: is_number(v) and float(v) < hi
    if op == "lessThanOrEqual":
        return lambda v: is_number(v) and float(v) <= hi
    if op == "greaterThan":
        return lambda v: is_number(v) and float(v) > lo
    return lambda v: is_number(v) and float(v) >= lo


def _date_test(op: str, times: list[int]) -> Test:
    if op == "before":
        latest = max(times)

        def before(v: object) -> bool:
            t = to_timestamp_ns(v)
            return t is not None and t < latest

        return before
    earliest = min(times)

    def after(v: object) -> bool:
        t = to_timestamp_ns(v)
        return t is not None and t > earliest

    return after


def _semver_test(op: str, vers: list[Semver]) -> Test:
    if op == "semVerEqual":
        exact = frozenset(vers)

        def equal(v: object) -> bool:
            return parse_semver(v) in exact

        return equal
    bound = max(vers) if op == "semVerLessThan" else min(vers)
    less = op == "semVerLessThan"

    def compare(v: object) -> bool:
        s = parse_semver(v)
        return s is not None and (s < bound if less else s > bound)

    return compare


def compile_test(op: str, values: list[object]) -> Test:
    """A predicate telling whether one context value matches any of ``values`` under ``op``.

    Only the values ``clause_values`` finds usable take part; with none, nothing matches."""
    operands: list[Any] = usable_operands(op, values)
    if not operands:
        return _never  # also unknown operators (negation still applies)
    if op == "in":
        return _in_test(operands)
    if op in ("startsWith", "endsWith", "contains"):
        return _string_test(op, tuple(operands))
    if op == "matches":
        return _matches_test(operands)
    if op in ("lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"):
        return _numeric_test(op, operands)
    if op in ("before", "after"):
        return _date_test(op, operands)
    if op in ("semVerEqual", "semVerLessThan", "semVerGreaterThan"):
        return _semver_test(op, operands)
    return _never  # segmentMatch: the evaluator decides


@dataclass(frozen=True, slots=True)
class Clause:
    op: str
    context_kind: str
    attribute: AttrRef | None
    negate: bool
    values: tuple[object, ...]
    segment_keys: tuple[str, ...]
    is_segment: bool  # segmentMatch: the evaluator decides, ``match`` is unused
    match: Callable[[Context], bool]


def _matcher(ref: AttrRef | None, kind: str, negate: bool, test: Test) -> Callable[[Context], bool]:
    if ref is None or ref.error is not None:
        message = "clause has no attribute" if ref is None else f"invalid attribute {ref.raw!r}"

        def malformed(context: Context) -> bool:
            raise MalformedFlagError(message)

        return malformed
    if ref.raw == "kind":  # the kinds of the context, not an attribute
        def by_kind(context: Context) -> bool:
            if context.kind != MULTI_KIND:
                return test(context.kind) != negate
            return any(test(c.kind) for c in context.contexts) != negate

        return by_kind
    comps = ref.components
    first, rest = comps[0], comps[1:]

    def by_attribute(context: Context) -> bool:
        ctx = context._by_kind.get(kind)
        if ctx is None:
            return False
        value = ctx.values.get(first)
        for name in rest:
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            return False
        if isinstance(value, list):
            return any(map(test, value)) != negate
        return test(value) != negate

    return by_attribute


def compile_clause(op: str, context_kind: str, attribute: str | None, negate: bool,
                   values: list[object]) -> Clause:
    kind = context_kind or DEFAULT_KIND
    ref = ref_for(attribute, context_kind)
    if op == SEGMENT_MATCH:
        keys = tuple(k for k in usable_operands(op, values) if isinstance(k, str))
        return Clause(op, kind, ref, negate, tuple(values), keys, True, _never_ctx)
    test = compile_test(op, values)
    return Clause(op, kind, ref, negate, tuple(values), (), False,
                  _matcher(ref, kind, negate, test))


def _never_ctx(context: Context) -> bool:
    return False
