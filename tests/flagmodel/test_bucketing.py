"""Percentage-rollout bucketing, float32-exact with the Go vectors (PROTOCOL.md §4.6)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from flagmodel import Evaluator, Flag, parse_context
from flagmodel.bucketing import bucket_for_input, cumulative_thresholds


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
