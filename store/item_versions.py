"""The versions of one flag or segment, read back from the change history (SQL; no trio).

Theory of operation
-------------------
The history keeps, per single-item change, the item's JSON ``before`` and ``after`` the
change (store/db.py). Version N of an item is therefore found in one of four places, tried
in this order, each one index lookup:
1. the ``after`` of the change that wrote version N (index ``history_by_after_version``);
2. the ``before`` of the next change (``history_by_before_version``): this finds a version
   an import wrote, because an import records one row for the whole set without contents;
3. the live row in ``items``, if N is the current version;
4. a deletion (``after`` NULL) whose ``before`` is version N - 1: N is the tombstone.
A version written by an import and replaced by another import before any single-item change
is not kept anywhere, and is answered as unknown.

Only changes after the last removal of the environment count: a deleted environment's
history stays, and a new environment of the same key starts its versions again at 1.

Every read is bounded: a list reads at most ``limit`` rows (the caller caps it), a lookup
reads at most a handful. Retention: none; the history grows by one row per change.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from insights.timefmt import iso_from_ms

SCHEMA = """
CREATE INDEX IF NOT EXISTS history_by_after_version
    ON history (env, key, kind, json_extract(after, '$.version'));
CREATE INDEX IF NOT EXISTS history_by_before_version
    ON history (env, key, kind, json_extract(before, '$.version'));
"""


def prepare(conn: sqlite3.Connection) -> None:
    """Give the history a ``revert_of`` column (NULL for old rows) and the version indexes;
    idempotent, run on every open."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(history)")}
    if "revert_of" not in columns:
        conn.execute("ALTER TABLE history ADD COLUMN revert_of INTEGER")
    conn.executescript(SCHEMA)


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One change of the item and the version it made."""

    version: int
    previous: int | None  # the version it replaced (None: created from nothing)
    deleted: bool
    seq: int
    actor: str
    at_ms: int
    comment: str | None
    revert_of: int | None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version, "previous": self.previous, "deleted": self.deleted,
            "seq": self.seq, "actor": self.actor, "at": iso_from_ms(self.at_ms),
            "atMs": self.at_ms}
        if self.comment is not None:
            out["comment"] = self.comment
        if self.revert_of is not None:
            out["revertOf"] = self.revert_of
        return out


def _epoch_start(conn: sqlite3.Connection, env: str) -> int:
    """The seq of the environment's last removal (0 if never removed): older rows belong
    to an environment that no longer exists."""
    row = conn.execute(
        "SELECT MAX(seq) FROM history INDEXED BY history_by_key"
        " WHERE env = ? AND key = ? AND kind = 'environment' AND after IS NULL",
        (env, env)).fetchone()
    return int(row[0] or 0)


def list_versions(conn: sqlite3.Connection, env: str, kind: str, key: str, *, limit: int,
                  before: int | None) -> list[VersionEntry]:
    """The item's changes, newest first, ``seq < before`` if given, at most ``limit``."""
    rows = conn.execute(
        "SELECT seq, actor, at_ms, comment, revert_of, json_extract(before, '$.version'),"
        " json_extract(after, '$.version') FROM history INDEXED BY history_by_key"
        " WHERE env = ? AND key = ? AND seq < ? AND seq > ? AND kind = ?"
        " ORDER BY seq DESC LIMIT ?",
        (env, key, before if before is not None else 2**63 - 1, _epoch_start(conn, env), kind,
         limit)).fetchall()
    out = []
    for seq, actor, at_ms, comment, revert_of, before_v, after_v in rows:
        deleted = after_v is None
        version = int(after_v) if after_v is not None else int(before_v or 0) + 1
        out.append(VersionEntry(version, None if before_v is None else int(before_v), deleted,
                                seq, actor, at_ms, comment, revert_of))
    return out


def version_json(conn: sqlite3.Connection, env: str, kind: str, key: str,
                 version: int) -> dict[str, Any] | None:
    """The item as it was at ``version`` (a tombstone if that version deleted it), or None
    if the history does not know that version (see the module docstring)."""
    start = _epoch_start(conn, env)
    for column in ("after", "before"):
        row = conn.execute(
            f"SELECT {column} FROM history INDEXED BY history_by_{column}_version"
            f" WHERE env = ? AND key = ? AND kind = ? AND json_extract({column}, '$.version') = ?"
            " AND seq > ? ORDER BY seq DESC LIMIT 1", (env, key, kind, version, start)).fetchone()
        if row is not None:
            found: dict[str, Any] = orjson.loads(row[0])
            return found
    row = conn.execute("SELECT version, json FROM items WHERE env = ? AND kind = ? AND key = ?",
                       (env, kind, key)).fetchone()
    if row is not None and row[0] == version:
        current: dict[str, Any] = orjson.loads(row[1])
        return current
    if version > 1:
        row = conn.execute(
            "SELECT 1 FROM history INDEXED BY history_by_before_version"
            " WHERE env = ? AND key = ? AND kind = ? AND json_extract(before, '$.version') = ?"
            " AND after IS NULL AND seq > ? LIMIT 1",
            (env, key, kind, version - 1, start)).fetchone()
        if row is not None:
            return {"key": key, "version": version, "deleted": True}
    return None
