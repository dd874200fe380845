"""Users, API tokens and sessions in SQLite: three tables in the store's database file.

The tables live beside the flags (``DATA_DIR/flagstream.db``, mode 0600) and are created
idempotently when this class opens the file. Account changes are not flag changes: they do
not go through the writer actor and publish nothing on the bus, since only the store process
checks credentials (the admin API runs there alone). A revoked token or session is a deleted
row, and every request reads its credential's row again: no cache can outlive a revocation.

Two connections: reads from the event loop (a WAL reader never waits), writes under a lock
(callers run them in a worker thread, since a write may wait for the writer's commit).

Stored: a password as its argon2id hash, a token or session as its SHA-256 (see
store/accounts.py); nothing here holds a secret in clear.

Bounds and their overflow policies: at most ``MAX_USERS`` users and ``MAX_TOKENS`` tokens
(one more is refused with :class:`LimitReachedError`, 409); at most ``MAX_SESSIONS`` sessions
per user (a new sign-in ends the oldest); expired sessions are deleted at every sign-in.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson

from insights.timefmt import iso_from_ms
from store.accounts import Role
from store.db import _transaction

MAX_USERS = 1000
MAX_TOKENS = 1000
MAX_SESSIONS = 20  # per user

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,
    environments TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, digest TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL, environments TEXT, created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL, last_used_ms INTEGER, expires_ms INTEGER);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY, username TEXT NOT NULL, created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (username, created_ms);
"""


class AccountExistsError(Exception):
    """A user or token of this name exists."""


class LimitReachedError(Exception):
    """A table is at its bound; the message says which."""


def _envs_text(envs: tuple[str, ...] | None) -> str | None:
    return None if envs is None else orjson.dumps(list(envs)).decode()


