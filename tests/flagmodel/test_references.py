"""flagmodel/references.py: the flags and segments an item names, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel.references import References, references


def seg_clause(*keys: Any) -> dict[str, Any]:
    return {"attribute": "", "op": "segmentMatch", "values": list(keys)}


CASES: list[tuple[str, str, dict[str, Any], References]] = [
    ("nothing", "flags", {"on": True}, References((), ())),
    ("prerequisites in order, once", "flags",
     {"prerequisites": [{"key": "b", "variation": 0}, {"key": "a", "variation": 1},
                        {"key": "b", "variation": 1}]}, References(("b", "a"), ())),
    ("segments of segmentMatch clauses only", "flags",
     {"rules": [{"clauses": [seg_clause("s1", "s2"),
                             {"attribute": "email", "op": "in", "values": ["s3"]}]},
                {"clauses": [seg_clause("s1")]}]}, References((), ("s1", "s2"))),
    ("a segment's rules", "segments", {"rules": [{"clauses": [seg_clause("inner")]}],
                                       "prerequisites": [{"key": "ignored"}]},
     References((), ("inner",))),
    ("wrong types are skipped", "flags",
     {"prerequisites": "x", "rules": [5, {"clauses": [seg_clause(7, "ok"), "y"]}]},
     References((), ("ok",))),
]


@pytest.mark.parametrize(("name", "kind", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_references(name: str, kind: str, data: dict[str, Any], expected: References) -> None:
    assert references(kind, data) == expected
