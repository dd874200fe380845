"""Fill in the defaults an SDK needs before an item is stored (pure).

The stored JSON is what every SDK receives, so it always carries the properties the strictest
SDK parser requires (the defaults of ``flagmodel.schema``, at every level), a ``salt`` (a
rollout needs one; a replaced flag keeps its old salt so buckets do not reshuffle) and
``deleted: false``. ``key`` and ``version`` are set by the store at commit.
"""

from __future__ import annotations

import uuid
from typing import Any

from flagmodel.schema import fill_defaults


def new_salt() -> str:
    return uuid.uuid4().hex


def normalize(
    kind: str, key: str, data: dict[str, Any], *, salt: str | None = None
) -> dict[str, Any]:
    """A copy of ``data`` with ``key`` set, ``version`` removed and SDK defaults filled in.

    ``salt`` is used when ``data`` has none (pass the previous item's salt, or None to make one).
    Present values are kept as they are (validation has refused wrongly typed ones).
    """
    out = fill_defaults(kind, {name: value for name, value in data.items()
                               if name not in ("key", "version")})
    if "salt" not in out or out["salt"] is None:
        out["salt"] = salt if salt is not None else new_salt()
    out["deleted"] = False
    return {"key": key, **out}
