"""Flags and segments parsed from SDK JSON: tolerant parsing with its reasons, every field."""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel import Flag, Segment
from flagmodel.attrref import AttrRef
from flagmodel.bucketing import cumulative_thresholds, weight_fraction
from flagmodel.model import Rollout, Target, VariationOrRollout

MALFORMED: list[tuple[dict[str, Any], str]] = [  # flag JSON → why it is malformed
    ({"on": "yes"}, "on has the wrong type"),
    ({"on": 1}, "on has the wrong type"),
    ({"salt": True}, "salt has the wrong type"),
    ({"variations": {}}, "variations has the wrong type"),
    ({"offVariation": 1.5}, "offVariation should be an integer"),
    ({"offVariation": True}, "offVariation should be an integer"),
    ({"offVariation": "1"}, "offVariation should be an integer"),
    ({"fallthrough": []}, "fallthrough has the wrong type"),
    ({"fallthrough": {"rollout": []}}, "rollout has the wrong type"),
    ({"fallthrough": {"rollout": {"variations": [{"weight": 1.5}]}}},
     "weight should be an integer"),
    ({"fallthrough": {"rollout": {"variations": [{"untracked": 1}]}}},
     "untracked has the wrong type"),
    ({"fallthrough": {"rollout": {"variations": [1]}}}, "variations should be an array of objects"),
    ({"prerequisites": [1]}, "prerequisites should be an array of objects"),
    ({"prerequisites": [{"key": 1}]}, "key has the wrong type"),
    ({"targets": [{"values": [1]}]}, "values should be an array of strings"),
    ({"targets": [{"values": "u"}]}, "values has the wrong type"),
    ({"contextTargets": [{"contextKind": 1}]}, "contextKind has the wrong type"),
    ({"rules": 5}, "rules has the wrong type"),
    ({"rules": [{"clauses": [{"op": 1}]}]}, "op has the wrong type"),
    ({"rules": [{"clauses": [{"negate": "no"}]}]}, "negate has the wrong type"),
    ({"rules": [{"clauses": [{"values": "x"}]}]}, "values has the wrong type"),
    ({"rules": [{"id": 3}]}, "id has the wrong type"),
    ({"trackEvents": "yes"}, "trackEvents has the wrong type"),
    ({"trackEventsFallthrough": 0}, "trackEventsFallthrough has the wrong type"),
    ({"debugEventsUntilDate": "soon"}, "debugEventsUntilDate has the wrong type"),
    ({"debugEventsUntilDate": True}, "debugEventsUntilDate has the wrong type"),
    ({"clientSide": "yes"}, "clientSide has the wrong type"),
    ({"clientSideAvailability": {"usingMobileKey": 1}}, "usingMobileKey has the wrong type"),
    ({"clientSideAvailability": {"usingEnvironmentId": "y"}},
     "usingEnvironmentId has the wrong type"),
]


@pytest.mark.parametrize(("extra", "reason"), MALFORMED)
def test_malformed_flag_keeps_key_version_and_reason(extra: dict[str, Any], reason: str) -> None:
    flag = Flag.from_json({"key": "f", "version": 4, **extra})
    assert (flag.key, flag.version, flag.malformed) == ("f", 4, reason)


def test_flag_defaults() -> None:
    flag = Flag.from_json({})
    assert (flag.key, flag.version, flag.deleted, flag.malformed, flag.on, flag.variations,
            flag.off_variation, flag.fallthrough, flag.prerequisites, flag.targets, flag.rules,
            flag.salt, flag.track_events, flag.track_events_fallthrough,
            flag.debug_events_until_date, flag.client_side, flag.using_mobile_key,
            flag.using_environment_id) == (
        "", 0, False, None, False, (), None, VariationOrRollout(None, None), (), (), (), "",
        False, False, None, False, True, False)
    assert Flag.from_json({"key": 5, "version": "7", "deleted": 1}).key == ""
    assert Flag.from_json({"version": "7"}).version == 0
    assert Flag.from_json({"deleted": 1}).deleted is False  # only the JSON true
    assert repr(Flag.from_json({"key": "k", "version": 3})) == "Flag('k', version=3)"


