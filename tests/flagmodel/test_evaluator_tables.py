"""Table-driven tests of the engine's pieces: bucketing vectors (PROTOCOL.md §4.6), the operator
table of go-server-sdk-evaluation (``evaluator_clause_operator_test.go``, ported as data), value
parsers, contexts, tolerant parsing and the client-side payload fields."""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

import pytest

from flagmodel import (
    ContextError,
    Evaluator,
    Flag,
    Segment,
    client_side_flag,
    client_side_payload,
    fully_qualified_key,
    is_client_side_available,
    parse_context,
    secure_mode_hash,
)
from flagmodel.bucketing import bucket_for_input, cumulative_thresholds
from flagmodel.values import parse_rfc3339_ns, parse_semver


def as_f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


# -- bucketing -------------------------------------------------------------------------------

BUCKET_VECTORS = [
    ("hashKey.saltyA.userKeyA", "0.42157587"),
    ("hashKey.saltyA.userKeyB", "0.6708485"),
    ("hashKey.saltyA.userKeyC", "0.10343106"),
    ("hashKey.saltyA.33333", "0.54771423"),
    ("hashKey.saltyA.99999", "0.7309658"),
    ("61.userKeyA", "0.09801207"),
    ("61.userKeyB", "0.14483777"),
    ("61.userKeyC", "0.9242641"),
]


@pytest.mark.parametrize(("hash_input", "expected"), BUCKET_VECTORS)
def test_bucket_vectors_are_float32_exact(hash_input: str, expected: str) -> None:
    # The Go vectors are float32 values printed shortest; rounding them to float32 recovers the
    # exact value, and our bucket must be that float32 bit for bit.
    assert bucket_for_input(hash_input) == as_f32(float(expected))


def _rollout_flag(seed: int | None, bucket_by: str | None, kind: str, weights: list[int],
                  *, experiment: bool = False, context_kind: str = "") -> Flag:
    rollout: dict[str, Any] = {"variations": [{"variation": i, "weight": w}
                                              for i, w in enumerate(weights)]}
    if seed is not None:
        rollout["seed"] = seed
    if bucket_by is not None:
        rollout["bucketBy"] = bucket_by
    if experiment:
        rollout["kind"] = "experiment"
    if context_kind:
        rollout["contextKind"] = context_kind
    return Flag.from_json({"key": "hashKey", "salt": "saltyA", "on": True, "version": 1,
                           "variations": [f"v{i}" for i in range(len(weights))],
                           "fallthrough": {"rollout": rollout}})


def _bracket(bucket: float) -> list[int]:
    # Three variations whose middle one spans exactly [bucket - 0.0001, bucket + 0.0001).
    low = int(bucket * 100000) - 10
    return [low, 20, 100000 - low - 20]


ROLLOUT_CASES = [  # (context JSON, seed, bucketBy, rollout contextKind, bucket vector)
    ({"kind": "user", "key": "userKeyA"}, None, None, "", "0.42157587"),
    ({"kind": "user", "key": "userKeyB"}, None, None, "", "0.6708485"),
    ({"kind": "user", "key": "x", "attr": "userKeyC"}, None, "attr", "", "0.10343106"),
    ({"kind": "user", "key": "x", "attr": 33333}, None, "attr", "", "0.54771423"),
    ({"kind": "user", "key": "x", "attr": 33333.0}, None, "attr", "", "0.54771423"),
    ({"kind": "org", "key": "x", "n": {"attr": "userKeyC"}}, None, "/n/attr", "org",
     "0.10343106"),
    ({"kind": "user", "key": "userKeyA"}, 61, None, "", "0.09801207"),
    ({"kind": "multi", "user": {"key": "u"}, "org": {"key": "userKeyC"}}, 61, None, "org",
     "0.9242641"),
]


@pytest.mark.parametrize(("ctx", "seed", "bucket_by", "kind", "vector"), ROLLOUT_CASES)
def test_rollout_picks_the_bracketed_variation(ctx: dict[str, Any], seed: int | None,
                                               bucket_by: str | None, kind: str,
                                               vector: str) -> None:
    flag = _rollout_flag(seed, bucket_by, kind, _bracket(float(vector)), context_kind=kind)
    detail = Evaluator(lambda k: None, lambda k: None).evaluate(flag, parse_context(ctx))
    assert (detail.variation_index, detail.reason) == (1, {"kind": "FALLTHROUGH"})


