"""Which other items a flag or segment names (pure): its prerequisite flags and the segments
its ``segmentMatch`` clauses test.

An SDK evaluates a name that resolves to nothing without an error (a missing prerequisite
fails, a missing segment does not match), so a write that names a missing item is valid.
A revert uses this to refuse restoring a version whose references are gone, because that
version would no longer behave as it did (store/history_revert.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flagmodel.clauses import SEGMENT_MATCH


@dataclass(frozen=True, slots=True)
class References:
    flags: tuple[str, ...]  # prerequisite flag keys, in order, without repeats
    segments: tuple[str, ...]  # segment keys of segmentMatch clauses, in order, no repeats


def references(kind: str, data: dict[str, Any]) -> References:
    """The flags and segments ``data`` (a flag if ``kind == "flags"``, else a segment)
    names. Members of the wrong type are skipped: validation reports them, not this."""
    flags: dict[str, None] = {}
    segments: dict[str, None] = {}
    if kind == "flags":
        for pre in _objects(data.get("prerequisites")):
            if isinstance(pre.get("key"), str):
                flags[pre["key"]] = None
    for rule in _objects(data.get("rules")):
        for clause in _objects(rule.get("clauses")):
            if clause.get("op") == SEGMENT_MATCH:
                for value in clause.get("values") or ():
                    if isinstance(value, str):
                        segments[value] = None
    return References(tuple(flags), tuple(segments))


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
