"""Table-driven tests of flagmodel.validation: every error names the JSON path of the bad value."""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel.validation import Verdict, attr_ref_error, check_item, is_valid_key, judge_item

V2 = [True, False]
RULE_IN = {"attribute": "email", "op": "in", "values": ["a@b.c"]}


def flag(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"on": True, "variations": V2, "fallthrough": {"variation": 0}}
    base.update(kw)
    return base


def rule(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "r1", "clauses": [dict(RULE_IN)], "variation": 1}
    base.update(kw)
    return base


def clause(**kw: Any) -> dict[str, Any]:
    c: dict[str, Any] = dict(RULE_IN)
    c.update(kw)
    return c


def rollout(*weights: int, **kw: Any) -> dict[str, Any]:
    ro: dict[str, Any] = {
        "variations": [{"variation": i % 2, "weight": w} for i, w in enumerate(weights)]
    }
    ro.update(kw)
    return ro


VALID_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("minimal off flag", {"variations": V2}),
    ("empty object", {}),
    ("on with fallthrough", flag()),
    ("key and version in body", flag(key="f", version=7)),
    ("offVariation null", flag(offVariation=None)),
    ("fallthrough rollout", flag(fallthrough={"rollout": rollout(50000, 50000)})),
    (
        "experiment",
        flag(
            fallthrough={
                "rollout": rollout(
                    100000, kind="experiment", seed=61, contextKind="org", bucketBy="/a/b"
                )
            }
        ),
    ),
    ("targets", flag(targets=[{"values": ["u1"], "variation": 1}])),
    (
        "contextTargets user without values",
        flag(
            contextTargets=[
                {"contextKind": "org", "values": ["o"], "variation": 0},
                {"contextKind": "user", "variation": 1},
            ]
        ),
    ),
    ("rule with clauses", flag(rules=[rule()])),
    ("rule without clauses list items", flag(rules=[rule(clauses=[])])),
    ("legacy attribute with slash", flag(rules=[rule(clauses=[clause(attribute="/a~b")])])),
    (
        "attribute ref path",
        flag(rules=[rule(clauses=[clause(contextKind="user", attribute="/a/b~1c~0")])]),
    ),
    (
        "segmentMatch with empty attribute",
        flag(rules=[rule(clauses=[{"attribute": "", "op": "segmentMatch", "values": ["s1"]}])]),
    ),
    ("regex", flag(rules=[rule(clauses=[clause(op="matches", values=["^a.*b$"])])])),
    (
        "dates",
        flag(
            rules=[
                rule(
                    clauses=[
                        clause(
                            op="before",
                            values=[
                                1700000000000,
                                "2017-12-06T00:00:00.000-07:00",
                                "2020-01-01T00:00:00Z",
                            ],
                        )
                    ]
                )
            ]
        ),
    ),
    (
        "semver",
        flag(rules=[rule(clauses=[clause(op="semVerEqual", values=["2", "2.0", "1.2.3-rc.1+b"])])]),
    ),
    ("numbers", flag(rules=[rule(clauses=[clause(op="lessThan", values=[1, 2.5])])])),
    # the evaluator and both SDKs match objects and arrays by deep equality
    ("in with object", flag(rules=[rule(clauses=[clause(values=[{"a": 1}, [1, "x"]])])])),
    ("whole float milliseconds", flag(rules=[rule(clauses=[clause(op="after", values=[1e12])])])),
    ("prerequisite", flag(prerequisites=[{"key": "other", "variation": 0}])),
    (
        "all optional fields",
        flag(
            salt="s",
            trackEvents=True,
            trackEventsFallthrough=False,
            clientSide=True,
            debugEventsUntilDate=None,
            samplingRatio=1,
            excludeFromSummaries=False,
            migration={"checkRatio": 1},
            clientSideAvailability={"usingMobileKey": True, "usingEnvironmentId": False},
        ),
    ),
]

