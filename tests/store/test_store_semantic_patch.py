"""LaunchDarkly semantic patch for flags: each instruction, table-driven, on the pure core."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from flagmodel.validation import check_item
from store.patch_errors import PatchError
from store.semantic_patch import apply_semantic_patch, parse_semantic_patch

CLAUSE = {"attribute": "email", "op": "in", "values": ["a@x"], "negate": False}
ORG = {"contextKind": "org", "attribute": "key", "op": "in", "values": ["o1"], "negate": False}
FLAG: dict[str, Any] = {
    "key": "f", "on": False, "variations": [True, False], "offVariation": 1,
    "fallthrough": {"variation": 0}, "targets": [], "contextTargets": [], "salt": "s",
    "rules": [{"id": "r1", "clauses": [CLAUSE], "variation": 0, "trackEvents": False}],
}
ROLLOUT = {"rollout": {"variations": [{"variation": 0, "weight": 60000},
                                      {"variation": 1, "weight": 40000}], "bucketBy": "email",
                       "contextKind": "user"}}
WEIGHTS = {"rolloutWeights": {"0": 60000, "1": 40000}, "rolloutBucketBy": "email",
           "rolloutContextKind": "user"}


def new_rule(rid: str, clauses: list[Any], serve: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "clauses": clauses, **serve, "trackEvents": False}


R1 = FLAG["rules"][0]
ORG_TARGETS = {"targets": [{"variation": 0, "values": ["u1"]}],
               "contextTargets": [{"contextKind": "org", "variation": 1, "values": ["o1"]},
                                  {"contextKind": "user", "variation": 0, "values": []}]}

# (name, instructions, the top-level fields that change)
CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("turnFlagOn", [{"kind": "turnFlagOn"}], {"on": True}),
    ("turnFlagOff after on", [{"kind": "turnFlagOn"}, {"kind": "turnFlagOff"}], {"on": False}),
    ("addRule with variation", [{"kind": "addRule", "clauses": [ORG], "variationId": 1}],
     {"rules": [R1, new_rule("id-1", [ORG], {"variation": 1})]}),
    ("addRule variationId as string, description not stored",
     [{"kind": "addRule", "clauses": [ORG], "variationId": "1", "description": "orgs"}],
     {"rules": [R1, new_rule("id-1", [ORG], {"variation": 1})]}),
    ("addRule with rollout before r1",
     [{"kind": "addRule", "clauses": [{k: v for k, v in ORG.items() if k != "negate"}],
       "beforeRuleId": "r1", **WEIGHTS}],
     {"rules": [new_rule("id-1", [ORG], ROLLOUT), R1]}),
    ("removeRule", [{"kind": "removeRule", "ruleId": "r1"}], {"rules": []}),
    ("addClauses", [{"kind": "addClauses", "ruleId": "r1", "clauses": [ORG]}],
     {"rules": [{**R1, "clauses": [CLAUSE, ORG]}]}),
    ("fallthrough variation",
     [{"kind": "updateFallthroughVariationOrRollout", "variationId": 1}],
     {"fallthrough": {"variation": 1}}),
    ("fallthrough rollout", [{"kind": "updateFallthroughVariationOrRollout", **WEIGHTS}],
     {"fallthrough": ROLLOUT}),
    ("updateOffVariation", [{"kind": "updateOffVariation", "variationId": 0}],
     {"offVariation": 0}),
    ("addTargets user", [{"kind": "addTargets", "variationId": 0, "values": ["u1", "u2", "u1"]}],
     {"targets": [{"variation": 0, "values": ["u1", "u2"]}]}),
    ("addTargets moves a key between variations",
     [{"kind": "addTargets", "variationId": 0, "values": ["u1", "u2"]},
      {"kind": "addTargets", "variationId": 1, "values": ["u2"]}],
     {"targets": [{"variation": 0, "values": ["u1"]}, {"variation": 1, "values": ["u2"]}]}),
    ("addTargets of another kind keeps user targets readable",
     [{"kind": "addTargets", "variationId": 0, "values": ["u1"]},
      {"kind": "addTargets", "variationId": 1, "values": ["o1"], "contextKind": "org"}],
     ORG_TARGETS),
    ("removeTargets drops emptied entries and placeholders",
     [{"kind": "addTargets", "variationId": 0, "values": ["u1"]},
      {"kind": "addTargets", "variationId": 1, "values": ["o1"], "contextKind": "org"},
      {"kind": "removeTargets", "variationId": 1, "values": ["o1"], "contextKind": "org"},
      {"kind": "removeTargets", "variationId": 0, "values": ["u1", "absent"]}],
     {"targets": [], "contextTargets": []}),
    ("replaceRules",
     [{"kind": "replaceRules", "rules": [
         {"clauses": [ORG], "variationId": 1, "description": "x", "trackEvents": True},
         {"_id": "keep", "clauses": [CLAUSE], **WEIGHTS}]}],
     {"rules": [{**new_rule("id-1", [ORG], {"variation": 1}), "trackEvents": True},
                new_rule("keep", [CLAUSE], ROLLOUT)]}),
]


@pytest.mark.parametrize(("name", "instructions", "changes"), CASES, ids=[c[0] for c in CASES])
def test_instruction(name: str, instructions: list[dict[str, Any]],
                     changes: dict[str, Any]) -> None:
    ids = (f"id-{n}" for n in itertools.count(1))
    before = copy.deepcopy(FLAG)
    patch = parse_semantic_patch({"instructions": instructions, "comment": "why"})
    out = apply_semantic_patch(FLAG, patch, new_id=lambda: next(ids))
    assert out == {**FLAG, **changes}
    assert before == FLAG
    assert check_item("flags", "f", out) == []  # the store's validation accepts the result


# (name, body, words of the 400 message): refused before the flag is read
BAD_SHAPES: list[tuple[str, Any, str]] = [
    ("not an object", [{"kind": "turnFlagOn"}], 'must be an object with "instructions"'),
    ("no instructions", {"comment": "x"}, "instructions: expected a non-empty array"),
    ("empty instructions", {"instructions": []}, "instructions: expected a non-empty array"),
    ("unknown kind", {"instructions": [{"kind": "turnFlagOn"}, {"kind": "explode"}]},
     'instruction 1: unknown kind "explode" for flags; supported: addClauses'),
    ("kind missing", {"instructions": [{"ruleId": "r1"}]}, 'with a string "kind"'),
    ("unknown parameter", {"instructions": [{"kind": "removeRule", "ruleID": "r1"}]},
     'instruction 0 (removeRule): unknown parameter "ruleID"; it takes ruleId'),
    ("comment not a string", {"comment": 5, "instructions": [{"kind": "turnFlagOn"}]},
     "comment: expected a string"),
    ("unknown top-level field", {"instructions": [{"kind": "turnFlagOn"}], "instruction": []},
     'unknown semantic patch field "instruction"'),
]


@pytest.mark.parametrize(("name", "body", "words"), BAD_SHAPES, ids=[c[0] for c in BAD_SHAPES])
def test_refused_shape(name: str, body: Any, words: str) -> None:
    with pytest.raises(PatchError) as caught:
        parse_semantic_patch(body)
    assert words in caught.value.message


# (name, instructions, words): well-formed, but they do not fit the flag
BAD_FITS: list[tuple[str, list[dict[str, Any]], str]] = [
    ("variation out of range", [{"kind": "updateOffVariation", "variationId": 2}],
     "instruction 0 (updateOffVariation): variationId: the flag has no variation 2"),
    ("variation not an index", [{"kind": "updateOffVariation", "variationId": "abc"}],
     "expected a variation index"),
    ("bool is no index", [{"kind": "updateOffVariation", "variationId": True}],
     "expected a variation index"),
    ("5000 digits are no index", [{"kind": "updateOffVariation", "variationId": "9" * 5000}],
     "expected a variation index"),
    ("unknown rule", [{"kind": "turnFlagOn"}, {"kind": "removeRule", "ruleId": "nope"}],
     "instruction 1 (removeRule): ruleId: the flag has no rule with id 'nope'"),
    ("unknown beforeRuleId", [{"kind": "addRule", "clauses": [], "variationId": 0,
                               "beforeRuleId": "x"}], "beforeRuleId: the flag has no rule"),
    ("variation and rollout", [{"kind": "updateFallthroughVariationOrRollout",
                                "variationId": 0, **WEIGHTS}], "exactly one of"),
    ("neither", [{"kind": "addRule", "clauses": [ORG]}], "exactly one of"),
    ("bad weight", [{"kind": "updateFallthroughVariationOrRollout",
                     "rolloutWeights": {"0": "half"}}], "rolloutWeights.0: expected"),
    ("clause field", [{"kind": "addClauses", "ruleId": "r1",
                       "clauses": [{**ORG, "operator": "in"}]}], 'unknown field "operator"'),
    ("no clauses", [{"kind": "addClauses", "ruleId": "r1", "clauses": []}], "at least one"),
    ("targets values", [{"kind": "addTargets", "variationId": 0, "values": "u1"}],
     "values: expected a non-empty array"),
    ("replaceRules rule field", [{"kind": "replaceRules", "rules": [{"variation": 0}]}],
     'rules[0]: unknown field "variation"'),
]


@pytest.mark.parametrize(("name", "instructions", "words"), BAD_FITS,
                         ids=[c[0] for c in BAD_FITS])
def test_refused_fit(name: str, instructions: list[dict[str, Any]], words: str) -> None:
    before = copy.deepcopy(FLAG)
    with pytest.raises(PatchError) as caught:
        apply_semantic_patch(FLAG, parse_semantic_patch({"instructions": instructions}))
    assert words in caught.value.message
    assert before == FLAG


def test_rollout_weights_that_do_not_sum_are_left_to_validation() -> None:
    # The semantic layer maps IDs; the sum rule lives once, in the store's validation.
    out = apply_semantic_patch(FLAG, parse_semantic_patch({"instructions": [
        {"kind": "updateFallthroughVariationOrRollout", "rolloutWeights": {"0": 1}}]}))
    assert check_item("flags", "f", out) == [
        "fallthrough.rollout.variations: weights sum to 1, not 100000"]


SEGMENT: dict[str, Any] = {"key": "s", "included": ["u1"], "excluded": [], "salt": "s",
                           "includedContexts": [], "excludedContexts": [], "rules": []}
ORG_IN = {"includedContexts": [{"contextKind": "org", "values": ["o1", "o2"]}]}

# (name, instructions, the top-level fields of the segment that change)
SEGMENT_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("addIncludedTargets user, no duplicates",
     [{"kind": "addIncludedTargets", "values": ["u2", "u1", "u2"]}],
     {"included": ["u1", "u2"]}),
    ("addIncludedTargets org", [{"kind": "addIncludedTargets", "contextKind": "org",
                                 "values": ["o1", "o2"]}], ORG_IN),
    ("removeIncludedTargets user", [{"kind": "removeIncludedTargets", "values": ["u1", "u7"]}],
     {"included": []}),
    ("removeIncludedTargets drops the emptied kind",
     [{"kind": "addIncludedTargets", "contextKind": "org", "values": ["o1"]},
      {"kind": "removeIncludedTargets", "contextKind": "org", "values": ["o1"]}], {}),
    ("addExcludedTargets", [{"kind": "addExcludedTargets", "contextKind": "org",
                             "values": ["o9"]}],
     {"excludedContexts": [{"contextKind": "org", "values": ["o9"]}]}),
    ("removeExcludedTargets", [{"kind": "addExcludedTargets", "values": ["u9", "u8"]},
                               {"kind": "removeExcludedTargets", "values": ["u9"]}],
     {"excluded": ["u8"]}),
    ("addIncludedUsers", [{"kind": "addIncludedUsers", "values": ["u3"]}],
     {"included": ["u1", "u3"]}),
    ("removeIncludedUsers", [{"kind": "removeIncludedUsers", "values": ["u1"]}],
     {"included": []}),
    ("addExcludedUsers and removeExcludedUsers",
     [{"kind": "addExcludedUsers", "values": ["u4", "u5"]},
      {"kind": "removeExcludedUsers", "values": ["u4"]}], {"excluded": ["u5"]}),
]


@pytest.mark.parametrize(("name", "instructions", "changes"), SEGMENT_CASES,
                         ids=[c[0] for c in SEGMENT_CASES])
def test_segment_instruction(name: str, instructions: list[dict[str, Any]],
                             changes: dict[str, Any]) -> None:
    before = copy.deepcopy(SEGMENT)
    out = apply_semantic_patch(SEGMENT, parse_semantic_patch({"instructions": instructions},
                                                             "segments"))
    assert out == {**SEGMENT, **changes}
    assert before == SEGMENT
    assert check_item("segments", "s", out) == []


@pytest.mark.parametrize(("body", "words"), [
    ({"instructions": [{"kind": "turnFlagOn"}]},
     'unknown kind "turnFlagOn" for segments; supported: addExcludedTargets'),
    ({"instructions": [{"kind": "addIncludedUsers", "values": ["u"], "contextKind": "org"}]},
     'unknown parameter "contextKind"; it takes values'),
])
def test_segment_refused_shape(body: Any, words: str) -> None:
    with pytest.raises(PatchError) as caught:
        parse_semantic_patch(body, "segments")
    assert words in caught.value.message


def test_segment_values_must_be_keys() -> None:
    patch = parse_semantic_patch({"instructions": [{"kind": "addIncludedTargets",
                                                    "values": [1]}]}, "segments")
    with pytest.raises(PatchError) as caught:
        apply_semantic_patch(SEGMENT, patch)
    assert caught.value.message == ("instruction 0 (addIncludedTargets): values: expected a "
                                    "non-empty array of context keys")
