"""The segment instructions of LaunchDarkly's semantic patch (pure); see store.semantic_patch.

``addIncludedTargets``/``removeIncludedTargets`` and the ``Excluded`` pair take ``values``
(context keys) and an optional ``contextKind`` (default "user"): keys of kind "user" live in
``included``/``excluded``, keys of any other kind in that kind's entry of
``includedContexts``/``excludedContexts`` (made when needed, dropped when emptied). The older
``addIncludedUsers`` family is the same with the kind fixed to "user". Including a key does
not exclude it elsewhere: the SDKs check inclusion first.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from store.semantic_flag import Instructions, Item, NewId, target_values, without


def _keys(segment: Item, which: str, kind: str) -> list[Any]:
    """The list of keys of ``kind`` in ``which`` ("included" or "excluded"), made if missing."""
    if kind == "user":
        keys = segment.get(which)
        if not isinstance(keys, list):
            keys = segment[which] = []
        return keys
    entries = segment.get(f"{which}Contexts")
    if not isinstance(entries, list):
        entries = segment[f"{which}Contexts"] = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("contextKind") == kind:
            entry["values"] = without(entry.get("values"), set())
            values: list[Any] = entry["values"]
            return values
    entries.append({"contextKind": kind, "values": []})
    fresh: list[Any] = entries[-1]["values"]
    return fresh


def _change(segment: Item, ins: dict[str, Any], new_id: NewId, *, which: str, add: bool,
            user_only: bool = False) -> None:
    kind, values = target_values({**ins, "contextKind": "user"} if user_only else ins)
    keys = _keys(segment, which, kind)
    if add:
        present = {k for k in keys if isinstance(k, str)}
        keys.extend(v for v in dict.fromkeys(values) if v not in present)
    else:
        keys[:] = without(keys, set(values))
    entries = segment.get(f"{which}Contexts")
    if isinstance(entries, list):
        entries[:] = [e for e in entries if not isinstance(e, dict) or e.get("values")]


SEGMENT_INSTRUCTIONS: Instructions = {
    f"{verb}{which.title()}{noun}": (
        partial(_change, which=which, add=verb == "add", user_only=noun == "Users"),
        ("values",) if noun == "Users" else ("values", "contextKind"))
    for verb in ("add", "remove") for which in ("included", "excluded")
    for noun in ("Targets", "Users")
}
