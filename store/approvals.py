"""Change requests: flag changes proposed by one identity and applied when another approves.

Theory of operation
-------------------
An environment with ``requireApproval`` refuses direct flag writes (403, see
:func:`direct_write_refusal`); a change is proposed instead as a change request: a patch in
any PATCH format, the flag version it was made against (``base_version``), who proposed it and
why. A different identity with write rights approves it (the writer actor applies the patch
only while the flag is still at ``base_version``) or declines it; the proposer may withdraw
it. The HTTP side is store/approval_routes.py; this module is the table and its rules.

Statuses: ``pending`` until one of ``approved``, ``declined``, ``withdrawn`` or ``stale`` (an
approval found the flag at another version: the change was made against a state that is
gone, so it can never apply; the proposer proposes again against the new version). A closed
request never changes again.

Storage: the ``change_requests`` table in the store's SQLite file, created with FlagDB's
schema (:func:`ensure_approvals_schema`) and emptied for an environment when it is deleted
(:func:`forget_change_requests`). :class:`ApprovalDB` reads and writes it on connections of
its own; its writes are small and run in a worker thread (a write may wait for the writer
actor's commit to finish).

Bounds and overflow policies:
- at most ``MAX_PENDING_PER_ENV`` (100) pending requests per environment: one more is refused
  with :class:`TooManyPendingError` (409) until some are approved, declined or withdrawn;
- at most ``MAX_CLOSED_PER_ENV`` (1,000) closed requests kept per environment: closing one
  more deletes the oldest closed ones (the history keeps what was applied);
- a comment of at most ``MAX_COMMENT_CHARS`` (1,000) characters; the patch itself is bounded
  by the admin API's body limit.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bus.envelope import EnvironmentInfo
from insights.timefmt import iso_from_ms

MAX_PENDING_PER_ENV = 100
MAX_CLOSED_PER_ENV = 1000
MAX_COMMENT_CHARS = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS change_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, env TEXT NOT NULL, key TEXT NOT NULL,
    base_version INTEGER NOT NULL, format TEXT NOT NULL, patch TEXT NOT NULL,
    comment TEXT NOT NULL, created_by TEXT NOT NULL, created_ms INTEGER NOT NULL,
    status TEXT NOT NULL, decided_by TEXT, decided_ms INTEGER, decision_comment TEXT,
    applied_version INTEGER, current_version INTEGER);
CREATE INDEX IF NOT EXISTS change_requests_by_status ON change_requests (env, status, id);
CREATE INDEX IF NOT EXISTS change_requests_by_key ON change_requests (env, key, id);
"""
_COLS = ("id, env, key, base_version, format, patch, comment, created_by, created_ms, status,"
         " decided_by, decided_ms, decision_comment, applied_version, current_version")


class Status(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    STALE = "stale"


class TooManyPendingError(Exception):
    """The environment already has ``MAX_PENDING_PER_ENV`` pending change requests."""


@dataclass(frozen=True, slots=True)
class ChangeProposal:
    """One change request, as stored. ``patch`` is the JSON body of the patch, in ``format``
    (a ``store.patch_format.PatchFormat`` value); it is parsed again when approved."""

    id: int
    env: str
    key: str
    base_version: int
    format: str
    patch: Any
    comment: str
    created_by: str
    created_ms: int
    status: Status
    decided_by: str | None = None
    decided_ms: int | None = None
    decision_comment: str | None = None
    applied_version: int | None = None  # approved: the flag version it became
    current_version: int | None = None  # stale: the version the approval found

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "env": self.env, "key": self.key, "baseVersion": self.base_version,
            "format": self.format, "patch": self.patch, "comment": self.comment,
            "createdBy": self.created_by, "createdAt": iso_from_ms(self.created_ms),
            "status": self.status.value,
        }
        if self.decided_ms is not None:
            out["decidedBy"] = self.decided_by
            out["decidedAt"] = iso_from_ms(self.decided_ms)
        if self.decision_comment is not None:
            out["decisionComment"] = self.decision_comment
        if self.applied_version is not None:
            out["appliedVersion"] = self.applied_version
        if self.current_version is not None:
            out["currentVersion"] = self.current_version
        return out


def direct_write_refusal(env: EnvironmentInfo, kind: str, key: str | None) -> str | None:
    """Why a direct write of ``kind`` (``key``; None for an import) to ``env`` is refused, or
    None when it is allowed. Only flags need approval; an import writes flags too."""
    if not env.require_approval or kind == "segments":
        return None
    target = f"/api/v1/environments/{env.key}/flags/{key or '<key>'}/change-requests"
    if key is None:
        return (f"environment {env.key} requires approval: an import would change flags "
                f"directly; propose each flag change with POST {target}, or turn "
                f"requireApproval off for the migration")
    return f"environment {env.key} requires approval: propose the change with POST {target}"


