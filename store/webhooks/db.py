"""Webhooks and their delivery records, in the store's SQLite file.

Theory of operation
-------------------
The outbox is the history table itself: every committed change already has a durable,
ordered row there (its ``seq``), written in the commit's transaction. Each webhook keeps a
durable ``cursor``, the seq of the last change it has dealt with (delivered with a 2xx, or
skipped because its filters do not match). So nothing is added to the commit path, and a
change committed while the node is down, or while a receiver fails, is still there to
deliver at the next start: the delivery actor reads the history after the cursor. The cursor
advances only after a 2xx (and only forward: ``MAX``), in the same transaction as the
delivery record, so a crash between the answer and the write delivers that change again
(at least once; receivers de-duplicate by ``deliveryId``).

Tables (created with the store's schema, :data:`SCHEMA`, from ``FlagDB``'s open path):
``webhooks`` (one row per webhook; at most ``WebhookPolicy.max_webhooks``, one more is
refused) and ``webhook_deliveries`` (one row per change delivered or being retried per
webhook; the newest ``deliveries_kept`` per webhook are kept, older rows are deleted).

:class:`WebhookDB` holds two connections of its own to the store's file, one for writes and
one for reads, each behind a lock: the writes run in worker threads (they fsync), the reads
are primary-key or index lookups.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from insights.timefmt import iso_from_ms
from store.db import _latest_seq, _transaction
from store.records import HistoryEntry
from store.webhooks.schema import SCHEMA

_COLS = ("id, url, secret, environments, kinds, enabled, cursor, revision, state, "
         "failing_since_ms, last_error, created_ms, created_by, updated_ms")
# Fields PATCH can change -> column.
EDITABLE = {"url": "url", "secret": "secret", "environments": "environments",
            "kinds": "kinds", "enabled": "enabled"}


class TooManyWebhooksError(Exception):
    """The store holds ``max_webhooks`` webhooks already."""


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    secret: str
    environments: tuple[str, ...] | None  # None: every environment
    kinds: tuple[str, ...] | None  # None: every kind of change
    enabled: bool
    cursor: int  # seq of the last change dealt with
    revision: int  # bumped by every edit: the delivery actor restarts with the new settings
    state: str  # "ok", "failing" (retrying) or "disabled" (gave up)
    failing_since_ms: int | None
    last_error: str | None
    created_ms: int
    created_by: str
    updated_ms: int

    def as_json(self) -> dict[str, Any]:
        """The API's view: everything but the secret."""
        return {"id": self.id, "url": self.url,
                "environments": None if self.environments is None else list(self.environments),
                "kinds": None if self.kinds is None else list(self.kinds),
                "enabled": self.enabled, "state": self.state, "cursor": self.cursor,
                "failingSince": None if self.failing_since_ms is None
                else iso_from_ms(self.failing_since_ms),
                "lastError": self.last_error, "createdAt": iso_from_ms(self.created_ms),
                "createdBy": self.created_by}


@dataclass(frozen=True, slots=True)
class Delivery:
    webhook_id: str
    seq: int
    delivery_id: str
    status: str  # "delivered", "retrying" or "abandoned"
    attempts: int
    http_status: int | None
    error: str | None
    last_attempt_ms: int
    next_retry_ms: int | None

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "deliveryId": self.delivery_id, "status": self.status,
                "attempts": self.attempts, "httpStatus": self.http_status, "error": self.error,
                "lastAttemptAt": iso_from_ms(self.last_attempt_ms),
                "nextRetryAt": None if self.next_retry_ms is None
                else iso_from_ms(self.next_retry_ms)}


def delivery_id(webhook_id: str, seq: int) -> str:
    """The same for every attempt at one change: what a receiver de-duplicates by."""
    return f"{webhook_id}-{seq}"