BUCKET_ZERO_CASES = [  # bucket 0 ⇒ first variation with positive weight
    ({"kind": "user", "key": "k", "attr": 1.5}, "attr"),  # non-integer number
    ({"kind": "user", "key": "k", "attr": True}, "attr"),  # wrong type
    ({"kind": "user", "key": "k"}, "attr"),  # missing
]


@pytest.mark.parametrize(("ctx", "bucket_by"), BUCKET_ZERO_CASES)
def test_unbucketable_values_get_bucket_zero(ctx: dict[str, Any], bucket_by: str) -> None:
    flag = _rollout_flag(None, bucket_by, "", [0, 1, 99999])
    detail = Evaluator(lambda k: None, lambda k: None).evaluate(flag, parse_context(ctx))
    assert detail.variation_index == 1


EXPERIMENT_CASES = [  # (context, rollout contextKind, expected index, inExperiment)
    ({"kind": "user", "key": "userKeyA"}, "", 1, True),
    ({"kind": "org", "key": "userKeyA"}, "", 0, False),  # lacks the kind: first, not in exp.
]


@pytest.mark.parametrize(("ctx", "kind", "index", "in_exp"), EXPERIMENT_CASES)
def test_experiment_bucketing(ctx: dict[str, Any], kind: str, index: int, in_exp: bool) -> None:
    flag = _rollout_flag(61, "ignored-in-experiments", kind, [9801, 90199],
                         experiment=True, context_kind=kind)
    detail = Evaluator(lambda k: None, lambda k: None).evaluate(flag, parse_context(ctx))
    assert detail.variation_index == index
    assert detail.reason.get("inExperiment", False) is in_exp
    assert detail.in_experiment is in_exp and detail.track_events is in_exp


def test_bucket_past_the_last_weight_uses_the_last_variation() -> None:
    flag = _rollout_flag(None, None, "", [1, 1])  # weights sum to 0.002 %
    detail = Evaluator(lambda k: None, lambda k: None).evaluate(
        flag, parse_context({"kind": "user", "key": "userKeyA"}))
    assert detail.variation_index == 1


def test_thresholds_accumulate_in_float32() -> None:
    # Expected values computed independently with numpy.float32; float64 would give
    # 0.30000000000000004 ... 0.9999999999999999 instead.
    assert cumulative_thresholds([10000] * 10) == (
        0.10000000149011612, 0.20000000298023224, 0.30000001192092896, 0.4000000059604645, 0.5,
        0.6000000238418579, 0.7000000476837158, 0.8000000715255737, 0.9000000953674316,
        1.0000001192092896)


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


# -- value parsers ---------------------------------------------------------------------------

RFC3339 = [
    ("1970-01-01T00:00:00Z", 0), ("1970-01-01T00:00:00.5Z", 500_000_000),
    ("1970-01-01T00:00:00.123456789z", 123_456_789), ("1970-01-01T01:00:00+01:00", 0),
    ("1970-01-01t1:00:00-01:00", 7_200_000_000_000),  # 1-digit hour, lowercase t
    ("1970-02-30T00:00:00Z", 60 * 86400 * 10**9),  # day overflow normalised: Mar 2
    ("1970-01-01T00:00:60Z", 60 * 10**9), ("0000-01-01T00:00:00Z", -62167219200 * 10**9),
    ("1970-01-01T00:00:00.1234567891Z", None), ("1970-01-01T00:00:00", None),
    ("1970-01-01T00:00:00.5", None), ("1970-1-01T00:00:00Z", None), ("1970-13-01T00:00:00Z", None),
    ("1970-01-01T24:00:00Z", None), ("1970-01-01 00:00:00Z", None), ("", None),
    ("1970-01-01T00:00:00+1:00", None), ("1970-01-01T00:00:00+01:00x", None),
    ("1970-01-01T00:00:00+99:59", -(99 * 3600 + 59 * 60) * 10**9),
]


