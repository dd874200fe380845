"""RFC 7386 JSON merge patch (pure).

A patch that is an object is merged member by member into the target (a ``null`` member
removes the key); any other patch replaces the target outright. Arrays are replaced, never
merged. Neither argument is mutated.
"""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with ``patch`` applied (RFC 7386 §2 ``MergePatch``)."""
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result
