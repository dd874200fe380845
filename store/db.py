"""FlagDB: environments, flags, segments, versions and change history in SQLite.

Theory of operation
-------------------
One file, ``DATA_DIR/flagstream.db``, in WAL mode. Exactly one writer (the writer actor)
calls :meth:`FlagDB.commit`; it runs in a worker thread and uses the single write
connection under ``_write_lock``. Readers (admin GETs, the snapshot server's worker thread)
take a connection from a small pool, so a read never waits for a commit: WAL readers see
the last committed state.

The history table's ``seq`` (AUTOINCREMENT, so never reused even after a crash) is the
store-wide bus sequence number: one history row per bus message. A single-item change is one
row; an import is one row for the whole set; an environment creation is one row.

Versions increase strictly per item, also across delete and re-create: a delete leaves a
tombstone row carrying its version, and the next write continues from it.

Access: the database holds every SDK and mobile key, so it is created 0600 and an existing one
is set back to 0600 on open, whatever the process umask; SQLite gives the ``-wal`` and
``-shm`` files it creates the database file's mode, and existing ones are set to 0600 too.

Durability: ``synchronous=FULL``. In WAL mode ``NORMAL`` already survives a ``kill -9`` of
this process (the WAL frames are in the OS page cache when COMMIT returns), but not a power
loss or kernel crash, which would silently drop writes we acknowledged. ``FULL`` fsyncs the
WAL on every commit; group commit (many keys per transaction) pays that once per batch.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import orjson

from bus.credentials import new_env_credentials
from bus.envelope import (
    Change,
    EnvChange,
    EnvironmentInfo,
    EnvSnapshot,
    ItemChange,
    ItemKind,
    Snapshot,
)
from store.approvals import ensure_approvals_schema, forget_change_requests
from store.item_versions import prepare as prepare_versions
from store.records import (
    ChangeRequest,
    CommittedChange,
    CommittedItem,
    HistoryEntry,
    HistoryFilter,
    StoredItem,
)
from store.schedule_db import SCHEMA as SCHEDULE_SCHEMA
from store.webhooks.schema import SCHEMA as WEBHOOK_SCHEMA

DB_FILE = "flagstream.db"
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS environments (
    key TEXT PRIMARY KEY, name TEXT NOT NULL,
    sdk_key TEXT NOT NULL UNIQUE, mobile_key TEXT NOT NULL UNIQUE,
    client_side_id TEXT NOT NULL UNIQUE, secure_mode INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL, require_approval INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS items (
    env TEXT NOT NULL REFERENCES environments(key),
    kind TEXT NOT NULL CHECK (kind IN ('flags', 'segments')),
    key TEXT NOT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (env, kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, env TEXT NOT NULL, kind TEXT NOT NULL,
    key TEXT NOT NULL, actor TEXT NOT NULL, at_ms INTEGER NOT NULL, before TEXT, after TEXT,
    comment TEXT);
CREATE INDEX IF NOT EXISTS history_by_env ON history (env, seq);
CREATE INDEX IF NOT EXISTS history_by_key ON history (env, key, seq);
CREATE INDEX IF NOT EXISTS history_by_actor ON history (env, actor, seq);
CREATE INDEX IF NOT EXISTS history_by_time ON history (env, at_ms);
CREATE TABLE IF NOT EXISTS old_keys (
    credential TEXT PRIMARY KEY, env TEXT NOT NULL REFERENCES environments(key),
    which TEXT NOT NULL, expires_ms INTEGER NOT NULL);
"""

_ENV_COLS = "key, name, sdk_key, mobile_key, client_side_id, secure_mode, require_approval"
# The credentials POST .../rotate can replace: its "key" value -> the column.
ROTATABLE = {"sdk": "sdk_key", "mobile": "mobile_key", "clientSide": "client_side_id"}


class EnvironmentExistsError(Exception):
    """An environment with this key already exists."""


_OldKeys = tuple[tuple[str, int], ...]


def _env(row: tuple[str, str, str, str, str, int, int],
         old: tuple[_OldKeys, _OldKeys] = ((), ())) -> EnvironmentInfo:
    return EnvironmentInfo(row[0], row[1], row[2], row[3], row[4], bool(row[5]),
                           old_sdk_keys=old[0], old_mobile_keys=old[1],
                           require_approval=bool(row[6]))


