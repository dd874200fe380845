"""Percentage-rollout bucketing, float32-exact with the Go vectors (PROTOCOL.md §4.6)."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest

from flagmodel import Evaluator, Flag, parse_context
from flagmodel.attrref import parse_ref
from flagmodel.bucketing import (
    KEY_REF,
    _int_to_f32,
    bucket_context,
    bucket_for_input,
    cumulative_thresholds,
    weight_fraction,
)


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


# -- the float32 steps, one by one ------------------------------------------------------------

INT_TO_F32 = [  # n → float32(n), round to nearest, ties to even (what Go's conversion does)
    (0, 0.0),
    (2**24 - 1, 16777215.0),  # 24 bits: exact
    (2**24, 16777216.0),
    (2**24 + 1, 16777216.0),  # a tie, the even neighbour is below
    (2**24 + 2, 16777218.0),
    (2**24 + 3, 16777220.0),  # a tie, the even neighbour is above
    (2**25 + 1, 33554432.0),  # below half way
    (2**25 + 3, 33554436.0),  # above half way
    (2**25 + 2, 33554432.0),  # a tie at shift 2, the even neighbour is below
    (2**25 + 6, 33554440.0),  # a tie at shift 2, the even neighbour is above
    # 60 bits, a little above a tie: float(n) would first round to the tie (53 bits) and then
    # to the even neighbour below; one rounding from the integer goes up, as Go does.
    (2**59 + 2**35 + 1, float(2**59 + 2**36)),
    (2**60 - 1, float(2**60)),  # the scale itself rounds up to 2**60
]


@pytest.mark.parametrize(("n", "expected"), INT_TO_F32)
def test_int_to_f32_rounds_once_to_nearest_even(n: int, expected: float) -> None:
    assert _int_to_f32(n) == expected


@pytest.mark.parametrize("n", [2**24 - 1, 2**24 + 1, 2**24 + 3, 2**26 + 2**2 + 1, 123456789,
                               2**52 + 2**29, 2**52 + 3 * 2**28])
def test_int_to_f32_agrees_with_struct_below_2_to_the_53(n: int) -> None:
    # Below 2**53 float(n) is exact, so struct's float32 rounding is an independent oracle.
    assert _int_to_f32(n) == as_f32(float(n))


def test_bucket_hashes_the_utf8_bytes() -> None:
    # A non-ASCII key: the bucket of SHA-1 over its UTF-8 bytes, computed here without the
    # module's helpers.
    digest = hashlib.sha1("p.ünï".encode()).hexdigest()
    assert bucket_for_input("p.ünï") == as_f32(float(int(digest[:15], 16))) / 2**60


WEIGHTS = [  # weight → float32(weight) / 100000 in float32
    (0, 0.0), (1, as_f32(1e-05)), (50000, 0.5), (99999, as_f32(0.99999)), (100000, 1.0),
]


@pytest.mark.parametrize(("weight", "fraction"), WEIGHTS)
def test_weight_fraction(weight: int, fraction: float) -> None:
    assert weight_fraction(weight) == fraction


def _single(attrs: dict[str, Any]) -> Any:
    return parse_context({"kind": "user", "key": "k", **attrs})


BUCKET_CONTEXT = [  # (attributes, bucketBy reference, hash input or None for bucket 0)
    ({"a": "x"}, "/a", "s.x"),
    ({"a": -3}, "/a", "s.-3"),
    ({"a": 2.0**62}, "/a", "s.4611686018427387904"),  # integral float below 2**63: an integer
    ({"a": -(2.0**62)}, "/a", "s.-4611686018427387904"),
    ({"a": 2.0**63}, "/a", None),  # out of int64 range: not bucketable
    ({"a": 2.0**64}, "/a", None),
    ({"a": False}, "/a", None),
    ({"a": None}, "/a", None),
    ({"a": ["x"]}, "/a", None),
    ({"a": {"b": "y"}}, "/a/b", "s.y"),
    ({"a": "text"}, "/a/b", None),  # a path through a string: missing, not an error
    ({"a": 5}, "/a/b/c", None),
    ({}, "/a/b", None),
]


@pytest.mark.parametrize(("attrs", "ref", "hash_input"), BUCKET_CONTEXT)
def test_bucket_context(attrs: dict[str, Any], ref: str, hash_input: str | None) -> None:
    bucket = bucket_context(_single(attrs), "user", parse_ref(ref), "s")
    assert bucket == (0.0 if hash_input is None else bucket_for_input(hash_input))


def test_bucket_context_of_a_missing_kind_is_none() -> None:
    assert bucket_context(_single({}), "org", KEY_REF, "s") is None
    assert bucket_context(_single({}), "user", KEY_REF, "s") == bucket_for_input("s.k")
