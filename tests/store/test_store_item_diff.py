"""The structured diff (store/item_diff.py): a table of cases, and the property that
applying the diff to ``old`` with the store's own JSON Patch gives ``new``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.item_diff import content, diff, field, pointer
from store.json_patch import apply_json_patch

RULE = {"id": "r0", "clauses": [{"attribute": "email", "op": "in", "values": ["a"]}],
        "variation": 0}
RULE_B = {**RULE, "clauses": [{"attribute": "email", "op": "in", "values": ["a", "b"]}]}

CASES: list[tuple[str, Any, Any, list[dict[str, Any]]]] = [
    ("equal", {"on": True}, {"on": True}, []),
    ("scalar", {"on": True}, {"on": False},
     [{"op": "replace", "path": "/on", "field": "on", "old": True, "value": False}]),
    ("true is not 1", {"v": True}, {"v": 1},
     [{"op": "replace", "path": "/v", "field": "v", "old": True, "value": 1}]),
    ("member added", {}, {"offVariation": 1},
     [{"op": "add", "path": "/offVariation", "field": "offVariation", "value": 1}]),
    ("member removed", {"offVariation": 1}, {},
     [{"op": "remove", "path": "/offVariation", "field": "offVariation", "old": 1}]),
    ("clause values, whole array", {"rules": [RULE, RULE]}, {"rules": [RULE, RULE_B]},
     [{"op": "replace", "path": "/rules/1/clauses/0/values",
       "field": "rules[1].clauses[0].values", "old": ["a"], "value": ["a", "b"]}]),
    ("rule added at the end", {"rules": [RULE]}, {"rules": [RULE, RULE_B]},
     [{"op": "add", "path": "/rules/1", "field": "rules[1]", "value": RULE_B}]),
    ("rules removed from the last down", {"rules": [RULE, RULE_B, RULE]}, {"rules": [RULE]},
     [{"op": "remove", "path": "/rules/2", "field": "rules[2]", "old": RULE},
      {"op": "remove", "path": "/rules/1", "field": "rules[1]", "old": RULE_B}]),
    ("by position: a rule inserted first changes the next", {"rules": [RULE]},
     {"rules": [RULE_B, RULE]},
     [{"op": "replace", "path": "/rules/0/clauses/0/values",
       "field": "rules[0].clauses[0].values", "old": ["a"], "value": ["a", "b"]},
      {"op": "add", "path": "/rules/1", "field": "rules[1]", "value": RULE}]),
    ("1.0 is shown when it replaces 1 in an array", {"x": [1]}, {"x": [1.0]},
     [{"op": "replace", "path": "/x", "field": "x", "old": [1], "value": [1.0]}]),
    ("type change", {"x": [1]}, {"x": {"a": 1}},
     [{"op": "replace", "path": "/x", "field": "x", "old": [1], "value": {"a": 1}}]),
    ("odd member names", {"a/b": 1, "c.d": {"~": 2}}, {"a/b": 2, "c.d": {"~": 3}},
     [{"op": "replace", "path": "/a~1b", "field": '["a/b"]', "old": 1, "value": 2},
      {"op": "replace", "path": "/c.d/~0", "field": '["c.d"]["~"]', "old": 2, "value": 3}]),
]


@pytest.mark.parametrize(("name", "old", "new", "ops"), CASES, ids=[c[0] for c in CASES])
def test_diff(name: str, old: Any, new: Any, ops: list[dict[str, Any]]) -> None:
    assert diff(old, new) == ops
    assert apply_json_patch(old, ops) == new


def test_field_and_pointer() -> None:
    path = ("rules", 1, "clauses", 0, "values")
    assert field(path) == "rules[1].clauses[0].values"
    assert pointer(path) == "/rules/1/clauses/0/values"
    assert field(()) == "" and pointer(()) == ""
    assert field(("say \"hi\"",)) == '["say \\"hi\\""]'


def test_content_leaves_out_the_version_only() -> None:
    assert content({"key": "f", "version": 3, "on": True}) == {"key": "f", "on": True}
    assert content(None) == {}


# JSON values like flags: objects with a few member names, arrays of scalars or objects.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, 0.5]),
                     st.sampled_from(["a", "b"]))
_names = st.sampled_from(["on", "rules", "values", "a/b", "~x", "variation"])
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_names, inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(old=st.dictionaries(_names, _json, max_size=5), new=st.dictionaries(_names, _json,
                                                                            max_size=5))
def test_applying_the_diff_to_old_gives_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    ops = diff(old, new)
    out = apply_json_patch(old, ops)
    assert out == new and diff(out, new) == []
    for op in ops:  # every op says what it takes away, for the UI
        assert ("old" in op) == (op["op"] in ("replace", "remove"))
        assert ("value" in op) == (op["op"] in ("replace", "add"))