@pytest.mark.parametrize(("text", "ns"), RFC3339)
def test_rfc3339(text: str, ns: int | None) -> None:
    assert parse_rfc3339_ns(text) == ns


SEMVER = [
    ("2", (2, 0, 0, 1, ())), ("2.1", (2, 1, 0, 1, ())), ("2.1.3+b.1", (2, 1, 3, 1, ())),
    ("1.0.0-alpha.1", (1, 0, 0, 0, ((1, 0, "alpha"), (0, 1, "")))),
    ("01.0.0", None), ("1.0.0-01", None), ("1.0.0-", None), ("1.0.0+", None), ("1..0", None),
    ("1.0.0.0", None), ("v1.0.0", None), ("1.0.0-a_b", None), ("1.0.0-é", None), (3, None),
]


@pytest.mark.parametrize(("text", "parsed"), SEMVER)
def test_semver(text: Any, parsed: Any) -> None:
    assert parse_semver(text) == parsed


def test_semver_precedence_follows_the_spec() -> None:
    chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1", "2"]
    keys = [parse_semver(v) for v in chain]
    assert None not in keys
    assert keys == sorted(k for k in keys if k is not None)
    assert len(set(keys)) == len(keys)


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


# -- tolerant parsing and errors ---------------------------------------------------------------

ODD_FLAGS = [
    {"rules": 5}, {"on": "yes"}, {"variations": {}}, {"targets": [{"values": "u"}]},
    {"fallthrough": {"rollout": {"variations": [{"weight": "x"}]}}}, {"prerequisites": [1]},
    {"rules": [{"clauses": [{"attribute": 1, "op": "in", "values": []}]}]},
]