def _envs(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(orjson.loads(text))


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_from_ms(ms)


@dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    password_hash: str
    role: Role
    environments: tuple[str, ...] | None
    created_ms: int
    updated_ms: int

    def as_dict(self) -> dict[str, Any]:
        """The API's view: never the hash."""
        out: dict[str, Any] = {"username": self.username, "role": self.role,
                               "createdAt": _iso(self.created_ms),
                               "updatedAt": _iso(self.updated_ms)}
        if self.environments is not None:
            out["environments"] = list(self.environments)
        return out


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    name: str
    digest: str
    role: Role
    environments: tuple[str, ...] | None
    created_by: str
    created_ms: int
    last_used_ms: int | None
    expires_ms: int | None

    def as_dict(self) -> dict[str, Any]:
        """The API's view: never the secret or its digest."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "role": self.role,
                               "createdBy": self.created_by, "createdAt": _iso(self.created_ms),
                               "lastUsedAt": _iso(self.last_used_ms),
                               "expiresAt": _iso(self.expires_ms)}
        if self.environments is not None:
            out["environments"] = list(self.environments)
        return out


_USER_COLS = "username, password_hash, role, environments, created_ms, updated_ms"
_TOKEN_COLS = ("id, name, digest, role, environments, created_by, created_ms, last_used_ms,"
               " expires_ms")


def _user(row: tuple[Any, ...]) -> UserRecord:
    return UserRecord(row[0], row[1], cast(Role, row[2]), _envs(row[3]), row[4], row[5])


def _token(row: tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(row[0], row[1], row[2], cast(Role, row[3]), _envs(row[4]), row[5],
                       row[6], row[7], row[8])


class AccountsDB:
    """Users, tokens and sessions (see the module docstring)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._wconn = self._connect(path)
        self._wconn.executescript(SCHEMA)
        self._rconn = self._connect(path)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def close(self) -> None:
        with self._lock:
            self._wconn.close()
            self._rconn.close()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _transaction(self._wconn) as conn:
            yield conn

    # -- users ----------------------------------------------------------------------------

    def get_user(self, username: str) -> UserRecord | None:
        row = self._rconn.execute(f"SELECT {_USER_COLS} FROM users WHERE username = ?",
                                  (username,)).fetchone()
        return None if row is None else _user(row)

    def list_users(self) -> list[UserRecord]:
        rows = self._rconn.execute(f"SELECT {_USER_COLS} FROM users ORDER BY username")
        return [_user(r) for r in rows.fetchall()]

    def add_user(self, username: str, password_hash: str, role: Role,
                 environments: tuple[str, ...] | None) -> UserRecord:
        now = self.now_ms()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise AccountExistsError(f'user "{username}" already exists')
            if conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] >= MAX_USERS:
                raise LimitReachedError(f"at most {MAX_USERS} users: delete one first")
            conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                         (username, password_hash, role, _envs_text(environments), now, now))
        return UserRecord(username, password_hash, role, environments, now, now)

    def update_user(self, username: str, *, role: Role | None = None,
                    environments: tuple[str, ...] | None = None, set_environments: bool = False,
                    password_hash: str | None = None) -> UserRecord | None:
        """Change what is given; a new password ends every session of the user."""
        with self._write() as conn:
            row = conn.execute(f"SELECT {_USER_COLS} FROM users WHERE username = ?",
                               (username,)).fetchone()
            if row is None:
                return None
            old = _user(row)
            new = UserRecord(username, password_hash or old.password_hash, role or old.role,
                             environments if set_environments else old.environments,
                             old.created_ms, self.now_ms())
            conn.execute("UPDATE users SET password_hash = ?, role = ?, environments = ?,"
                         " updated_ms = ? WHERE username = ?",
                         (new.password_hash, new.role, _envs_text(new.environments),
                          new.updated_ms, username))
            if password_hash is not None:
                conn.execute("DELETE FROM sessions WHERE username = ?", (username,))
        return new

    def delete_user(self, username: str) -> bool:
        """Remove the user and end its sessions; False if there was none."""
        with self._write() as conn:
            gone = conn.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount
            conn.execute("DELETE FROM sessions WHERE username = ?", (username,))
        return gone > 0

    # -- tokens ---------------------------------------------------------------------------

    def add_token(self, token_id: str, name: str, digest: str, role: Role,
                  environments: tuple[str, ...] | None, created_by: str,
                  expires_ms: int | None) -> TokenRecord:
        now = self.now_ms()
        record = TokenRecord(token_id, name, digest, role, environments, created_by, now,
                             None, expires_ms)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise AccountExistsError(f'a token named "{name}" already exists')
            if conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] >= MAX_TOKENS:
                raise LimitReachedError(f"at most {MAX_TOKENS} tokens: revoke one first")
            conn.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (token_id, name, digest, role, _envs_text(environments), created_by,
                          now, None, expires_ms))
        return record

    def list_tokens(self, created_by: str | None = None) -> list[TokenRecord]:
        sql = f"SELECT {_TOKEN_COLS} FROM tokens"
        args: tuple[str, ...] = ()
        if created_by is not None:
            sql, args = sql + " WHERE created_by = ?", (created_by,)
        return [_token(r) for r in self._rconn.execute(sql + " ORDER BY name", args).fetchall()]

    def get_token(self, token_id: str) -> TokenRecord | None:
        row = self._rconn.execute(f"SELECT {_TOKEN_COLS} FROM tokens WHERE id = ?",
                                  (token_id,)).fetchone()
        return None if row is None else _token(row)

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        row = self._rconn.execute(f"SELECT {_TOKEN_COLS} FROM tokens WHERE digest = ?",
                                  (digest,)).fetchone()
        return None if row is None else _token(row)

    def delete_token(self, token_id: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount > 0

    def touch_token(self, token_id: str, now_ms: int) -> None:
        with self._write() as conn:
            conn.execute("UPDATE tokens SET last_used_ms = ? WHERE id = ?", (now_ms, token_id))

    # -- sessions -------------------------------------------------------------------------

    def add_session(self, username: str, digest: str, ttl_ms: int) -> int:
        """Store a new session; returns its expiry (ms). Ends expired sessions, and the
        user's oldest beyond ``MAX_SESSIONS``."""
        now = self.now_ms()
        with self._write() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_ms <= ?", (now,))
            conn.execute(
                "DELETE FROM sessions WHERE digest IN (SELECT digest FROM sessions"
                " WHERE username = ? ORDER BY created_ms DESC LIMIT -1 OFFSET ?)",
                (username, MAX_SESSIONS - 1))
            conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                         (digest, username, now, now + ttl_ms))
        return now + ttl_ms

    def session_user(self, digest: str) -> tuple[UserRecord, int] | None:
        """The user of a live session and its expiry (ms), or None."""
        row = self._rconn.execute(
            f"SELECT {', '.join('u.' + c for c in _USER_COLS.split(', '))}, s.expires_ms"
            " FROM sessions s JOIN users u ON u.username = s.username"
            " WHERE s.digest = ? AND s.expires_ms > ?", (digest, self.now_ms())).fetchone()
        return None if row is None else (_user(row[:6]), int(row[6]))

    def delete_session(self, digest: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM sessions WHERE digest = ?", (digest,))

    def session_count(self, username: str) -> int:
        return int(self._rconn.execute("SELECT COUNT(*) FROM sessions WHERE username = ?",
                                       (username,)).fetchone()[0])