def ensure_approvals_schema(conn: sqlite3.Connection) -> None:
    """Create the table (idempotent) and give an older database the environment column."""
    conn.executescript(SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(environments)")}
    if "require_approval" not in columns:
        conn.execute("ALTER TABLE environments ADD COLUMN require_approval INTEGER NOT NULL"
                     " DEFAULT 0")


def forget_change_requests(conn: sqlite3.Connection, env: str) -> None:
    """Inside the deletion of ``env``: its change requests go with it."""
    conn.execute("DELETE FROM change_requests WHERE env = ?", (env,))


def _proposal(row: tuple[Any, ...]) -> ChangeProposal:
    return ChangeProposal(row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]), row[6],
                          row[7], row[8], Status(row[9]), row[10], row[11], row[12], row[13],
                          row[14])


class ApprovalDB:
    """The ``change_requests`` table, on two connections of its own to the store's file: one
    for reads (on the event loop: WAL readers never wait) and one for writes (call those from
    a worker thread)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._rconn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._wconn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for conn in (self._rconn, self._wconn):
            conn.execute("PRAGMA busy_timeout=5000")
        self._wconn.execute("PRAGMA synchronous=FULL")  # as FlagDB: an answer means on disk
        self._rlock = threading.Lock()
        self._wlock = threading.Lock()

    def close(self) -> None:
        with self._rlock, self._wlock:
            self._rconn.close()
            self._wconn.close()

    def get(self, env: str, request_id: int) -> ChangeProposal | None:
        with self._rlock:
            row = self._rconn.execute(f"SELECT {_COLS} FROM change_requests WHERE id = ?"
                                      " AND env = ?", (request_id, env)).fetchone()
        return None if row is None else _proposal(row)

    def list(self, env: str, *, key: str | None = None, status: Status | None = None,
             limit: int = 50, before: int | None = None) -> list[ChangeProposal]:
        """Newest first, with ``id < before`` if given."""
        where, args = ["env = ?", "id < ?"], [env, before if before is not None else 2**63 - 1]
        if key is not None:
            where.append("key = ?")
            args.append(key)
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        with self._rlock:
            rows = self._rconn.execute(
                f"SELECT {_COLS} FROM change_requests WHERE {' AND '.join(where)}"
                " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_proposal(r) for r in rows]

    # -- writes (from a worker thread) ------------------------------------------------------

    def add(self, env: str, key: str, base_version: int, fmt: str, patch: Any, comment: str,
            created_by: str) -> ChangeProposal:
        """Store a pending request; TooManyPendingError past the bound (nothing stored)."""
        now_ms = int(self._clock() * 1000)
        with self._wlock:
            self._wconn.execute("BEGIN IMMEDIATE")
            try:
                pending = self._wconn.execute(
                    "SELECT COUNT(*) FROM change_requests WHERE env = ? AND status = ?",
                    (env, Status.PENDING.value)).fetchone()[0]
                if pending >= MAX_PENDING_PER_ENV:
                    raise TooManyPendingError(env)
                cur = self._wconn.execute(
                    "INSERT INTO change_requests (env, key, base_version, format, patch, comment,"
                    " created_by, created_ms, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (env, key, base_version, fmt, orjson.dumps(patch).decode(), comment,
                     created_by, now_ms, Status.PENDING.value))
            except BaseException:
                self._wconn.rollback()
                raise
            self._wconn.execute("COMMIT")
        assert cur.lastrowid is not None
        return ChangeProposal(cur.lastrowid, env, key, base_version, fmt, patch, comment,
                              created_by, now_ms, Status.PENDING)

    def close_request(self, env: str, request_id: int, status: Status, by: str,
                      comment: str | None, *, applied_version: int | None = None,
                      current_version: int | None = None) -> ChangeProposal | None:
        """Move a pending request to ``status``; None if it is not pending (any more). Drops
        the oldest closed requests of ``env`` past ``MAX_CLOSED_PER_ENV``."""
        now_ms = int(self._clock() * 1000)
        with self._wlock:
            self._wconn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._wconn.execute(
                    "UPDATE change_requests SET status = ?, decided_by = ?, decided_ms = ?,"
                    " decision_comment = ?, applied_version = ?, current_version = ?"
                    " WHERE id = ? AND env = ? AND status = ?",
                    (status.value, by, now_ms, comment, applied_version, current_version,
                     request_id, env, Status.PENDING.value))
                self._wconn.execute(
                    "DELETE FROM change_requests WHERE id IN (SELECT id FROM change_requests"
                    " WHERE env = ? AND status != ? ORDER BY decided_ms DESC, id DESC"
                    " LIMIT -1 OFFSET ?)",
                    (env, Status.PENDING.value, MAX_CLOSED_PER_ENV))
            except BaseException:
                self._wconn.rollback()
                raise
            self._wconn.execute("COMMIT")
        return self.get(env, request_id) if cur.rowcount == 1 else None