def test_malformed_flag_keeps_the_defaults() -> None:
    # "on" is read first, so nothing else is parsed: a malformed flag is off, with no
    # variations, and (legacy availability) goes to mobile clients only.
    flag = Flag.from_json({"key": "f", "on": "yes", "variations": [1], "salt": "s",
                           "trackEvents": True, "clientSide": True})
    assert (flag.on, flag.variations, flag.off_variation, flag.fallthrough, flag.salt,
            flag.track_events, flag.track_events_fallthrough, flag.debug_events_until_date,
            flag.client_side, flag.using_mobile_key, flag.using_environment_id) == (
        False, (), None, VariationOrRollout(None, None), "", False, False, None, False, True,
        False)


def test_clause_fields() -> None:
    flag = Flag.from_json({"rules": [{"clauses": [
        {"attribute": "/a/b"}, {"contextKind": "org", "attribute": "/a/b", "op": "in",
                                "values": ["x"], "negate": True}]}]})
    legacy, org = flag.rules[0].clauses
    assert (legacy.op, legacy.context_kind, legacy.attribute, legacy.negate, legacy.values) == (
        "", "user", AttrRef("/a/b", ("/a/b",)), False, ())  # no contextKind: a literal name
    assert (org.op, org.context_kind, org.attribute, org.negate, org.values) == (
        "in", "org", AttrRef("/a/b", ("a", "b")), True, ("x",))


def test_flag_fields() -> None:
    flag = Flag.from_json({
        "key": "f", "version": 3.0, "deleted": True, "on": True, "variations": [1, "b"],
        "offVariation": 1.0, "salt": "s", "trackEvents": True, "trackEventsFallthrough": True,
        "debugEventsUntilDate": 1.7e12, "clientSide": True,
        "prerequisites": [{"key": "p", "variation": 1}, {}],
        "fallthrough": {"variation": 0},
        "rules": [{"id": "r", "trackEvents": True, "variation": 1,
                   "clauses": [{"attribute": "a", "op": "in", "values": ["x"]}]},
                  {"rollout": {"variations": [{"variation": 1, "weight": 100000}]}}],
    })
    assert (flag.key, flag.version, flag.deleted, flag.malformed, flag.on, flag.variations,
            flag.off_variation, flag.salt, flag.track_events, flag.track_events_fallthrough,
            flag.debug_events_until_date, flag.client_side) == (
        "f", 3, True, None, True, (1, "b"), 1, "s", True, True, 1_700_000_000_000, True)
    assert flag.prerequisites == (("p", 1), ("", 0))
    assert flag.fallthrough == VariationOrRollout(0, None)
    first, second = flag.rules
    assert (first.id, first.track_events, first.outcome) == ("r", True,
                                                             VariationOrRollout(1, None))
    assert [(c.op, c.attribute, c.negate, c.values) for c in first.clauses] == [
        ("in", AttrRef("a", ("a",)), False, ("x",))]
    assert (second.id, second.track_events, second.clauses) == ("", False, ())
    assert second.outcome.rollout is not None and second.outcome.rollout.variations == (1,)
    assert Flag.from_json({"debugEventsUntilDate": 0}).debug_events_until_date is None
    source = {"key": "f"}
    assert Flag.from_json(source).raw is source


ROLLOUTS: list[tuple[dict[str, Any], Rollout | None]] = [
    ({"variations": []}, None),  # no variations: an error if an evaluation reaches it
    ({"variations": [{"variation": 1, "weight": 60000}, {"weight": 40000, "untracked": True}]},
     Rollout(False, "user", None, None, (1, 0), (False, True),
             cumulative_thresholds([60000, 40000]))),
    ({"kind": "experiment", "contextKind": "org", "bucketBy": "/a/b", "seed": 61.0,
      "variations": [{"variation": 2}]},
     Rollout(True, "org", AttrRef("/a/b", ("a", "b")), 61, (2,), (False,), (0.0,))),
    ({"kind": "rollout", "bucketBy": "/a/b", "variations": [{"variation": 0, "weight": 1}]},
     Rollout(False, "user", AttrRef("/a/b", ("/a/b",)), None, (0,), (False,),
             (weight_fraction(1),))),  # no contextKind: bucketBy is a literal name
]


