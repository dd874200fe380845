"""Table-driven tests of flagmodel.schema, the type level of the validation.

The cases are generated from the table itself (every field of every shape gets a wrong type,
a null, a misspelling; every required field goes missing), each at its real nesting path, so
a field added to the table is tested without a new line here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flagmodel.schema import (
    SHAPES,
    Field,
    fill_defaults,
    has_type,
    json_type_name,
    markdown,
    type_errors,
)
from flagmodel.validation import Verdict, judge_item

CLAUSE = {"attribute": "a", "op": "in", "values": ["x"]}
WV = {"variation": 0, "weight": 100000}
Build = Callable[[dict[str, Any]], dict[str, Any]]

# shape → (item kind, the path an object of that shape sits at, an item holding it there)
EMBED: dict[str, tuple[str, str, Build]] = {
    "Flag": ("flags", "", lambda o: o),
    "Fallthrough": ("flags", "fallthrough", lambda o: {"fallthrough": o}),
    "Rule": ("flags", "rules[0]", lambda o: {"rules": [o]}),
    "Clause": ("flags", "rules[0].clauses[1]",
               lambda o: {"rules": [{"clauses": [CLAUSE, o], "variation": 0}]}),
    "Rollout": ("flags", "rules[0].rollout",
                lambda o: {"rules": [{"clauses": [], "rollout": o}]}),
    "WeightedVariation": ("flags", "fallthrough.rollout.variations[0]",
                          lambda o: {"fallthrough": {"rollout": {"variations": [o]}}}),
    "Prerequisite": ("flags", "prerequisites[0]", lambda o: {"prerequisites": [o]}),
    "Target": ("flags", "targets[0]", lambda o: {"targets": [o]}),
    "ContextTarget": ("flags", "contextTargets[0]", lambda o: {"contextTargets": [o]}),
    "ClientSideAvailability": ("flags", "clientSideAvailability",
                               lambda o: {"clientSideAvailability": o}),
    "Migration": ("flags", "migration", lambda o: {"migration": o}),
    "Segment": ("segments", "", lambda o: o),
    "SegmentTarget": ("segments", "includedContexts[0]", lambda o: {"includedContexts": [o]}),
    "SegmentRule": ("segments", "rules[1]", lambda o: {"rules": [{"clauses": []}, o]}),
}
# a valid object of each shape (its required fields and little else)
VALID: dict[str, dict[str, Any]] = {
    "Flag": {"on": True, "variations": [True, False], "fallthrough": {"variation": 0}},
    "Fallthrough": {"variation": 0},
    "Rule": {"clauses": [CLAUSE], "variation": 1},
    "Clause": dict(CLAUSE),
    "Rollout": {"variations": [WV]},
    "WeightedVariation": dict(WV),
    "Prerequisite": {"key": "p", "variation": 0},
    "Target": {"values": ["u"], "variation": 0},
    "ContextTarget": {"contextKind": "org", "values": ["o"], "variation": 0},
    "ClientSideAvailability": {"usingMobileKey": True},
    "Migration": {"checkRatio": 1},
    "Segment": {"included": ["u"]},
    "SegmentTarget": {"contextKind": "org", "values": ["o"]},
    "SegmentRule": {"clauses": [CLAUSE], "weight": 50000},
}
WRONG: dict[str, tuple[Any, str]] = {  # a value of another type, and its name in the message
    "boolean": ("yes", "string"),
    "integer": (1.5, "number"),
    "number": ("1", "string"),
    "string": (5, "number"),
}


def _item(shape: str, obj: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    kind, path, build = EMBED[shape]
    return kind, path, build(obj)


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _unparseable(kind: str, data: dict[str, Any]) -> tuple[str, ...]:
    key = "f" if kind == "flags" else "s"
    return judge_item(kind, key, data).unparseable


FIELDS = [(shape, name, f) for shape, fields in SHAPES.items() for name, f in fields.items()]
IDS = [f"{shape}.{name}" for shape, name, _ in FIELDS]


def test_every_shape_is_embedded_and_valid() -> None:
    assert set(EMBED) == set(SHAPES) == set(VALID)
    for shape, obj in VALID.items():
        kind, _, item = _item(shape, obj)
        assert judge_item(kind, "f" if kind == "flags" else "s", item).unparseable == (), shape


def _wrong_value(type_: str) -> tuple[Any, str, str]:
    """(a wrongly typed value, the expected type's name, the value's type's name), or the
    element-level wrong value of an array, whose error sits at ``[0]``."""
    if type_.startswith("["):
        return "x", "array", "string"
    if type_ in WRONG:
        value, got = WRONG[type_]
        return value, type_, got
    return [], "object", "array"


@pytest.mark.parametrize(("shape", "name", "field"), FIELDS, ids=IDS)
def test_wrong_type_is_unparseable_at_its_path(shape: str, name: str, field: Field) -> None:
    if field.type == "any":
        return  # every JSON value is an "any"
    value, want, got = _wrong_value(field.type)
    kind, path, item = _item(shape, {**VALID[shape], name: value})
    assert _unparseable(kind, item) == (f"{_at(path, name)}: expected {want}, got {got}",)


@pytest.mark.parametrize(("shape", "name", "field"),
                         [c for c in FIELDS if c[2].type.startswith("[")],
                         ids=[i for i, c in zip(IDS, FIELDS, strict=True)
                              if c[2].type.startswith("[")])
def test_wrong_element_type_is_unparseable_at_its_index(
        shape: str, name: str, field: Field) -> None:
    element = field.type[1:-1]
    if element == "any":
        return
    bad, want, got = _wrong_value(element) if element in WRONG else ("x", "object", "string")
    kind, path, item = _item(shape, {**VALID[shape], name: [bad]})
    errors = _unparseable(kind, item)
    assert errors == (f"{_at(path, name)}[0]: expected {want}, got {got}",)


@pytest.mark.parametrize(("shape", "name", "field"), FIELDS, ids=IDS)
def test_null(shape: str, name: str, field: Field) -> None:
    kind, path, item = _item(shape, {**VALID[shape], name: None})
    errors = _unparseable(kind, item)
    if field.nullable:
        assert errors == ()
    elif field.required:
        assert errors == (f"{_at(path, name)}: required",)
    else:
        want = _wrong_value(field.type)[1] if field.type != "any" else "any"
        assert errors == (f"{_at(path, name)}: expected {want}, got null",)


@pytest.mark.parametrize(("shape", "name"),
                         [(s, n) for s, n, f in FIELDS if f.required],
                         ids=[i for i, c in zip(IDS, FIELDS, strict=True) if c[2].required])
def test_missing_required_field(shape: str, name: str) -> None:
    obj = {k: v for k, v in VALID[shape].items() if k != name}
    kind, path, item = _item(shape, obj)
    assert _unparseable(kind, item) == (f"{_at(path, name)}: required",)


@pytest.mark.parametrize(("shape", "name"), [(s, n) for s, n, _ in FIELDS], ids=IDS)
def test_misspelled_field_names_the_nearest(shape: str, name: str) -> None:
    typo = name[:-1] if len(name) > 4 else name + "x"
    kind, path, item = _item(shape, {**VALID[shape], typo: 1})
    assert _unparseable(kind, item) == (
        f"{_at(path, typo)}: unknown field `{typo}`; did you mean `{name}`?",)


TYPOS: list[tuple[str, dict[str, Any], str]] = [
    ("flags", {"rule": []}, "rule: unknown field `rule`; did you mean `rules`?"),
    ("flags", {"rules": [{"clause": [], "variation": 0}]},
     "rules[0].clause: unknown field `clause`; did you mean `clauses`?"),
    ("flags", {"rules": [{"clauses": [{**CLAUSE, "atribute": "a"}], "variation": 0}]},
     "rules[0].clauses[0].atribute: unknown field `atribute`; did you mean `attribute`?"),
    ("flags", {"rules": [{"clauses": [{**CLAUSE, "contextkind": "user"}], "variation": 0}]},
     "rules[0].clauses[0].contextkind: unknown field `contextkind`; did you mean `contextKind`?"),
    ("flags", {"fallthrough": {"rollout": {"variations": [{**WV, "weigth": 1}]}}},
     "fallthrough.rollout.variations[0].weigth: unknown field `weigth`; did you mean `weight`?"),
    ("flags", {"offVariaton": 0}, "offVariaton: unknown field `offVariaton`; did you mean "
     "`offVariation`?"),
    ("flags", {"_meta": {}}, "_meta: unknown field `_meta`"),
    ("flags", {"zzz": 1}, "zzz: unknown field `zzz`"),
    ("segments", {"include": ["u"]}, "include: unknown field `include`; did you mean "
     "`included`?"),
    ("segments", {"rules": [{"clauses": [], "bucketby": "key"}]},
     "rules[0].bucketby: unknown field `bucketby`; did you mean `bucketBy`?"),
    # the harness's segment-recursion.yml holds this typo (its Go model drops the property)
    ("segments", {"rules": [{"clauss": []}]},
     "rules[0].clauss: unknown field `clauss`; did you mean `clauses`?"),
]


@pytest.mark.parametrize(("kind", "data", "expected"), TYPOS, ids=[t[2][:40] for t in TYPOS])
def test_named_typos(kind: str, data: dict[str, Any], expected: str) -> None:
    assert expected in _unparseable(kind, data)


def test_a_latest_all_dump_of_launchdarkly_parses() -> None:
    """Every property LaunchDarkly's /sdk/latest-all carries is known (PROTOCOL.md §4.1)."""
    flag = {
        "key": "f", "version": 12, "on": True, "salt": "abc", "deleted": False,
        "variations": [False, True], "offVariation": 0,
        "prerequisites": [{"key": "p1", "variation": 1}],
        "targets": [{"values": ["u1"], "variation": 1}],
        "contextTargets": [{"contextKind": "org", "values": ["o1"], "variation": 1},
                           {"contextKind": "user", "values": [], "variation": 1}],
        "rules": [{"id": "r1", "clauses": [{"contextKind": "user", "attribute": "email",
                                            "op": "endsWith", "values": ["@x.com"],
                                            "negate": False}],
                   "variation": 1, "trackEvents": False}],
        "fallthrough": {"rollout": {"kind": "experiment", "contextKind": "user", "seed": 61,
                                    "bucketBy": "key", "variations": [
                                        {"variation": 0, "weight": 50000},
                                        {"variation": 1, "weight": 50000, "untracked": False}]}},
        "clientSideAvailability": {"usingMobileKey": True, "usingEnvironmentId": False},
        "clientSide": False, "trackEvents": False, "trackEventsFallthrough": False,
        "debugEventsUntilDate": None, "samplingRatio": 1, "excludeFromSummaries": False,
        "migration": {"checkRatio": 1},
    }  # fmt: skip
    segment = {
        "key": "s", "version": 3, "salt": "xyz", "deleted": False,
        "included": ["u1"], "excluded": ["u9"],
        "includedContexts": [{"contextKind": "org", "values": ["o1"]}],
        "excludedContexts": [{"contextKind": "org", "values": ["o9"]}],
        "rules": [{"id": "sr1", "clauses": [CLAUSE], "weight": 25000, "bucketBy": "key",
                   "rolloutContextKind": "user"}],
        "unbounded": False, "unboundedContextKind": "user", "generation": None,
    }  # fmt: skip
    assert judge_item("flags", "f", flag) == judge_item("segments", "s", segment) == Verdict((), ())


def test_fill_defaults_writes_what_strict_parsers_require_at_every_level() -> None:
    flag = {"rules": [{"clauses": [{"op": "segmentMatch", "values": ["s"]}], "variation": 0}],
            "contextTargets": [{"contextKind": "user", "variation": 0}]}
    out = fill_defaults("flags", flag)
    assert out["rules"][0]["clauses"][0]["attribute"] == ""
    assert out["contextTargets"][0]["values"] == []
    assert out["targets"] == [] and out["on"] is False
    assert "attribute" not in flag["rules"][0]["clauses"][0]  # a copy
    assert fill_defaults("segments", {})["includedContexts"] == []


def test_docs_list_the_known_fields_from_the_table() -> None:
    """docs/FLAG_MODEL.md holds ``markdown()``; regenerate it with the command the file names."""
    doc = (Path(__file__).resolve().parents[2] / "docs/FLAG_MODEL.md").read_text("utf-8")
    assert markdown() in doc


def test_markdown_has_a_table_per_shape_in_the_table_order() -> None:
    text = markdown()
    assert [line[4:] for line in text.splitlines() if line.startswith("### ")] == list(SHAPES)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == sum(len(fields) for fields in SHAPES.values())
    assert "| `weight` | `integer` | yes |  |  | in 1/100000 |" in rows
    assert '| `attribute` | `string` |  |  | `""` |' in text


@pytest.mark.parametrize(("value", "name"), [
    (None, "null"), (True, "boolean"), (False, "boolean"), (0, "number"), (1.5, "number"),
    ("", "string"), ([], "array"), ({}, "object"), ((1,), "tuple"), (b"", "bytes"),
])
def test_json_type_name(value: Any, name: str) -> None:
    assert json_type_name(value) == name


@pytest.mark.parametrize(("value", "type_", "ok"), [
    (1, "number", True), (1.5, "number", True), (True, "number", False), ("1", "number", False),
    (1, "integer", True), (1.0, "integer", False), (True, "integer", False),
    (True, "boolean", True), (0, "boolean", False), ("a", "string", True), (None, "any", True),
    ([], "[string]", True), ([], "array", True), ({}, "array", False), ({}, "Rollout", True),
    ([], "object", False),
])
def test_has_type(value: Any, type_: str, ok: bool) -> None:
    assert has_type(value, type_) is ok


def test_type_errors_at_the_root() -> None:
    assert type_errors("flags", []) == ["(root): expected an object, got array"]
    assert type_errors("segments", None) == ["(root): expected an object, got null"]
    assert type_errors("metrics", {}) == ["(root): unknown item kind 'metrics'"]
    # below the root there is no article
    assert type_errors("flags", {"fallthrough": 1}) == ["fallthrough: expected object, got number"]


def test_a_required_null_does_not_hide_the_fields_after_it() -> None:
    segment = {"rules": [{"clauses": None, "bucketBy": 1}]}
    assert type_errors("segments", segment) == [
        "rules[0].bucketBy: expected string, got number", "rules[0].clauses: required"]


def test_fill_defaults_keeps_mistyped_values_and_objects() -> None:
    flag = {"fallthrough": {"variation": 0}, "contextTargets": {"variation": 0},
            "rules": "x", "targets": None, "prerequisites": [1, {"key": "p"}]}
    out = fill_defaults("flags", flag)
    assert out["fallthrough"] == {"variation": 0}
    assert out["contextTargets"] == {"variation": 0}  # not an array: left alone
    assert out["rules"] == "x" and out["targets"] is None
    assert out["prerequisites"] == [1, {"key": "p"}]  # Prerequisite has no defaults
    assert out["variations"] == [] and out["trackEvents"] is False