INVALID_FLAGS: list[tuple[str, Any, str]] = [
    ("not an object", [1], "(root): expected an object, got array"),
    ("key mismatch", flag(key="other"), 'key: "other" does not match the key in the path "f"'),
    ("version string", flag(version="1"), "version: expected integer, got string"),
    ("deleted true", flag(deleted=True), "deleted: must be false"),
    ("on not bool", flag(on="yes"), "on: expected boolean, got string"),
    ("variations not array", flag(variations={}), "variations: expected array, got object"),
    (
        "offVariation too high",
        flag(offVariation=2),
        "offVariation: variation index 2 is out of range",
    ),
    (
        "offVariation negative",
        flag(offVariation=-1),
        "offVariation: variation index -1 is out of range",
    ),
    ("offVariation bool", flag(offVariation=True), "offVariation: expected integer, got boolean"),
    ("offVariation float", flag(offVariation=1.5), "offVariation: expected integer, got number"),
    (
        "fallthrough too high",
        flag(fallthrough={"variation": 2}),
        "fallthrough.variation: variation index 2",
    ),
    (
        "fallthrough neither",
        flag(fallthrough={}),
        'fallthrough: needs exactly one of "variation" and "rollout", has neither',
    ),
    (
        "fallthrough both",
        flag(fallthrough={"variation": 0, "rollout": rollout(100000)}),
        "has both",
    ),
    (
        "on without fallthrough",
        {"on": True, "variations": V2},
        "fallthrough: required when the flag is on",
    ),
    (
        "rollout weights",
        flag(fallthrough={"rollout": rollout(50000, 40000)}),
        "fallthrough.rollout.variations: weights sum to 90000, not 100000",
    ),
    (
        "rollout no variations",
        flag(fallthrough={"rollout": {"variations": []}}),
        "fallthrough.rollout.variations: a rollout needs at least one variation",
    ),
    (
        "rollout missing variations",
        flag(fallthrough={"rollout": {}}),
        "fallthrough.rollout.variations: required",
    ),
    (
        "rollout variation out of range",
        flag(fallthrough={"rollout": {"variations": [{"variation": 5, "weight": 100000}]}}),
        "fallthrough.rollout.variations[0].variation: variation index 5",
    ),
    (
        "rollout negative weight",
        flag(fallthrough={"rollout": rollout(-1, 100001)}),
        "fallthrough.rollout.variations[0].weight: must not be negative",
    ),
    (
        "rollout kind",
        flag(fallthrough={"rollout": rollout(100000, kind="ab")}),
        'fallthrough.rollout.kind: must be "rollout" or "experiment"',
    ),
    (
        "rollout bad bucketBy",
        flag(fallthrough={"rollout": rollout(100000, contextKind="user", bucketBy="//")}),
        "fallthrough.rollout.bucketBy: attribute reference",
    ),
    (
        "rollout seed string",
        flag(fallthrough={"rollout": rollout(100000, seed="1")}),
        "fallthrough.rollout.seed: expected integer",
    ),
    (
        "target variation high",
        flag(targets=[{"values": ["u"], "variation": 3}]),
        "targets[0].variation: variation index 3",
    ),
    (
        "target values not strings",
        flag(targets=[{"values": [1], "variation": 0}]),
        "targets[0].values[0]: expected string, got number",
    ),
    ("targets missing values", flag(targets=[{"variation": 0}]), "targets[0].values: required"),
    ("target not object", flag(targets=["u"]), "targets[0]: expected object, got string"),
    (
        "contextTarget bad kind",
        flag(contextTargets=[{"contextKind": "a b", "values": [], "variation": 0}]),
        'contextTargets[0].contextKind: invalid context kind "a b"',
    ),
    (
        "contextTarget kind 'kind'",
        flag(contextTargets=[{"contextKind": "kind", "values": [], "variation": 0}]),
        'invalid context kind "kind"',
    ),
    (
        "contextTarget kind multi",
        flag(contextTargets=[{"contextKind": "multi", "values": [], "variation": 0}]),
        'invalid context kind "multi"',
    ),
    (
        "rule variation high",
        flag(rules=[rule(variation=2)]),
        "rules[0].variation: variation index 2",
    ),
    (
        "rule variation low",
        flag(rules=[rule(variation=-1)]),
        "rules[0].variation: variation index -1",
    ),
    (
        "rule neither",
        flag(rules=[{"clauses": []}]),
        'rules[0]: needs exactly one of "variation" and "rollout"',
    ),
    ("rule both", flag(rules=[rule(rollout=rollout(100000))]), "rules[0]: needs exactly one"),
    (
        "rule rollout weights",
        flag(rules=[rule(variation=None, rollout=rollout(1))]),
        "rules[0].rollout.variations: weights sum to 1",
    ),
    ("rule no clauses", flag(rules=[{"variation": 0}]), "rules[0].clauses: required"),
    ("rule id number", flag(rules=[rule(id=3)]), "rules[0].id: expected string"),
    (
        "unknown operator",
        flag(rules=[rule(clauses=[clause(), clause(op="foo")])]),
        'rules[0].clauses[1].op: unknown operator "foo"',
    ),
    (
        "op missing",
        flag(rules=[rule(clauses=[{"attribute": "a", "values": []}])]),
        "rules[0].clauses[0].op: required",
    ),
    (
        "values missing",
        flag(rules=[rule(clauses=[{"attribute": "a", "op": "in"}])]),
        "rules[0].clauses[0].values: required",
    ),
    (
        "values not array",
        flag(rules=[rule(clauses=[clause(values="x")])]),
        "rules[0].clauses[0].values: expected array",
    ),
    (
        "attribute missing",
        flag(rules=[rule(clauses=[{"op": "in", "values": [""]}])]),
        "rules[0].clauses[0].attribute: required",
    ),
    (
        "attribute empty",
        flag(rules=[rule(clauses=[clause(attribute="")])]),
        "rules[0].clauses[0].attribute: attribute reference must not be empty",
    ),
    (
        "attribute slash only",
        flag(rules=[rule(clauses=[clause(contextKind="user", attribute="/")])]),
        "must not be empty",
    ),
    (
        "attribute empty component",
        flag(rules=[rule(clauses=[clause(contextKind="user", attribute="///")])]),
        "empty path component",
    ),
    (
        "attribute bad escape",
        flag(rules=[rule(clauses=[clause(contextKind="user", attribute="/a~b")])]),
        '"~" not followed by 0 or 1',
    ),
    (
        "attribute trailing tilde",
        flag(rules=[rule(clauses=[clause(contextKind="user", attribute="/a~")])]),
        '"~" not followed by 0 or 1',
    ),
    (
        "clause bad kind",
        flag(rules=[rule(clauses=[clause(contextKind="us/er")])]),
        'rules[0].clauses[0].contextKind: invalid context kind "us/er"',
    ),
    (
        "negate not bool",
        flag(rules=[rule(clauses=[clause(negate="no")])]),
        "rules[0].clauses[0].negate: expected boolean",
    ),
    (
        "regex does not compile",
        flag(rules=[rule(clauses=[clause(op="matches", values=["(a"])])]),
        "rules[0].clauses[0].values[0]: regular expression does not compile",
    ),
    (
        "regex not string",
        flag(rules=[rule(clauses=[clause(op="matches", values=[3])])]),
        "rules[0].clauses[0].values[0]: expected a regular expression string",
    ),
    (
        "bad date",
        flag(rules=[rule(clauses=[clause(op="after", values=["yesterday"])])]),
        'rules[0].clauses[0].values[0]: "yesterday" is not an RFC 3339 date',
    ),
    (
        "impossible date",
        flag(rules=[rule(clauses=[clause(op="after", values=["2020-02-30T00:00:00Z"])])]),
        "is not a valid date",
    ),
    (
        "date bool",
        flag(rules=[rule(clauses=[clause(op="before", values=[True])])]),
        "expected a date",
    ),
    (
        "bad semver",
        flag(rules=[rule(clauses=[clause(op="semVerLessThan", values=["1.2.3.4"])])]),
        '"1.2.3.4" is not a semantic version',
    ),
    (
        "semver number",
        flag(rules=[rule(clauses=[clause(op="semVerGreaterThan", values=[1])])]),
        "expected a semantic version string",
    ),
    (
        "number op string",
        flag(rules=[rule(clauses=[clause(op="greaterThan", values=["5"])])]),
        "rules[0].clauses[0].values[0]: expected a number",
    ),
    (
        "string op number",
        flag(rules=[rule(clauses=[clause(op="startsWith", values=[5])])]),
        "expected a string",
    ),
    (
        "in with null",
        flag(rules=[rule(clauses=[clause(values=[None])])]),
        'clause values for "in"',
    ),
    # Values the evaluator cannot use, nor the official SDK (tests/flagmodel/test_clause_values)
    (
        "semver leading zero in a numeric prerelease identifier",
        flag(rules=[rule(clauses=[clause(op="semVerEqual", values=["1.2.3-01"])])]),
        'rules[0].clauses[0].values[0]: "1.2.3-01" is not a semantic version',
    ),
    (
        "date with an offset hour above 23",
        flag(rules=[rule(clauses=[clause(op="after", values=["2020-01-01T00:00:00+99:00"])])]),
        "the offset hour is above 23",
    ),
    (
        "date finer than a microsecond",
        flag(rules=[rule(clauses=[clause(op="after", values=["2020-01-01T00:00:00.0000001Z"])])]),
        "more precise than a microsecond",
    ),
    (
        "fractional milliseconds",
        flag(rules=[rule(clauses=[clause(op="before", values=[1.5])])]),
        "Unix milliseconds must be a whole number",
    ),
    (
        "one-digit hour",
        flag(rules=[rule(clauses=[clause(op="before", values=["2020-01-01T1:00:00Z"])])]),
        "the hour needs two digits",
    ),
    (
        "segmentMatch number",
        flag(rules=[rule(clauses=[{"attribute": "", "op": "segmentMatch", "values": [1]}])]),
        "expected a segment key",
    ),
    (
        "prereq self",
        flag(prerequisites=[{"key": "f", "variation": 0}]),
        'prerequisites[0].key: flag "f" cannot be its own prerequisite',
    ),
    (
        "prereq negative",
        flag(prerequisites=[{"key": "p", "variation": -1}]),
        "prerequisites[0].variation: must not be negative",
    ),
    ("prereq no key", flag(prerequisites=[{"variation": 0}]), "prerequisites[0].key: required"),
    (
        "prereq empty key",
        flag(prerequisites=[{"key": "", "variation": 0}]),
        "prerequisites[0].key: must not be empty",
    ),
    (
        "prereq variation string",
        flag(prerequisites=[{"key": "p", "variation": "0"}]),
        "prerequisites[0].variation: expected integer",
    ),
    ("trackEvents string", flag(trackEvents="true"), "trackEvents: expected boolean"),
    ("salt number", flag(salt=1), "salt: expected string"),
    (
        "debugEventsUntilDate string",
        flag(debugEventsUntilDate="x"),
        "debugEventsUntilDate: expected number",
    ),
    ("samplingRatio negative", flag(samplingRatio=-1), "samplingRatio: must not be negative"),
    (
        "clientSideAvailability",
        flag(clientSideAvailability={"usingMobileKey": 1}),
        "clientSideAvailability.usingMobileKey: expected boolean",
    ),
    ("migration", flag(migration={"checkRatio": "1"}), "migration.checkRatio: expected integer"),
    # issue 14: unknown fields are refused at every level, naming the nearest known one
    ("rule instead of rules", flag(rule=[rule()]),
     "rule: unknown field `rule`; did you mean `rules`?"),
    ("clause typo", flag(rules=[rule(clauses=[clause(), {**RULE_IN, "negated": True}])]),
     "rules[0].clauses[1].negated: unknown field `negated`; did you mean `negate`?"),
    ("rollout typo", flag(fallthrough={"rollout": rollout(100000, seeds=1)}),
     "fallthrough.rollout.seeds: unknown field `seeds`; did you mean `seed`?"),
    ("target typo", flag(targets=[{"value": ["u"], "values": [], "variation": 0}]),
     "targets[0].value: unknown field `value`; did you mean `values`?"),
    ("prerequisite typo", flag(prerequisites=[{"key": "p", "variaton": 0, "variation": 0}]),
     "prerequisites[0].variaton: unknown field `variaton`; did you mean `variation`?"),
    ("unknown top-level field", flag(somethingNew={"x": 1}), "somethingNew: unknown field"),
    # issue 14: the Python SDK refuses a whole environment over one of these
    ("clause values string", flag(rules=[rule(clauses=[clause(), clause(values="x")])]),
     "rules[0].clauses[1].values: expected array, got string"),
    ("variation float", flag(rules=[rule(variation=1.0)]),
     "rules[0].variation: expected integer, got number"),
    ("contextTargets values null",
     flag(contextTargets=[{"contextKind": "o", "values": None, "variation": 0}]),
     "contextTargets[0].values: expected array, got null"),
    ("weight missing", flag(fallthrough={"rollout": {"variations": [{"variation": 0}]}}),
     "fallthrough.rollout.variations[0].weight: required"),
]