def _old_keys(conn: sqlite3.Connection, env: str, now_ms: int) -> tuple[_OldKeys, _OldKeys]:
    """Rotated SDK keys and rotated mobile keys of ``env`` still in their grace period
    (expired ones are left out). Each keeps its kind: an old key authenticates only as the
    kind of key it was."""
    rows = conn.execute(
        "SELECT credential, expires_ms, which FROM old_keys WHERE env = ? AND expires_ms > ?"
        " ORDER BY expires_ms, credential", (env, now_ms)).fetchall()
    return (tuple((r[0], int(r[1])) for r in rows if r[2] == "sdk"),
            tuple((r[0], int(r[1])) for r in rows if r[2] == "mobile"))


def _tombstone(key: str, version: int) -> bytes:
    return orjson.dumps({"key": key, "version": version, "deleted": True})


class FlagDB:
    """The store's SQLite database; implements ``bus.store_ports.SnapshotSource``."""

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = data_dir / DB_FILE
        _owner_only(self.path)  # before SQLite opens it: see the module docstring
        self._clock = clock
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._wconn = self._connect()
        self._wconn.execute("PRAGMA journal_mode=WAL")
        self._wconn.execute("PRAGMA synchronous=FULL")  # see the module docstring
        self._wconn.execute("PRAGMA foreign_keys=ON")
        self._wconn.executescript(_SCHEMA)
        self._wconn.executescript(WEBHOOK_SCHEMA)  # store/webhooks/db.py
        self._wconn.executescript(SCHEDULE_SCHEMA)  # store.schedule_db's own table
        _add_comment_column(self._wconn)
        prepare_versions(self._wconn)  # revert_of and the version indexes (item_versions.py)
        ensure_approvals_schema(self._wconn)  # change requests: store/approvals.py
        self._wconn.execute(
            "INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (uuid.uuid4().hex,))
        self.epoch: str = self._wconn.execute(
            "SELECT value FROM meta WHERE name = 'epoch'").fetchone()[0]

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False: connections move between trio's worker threads, but each
        # one is used by one thread at a time (write lock or pool checkout).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        self._all.append(conn)
        return conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
            if conn is None:
                conn = self._connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._pool_lock:
                self._pool.append(conn)

    def close(self) -> None:
        with self._write_lock, self._pool_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
            self._pool.clear()

    # -- reads ---------------------------------------------------------------------------

    def latest_seq(self) -> int:
        with self._reader() as conn:
            return _latest_seq(conn)

    def get_environment(self, key: str) -> EnvironmentInfo | None:
        now_ms = self._now_ms()
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT {_ENV_COLS} FROM environments WHERE key = ?", (key,)).fetchone()
            return None if row is None else _env(row, _old_keys(conn, row[0], now_ms))

    def list_environments(self) -> list[EnvironmentInfo]:
        now_ms = self._now_ms()
        with self._reader() as conn:
            rows = conn.execute(f"SELECT {_ENV_COLS} FROM environments ORDER BY key").fetchall()
            return [_env(r, _old_keys(conn, r[0], now_ms)) for r in rows]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def get_item(self, env: str, kind: ItemKind, key: str) -> StoredItem | None:
        """The item, or its tombstone, or None if it never existed."""
        with self._reader() as conn:
            row = conn.execute(
                "SELECT version, deleted, json FROM items WHERE env = ? AND kind = ? AND key = ?",
                (env, kind, key)).fetchone()
        return None if row is None else StoredItem(kind, key, row[0], bool(row[1]), row[2].encode())

    def list_items(self, env: str, kind: ItemKind) -> list[StoredItem]:
        """Live items of one kind, tombstones left out, ordered by key."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT key, version, json FROM items WHERE env = ? AND kind = ? AND NOT deleted"
                " ORDER BY key", (env, kind)).fetchall()
        return [StoredItem(kind, r[0], r[1], False, r[2].encode()) for r in rows]

    def history(self, env: str, *, limit: int, before: int | None = None,
                filters: HistoryFilter | None = None) -> list[HistoryEntry]:
        """Change history of ``env``, newest first, with ``seq < before`` if given, narrowed
        by ``filters``. See _history_query for how each filter stays on an index."""
        sql, args = _history_query(env, limit, before, filters or HistoryFilter())
        with self._reader() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [HistoryEntry(r[0], r[1], r[2], r[3], r[4], r[5],
                             None if r[6] is None else r[6].encode(),
                             None if r[7] is None else r[7].encode(), r[8], r[9]) for r in rows]

    def read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn(conn)`` on a pooled read connection, for modules that own their SQL."""
        with self._reader() as conn:
            return fn(conn)

    def history_plan(self, env: str, filters: HistoryFilter) -> list[str]:
        """SQLite's query plan of :meth:`history` with ``filters`` (tests check the index)."""
        sql, args = _history_query(env, 50, None, filters)
        with self._reader() as conn:
            return [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]

    def snapshot(self, env: str | None) -> Snapshot:
        """Every item (tombstones included) of ``env`` (or all), consistent with one ``seq``."""
        with self._reader() as conn:
            conn.execute("BEGIN")  # one read transaction: seq and items agree
            seq = _latest_seq(conn)
            if env is None:
                envs = conn.execute(f"SELECT {_ENV_COLS} FROM environments ORDER BY key").fetchall()
            else:
                envs = conn.execute(
                    f"SELECT {_ENV_COLS} FROM environments WHERE key = ?", (env,)).fetchall()
            out = []
            for row in envs:
                items = conn.execute(
                    "SELECT kind, key, version, deleted, json FROM items WHERE env = ?"
                    " ORDER BY kind, key", (row[0],)).fetchall()
                old = _old_keys(conn, row[0], self._now_ms())
                out.append(EnvSnapshot(_env(row, old), tuple(
                    ItemChange(k, key, v, None if d else j.encode()) for k, key, v, d, j in items)))
            conn.execute("COMMIT")
        return Snapshot(seq, self.epoch, tuple(out))

    def run_read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn(connection)`` on a reader: for the tables other store modules add."""
        with self._reader() as conn:
            return fn(conn)

    def run_write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn(connection)`` in one write transaction, for the tables other store modules
        add (e.g. store.schedule_db); never for items or history, which change only through
        :meth:`commit`."""
        with self._write_lock, _transaction(self._wconn) as conn:
            return fn(conn)

    # -- writes (only the writer actor calls these) ----------------------------------------

    def create_environment(self, key: str, name: str, *, secure_mode: bool = False,
                           require_approval: bool = False, actor: str = "admin") -> EnvChange:
        creds = new_env_credentials()
        info = EnvironmentInfo(key, name, creds.sdk_key, creds.mobile_key,
                               creds.client_side_id, secure_mode,
                               require_approval=require_approval)
        now_ms = int(self._clock() * 1000)
        after = orjson.dumps({"key": key, "name": name, "secureMode": secure_mode,
                              "requireApproval": require_approval}).decode()
        with self._write_lock, _transaction(self._wconn) as conn:
            if conn.execute("SELECT 1 FROM environments WHERE key = ?", (key,)).fetchone():
                raise EnvironmentExistsError(key)
            conn.execute(
                "INSERT INTO environments (key, name, sdk_key, mobile_key, client_side_id,"
                " secure_mode, created_ms, require_approval) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, name, info.sdk_key, info.mobile_key, info.client_side_id,
                 int(secure_mode), now_ms, int(require_approval)))
            seq = _history(conn, key, "environment", key, actor, now_ms, None, after)
        return EnvChange(seq, info)

    def rotate_key(self, env: str, which: str, grace_ms: int, *,
                   actor: str = "admin") -> EnvChange | None:
        """Give ``env`` a new SDK key (``which="sdk"``), mobile key (``"mobile"``) or
        client-side ID (``"clientSide"``).

        An old SDK or mobile key keeps working for ``grace_ms`` (0: it stops at once), as the
        same kind of key only: it travels in ``EnvironmentInfo.old_sdk_keys`` or
        ``old_mobile_keys`` until it expires. An old client-side ID stops at once whatever
        ``grace_ms`` says: it is public (it sits in every page that loads the JS SDK), so
        rotating it only makes sense to cut off whoever uses the old one. Returns the bus
        message, or None if the environment does not exist.
        """
        if which not in ROTATABLE:
            raise ValueError(f"which must be one of {', '.join(ROTATABLE)}, got {which!r}")
        column = ROTATABLE[which]
        fresh = getattr(new_env_credentials(), column)
        now_ms = self._now_ms()
        with self._write_lock, _transaction(self._wconn) as conn:
            row = conn.execute(
                f"SELECT {column} FROM environments WHERE key = ?", (env,)).fetchone()
            if row is None:
                return None
            if grace_ms > 0 and which != "clientSide":
                conn.execute("INSERT OR REPLACE INTO old_keys VALUES (?, ?, ?, ?)",
                             (row[0], env, which, now_ms + grace_ms))
            conn.execute("DELETE FROM old_keys WHERE expires_ms <= ?", (now_ms,))
            conn.execute(f"UPDATE environments SET {column} = ? WHERE key = ?", (fresh, env))
            graced = grace_ms if which != "clientSide" else 0
            after = orjson.dumps({"rotated": which, "graceMs": graced}).decode()
            seq = _history(conn, env, "environment", env, actor, now_ms, None, after)
            return EnvChange(seq, self._read_env(conn, env, now_ms))

    def update_environment(self, env: str, *, name: str | None, secure_mode: bool | None,
                           require_approval: bool | None = None,
                           actor: str = "admin") -> EnvChange | None:
        """Change the name, secure mode and/or approval rule (None: unchanged); None if the
        environment does not exist."""
        now_ms = self._now_ms()
        with self._write_lock, _transaction(self._wconn) as conn:
            row = conn.execute("SELECT name, secure_mode, require_approval FROM environments"
                               " WHERE key = ?", (env,)).fetchone()
            if row is None:
                return None
            before = {"name": row[0], "secureMode": bool(row[1]), "requireApproval": bool(row[2])}
            after = {"name": row[0] if name is None else name,
                     "secureMode": before["secureMode"] if secure_mode is None else secure_mode,
                     "requireApproval": before["requireApproval"] if require_approval is None
                     else require_approval}
            conn.execute("UPDATE environments SET name = ?, secure_mode = ?, require_approval = ?"
                         " WHERE key = ?", (after["name"], int(after["secureMode"]),
                                            int(after["requireApproval"]), env))
            seq = _history(conn, env, "environment", env, actor, now_ms,
                           orjson.dumps(before).decode(), orjson.dumps(after).decode())
            return EnvChange(seq, self._read_env(conn, env, now_ms))

    def delete_environment(self, env: str, *, actor: str = "admin") -> EnvChange | None:
        """Remove ``env``, its items and its rotated keys; None if it does not exist.

        No tombstone: the environment's credentials die with it, so no SDK can hold versions
        of its items that a later environment of the same key would have to exceed. Its
        history rows stay (the audit trail), ending with this removal.
        """
        now_ms = self._now_ms()
        with self._write_lock, _transaction(self._wconn) as conn:
            if conn.execute("SELECT 1 FROM environments WHERE key = ?", (env,)).fetchone() \
                    is None:
                return None
            info = self._read_env(conn, env, now_ms)
            conn.execute("DELETE FROM items WHERE env = ?", (env,))
            conn.execute("DELETE FROM old_keys WHERE env = ?", (env,))
            forget_change_requests(conn, env)  # a re-created env starts with none
            conn.execute("DELETE FROM environments WHERE key = ?", (env,))
            before = orjson.dumps({"key": env, "name": info.name,
                                   "secureMode": info.secure_mode}).decode()
            seq = _history(conn, env, "environment", env, actor, now_ms, before, None)
        return EnvChange(seq, info, removed=True)

    @staticmethod
    def _read_env(conn: sqlite3.Connection, env: str, now_ms: int) -> EnvironmentInfo:
        row = conn.execute(f"SELECT {_ENV_COLS} FROM environments WHERE key = ?",
                           (env,)).fetchone()
        return _env(row, _old_keys(conn, env, now_ms))

    def version_sums(self) -> dict[str, int]:
        """Per environment, the sum of its item versions, tombstones included (the streamer
        workers export the same figure: equal when a worker is in sync)."""
        with self._reader() as conn:
            rows = conn.execute("SELECT env, SUM(version) FROM items GROUP BY env").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def revisions(self) -> dict[str, int]:
        """The seq of each environment's latest change (its revision, for drift alerts)."""
        with self._reader() as conn:
            rows = conn.execute("SELECT env, MAX(seq) FROM history GROUP BY env").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def commit(self, batch: Sequence[ChangeRequest]) -> list[CommittedChange]:
        """Commit every change of ``batch`` in one transaction (group commit).

        Each change gets the next ``seq`` and each of its items the next version of that
        item. Returns the bus messages and the stored items, in ``seq`` order.
        """
        now_ms = int(self._clock() * 1000)
        results: list[CommittedChange] = []
        with self._write_lock, _transaction(self._wconn) as conn:
            for req in batch:
                committed: list[CommittedItem] = []
                befores: list[bytes | None] = []
                for w in req.items:
                    row = conn.execute(
                        "SELECT version, deleted, json FROM items"
                        " WHERE env = ? AND kind = ? AND key = ?",
                        (req.env, w.kind, w.key)).fetchone()
                    version = 1 if row is None else row[0] + 1
                    live_before = row is not None and not row[1]
                    befores.append(row[2].encode() if live_before else None)
                    if w.data is None:
                        data = _tombstone(w.key, version)
                    else:
                        data = orjson.dumps({"key": w.key, "version": version, **w.data})
                    conn.execute(
                        "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?)",
                        (req.env, w.kind, w.key, version, int(w.data is None), data.decode()))
                    committed.append(CommittedItem(
                        StoredItem(w.kind, w.key, version, w.data is None, data),
                        created=not live_before))
                kind: str
                if req.label is None and len(req.items) == 1:
                    kind, key = req.items[0].kind, req.items[0].key
                    before = befores[0]
                    after = None if committed[0].stored.deleted else committed[0].stored.json
                else:
                    kind, key, before = req.label or "batch", "", None
                    after = orjson.dumps({
                        k: {c.stored.key: c.stored.version for c in committed if c.stored.kind == k}
                        for k in ("flags", "segments")})
                seq = _history(conn, req.env, kind, key, req.actor, now_ms,
                               None if before is None else before.decode(),
                               None if after is None else after.decode(), req.comment,
                               req.revert_of)
                if req.also is not None:
                    req.also(conn, seq, now_ms)
                change = Change(seq, req.env, tuple(
                    ItemChange(c.stored.kind, c.stored.key, c.stored.version,
                               None if c.stored.deleted else c.stored.json) for c in committed))
                results.append(CommittedChange(change, tuple(committed)))
        return results


