"""store.importer, pure: what a strict and a lenient import refuse, store and report."""

from __future__ import annotations

from typing import Any

import pytest

from store.importer import ImportRejectedError, plan_import

GOOD = {"on": True, "variations": [True, False], "fallthrough": {"variation": 0}}
# parsed by every SDK, evaluated as MALFORMED_FLAG
OUT_OF_RANGE = {**GOOD, "offVariation": 7}
BAD_REGEX = {**GOOD, "rules": [{"clauses": [{"attribute": "a", "op": "matches",
                                             "values": ["(a"]}], "variation": 1}]}


def _salt() -> str:
    return "salt"


REFUSED_EVEN_LENIENTLY: list[tuple[str, dict[str, Any], str]] = [
    ("issue 14 finding 2: wrong types",
     {"flags": {"good": GOOD, "bad": {"on": "yes", "variations": "x"}}},
     "flags.bad.on: expected boolean, got string"),
    ("wrong type deep inside",
     {"flags": {"bad": {**GOOD, "rules": [{"clauses": [
         {"attribute": "a", "op": "in", "values": ["x"]},
         {"attribute": "a", "op": "in", "values": "x"}], "variation": 0}]}}},
     "flags.bad.rules[0].clauses[1].values: expected array, got string"),
    ("a required property missing",
     {"flags": {"bad": {**GOOD, "prerequisites": [{"key": "p"}]}}},
     "flags.bad.prerequisites[0].variation: required"),
    ("issue 14 finding 3: unknown field",
     {"flags": {"bad": {**GOOD, "rule": []}}},
     "flags.bad.rule: unknown field `rule`; did you mean `rules`?"),
    ("unknown field in a segment rule",
     {"segments": {"s": {"rules": [{"clauses": [], "weigth": 5}]}}},
     "segments.s.rules[0].weigth: unknown field `weigth`; did you mean `weight`?"),
]


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize(("name", "body", "expected"), REFUSED_EVEN_LENIENTLY,
                         ids=[c[0] for c in REFUSED_EVEN_LENIENTLY])
def test_type_level_problems_refuse_the_import(name: str, body: dict[str, Any], expected: str,
                                               lenient: bool) -> None:
    with pytest.raises(ImportRejectedError) as exc:
        plan_import(body, lenient=lenient, salt_source=_salt)
    assert expected in exc.value.errors


def test_lenient_import_stores_and_lists_semantically_malformed_items() -> None:
    body = {"flags": {"good": GOOD, "range": OUT_OF_RANGE, "regex": BAD_REGEX},
            "segments": {"s": {"included": ["u"]}}}
    with pytest.raises(ImportRejectedError) as exc:
        plan_import(body, lenient=False, salt_source=_salt)
    assert len(exc.value.errors) == 2
    plan = plan_import(body, lenient=True, salt_source=_salt)
    assert [(w.kind, w.key) for w in plan.items] == [
        ("flags", "good"), ("flags", "range"), ("flags", "regex"), ("segments", "s")]
    assert plan.malformed == ("flags.range", "flags.regex")
    assert plan.accepted_invalid[0] == (
        "flags.range.offVariation: variation index 7 is out of range (the flag has 2 variations)")


def test_stored_items_carry_what_strict_parsers_require() -> None:
    """A segmentMatch clause without ``attribute`` (Go and Node read ""; the Python SDK
    requires the property) is stored with ``"attribute": ""``."""
    flag = {**GOOD, "rules": [{"clauses": [{"op": "segmentMatch", "values": ["s"]}],
                               "variation": 1}]}
    plan = plan_import({"flags": {"f": flag}}, lenient=False, salt_source=_salt)
    stored = plan.items[0].data
    assert stored is not None
    assert stored["rules"][0]["clauses"][0]["attribute"] == ""