@pytest.mark.parametrize(("name", "data"), VALID_FLAGS, ids=[c[0] for c in VALID_FLAGS])
def test_valid_flags(name: str, data: dict[str, Any]) -> None:
    assert check_item("flags", "f", data) == []


@pytest.mark.parametrize(
    ("name", "data", "expected"), INVALID_FLAGS, ids=[c[0] for c in INVALID_FLAGS]
)
def test_invalid_flags(name: str, data: Any, expected: str) -> None:
    errors = check_item("flags", "f", data)
    assert any(expected in e for e in errors), errors


SEG = {"included": ["u1"], "excluded": [], "rules": []}

INVALID_SEGMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("included not strings", {"included": [1]}, "included[0]: expected string, got number"),
    ("excluded not array", {"excluded": "u"}, "excluded: expected array, got string"),
    (
        "includedContexts no kind",
        {"includedContexts": [{"values": ["o"]}]},
        "includedContexts[0].contextKind: required",
    ),
    (
        "excludedContexts bad kind",
        {"excludedContexts": [{"contextKind": "", "values": []}]},
        "excludedContexts[0].contextKind: must not be empty",
    ),
    (
        "rule weight too big",
        {"rules": [{"clauses": [], "weight": 100001}]},
        "rules[0].weight: must be between 0 and 100000",
    ),
    (
        "rule clause op",
        {"rules": [{"clauses": [clause(op="nope")]}]},
        'rules[0].clauses[0].op: unknown operator "nope"',
    ),
    (
        "rule self match",
        {"rules": [{"clauses": [{"op": "segmentMatch", "values": ["s"]}]}]},
        'rules[0].clauses[0].values[0]: segment "s" cannot match itself',
    ),
    (
        "rule bucketBy",
        {"rules": [{"clauses": [], "rolloutContextKind": "org", "bucketBy": "/a~2"}]},
        "rules[0].bucketBy: attribute reference",
    ),
    ("rule without clauses (typo)", {"rules": [{"clauss": []}]}, "rules[0].clauses: required"),
    ("unbounded", {"unbounded": "no"}, "unbounded: expected boolean"),
    ("generation", {"generation": "1"}, "generation: expected integer"),
    ("key mismatch", {"key": "t"}, 'key: "t" does not match'),
]


