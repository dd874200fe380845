"""The store's own records: what the writer asks FlagDB to commit and what comes back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bus.envelope import Change, ItemKind
from insights.timefmt import iso_from_ms

if TYPE_CHECKING:  # a type only: this module does no IO
    import sqlite3


@dataclass(frozen=True, slots=True)
class ItemId:
    env: str
    kind: ItemKind
    key: str


@dataclass(frozen=True, slots=True)
class ItemWrite:
    """One item's new state. ``data`` is normalized SDK JSON without ``version``; None deletes."""

    kind: ItemKind
    key: str
    data: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """Item writes that become one bus :class:`Change` (one ``seq``, one history row).

    A single-item change records that item in the history; an import (``label="import"``)
    records one row for the whole set.
    """

    env: str
    actor: str
    items: tuple[ItemWrite, ...]
    label: str | None = None
    comment: str | None = None  # why, in the client's words (a semantic patch's comment)
    _: KW_ONLY  # the fields below are named at every call (they were added by later features)
    revert_of: int | None = None  # a revert: the version whose content this restores
    # Another write that must commit with this change or not at all, run in the same SQLite
    # transaction with (connection, the change's seq, its time in ms); raising rolls the
    # whole transaction back. store.scheduler marks a scheduled change applied here.
    also: Callable[[sqlite3.Connection, int, int], None] | None = None


@dataclass(frozen=True, slots=True)
class StoredItem:
    kind: ItemKind
    key: str
    version: int
    deleted: bool
    json: bytes  # the SDK JSON as stored (a tombstone is {"key","version","deleted":true})

    def as_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.json)
        return value


@dataclass(frozen=True, slots=True)
class CommittedItem:
    stored: StoredItem
    created: bool  # the item did not exist (or was a tombstone) before this change


@dataclass(frozen=True, slots=True)
class CommittedChange:
    change: Change
    items: tuple[CommittedItem, ...]


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What ``GET .../changes`` narrows the history to; None matches anything."""

    kind: str | None = None
    key: str | None = None
    actor: str | None = None
    since_ms: int | None = None  # at or after
    until_ms: int | None = None  # at or before


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    seq: int
    env: str
    kind: str  # "flags", "segments", "environment" or "import"
    key: str
    actor: str
    at_ms: int
    before: bytes | None
    after: bytes | None
    comment: str | None = None
    revert_of: int | None = None  # a revert (store/history_revert.py): the restored version

    def as_dict(self) -> dict[str, Any]:
        out = {
            "seq": self.seq, "env": self.env, "kind": self.kind, "key": self.key,
            "actor": self.actor, "at": iso_from_ms(self.at_ms), "atMs": self.at_ms,
            "before": None if self.before is None else orjson.loads(self.before),
            "after": None if self.after is None else orjson.loads(self.after),
        }
        if self.comment is not None:
            out["comment"] = self.comment
        if self.revert_of is not None:
            out["revertOf"] = self.revert_of
        return out
