"""The write coalescer (pure, sans-IO; time is an argument).

Theory of operation
-------------------
Writes are keyed by (environment, kind, key). The first write to a key opens a *pending*
entry that is due ``window_s`` after it arrived; later writes to the same key before it is
taken join it: a PUT replaces the pending value, a PATCH (merge patch, JSON Patch or
semantic patch, ``store.patch_format``) is applied to it, a DELETE makes it a tombstone. Each
write is validated on its own against the state it would produce, so a bad PATCH (or a JSON
Patch whose ``test`` fails on that state) is rejected alone and leaves the pending value as
it was. The window is measured
from the first write, so a steady stream of writes to one key cannot postpone its commit.

The caller (the writer actor) takes the due entries, commits them as one change each (one
version bump, one history row, one publish) and answers every token of the entry with the
stored result. ``current`` gives the stored state of a key that has no pending entry; it is
consulted only then, because a pending entry is always newer than the store.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flagmodel.validation import check_item
from store.normalize import new_salt, normalize
from store.patch_errors import PatchConflictError, PatchError
from store.patch_format import apply_patch
from store.records import ItemId

T = TypeVar("T")
Current = Callable[[ItemId], "dict[str, Any] | None"]


class OpKind(enum.Enum):
    PUT = "put"
    PATCH = "patch"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WriteOp:
    item: ItemId
    op: OpKind
    body: Any = None  # PUT: the item JSON; PATCH: a store.patch_format.Patch (or a bare
    # RFC 7386 merge patch); DELETE: unused
    actor: str = "admin"
    comment: str | None = None  # the client's reason for the change (semantic patch)


class RejectReason(enum.Enum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # the item is not in the state the patch expects


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    errors: tuple[str, ...]


@dataclass(slots=True)
class _Pending(Generic[T]):
    value: dict[str, Any] | None
    due: float
    tokens: list[T] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Due(Generic[T]):
    """One coalesced change, ready to commit. ``value`` None deletes the item."""

    item: ItemId
    value: dict[str, Any] | None
    tokens: tuple[T, ...]
    actor: str
    comment: str | None = None  # the writes' comments, joined

    @property
    def writes(self) -> int:
        return len(self.tokens)


class Coalescer(Generic[T]):
    def __init__(self, window_s: float = 0.005, *,
                 salt_source: Callable[[], str] = new_salt) -> None:
        self.window_s = window_s
        self._salt_source = salt_source
        self._pending: dict[ItemId, _Pending[T]] = {}  # insertion order is due order

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, op: WriteOp, token: T, now: float, current: Current) -> Rejected | None:
        """Add one write; return why it is refused, or None if it joined a pending change."""
        item = op.item
        pending = self._pending.get(item)
        state = pending.value if pending is not None else current(item)
        new = next_state(op, state, self._salt_source)
        if isinstance(new, Rejected):
            return new
        if pending is None:
            pending = self._pending[item] = _Pending(new, now + self.window_s)
        pending.value = new
        pending.tokens.append(token)
        if op.actor not in pending.actors:
            pending.actors.append(op.actor)
        if op.comment:
            pending.comments.append(op.comment)
        return None

    def next_due(self) -> float:
        """When the oldest pending change is due (``math.inf`` if there is none)."""
        for pending in self._pending.values():
            return pending.due
        return math.inf

    def take_due(self, now: float) -> list[Due[T]]:
        """Remove and return every pending change due at or before ``now``, oldest first."""
        out = []
        for item, pending in list(self._pending.items()):
            if pending.due > now:
                break
            out.append(self._take(item, pending))
        return out

    def take_all(self) -> list[Due[T]]:
        """Remove and return every pending change (before an import, or at shutdown)."""
        return [self._take(item, pending) for item, pending in list(self._pending.items())]

    def _take(self, item: ItemId, pending: _Pending[T]) -> Due[T]:
        del self._pending[item]
        return Due(item, pending.value, tuple(pending.tokens), ", ".join(pending.actors),
                   "; ".join(pending.comments) or None)


def next_state(op: WriteOp, state: dict[str, Any] | None,
               salt_source: Callable[[], str] = new_salt) -> Rejected | dict[str, Any] | None:
    """The item's state after ``op`` is applied to ``state`` (None: no item), checked against
    the flag model and normalized; None when ``op`` deletes it; or why ``op`` is refused."""
    item = op.item
    match op.op:
        case OpKind.DELETE:
            if state is None:
                return Rejected(RejectReason.NOT_FOUND, (f"{item.kind[:-1]} not found",))
            return None
        case OpKind.PATCH:
            if state is None:
                return Rejected(RejectReason.NOT_FOUND, (f"{item.kind[:-1]} not found",))
            try:
                new = apply_patch(state, op.body)
            except PatchConflictError as exc:
                return Rejected(RejectReason.CONFLICT, (exc.message,))
            except PatchError as exc:
                return Rejected(RejectReason.INVALID, (exc.message,))
        case OpKind.PUT:
            new = op.body
    # A PATCH of ``null`` yields None: that is an invalid document, not a delete.
    errors = check_item(item.kind, item.key, new)
    if errors:
        return Rejected(RejectReason.INVALID, tuple(errors))
    assert new is not None
    old_salt = state.get("salt") if state is not None else None
    salt = old_salt if isinstance(old_salt, str) else salt_source()
    normalized: dict[str, Any] = normalize(item.kind, item.key, new, salt=salt)
    return normalized