def test_valid_segment() -> None:
    assert check_item("segments", "s", SEG) == []
    assert (
        check_item(
            "segments",
            "s",
            {
                "includedContexts": [{"contextKind": "org", "values": ["o1"]}],
                "rules": [
                    {
                        "id": "r",
                        "clauses": [{"op": "segmentMatch", "values": ["other"]}],  # no attribute
                        "weight": 25000,
                        "bucketBy": "key",
                        "rolloutContextKind": "user",
                    }
                ],
                "unbounded": False,
                "generation": None,
            },
        )
        == []
    )


@pytest.mark.parametrize(
    ("name", "data", "expected"), INVALID_SEGMENTS, ids=[c[0] for c in INVALID_SEGMENTS]
)
def test_invalid_segments(name: str, data: dict[str, Any], expected: str) -> None:
    errors = check_item("segments", "s", data)
    assert any(expected in e for e in errors), errors


LEVELS: list[tuple[str, dict[str, Any], tuple[str, ...], tuple[str, ...]]] = [
    # (name, flag, type-level problems, semantic problems)
    ("the issue's flag", {"on": "yes", "variations": "x"},
     ("on: expected boolean, got string", "variations: expected array, got string"), ()),
    ("index out of range", flag(offVariation=5), (),
     ("offVariation: variation index 5 is out of range (the flag has 2 variations)",)),
    ("bad regex", flag(rules=[rule(clauses=[clause(op="matches", values=["(a"])])]), (),
     ("rules[0].clauses[0].values[0]: regular expression does not compile: missing ), "
      "unterminated subpattern at position 0",)),
    ("unknown operator", flag(rules=[rule(clauses=[clause(op="isOneOf")])]), (),
     ('rules[0].clauses[0].op: unknown operator "isOneOf"',)),
    ("clause without attribute", flag(rules=[rule(clauses=[{"op": "in", "values": [1]}])]), (),
     ("rules[0].clauses[0].attribute: required",)),
    ("both", flag(offVariation=5, rule=[]),
     ("rule: unknown field `rule`; did you mean `rules`?",),
     ("offVariation: variation index 5 is out of range (the flag has 2 variations)",)),
]