def _names(raw: str | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(orjson.loads(raw))


def _hook(row: tuple[Any, ...]) -> Webhook:
    return Webhook(row[0], row[1], row[2], _names(row[3]), _names(row[4]), bool(row[5]),
                   int(row[6]), int(row[7]), row[8], row[9], row[10], int(row[11]), row[12],
                   int(row[13]))


def _delivery(row: tuple[Any, ...]) -> Delivery:
    return Delivery(*row)


class WebhookDB:
    """Webhooks, their cursors and delivery records (see the module docstring)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wlock, self._rlock = threading.Lock(), threading.Lock()
        self._wconn = self._connect(path)
        self._rconn = self._connect(path)
        self._wconn.executescript(SCHEMA)  # FlagDB creates it too; idempotent

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def close(self) -> None:
        with self._wlock, self._rlock:
            self._wconn.close()
            self._rconn.close()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- reads -----------------------------------------------------------------------------

    def get(self, hook_id: str) -> Webhook | None:
        with self._rlock:
            row = self._rconn.execute(f"SELECT {_COLS} FROM webhooks WHERE id = ?",
                                      (hook_id,)).fetchone()
        return None if row is None else _hook(row)

    def all(self) -> list[Webhook]:
        with self._rlock:
            rows = self._rconn.execute(
                f"SELECT {_COLS} FROM webhooks ORDER BY created_ms, id").fetchall()
        return [_hook(r) for r in rows]

    def deliveries(self, hook_id: str, limit: int) -> list[Delivery]:
        """The newest delivery records of a webhook, newest change first."""
        with self._rlock:
            rows = self._rconn.execute(
                "SELECT webhook_id, seq, delivery_id, status, attempts, http_status, error,"
                " last_attempt_ms, next_retry_ms FROM webhook_deliveries WHERE webhook_id = ?"
                " ORDER BY seq DESC LIMIT ?", (hook_id, limit)).fetchall()
        return [_delivery(r) for r in rows]

    def history_after(self, seq: int, limit: int) -> list[HistoryEntry]:
        """Changes of every environment with ``seq`` above ``seq``, oldest first."""
        with self._rlock:
            rows = self._rconn.execute(
                "SELECT seq, env, kind, key, actor, at_ms, before, after, comment FROM history"
                " WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [HistoryEntry(r[0], r[1], r[2], r[3], r[4], r[5],
                             None if r[6] is None else r[6].encode(),
                             None if r[7] is None else r[7].encode(), r[8]) for r in rows]

    # -- writes (worker threads) -----------------------------------------------------------

    def create(self, *, url: str, secret: str, environments: list[str] | None,
               kinds: list[str] | None, enabled: bool, actor: str,
               max_webhooks: int) -> Webhook:
        """A new webhook whose cursor is the latest change: it gets changes from now on."""
        now_ms = self._now_ms()
        hook_id = "wh_" + secrets.token_hex(8)
        with self._wlock, _transaction(self._wconn) as conn:
            count = conn.execute("SELECT COUNT(*) FROM webhooks").fetchone()[0]
            if count >= max_webhooks:
                raise TooManyWebhooksError(max_webhooks)
            cursor = _latest_seq(conn)
            conn.execute(
                f"INSERT INTO webhooks ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 'ok', NULL,"
                " NULL, ?, ?, ?)",
                (hook_id, url, secret, _json_or_null(environments), _json_or_null(kinds),
                 int(enabled), cursor, now_ms, actor, now_ms))
        created = self.get(hook_id)
        assert created is not None
        return created

    def update(self, hook_id: str, changes: dict[str, Any]) -> Webhook | None:
        """Apply the PATCH fields in ``changes`` (keys of :data:`EDITABLE`); enabling a
        webhook clears its failing state. None if it does not exist."""
        sets = [f"{EDITABLE[name]} = ?" for name in changes]
        args: list[Any] = [_json_or_null(v) if name in ("environments", "kinds")
                           else int(v) if name == "enabled" else v
                           for name, v in changes.items()]
        if changes.get("enabled") is True:
            sets.append("state = 'ok', failing_since_ms = NULL, last_error = NULL")
        sets.append("revision = revision + 1, updated_ms = ?")
        args += [self._now_ms(), hook_id]
        with self._wlock, _transaction(self._wconn) as conn:
            cur = conn.execute(f"UPDATE webhooks SET {', '.join(sets)} WHERE id = ?", args)
        return None if cur.rowcount == 0 else self.get(hook_id)

    def delete(self, hook_id: str) -> bool:
        with self._wlock, _transaction(self._wconn) as conn:
            conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (hook_id,))
            return conn.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,)).rowcount > 0

    def skip_to(self, hook_id: str, seq: int) -> None:
        """Move the cursor over changes the webhook's filters leave out."""
        with self._wlock, _transaction(self._wconn) as conn:
            conn.execute("UPDATE webhooks SET cursor = MAX(cursor, ?) WHERE id = ?",
                         (seq, hook_id))

    def record_attempt(self, hook_id: str, seq: int, *, delivered: bool,
                       http_status: int | None, error: str | None, next_retry_ms: int | None,
                       give_up: bool, kept: int) -> int:
        """Record one attempt at delivering change ``seq``; returns the attempt count.

        Delivered: the record says so and the cursor moves to ``seq``; the webhook is ok
        again. Failed: the record gets the error and the next retry time; the webhook is
        failing (since the first such attempt), or, with ``give_up``, disabled."""
        now_ms = self._now_ms()
        status = "delivered" if delivered else "abandoned" if give_up else "retrying"
        with self._wlock, _transaction(self._wconn) as conn:
            if conn.execute("SELECT 1 FROM webhooks WHERE id = ?", (hook_id,)).fetchone() \
                    is None:
                return 0  # deleted meanwhile: nothing to record
            row = conn.execute("SELECT attempts FROM webhook_deliveries"
                               " WHERE webhook_id = ? AND seq = ?", (hook_id, seq)).fetchone()
            attempts = 1 + (0 if row is None else int(row[0]))
            conn.execute("INSERT OR REPLACE INTO webhook_deliveries VALUES"
                         " (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (hook_id, seq, delivery_id(hook_id, seq), status, attempts,
                          http_status, error, now_ms, next_retry_ms))
            if delivered:
                conn.execute("UPDATE webhooks SET cursor = MAX(cursor, ?), state = 'ok',"
                             " failing_since_ms = NULL, last_error = NULL WHERE id = ?",
                             (seq, hook_id))
            else:
                why = _attempt_error(seq, http_status, error)
                if give_up:
                    why = f"gave up after failing since the first failed attempt: {why}"
                conn.execute(
                    "UPDATE webhooks SET state = ?, enabled = enabled AND ?,"
                    " failing_since_ms = COALESCE(failing_since_ms, ?), last_error = ?"
                    " WHERE id = ?",
                    ("disabled" if give_up else "failing", int(not give_up), now_ms, why,
                     hook_id))
            conn.execute(
                "DELETE FROM webhook_deliveries WHERE webhook_id = ? AND seq <= (SELECT seq"
                " FROM webhook_deliveries WHERE webhook_id = ? ORDER BY seq DESC"
                " LIMIT 1 OFFSET ?)", (hook_id, hook_id, kept))
        return attempts


def _attempt_error(seq: int, http_status: int | None, error: str | None) -> str:
    what = f"HTTP {http_status}" if http_status is not None else error or "failed"
    return f"change {seq}: {what}"


def _json_or_null(names: list[str] | tuple[str, ...] | None) -> str | None:
    return None if names is None else orjson.dumps(list(names)).decode()