@pytest.mark.parametrize("odd", ODD_FLAGS)
def test_structurally_odd_flags_evaluate_to_malformed_flag(odd: dict[str, Any]) -> None:
    flag = Flag.from_json({"key": "f", "version": 3, "on": True, "variations": [1],
                           "fallthrough": {"variation": 0}, **odd})
    assert flag.malformed is not None and (flag.key, flag.version) == ("f", 3)
    detail = Evaluator(lambda k: None, lambda k: None).evaluate(
        flag, parse_context({"kind": "user", "key": "u"}))
    assert (detail.value, detail.variation_index, detail.reason) == (
        None, None, {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"})


def _prereq_world(child: dict[str, Any]) -> tuple[Evaluator, Flag]:
    parent = Flag.from_json({"key": "parent", "version": 1, "on": True, "variations": ["a", "b"],
                             "offVariation": 1, "fallthrough": {"variation": 0},
                             "prerequisites": [{"key": "child", "variation": 0}]})
    flags = {"parent": parent, "child": Flag.from_json({"key": "child", "version": 1, **child})}
    return Evaluator(flags.get, lambda k: None), parent


PREREQ_CASES = [  # child flag → parent reason kind
    ({"on": True, "variations": [1], "fallthrough": {"variation": 0}}, "FALLTHROUGH"),
    ({"on": False, "variations": [1], "offVariation": 0}, "PREREQUISITE_FAILED"),
    # a local error in the prerequisite (bad index) is a failed prerequisite for the parent
    ({"on": True, "variations": [1], "fallthrough": {"variation": 5}}, "PREREQUISITE_FAILED"),
    # a clause error anywhere aborts the whole evaluation
    ({"on": True, "variations": [1], "fallthrough": {"variation": 0},
      "rules": [{"variation": 0, "clauses": [{"op": "in", "values": ["x"]}]}]}, "ERROR"),
    ({"on": True, "variations": [1], "fallthrough": {"variation": 0},
      "prerequisites": [{"key": "parent", "variation": 0}]}, "ERROR"),  # cycle
]


@pytest.mark.parametrize(("child", "kind"), PREREQ_CASES)
def test_prerequisite_outcomes(child: dict[str, Any], kind: str) -> None:
    evaluator, parent = _prereq_world(child)
    detail = evaluator.evaluate(parent, parse_context({"key": "u"}))
    assert detail.reason["kind"] == kind
    if kind != "ERROR":
        assert detail.prerequisites == ("child",)


def test_big_segment_is_not_configured() -> None:
    seg = Segment.from_json({"key": "big", "version": 1, "unbounded": True, "generation": 2,
                             "included": ["u"], "rules": []})
    flag = Flag.from_json({"key": "f", "version": 1, "on": True, "variations": [0, 1],
                           "fallthrough": {"variation": 0}, "rules": [{"id": "r", "variation": 1,
                           "clauses": [{"attribute": "", "op": "segmentMatch",
                                        "values": ["big"]}]}]})
    detail = Evaluator(lambda k: None, {"big": seg}.get).evaluate(
        flag, parse_context({"kind": "user", "key": "u"}))
    assert detail.reason == {"kind": "FALLTHROUGH", "bigSegmentsStatus": "NOT_CONFIGURED"}


# -- client-side payload ---------------------------------------------------------------------

def _cs(flag_extra: dict[str, Any], with_reasons: bool) -> dict[str, Any]:
    flag = Flag.from_json({"key": "f", "version": 7, "on": True, "variations": ["a", "b"],
                           "fallthrough": {"variation": 1}, **flag_extra})
    detail = Evaluator(lambda k: None, lambda k: None).evaluate(
        flag, parse_context({"kind": "user", "key": "u"}))
    return client_side_flag(flag, detail, with_reasons=with_reasons)


CLIENT_SIDE = [
    ({}, False, {"value": "b", "variation": 1, "version": 7, "flagVersion": 7}),
    ({}, True, {"value": "b", "variation": 1, "version": 7, "flagVersion": 7,
                "reason": {"kind": "FALLTHROUGH"}}),
    ({"trackEvents": True, "debugEventsUntilDate": 1700000000000}, False,
     {"value": "b", "variation": 1, "version": 7, "flagVersion": 7, "trackEvents": True,
      "debugEventsUntilDate": 1700000000000}),
    ({"trackEventsFallthrough": True}, False,
     {"value": "b", "variation": 1, "version": 7, "flagVersion": 7, "trackEvents": True,
      "trackReason": True, "reason": {"kind": "FALLTHROUGH"}}),
    ({"on": False}, False, {"value": None, "version": 7, "flagVersion": 7}),
]


@pytest.mark.parametrize(("extra", "with_reasons", "expected"), CLIENT_SIDE)
def test_client_side_flag_fields(extra: dict[str, Any], with_reasons: bool,
                                 expected: dict[str, Any]) -> None:
    assert _cs(extra, with_reasons) == expected


AVAILABILITY = [  # flag JSON extra → (mobile, environment id)
    ({}, (True, False)), ({"clientSide": True}, (True, True)),
    ({"clientSideAvailability": {"usingMobileKey": False, "usingEnvironmentId": True},
      "clientSide": False}, (False, True)),
    ({"clientSideAvailability": {}}, (False, False)),
]


@pytest.mark.parametrize(("extra", "expected"), AVAILABILITY)
def test_client_side_availability(extra: dict[str, Any], expected: tuple[bool, bool]) -> None:
    flag = Flag.from_json({"key": "f", "version": 1, **extra})
    got = (is_client_side_available(flag, mobile=True),
           is_client_side_available(flag, mobile=False))
    assert got == expected


def test_client_side_payload_filters_by_availability_and_tombstones() -> None:
    base = {"version": 2, "on": True, "variations": [1, 2], "fallthrough": {"variation": 0}}
    flags = [Flag.from_json({**base, "key": "js", "clientSide": True}),
             Flag.from_json({**base, "key": "server-only", "clientSideAvailability": {}}),
             Flag.from_json({**base, "key": "mobile-only"}),
             Flag.from_json({**base, "key": "gone", "clientSide": True, "deleted": True})]
    evaluator = Evaluator({f.key: f for f in flags}.get, lambda k: None)
    ctx = parse_context({"key": "u"})
    one = {"value": 1, "variation": 0, "version": 2, "flagVersion": 2}
    assert client_side_payload(evaluator, flags, ctx, mobile=False, with_reasons=False) == {
        "js": one}
    assert client_side_payload(evaluator, flags, ctx, mobile=True, with_reasons=False) == {
        "js": one, "mobile-only": one}