@pytest.mark.parametrize(("name", "data", "unparseable", "malformed"), LEVELS,
                         ids=[c[0] for c in LEVELS])
def test_levels(name: str, data: dict[str, Any], unparseable: tuple[str, ...],
                malformed: tuple[str, ...]) -> None:
    """Type-level problems are refused even by a lenient import; semantic ones are not."""
    assert judge_item("flags", "f", data) == Verdict(unparseable, malformed)


def test_every_error_starts_with_its_path() -> None:
    errors = check_item(
        "flags", "f", flag(offVariation=9, rules=[rule(clauses=[clause(op="foo")], variation=7)])
    )
    assert sorted(e.split(":")[0] for e in errors) == [
        "offVariation",
        "rules[0].clauses[0].op",
        "rules[0].variation",
    ]


@pytest.mark.parametrize(
    ("ref", "literal", "ok"),
    [
        ("name", False, True),
        ("/a/b", False, True),
        ("/a~0~1", False, True),
        ("", False, False),
        ("/", False, False),
        ("/a//b", False, False),
        ("/a/", False, False),
        ("/a~2", False, False),
        ("/a~", False, False),
        ("/a~2", True, True),
        ("/", True, True),
        ("", True, False),
    ],
)
def test_attribute_references(ref: str, literal: bool, ok: bool) -> None:
    assert (attr_ref_error(ref, literal=literal) is None) is ok


