"""The table of scheduled flag changes and the SQL on it (no trio; each function takes a
connection from ``FlagDB.run_read`` / ``FlagDB.run_write``, or from inside a flag commit).

A row is ``pending`` until the scheduler applies it (``applied``, with the history ``seq``
of the change, ``doneMs`` and ``lateByMs``), finds it cannot (``failed``, with ``reason``),
or someone cancels it (``cancelled``). Only a pending row changes, and each change of status
is one ``UPDATE ... WHERE status = 'pending'``: of two racing transitions exactly one wins.

Bounds (overflow policies):

* at most ``MAX_PENDING_PER_ENV`` pending changes per environment: one more is refused
  (:class:`TooManyPendingError`, a 409 for the client);
* at most ``KEEP_DONE_PER_ENV`` finished (applied, failed, cancelled) rows per environment:
  each insert drops the oldest finished rows past that (their flag changes stay in the
  history, which names the schedule id in its comment).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Final

import orjson

from insights.timefmt import iso_from_ms

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS scheduled_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, env TEXT NOT NULL, key TEXT NOT NULL,
    at_ms INTEGER NOT NULL, format TEXT NOT NULL, patch TEXT NOT NULL, comment TEXT,
    created_by TEXT NOT NULL, created_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'failed', 'cancelled')),
    done_ms INTEGER, done_by TEXT, late_by_ms INTEGER, seq INTEGER, reason TEXT);
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled_changes (status, at_ms, id);
CREATE INDEX IF NOT EXISTS scheduled_by_env ON scheduled_changes (env, status, at_ms, id);
"""

STATUSES: Final = ("pending", "applied", "failed", "cancelled")
MAX_PENDING_PER_ENV: Final = 1000
KEEP_DONE_PER_ENV: Final = 1000
_COLS = ("id, env, key, at_ms, format, patch, comment, created_by, created_ms, status,"
         " done_ms, done_by, late_by_ms, seq, reason")


class TooManyPendingError(Exception):
    """The environment has its maximum of pending scheduled changes."""


class NotPendingError(Exception):
    """The change is no longer pending; ``status`` says what it is."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    id: int
    env: str
    key: str
    at_ms: int
    format: str  # a store.patch_format.PatchFormat value
    patch: bytes  # the patch document as JSON, as it was checked at creation
    comment: str | None
    created_by: str
    created_ms: int
    status: str
    done_ms: int | None = None  # applied, failed or cancelled at
    done_by: str | None = None  # who cancelled it
    late_by_ms: int | None = None
    seq: int | None = None  # the history seq of the applied change
    reason: str | None = None  # why it failed

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "env": self.env, "key": self.key, "at": iso_from_ms(self.at_ms),
            "atMs": self.at_ms, "format": self.format, "patch": orjson.loads(self.patch),
            "createdBy": self.created_by, "createdAt": iso_from_ms(self.created_ms),
            "status": self.status}
        if self.comment is not None:
            out["comment"] = self.comment
        if self.done_ms is not None:
            field = {"applied": "appliedAt", "failed": "failedAt"}.get(self.status,
                                                                      "cancelledAt")
            out[field] = iso_from_ms(self.done_ms)
        for name, value in (("cancelledBy", self.done_by), ("lateByMs", self.late_by_ms),
                            ("seq", self.seq), ("reason", self.reason)):
            if value is not None:
                out[name] = value
        return out


def _row(r: tuple[Any, ...]) -> ScheduledChange:
    return ScheduledChange(r[0], r[1], r[2], r[3], r[4], r[5].encode(), *r[6:])


def insert(conn: sqlite3.Connection, env: str, key: str, at_ms: int, fmt: str, patch: bytes,
           comment: str | None, created_by: str, now_ms: int) -> ScheduledChange:
    """Add a pending change (raises TooManyPendingError past the bound) and drop the oldest
    finished rows of ``env`` past ``KEEP_DONE_PER_ENV``."""
    pending = conn.execute("SELECT COUNT(*) FROM scheduled_changes WHERE env = ?"
                           " AND status = 'pending'", (env,)).fetchone()[0]
    if pending >= MAX_PENDING_PER_ENV:
        raise TooManyPendingError(env)
    cur = conn.execute(
        "INSERT INTO scheduled_changes (env, key, at_ms, format, patch, comment, created_by,"
        " created_ms, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
        (env, key, at_ms, fmt, patch.decode(), comment, created_by, now_ms))
    conn.execute(
        "DELETE FROM scheduled_changes WHERE id IN (SELECT id FROM scheduled_changes"
        " WHERE env = ? AND status != 'pending' ORDER BY id DESC LIMIT -1 OFFSET ?)",
        (env, KEEP_DONE_PER_ENV))
    assert cur.lastrowid is not None
    found = get(conn, env, cur.lastrowid)
    assert found is not None
    return found


def get(conn: sqlite3.Connection, env: str, change_id: int) -> ScheduledChange | None:
    row = conn.execute(f"SELECT {_COLS} FROM scheduled_changes WHERE id = ? AND env = ?",
                       (change_id, env)).fetchone()
    return None if row is None else _row(row)


def select(conn: sqlite3.Connection, env: str, *, key: str | None = None,
           status: str | None = None, limit: int) -> list[ScheduledChange]:
    """``env``'s changes (of flag ``key``, of ``status``), soonest first."""
    where, args = ["env = ?"], [env]
    for column, value in (("key", key), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    rows = conn.execute(f"SELECT {_COLS} FROM scheduled_changes WHERE {' AND '.join(where)}"
                        " ORDER BY at_ms, id LIMIT ?", (*args, limit)).fetchall()
    return [_row(r) for r in rows]


def due(conn: sqlite3.Connection, now_ms: int, limit: int) -> list[ScheduledChange]:
    """Pending changes whose time is at or before ``now_ms``, oldest time first."""
    rows = conn.execute(f"SELECT {_COLS} FROM scheduled_changes WHERE status = 'pending'"
                        " AND at_ms <= ? ORDER BY at_ms, id LIMIT ?", (now_ms, limit)).fetchall()
    return [_row(r) for r in rows]


def pending_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM scheduled_changes"
                            " WHERE status = 'pending'").fetchone()[0])


