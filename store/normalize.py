"""Fill in the defaults an SDK needs before an item is stored (pure).

The stored JSON is what every SDK receives, so it always carries the arrays older SDKs
require (PROTOCOL.md §4.1: "arrays are always written, even when empty"), a ``salt`` (a
rollout needs one; a replaced flag keeps its old salt so buckets do not reshuffle) and
``deleted: false``. ``key`` and ``version`` are set by the store at commit.
"""

from __future__ import annotations

import uuid
from typing import Any

_FLAG_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("on", False),
    ("prerequisites", []),
    ("targets", []),
    ("contextTargets", []),
    ("rules", []),
    ("variations", []),
    ("trackEvents", False),
    ("trackEventsFallthrough", False),
)
_SEGMENT_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("included", []),
    ("excluded", []),
    ("includedContexts", []),
    ("excludedContexts", []),
    ("rules", []),
)


def new_salt() -> str:
    return uuid.uuid4().hex


def normalize(
    kind: str, key: str, data: dict[str, Any], *, salt: str | None = None
) -> dict[str, Any]:
    """A copy of ``data`` with ``key`` set, ``version`` removed and SDK defaults filled in.

    ``salt`` is used when ``data`` has none (pass the previous item's salt, or None to make one).
    Present values are kept as they are, even wrongly typed ones (a lenient import stores them).
    """
    out = {name: value for name, value in data.items() if name not in ("key", "version")}
    for name, default in _FLAG_DEFAULTS if kind == "flags" else _SEGMENT_DEFAULTS:
        if name not in out:
            out[name] = list(default) if isinstance(default, list) else default
    if "salt" not in out or out["salt"] is None:
        out["salt"] = salt if salt is not None else new_salt()
    if kind == "flags" and isinstance(out["contextTargets"], list):
        # Go SDKs read a missing ``values`` as empty; the Python SDK requires the property.
        out["contextTargets"] = [
            {**t, "values": []} if isinstance(t, dict) and "values" not in t else t
            for t in out["contextTargets"]]
    out["deleted"] = False
    return {"key": key, **out}