# -- the zero values, nulls and types real flags use, each with its exact verdict --------------
# (the gaps issue 17 listed; the schema table is module-level data that mutation testing does
# not change, so these state the expected behaviour independently of it)

WV0 = {"variation": 0, "weight": 0}
WV1 = {"variation": 1, "weight": 100000}
EXACT: list[tuple[str, str, dict[str, Any], tuple[str, ...], tuple[str, ...]]] = [
    # (name, kind, item, type-level problems, semantic problems)
    ("weight 0 beside 100000", "flags", flag(fallthrough={"rollout": {"variations": [WV0, WV1]}}),
     (), ()),
    ("version 0", "flags", flag(version=0), (), ()),
    ("version -1", "flags", flag(version=-1), (), ("version: must not be negative",)),
    ("samplingRatio 0", "flags", flag(samplingRatio=0), (), ()),
    ("samplingRatio -1", "flags", flag(samplingRatio=-1), (),
     ("samplingRatio: must not be negative",)),
    ("samplingRatio null", "flags", flag(samplingRatio=None), (), ()),
    ("seed null", "flags", flag(fallthrough={"rollout": {"seed": None, "variations": [WV1]}}),
     (), ()),
    ("seed 0", "flags", flag(fallthrough={"rollout": {"seed": 0, "variations": [WV1]}}), (), ()),
    ("clientSideAvailability null", "flags", flag(clientSideAvailability=None), (), ()),
    ("migration null", "flags", flag(migration=None), (), ()),
    ("checkRatio null", "flags", flag(migration={"checkRatio": None}), (), ()),
    ("checkRatio 0", "flags", flag(migration={"checkRatio": 0}), (), ()),
    ("offVariation 0", "flags", flag(offVariation=0), (), ()),
    ("offVariation -1", "flags", flag(offVariation=-1), (),
     ("offVariation: variation index -1 is out of range (the flag has 2 variations)",)),
    ("offVariation = number of variations", "flags", flag(offVariation=2), (),
     ("offVariation: variation index 2 is out of range (the flag has 2 variations)",)),
    ("rollout variation without weight", "flags",
     flag(fallthrough={"rollout": {"variations": [{"variation": 0}, WV1]}}),
     ("fallthrough.rollout.variations[0].weight: required",), ()),
    ("rollout variation with weight null", "flags",
     flag(fallthrough={"rollout": {"variations": [{"variation": 0, "weight": None}, WV1]}}),
     ("fallthrough.rollout.variations[0].weight: required",), ()),
    ("untracked true", "flags",
     flag(fallthrough={"rollout": {"variations": [{**WV1, "untracked": True}]}}), (), ()),
    ("untracked a string", "flags",
     flag(fallthrough={"rollout": {"variations": [{**WV1, "untracked": "yes"}]}}),
     ("fallthrough.rollout.variations[0].untracked: expected boolean, got string",), ()),
    ("weights 1 short", "flags",
     flag(fallthrough={"rollout": {"variations": [{"variation": 0, "weight": 99999}]}}), (),
     ("fallthrough.rollout.variations: weights sum to 99999, not 100000",)),
    ("negative weight", "flags",
     flag(fallthrough={"rollout": {"variations": [{"variation": 0, "weight": -1},
                                                   {"variation": 1, "weight": 100001}]}}), (),
     ("fallthrough.rollout.variations[0].weight: must not be negative",)),
    ("empty rollout", "flags", flag(fallthrough={"rollout": {"variations": []}}), (),
     ("fallthrough.rollout.variations: a rollout needs at least one variation",)),
    ("prerequisite variation 0", "flags", flag(prerequisites=[{"key": "p", "variation": 0}]),
     (), ()),
    ("prerequisite variation -1", "flags", flag(prerequisites=[{"key": "p", "variation": -1}]),
     (), ("prerequisites[0].variation: must not be negative",)),
    ("segment includedContexts not a list", "segments", {"includedContexts": "u"},
     ("includedContexts: expected array, got string",), ()),
    ("segment excludedContexts of strings", "segments", {"excludedContexts": ["u"]},
     ("excludedContexts[0]: expected object, got string",), ()),
    ("segment context list values not strings", "segments",
     {"includedContexts": [{"contextKind": "org", "values": [1]}]},
     ("includedContexts[0].values[0]: expected string, got number",), ()),
    ("segment context list without kind", "segments",
     {"excludedContexts": [{"values": ["u"]}]}, (), ("excludedContexts[0].contextKind: required",)),
    ("segment context list with kind \"\"", "segments",
     {"includedContexts": [{"contextKind": "", "values": ["u"]}]}, (),
     ("includedContexts[0].contextKind: must not be empty",)),
    ("unboundedContextKind a number", "segments", {"unboundedContextKind": 1},
     ("unboundedContextKind: expected string, got number",), ()),
    ("unboundedContextKind invalid", "segments", {"unboundedContextKind": "a b"}, (),
     ('unboundedContextKind: invalid context kind "a b"',)),
    ("unboundedContextKind org", "segments", {"unbounded": True, "unboundedContextKind": "org"},
     (), ()),
    ("segment rule weight 0", "segments", {"rules": [{"clauses": [], "weight": 0}]}, (), ()),
    ("segment rule weight 100000", "segments", {"rules": [{"clauses": [], "weight": 100000}]},
     (), ()),
    ("segment rule weight 100001", "segments", {"rules": [{"clauses": [], "weight": 100001}]},
     (), ("rules[0].weight: must be between 0 and 100000",)),
    ("segment rule weight -1", "segments", {"rules": [{"clauses": [], "weight": -1}]},
     (), ("rules[0].weight: must be between 0 and 100000",)),
    ("segment rule weight null", "segments", {"rules": [{"clauses": [], "weight": None}]},
     (), ()),
    ("generation null", "segments", {"generation": None}, (), ()),
    # exact messages and paths of the other semantic checks
    ("deleted true", "flags", flag(deleted=True), (),
     ("deleted: must be false (use DELETE to delete an item)",)),
    ("deleted false", "flags", flag(deleted=False), (), ()),
    ("on without fallthrough", "flags", {"on": True, "variations": V2}, (),
     ("fallthrough: required when the flag is on",)),
    ("on with fallthrough null", "flags", {"on": True, "variations": V2, "fallthrough": None},
     ("fallthrough: expected object, got null",), ()),  # the schema's, reported once
    ("rollout kind rollout", "flags",
     flag(fallthrough={"rollout": {"kind": "rollout", "variations": [WV1]}}), (), ()),
    ("rollout kind other", "flags",
     flag(fallthrough={"rollout": {"kind": "Rollout", "variations": [WV1]}}), (),
     ('fallthrough.rollout.kind: must be "rollout" or "experiment", not "Rollout"',)),
    ("rollout contextKind invalid", "flags",
     flag(fallthrough={"rollout": {"contextKind": "a b", "variations": [WV1]}}), (),
     ('fallthrough.rollout.contextKind: invalid context kind "a b"',)),
    ("rollout bucketBy empty: the key", "flags",
     flag(fallthrough={"rollout": {"bucketBy": "", "variations": [WV1]}}), (), ()),
    ("rollout bucketBy without contextKind is a literal name", "flags",
     flag(fallthrough={"rollout": {"bucketBy": "/a~2", "variations": [WV1]}}), (), ()),
    ("rollout bucketBy with contextKind is a reference", "flags",
     flag(fallthrough={"rollout": {"contextKind": "user", "bucketBy": "/a~2",
                                   "variations": [WV1]}}), (),
     ('fallthrough.rollout.bucketBy: attribute reference "/a~2" has a "~" not followed by '
      "0 or 1",)),
    ("clause attribute mistyped", "flags",
     flag(rules=[rule(clauses=[clause(attribute=1)])]),
     ("rules[0].clauses[0].attribute: expected string, got number",), ()),
    ("clause attribute null", "flags",
     flag(rules=[rule(clauses=[clause(attribute=None)])]),
     ("rules[0].clauses[0].attribute: expected string, got null",), ()),
    ("rule with variation and rollout", "flags",
     flag(rules=[rule(rollout={"variations": [WV1]})]), (),
     ('rules[0]: needs exactly one of "variation" and "rollout", has both',)),
    ("fallthrough with neither", "flags", flag(fallthrough={}), (),
     ('fallthrough: needs exactly one of "variation" and "rollout", has neither',)),
    ("prerequisite key empty", "flags", flag(prerequisites=[{"key": "", "variation": 0}]), (),
     ("prerequisites[0].key: must not be empty",)),
    ("prerequisite of itself", "flags", flag(prerequisites=[{"key": "k", "variation": 0}]), (),
     ('prerequisites[0].key: flag "k" cannot be its own prerequisite',)),
    ("target variation out of range", "flags",
     flag(targets=[{"values": ["u"], "variation": 2}]), (),
     ("targets[0].variation: variation index 2 is out of range (the flag has 2 variations)",)),
    ("contextTarget kind invalid", "flags",
     flag(contextTargets=[{"contextKind": "a b", "values": ["u"], "variation": 0}]), (),
     ('contextTargets[0].contextKind: invalid context kind "a b"',)),
    ("segment rule rolloutContextKind invalid", "segments",
     {"rules": [{"clauses": [], "rolloutContextKind": "a b"}]}, (),
     ('rules[0].rolloutContextKind: invalid context kind "a b"',)),
    ("segment rule bucketBy with rolloutContextKind", "segments",
     {"rules": [{"clauses": [], "rolloutContextKind": "org", "bucketBy": "/"}]}, (),
     ("rules[0].bucketBy: attribute reference must not be empty",)),
    ("segment rule segmentMatch of itself", "segments",
     {"rules": [{"clauses": [{"attribute": "", "op": "segmentMatch", "values": ["k"]}]}]}, (),
     ('rules[0].clauses[0].values[0]: segment "k" cannot match itself',)),
]


@pytest.mark.parametrize(("name", "kind", "data", "unparseable", "malformed"), EXACT,
                         ids=[c[0] for c in EXACT])
def test_exact_verdicts(name: str, kind: str, data: dict[str, Any],
                        unparseable: tuple[str, ...], malformed: tuple[str, ...]) -> None:
    assert judge_item(kind, "k", data) == Verdict(unparseable, malformed)


@pytest.mark.parametrize(("key", "ok"), [
    ("a", True), ("A-z_0.9", True), ("x" * 256, True), ("x" * 257, False), ("", False),
    ("a b", False), ("a/b", False), ("é", False), ("a\n", False), ("a~", False),
])
def test_is_valid_key(key: str, ok: bool) -> None:
    assert is_valid_key(key) is ok