@pytest.mark.parametrize(("rollout", "expected"), ROLLOUTS)
def test_rollout_fields(rollout: dict[str, Any], expected: Rollout | None) -> None:
    flag = Flag.from_json({"fallthrough": {"variation": 2, "rollout": rollout}})
    assert flag.malformed is None
    assert flag.fallthrough == VariationOrRollout(2, expected)


def T(kind: str, values: list[str], variation: int) -> Target:
    return Target(kind, frozenset(values), variation)


TARGETS: list[tuple[dict[str, Any], tuple[Target, ...]]] = [  # targets, contextTargets → order
    ({"targets": [{"values": ["a"], "variation": 1}, {"values": ["b"]}]},
     (T("user", ["a"], 1), T("user", ["b"], 0))),
    ({"targets": [{"values": ["a"], "variation": 1}, {"values": ["b"], "variation": 2}],
      "contextTargets": [{"contextKind": "org", "values": ["o"], "variation": 2},
                         {"contextKind": "user", "values": [], "variation": 2},
                         {"values": [], "variation": 1},
                         {"contextKind": "user", "values": [], "variation": 7}]},
     (T("org", ["o"], 2), T("user", ["b"], 2), T("user", ["a"], 1))),
    ({"targets": [{"values": ["a"], "variation": 1}],
      "contextTargets": [{"contextKind": "user", "values": ["z"], "variation": 1}]},
     (T("user", ["z"], 1),)),  # a user entry with values stands for itself
    ({"targets": [{"contextKind": "", "values": ["a"]}]}, (T("user", ["a"], 0),)),
    # A legacy `targets` entry keeps its own contextKind, as Go's evaluator reads it (one Target
    # type for both lists; the match looks the key up in the individual context of that kind).
    ({"targets": [{"contextKind": "org", "values": ["o"], "variation": 1}]},
     (T("org", ["o"], 1),)),
    ({"targets": [{"contextKind": "org", "values": ["o"], "variation": 1}],
      "contextTargets": [{"contextKind": "user", "values": [], "variation": 1}]},
     (T("org", ["o"], 1),)),  # and so does the entry a user-kind contextTargets entry stands for
    ({"contextTargets": [{"contextKind": "org", "values": ["o"]}, {"values": []}]},
     (T("org", ["o"], 0),)),  # no variation: 0; a user entry with no values and no match
]


@pytest.mark.parametrize(("extra", "expected"), TARGETS)
def test_effective_targets(extra: dict[str, Any], expected: tuple[Target, ...]) -> None:
    assert Flag.from_json(extra).targets == expected


AVAILABILITY: list[tuple[dict[str, Any], tuple[bool, bool]]] = [
    # flag JSON → (usingMobileKey, usingEnvironmentId)
    ({}, (True, False)),  # legacy schema: mobile always, JS only with clientSide
    ({"clientSide": True}, (True, True)),
    ({"clientSide": False}, (True, False)),
    ({"clientSideAvailability": None, "clientSide": True}, (True, True)),
    ({"clientSideAvailability": {}, "clientSide": True}, (False, False)),
    ({"clientSideAvailability": {"usingMobileKey": True}}, (True, False)),
    ({"clientSideAvailability": {"usingEnvironmentId": True}}, (False, True)),
]


@pytest.mark.parametrize(("extra", "expected"), AVAILABILITY)
def test_client_side_availability_defaults(extra: dict[str, Any],
                                           expected: tuple[bool, bool]) -> None:
    flag = Flag.from_json(extra)
    assert (flag.using_mobile_key, flag.using_environment_id) == expected