def _owner_only(path: Path) -> None:
    """Create ``path`` 0600 if it is missing; set it and its -wal and -shm files to 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


def _add_comment_column(conn: sqlite3.Connection) -> None:
    """A database made before history had comments gets the column (NULL for old rows)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(history)")}
    if "comment" not in columns:
        conn.execute("ALTER TABLE history ADD COLUMN comment TEXT")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")


def _latest_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'history'").fetchone()
    return 0 if row is None else int(row[0])


def _history_query(env: str, limit: int, before: int | None,
                   f: HistoryFilter) -> tuple[str, tuple[object, ...]]:
    """The SQL of a history page, newest first, reading about ``limit`` rows whatever the
    filters and however long the history.

    The index is named: without ANALYZE statistics SQLite picks history_by_env to avoid a
    sort, and then a filter that matches few rows (one key, one actor) reads the whole
    history of the environment to fill a page. ``since`` becomes a lower bound on ``seq``:
    the seq of the first change at or after that time, found in history_by_time in one
    lookup, so every filter walks its seq index from the newest row down and stops after one
    page; ``until`` likewise becomes an upper bound (the seq of the last change at or before
    that time). (Times follow seqs: one writer stamps them in commit order. After a step back of
    the wall clock, a change committed before the boundary with a later time is left out.)
    """
    where = ["env = ?", "seq < ?"]
    args: list[object] = [env, before if before is not None else 2**63 - 1]
    for column, value in (("kind", f.kind), ("key", f.key), ("actor", f.actor)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if f.since_ms is not None:
        where.append("at_ms >= ? AND seq >= (SELECT seq FROM history INDEXED BY history_by_time"
                     " WHERE env = ? AND at_ms >= ? ORDER BY at_ms, seq LIMIT 1)")
        args += [f.since_ms, env, f.since_ms]
    if f.until_ms is not None:  # the mirror image of since: an upper bound on seq
        where.append("at_ms <= ? AND seq <= (SELECT seq FROM history INDEXED BY history_by_time"
                     " WHERE env = ? AND at_ms <= ? ORDER BY at_ms DESC, seq DESC LIMIT 1)")
        args += [f.until_ms, env, f.until_ms]
    index = ("history_by_key" if f.key is not None else "history_by_actor"
             if f.actor is not None else "history_by_env")
    return ("SELECT seq, env, kind, key, actor, at_ms, before, after, comment, revert_of"
            " FROM history"
            f" INDEXED BY {index} WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
            (*args, limit))


def _history(conn: sqlite3.Connection, env: str, kind: str, key: str, actor: str, at_ms: int,
             before: str | None, after: str | None, comment: str | None = None,
             revert_of: int | None = None) -> int:
    cur = conn.execute(
        "INSERT INTO history (env, kind, key, actor, at_ms, before, after, comment, revert_of)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (env, kind, key, actor, at_ms, before, after, comment, revert_of))
    assert cur.lastrowid is not None
    return cur.lastrowid
