"""Evaluation outcomes: tolerant parsing of odd flags, prerequisites, big segments."""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel import Evaluator, Flag, Segment, parse_context

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