SEGMENT_MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({"included": 5}, "included has the wrong type"),
    ({"excluded": [1]}, "excluded should be an array of strings"),
    ({"includedContexts": [{"values": [1]}]}, "values should be an array of strings"),
    ({"excludedContexts": [1]}, "excludedContexts should be an array of objects"),
    ({"rules": [{"weight": "1"}]}, "weight should be an integer"),
    ({"rules": [{"rolloutContextKind": 1}]}, "rolloutContextKind has the wrong type"),
    ({"rules": [{"bucketBy": 1}]}, "bucketBy has the wrong type"),
    ({"salt": 1}, "salt has the wrong type"),
    ({"unbounded": "yes"}, "unbounded has the wrong type"),
    ({"unboundedContextKind": 1}, "unboundedContextKind has the wrong type"),
    ({"generation": 1.5}, "generation should be an integer"),
]


@pytest.mark.parametrize(("extra", "reason"), SEGMENT_MALFORMED)
def test_malformed_segment(extra: dict[str, Any], reason: str) -> None:
    seg = Segment.from_json({"key": "s", "version": 2, **extra})
    assert (seg.key, seg.version, seg.malformed) == ("s", 2, reason)


def test_segment_defaults_and_fields() -> None:
    empty = Segment.from_json({"key": 1, "version": "x", "deleted": "yes"})
    assert (empty.key, empty.version, empty.deleted, empty.malformed, empty.included,
            empty.excluded, empty.included_contexts, empty.excluded_contexts, empty.rules,
            empty.salt, empty.unbounded, empty.unbounded_context_kind, empty.generation) == (
        "", 0, False, None, frozenset(), frozenset(), (), (), (), "", False, "user", None)
    seg = Segment.from_json({
        "key": "s", "version": 2.0, "deleted": True, "included": ["a", "a"], "excluded": ["b"],
        "includedContexts": [{"contextKind": "org", "values": ["o"]}, {"values": ["u"]}],
        "excludedContexts": [{"contextKind": "device", "values": ["d"]}, {"values": ["v"]}],
        "rules": [{"clauses": [], "weight": 50000, "bucketBy": "/a/b",
                   "rolloutContextKind": "org"},
                  {"clauses": [], "bucketBy": "/a/b"}],
        "salt": "salty", "unbounded": True, "unboundedContextKind": "org", "generation": 3,
    })
    assert (seg.key, seg.version, seg.deleted, seg.included, seg.excluded, seg.salt,
            seg.unbounded, seg.unbounded_context_kind, seg.generation) == (
        "s", 2, True, frozenset({"a"}), frozenset({"b"}), "salty", True, "org", 3)
    assert seg.included_contexts == (("org", frozenset({"o"})), ("user", frozenset({"u"})))
    assert seg.excluded_contexts == (("device", frozenset({"d"})), ("user", frozenset({"v"})))
    weighted, plain = seg.rules
    assert (weighted.clauses, weighted.threshold, weighted.bucket_by,
            weighted.rollout_context_kind) == ((), 0.5, AttrRef("/a/b", ("a", "b")), "org")
    assert (plain.threshold, plain.bucket_by, plain.rollout_context_kind) == (
        None, AttrRef("/a/b", ("/a/b",)), "user")
    assert repr(seg) == "Segment('s', version=2)"
    assert Segment.from_json({"unboundedContextKind": ""}).unbounded_context_kind == "user"
    source = {"key": "s"}
    assert Segment.from_json(source).raw is source


def test_malformed_segment_keeps_the_defaults() -> None:
    seg = Segment.from_json({"key": "s", "included": 5, "excluded": ["x"], "salt": "salt",
                             "unbounded": True})
    assert (seg.included, seg.excluded, seg.included_contexts, seg.excluded_contexts,
            seg.rules, seg.salt, seg.unbounded) == (frozenset(), frozenset(), (), (), (), "",
                                                    False)
