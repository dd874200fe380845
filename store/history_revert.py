"""What a revert writes, or why it is refused (pure: the caller does the reads).

A revert to version N writes a new version whose content equals version N's content
(store.item_diff.content: everything but ``version``), the salt included, so a rollout
buckets every context as it did at version N. It is refused, and nothing is written, when:
- the history does not know version N (404);
- version N is a deletion (400: delete the item instead);
- version N's content does not pass today's validation (409: the flag model has become
  stricter since, or an import stored it leniently);
- version N names a prerequisite flag or a segment that does not exist now (409). Such a
  write is valid as a PUT (an SDK reads a missing prerequisite as failed and a missing
  segment as not matching), but a revert promises the old behaviour, and without those
  items version N would evaluate differently than it did. The message names each missing
  item, so the operator can restore them first (reverting them too) or write the flag. The
  writer checks this (:func:`missing_references`) after committing every write accepted
  before the revert and right before committing it, so a pending delete of a named segment
  cannot slip in between.
Reverting a deleted item re-creates it; reverting to the current content still writes a
new version, so the history shows the revert.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flagmodel.references import references
from flagmodel.validation import check_item
from store.item_diff import content
from store.normalize import normalize


class RevertRefusedError(Exception):
    """The revert cannot be applied; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def plan_revert(kind: str, key: str, version: int,
                old: dict[str, Any] | None) -> dict[str, Any]:
    """The item data to write (normalized, without ``version``) to revert ``key`` to
    ``old``, its JSON at ``version`` (None if unknown); RevertRefusedError says why not.
    The references are checked apart (:func:`missing_references`), by the writer, right
    before the commit."""
    what = f'{kind[:-1]} "{key}"'
    if old is None:
        raise RevertRefusedError(404, f"version {version} of {what} is not in the history")
    if old.get("deleted") is True:
        raise RevertRefusedError(
            400, f"version {version} of {what} is its deletion: delete it instead")
    data = content(old)
    errors = check_item(kind, key, data)
    if errors:
        raise RevertRefusedError(
            409, f"version {version} of {what} no longer validates: " + "; ".join(errors[:5]),
            list(errors[:200]))
    return normalize(kind, key, data)


def missing_references(kind: str, key: str, version: int, data: dict[str, Any],
                       exists: Callable[[str, str], bool]) -> str | None:
    """Why ``data`` (version ``version``'s content) cannot come back: the prerequisite flags
    and segments it names that do not exist now (``exists(kind, key)``), or None."""
    refs = references(kind, data)
    missing = [f'prerequisite flag "{k}"' for k in refs.flags if not exists("flags", k)]
    missing += [f'segment "{k}"' for k in refs.segments if not exists("segments", k)]
    if not missing:
        return None
    return (f'version {version} of {kind[:-1]} "{key}" names items that no longer exist: '
            + ", ".join(missing[:20]) + "; restore them first")