def next_at(conn: sqlite3.Connection) -> int | None:
    """The time of the soonest pending change."""
    row = conn.execute("SELECT MIN(at_ms) FROM scheduled_changes"
                       " WHERE status = 'pending'").fetchone()
    return None if row[0] is None else int(row[0])


def _finish(conn: sqlite3.Connection, change_id: int, status: str, sets: str,
            args: tuple[Any, ...]) -> None:
    cur = conn.execute(f"UPDATE scheduled_changes SET status = ?, {sets}"
                       " WHERE id = ? AND status = 'pending'", (status, *args, change_id))
    if cur.rowcount != 1:
        row = conn.execute("SELECT status FROM scheduled_changes WHERE id = ?",
                           (change_id,)).fetchone()
        raise NotPendingError("missing" if row is None else str(row[0]))


def mark_applied(conn: sqlite3.Connection, seq: int, now_ms: int, *, change_id: int,
                 late_by_ms: int) -> None:
    """Record ``change_id`` as applied by the change ``seq``; a ``ChangeRequest.also`` hook,
    so it commits with the flag change or not at all (NotPendingError rolls both back)."""
    _finish(conn, change_id, "applied", "done_ms = ?, late_by_ms = ?, seq = ?",
            (now_ms, late_by_ms, seq))


def mark_failed(conn: sqlite3.Connection, change_id: int, reason: str, now_ms: int,
                late_by_ms: int) -> None:
    _finish(conn, change_id, "failed", "done_ms = ?, late_by_ms = ?, reason = ?",
            (now_ms, late_by_ms, reason[:1000]))


def cancel(conn: sqlite3.Connection, env: str, change_id: int, who: str,
           now_ms: int) -> ScheduledChange | None:
    """Cancel a pending change; None if there is no such change in ``env``; NotPendingError
    if it was already applied, failed or cancelled."""
    if get(conn, env, change_id) is None:
        return None
    _finish(conn, change_id, "cancelled", "done_ms = ?, done_by = ?", (now_ms, who))
    return get(conn, env, change_id)
