"""Differential test: the engine against the official Python server SDK's evaluator.

Hypothesis generates whole worlds (flags with targets, contextTargets, rules over every operator
with negation, rollouts and experiments with seeds and bucketBy, prerequisites that may be
missing or cyclic, segments with includes/excludes, weighted rules and segmentMatch recursion,
big segments) and contexts (single, multi, legacy user). The oracle is the unmodified
``launchdarkly-server-sdk`` in daemon mode over a pre-filled ``InMemoryFeatureStore`` (public
API, no network). Value, variation index and reason must be equal for every example.

Where the Python SDK is known to differ from the Go evaluator (which the engine follows, and
which LaunchDarkly's contract tests encode), the generator stays out of the difference:

- a weighted segment rule whose context lacks ``rolloutContextKind`` matches in Python (bucket
  -1 < weight) and not in Go: weighted rules here carry a clause requiring that kind;
- a context lacking the rollout kind gets bucket -1 (Python) or 0 (Go): weights here are >= 1;
- Go buckets ``3.0`` like ``3``, Python does not: numeric attributes here are ints or x.5;
- a user-kind ``contextTargets`` entry with values, ``includedContexts`` of kind user, ``/kind``
  references, invalid attribute references, legacy users with an empty key and Python's float
  millisecond timestamps are not generated (each handled differently by the two SDKs);
- a legacy ``targets`` entry is generated without ``contextKind``: Go matches it against the
  context of that kind, Python against the user (test_evaluator.py, ``GO_ONLY``);
- Python drops ``bigSegmentsStatus`` from ERROR reasons; it is ignored on ERROR here.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldclient.versioned_data_kind import FEATURES, SEGMENTS

from flagmodel import Evaluator, Flag, Segment, parse_context
from tests.flagmodel.harness_data import (
    sdk_normalized_flag,
    sdk_normalized_segment,
    typed,
)
from tests.flagmodel.sdk_oracle import DEFAULT, sdk_result

KINDS = ["user", "org", "device"]
KEYS = ["k0", "k1", "k2", "k3"]
FLAG_KEYS = ["f0", "f1", "f2", "f3"]
SEG_KEYS = ["s0", "s1", "s2"]
PLANS = ["free", "pro", "enterprise"]
EMAILS = ["a@x.com", "b@y.org", "ann@x.com"]
VERSIONS = ["1", "1.2", "1.2.3", "2.0.0-rc.1", "2.0.0-rc.11", "2.0.0-beta", "2.0.0", "2.0.0+b7",
            "10.1"]
DATES = ["2017-12-06T00:00:00Z", "2017-12-06T07:00:00+07:00", "2020-01-01T00:00:00-05:30",
         1512518400000, 1512518399000, 1577836800000]

# -- contexts --------------------------------------------------------------------------------

attr_values: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["Ann", "Bob", "ann"]),
    "email": st.sampled_from(EMAILS),
    "plan": st.sampled_from(PLANS),
    "score": st.one_of(st.integers(-5, 100), st.integers(-5, 100).map(lambda i: i + 0.5)),
    "tags": st.lists(st.sampled_from([*PLANS, 3, True]), max_size=3),
    "obj": st.fixed_dictionaries({"x": st.sampled_from(PLANS), "y": st.integers(0, 9)}),
    "version": st.sampled_from(VERSIONS),
    "when": st.sampled_from(DATES),
    "flagged": st.booleans(),
}


@st.composite
def single_json(draw: st.DrawFn, kind: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"key": draw(st.sampled_from(KEYS))}
    if kind is not None:
        out["kind"] = kind
    for name in sorted(attr_values):
        if draw(st.integers(0, 2)):
            out[name] = draw(attr_values[name])
    if draw(st.booleans()):
        out["anonymous"] = draw(st.booleans())
    return out


@st.composite
def context_json(draw: st.DrawFn) -> dict[str, Any]:
    shape = draw(st.sampled_from(["single", "multi", "legacy"]))
    if shape == "single":
        return draw(single_json(draw(st.sampled_from(KINDS))))
    if shape == "multi":
        kinds = draw(st.lists(st.sampled_from(KINDS), min_size=2, max_size=3, unique=True))
        out: dict[str, Any] = {"kind": "multi"}
        for k in kinds:
            out[k] = draw(single_json(None))
        return out
    user = draw(single_json(None))
    legacy: dict[str, Any] = {"key": user.pop("key"), "custom": {}}
    for name, value in user.items():
        if name in ("name", "email", "anonymous"):
            legacy[name] = value
        else:
            legacy["custom"][name] = value
    return legacy


# -- clauses, rollouts, flags, segments ---------------------------------------------------------

CLAUSE_SHAPES: list[tuple[list[str], list[str], st.SearchStrategy[Any]]] = [
    (["in"], ["name", "email", "plan", "key", "tags", "kind", "flagged", "score", "/obj/x"],
     st.sampled_from(["Ann", "pro", "free", "k1", "k2", "org", "user", True, 3, 3.0, 7.5])),
    (["startsWith", "endsWith", "contains"], ["email", "plan", "name", "key", "tags"],
     st.sampled_from(["a", "@x.com", "pro", "e", "k", ""])),
    (["matches"], ["email", "plan", "kind", "/obj/x"],
     st.sampled_from(["^a", r"x\.com$", "[0-9]", "pr.*", "^(free|pro)$"])),
    (["lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"], ["score", "/obj/y"],
     st.sampled_from([0, 3, 3.5, 50, 99.5, "50"])),
    (["before", "after"], ["when"], st.sampled_from([*DATES, "not a date", True])),
    (["semVerEqual", "semVerLessThan", "semVerGreaterThan"], ["version"],
     st.sampled_from([*VERSIONS, "bad.version", 2])),
    (["whatever"], ["plan"], st.sampled_from(PLANS)),
]


@st.composite
def clause(draw: st.DrawFn, *, segments: bool) -> dict[str, Any]:
    if segments and draw(st.integers(0, 4)) == 0:
        return {"attribute": "", "op": "segmentMatch", "negate": draw(st.booleans()),
                "values": draw(st.lists(st.sampled_from([*SEG_KEYS, "nope"]), min_size=1,
                                        max_size=2))}
    ops, attrs, values = draw(st.sampled_from(CLAUSE_SHAPES))
    attr = draw(st.sampled_from(attrs))
    kind = draw(st.sampled_from([None, *KINDS]))
    if kind is None and attr.startswith("/"):
        kind = "user"  # a path needs a contextKind; legacy clauses would read it literally
    out = {"attribute": attr, "op": draw(st.sampled_from(ops)), "negate": draw(st.booleans()),
           "values": draw(st.lists(values, min_size=1, max_size=3))}
    if kind is not None:
        out["contextKind"] = kind
    return out


@st.composite
def rollout(draw: st.DrawFn, n_variations: int) -> dict[str, Any]:
    count = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(1, 99999), min_size=count - 1, max_size=count - 1,
                                unique=True)))
    bounds = [0, *cuts, 100000]
    wvs = [{"variation": draw(st.integers(0, n_variations - 1)),
            "weight": bounds[i + 1] - bounds[i], "untracked": draw(st.booleans())}
           for i in range(count)]
    out: dict[str, Any] = {"variations": wvs}
    if draw(st.booleans()):
        out["kind"] = "experiment"
    kind = draw(st.sampled_from([None, *KINDS]))
    if kind is not None:
        out["contextKind"] = kind
    bucket_by = draw(st.sampled_from([None, "plan", "score", "name", "/obj/y", "/obj/x"]))
    if bucket_by is not None and not (bucket_by.startswith("/") and kind is None):
        out["bucketBy"] = bucket_by
    if draw(st.booleans()):
        out["seed"] = draw(st.integers(-1000, 1000))
    return out


@st.composite
def outcome(draw: st.DrawFn, n: int) -> dict[str, Any]:
    pick = draw(st.integers(0, 11))
    if pick < 5:
        return {"rollout": draw(rollout(n))}
    if pick == 11:
        return {"variation": n}  # out of range: MALFORMED_FLAG
    return {"variation": draw(st.integers(0, n - 1))}


@st.composite
def flag_json(draw: st.DrawFn, key: str) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    variations = draw(st.lists(st.one_of(st.text("ab", max_size=2), st.integers(0, 9),
                                         st.booleans(), st.none(),
                                         st.lists(st.integers(0, 2), max_size=2),
                                         st.fixed_dictionaries({"v": st.integers(0, 2)})),
                               min_size=n, max_size=n))
    flag: dict[str, Any] = {
        "key": key, "version": draw(st.integers(1, 5)), "on": draw(st.integers(0, 9)) > 0,
        "variations": variations, "salt": draw(st.sampled_from(["", "salty"])),
        "trackEvents": draw(st.booleans()), "trackEventsFallthrough": draw(st.booleans()),
        "fallthrough": draw(outcome(n)),
        "prerequisites": [{"key": draw(st.sampled_from([*FLAG_KEYS, "missing"])),
                           "variation": draw(st.integers(0, n - 1))}
                          for _ in range(max(0, draw(st.integers(-3, 2))))],
        "targets": [{"values": draw(st.lists(st.sampled_from(KEYS), max_size=2)),
                     "variation": draw(st.integers(0, n - 1))}
                    for _ in range(max(0, draw(st.integers(-2, 2))))],
        "contextTargets": [],
        "rules": [],
    }
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(KINDS))
        values = [] if kind == "user" else draw(st.lists(st.sampled_from(KEYS), max_size=2))
        flag["contextTargets"].append({"contextKind": kind, "values": values,
                                       "variation": draw(st.integers(0, n - 1))})
    for i in range(draw(st.integers(0, 4))):
        rule: dict[str, Any] = {
            "clauses": draw(st.lists(clause(segments=True), min_size=1, max_size=2)),
            "trackEvents": draw(st.booleans()), **draw(outcome(n))}
        if draw(st.integers(0, 4)):
            rule["id"] = f"r{i}"
        flag["rules"].append(rule)
    if draw(st.booleans()):
        flag["offVariation"] = draw(st.integers(0, n - 1 if draw(st.integers(0, 5)) else n))
    return flag


@st.composite
def segment_json(draw: st.DrawFn, key: str) -> dict[str, Any]:
    seg: dict[str, Any] = {
        "key": key, "version": 1, "salt": draw(st.sampled_from(["", "pepper"])),
        "included": draw(st.lists(st.sampled_from(KEYS), max_size=2)),
        "excluded": draw(st.lists(st.sampled_from(KEYS), max_size=2)),
        "includedContexts": [{"contextKind": draw(st.sampled_from(["org", "device"])),
                              "values": draw(st.lists(st.sampled_from(KEYS), max_size=2))}
                             for _ in range(draw(st.integers(0, 1)))],
        "excludedContexts": [{"contextKind": draw(st.sampled_from(["org", "device"])),
                              "values": draw(st.lists(st.sampled_from(KEYS), max_size=2))}
                             for _ in range(draw(st.integers(0, 1)))],
        "rules": [],
    }
    for _ in range(draw(st.integers(0, 2))):
        rule: dict[str, Any] = {"clauses": draw(st.lists(clause(segments=True), max_size=2))}
        if draw(st.booleans()):
            kind = draw(st.sampled_from(["", *KINDS]))
            rule["weight"] = draw(st.integers(0, 100000))
            if kind:
                rule["rolloutContextKind"] = kind
            bucket_by = draw(st.sampled_from([None, "plan", "score"]))
            if bucket_by:
                rule["bucketBy"] = bucket_by
            # Both SDKs agree only when the context has the rollout kind: require it.
            rule["clauses"].append({"contextKind": kind or "user", "attribute": "key",
                                    "op": "startsWith", "values": [""], "negate": False})
        seg["rules"].append(rule)
    if draw(st.integers(0, 5)) == 0:
        seg["unbounded"] = True
        seg["unboundedContextKind"] = draw(st.sampled_from(KINDS))
        if draw(st.booleans()):
            seg["generation"] = draw(st.integers(1, 3))
    return seg


@st.composite
def world(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    flags = {k: draw(flag_json(k)) for k in FLAG_KEYS[: draw(st.integers(1, 4))]}
    segments = {k: draw(segment_json(k)) for k in SEG_KEYS[: draw(st.integers(0, 3))]}
    return flags, segments, draw(st.lists(context_json(), min_size=4, max_size=4))


# -- the oracle (the fixture is in conftest.py) ----------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(world())
def test_engine_matches_python_sdk(
        oracle: tuple[Any, Any],
        example: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]) -> None:
    client, store = oracle
    flags_json, segments_json, contexts = example
    store.init({FEATURES: {k: sdk_normalized_flag(f) for k, f in flags_json.items()},
                SEGMENTS: {k: sdk_normalized_segment(s) for k, s in segments_json.items()}})
    flags = {k: Flag.from_json(f) for k, f in flags_json.items()}
    segments = {k: Segment.from_json(s) for k, s in segments_json.items()}
    evaluator = Evaluator(flags.get, segments.get)
    for ctx_json, key in itertools.product(contexts, flags_json):
        detail = evaluator.evaluate_key(key, parse_context(ctx_json))
        reason = dict(detail.reason)
        if reason["kind"] == "ERROR":
            reason.pop("bigSegmentsStatus", None)
        value = DEFAULT if detail.variation_index is None else detail.value
        ours = (value, detail.variation_index, reason)
        theirs = sdk_result(client, key, ctx_json)
        assert typed(ours) == typed(theirs), key
