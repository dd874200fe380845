"""The insights store: SQLite in ``DATA_DIR/insights.sqlite3`` (separate from the flag DB).
Blocking; the consumer calls it from a worker thread, one call at a time.

Theory of operation
-------------------
``apply`` takes one batch of contributions (one poll of the source: up to 500 records) and
commits, in one transaction, the counts summed in memory first (one upsert per flag, day and
variation of the batch, not one per event), each flag's last-evaluated time, the records it
counted and the source's read position. So a crash, a duplicate delivery or a replay never
counts a record twice, and the store is busy for one short transaction per batch.

``seen_records`` remembers what was counted: one row per record and day (``fold``'s unit of
de-duplication), keyed by a 64-bit hash of environment, record ID and day (a collision, about
one in 10^12 at a million rows, would drop one record's counts, never add any). Records made
only of feature events (count 0) need no row: a last-evaluated time is a maximum, which a
duplicate cannot change. Rows carry the UTC day they were counted on and are pruned by that
age (``prune_seen``, called by the consumer); ``reset_since`` forgets the rows of the days it
forgets, so a replay recounts exactly those days.

Reads: ``flag_last`` holds one row per (environment, flag), so the stale-flags query reads one
row per flag through its primary key; the per-flag query reads the flag's rows of ``counts``
through the primary key's prefix (``EXPLAIN QUERY PLAN`` of both is tested).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from insights.fold import NO_VARIATION, Contribution

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counts (
    env TEXT NOT NULL, flag TEXT NOT NULL, day TEXT NOT NULL, variation INTEGER NOT NULL,
    count INTEGER NOT NULL, last_ms INTEGER NOT NULL,
    PRIMARY KEY (env, flag, day, variation)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flag_last (
    env TEXT NOT NULL, flag TEXT NOT NULL, last_ms INTEGER NOT NULL, PRIMARY KEY (env, flag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_records (
    unit INTEGER PRIMARY KEY, day TEXT NOT NULL, counted_day INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_records_by_age ON seen_records (counted_day);
CREATE TABLE IF NOT EXISTS checkpoints (source TEXT PRIMARY KEY, position TEXT NOT NULL);
"""
# Stores written before issue 12 remembered every event ID (table ``seen``, without bound);
# their IDs cannot match the per-record units, so the table is dropped on open.
_MIGRATE = """
DROP TABLE IF EXISTS seen;
INSERT OR IGNORE INTO flag_last (env, flag, last_ms)
    SELECT env, flag, max(last_ms) FROM counts GROUP BY env, flag;
"""

FLAG_SQL = "SELECT day, variation, count, last_ms FROM counts WHERE env = ? AND flag = ?"
LAST_EVALUATED_SQL = "SELECT flag, last_ms FROM flag_last WHERE env = ?"
PRUNE_SQL = (
    "DELETE FROM seen_records WHERE unit IN "
    "(SELECT unit FROM seen_records WHERE counted_day < ? LIMIT ?)"
)
_DAY_MS = 86_400_000
_IN_CHUNK = 500  # host parameters per "IN (...)" lookup


def unit_key(c: Contribution) -> int:
    """The ``seen_records`` key of a contribution's unit: environment, record and day."""
    raw = f"{c.env}\0{c.record_id}\0{c.day}".encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True, slots=True)
class FlagInsights:
    key: str
    last_evaluated: int | None
    total: int
    variations: list[tuple[int | None, int]]
    days: list[tuple[str, int]]

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "lastEvaluated": self.last_evaluated,
            "totalEvaluations": self.total,
            "variations": [{"variation": v, "count": c} for v, c in self.variations],
            "days": [{"day": d, "count": c} for d, c in self.days],
        }


class InsightsStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        fresh = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'flag_last'"
        ).fetchone() is None
        self._db.executescript(_SCHEMA)
        if fresh:
            with self._transaction():
                for statement in _MIGRATE.split(";"):
                    if statement.strip():
                        self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def checkpoint(self, source: str) -> str | None:
        row = self._db.execute(
            "SELECT position FROM checkpoints WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])

    def apply(
        self,
        records: Iterable[Sequence[Contribution]],
        source: str,
        position: str,
        now_ms: int,
    ) -> int:
        """Count the contributions (given per record) of units (record and day) not counted
        before and move ``source``'s checkpoint, in one transaction. A record given twice
        counts once. Returns how many units were counted."""
        units: dict[int, list[Contribution]] = {}
        for contributions in records:
            mine: dict[int, list[Contribution]] = defaultdict(list)
            keys: dict[tuple[str, str, str], int] = {}  # a record has a few units, many parts
            for c in contributions:
                unit = (c.env, c.record_id, c.day)
                key = keys.get(unit)
                if key is None:
                    key = keys[unit] = unit_key(c)
                mine[key].append(c)
            for key, parts in mine.items():
                units.setdefault(key, parts)  # the same record again in this batch: ignored
        with self._transaction():
            counted = self._unseen(units, now_ms // _DAY_MS)
            sums: dict[tuple[str, str, str, int], list[int]] = {}
            last: dict[tuple[str, str], int] = {}
            for key in counted:
                for c in units[key]:
                    row = sums.setdefault((c.env, c.flag, c.day, c.variation), [0, c.last_ms])
                    row[0] += c.count
                    row[1] = max(row[1], c.last_ms)
                    last[(c.env, c.flag)] = max(last.get((c.env, c.flag), 0), c.last_ms)
            self._db.executemany(
                "INSERT INTO counts (env, flag, day, variation, count, last_ms) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (env, flag, day, variation) DO UPDATE "
                "SET count = count + excluded.count, last_ms = max(last_ms, excluded.last_ms)",
                [(*k, v[0], v[1]) for k, v in sums.items()],
            )
            self._db.executemany(
                "INSERT INTO flag_last (env, flag, last_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (env, flag) DO UPDATE SET last_ms = max(last_ms, excluded.last_ms)",
                [(*k, v) for k, v in last.items()],
            )
            self._db.execute(
                "INSERT INTO checkpoints (source, position) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET position = excluded.position",
                (source, position),
            )
        return len(counted)

    def _unseen(self, units: dict[int, list[Contribution]], today: int) -> list[int]:
        """The units not counted before; remembers those that carry counts."""
        keys = list(units)
        seen: set[int] = set()
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            seen.update(
                row[0]
                for row in self._db.execute(
                    f"SELECT unit FROM seen_records WHERE unit IN ({marks})", chunk
                )
            )
        new = [k for k in keys if k not in seen]
        self._db.executemany(
            "INSERT INTO seen_records (unit, day, counted_day) VALUES (?, ?, ?)",
            [(k, units[k][0].day, today) for k in new if any(c.count for c in units[k])],
        )
        return new

    def reset_since(self, day: str) -> None:
        """Forget counts and seen records from ``day`` on, and every checkpoint, so that
        re-reading the source rebuilds those days exactly (earlier days are kept)."""
        with self._transaction():
            self._db.execute("DELETE FROM counts WHERE day >= ?", (day,))
            self._db.execute("DELETE FROM seen_records WHERE day >= ?", (day,))
            self._db.execute("DELETE FROM checkpoints")
            self._db.execute("DELETE FROM flag_last")
            self._db.execute(
                "INSERT INTO flag_last (env, flag, last_ms) "
                "SELECT env, flag, max(last_ms) FROM counts GROUP BY env, flag"
            )

    def prune_seen(self, before_day: int, limit: int) -> int:
        """Forget up to ``limit`` seen records counted before ``before_day`` (days since the
        epoch, UTC), in one short transaction; returns how many."""
        with self._transaction():
            return self._db.execute(PRUNE_SQL, (before_day, limit)).rowcount

    def size_bytes(self) -> int:
        """Pages in use times page size: the database's size without its free pages."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def flag(self, env: str, key: str) -> FlagInsights | None:
        rows = self._db.execute(FLAG_SQL, (env, key)).fetchall()
        if not rows:
            return None
        variations: dict[int, int] = defaultdict(int)
        days: dict[str, int] = defaultdict(int)
        for day, variation, count, _last in rows:
            variations[variation] += count
            days[day] += count
        return FlagInsights(
            key=key,
            last_evaluated=max(r[3] for r in rows),
            total=sum(r[2] for r in rows),
            variations=[
                (None if v == NO_VARIATION else v, c)
                for v, c in sorted(variations.items())
                if c > 0
            ],
            days=[(d, c) for d, c in sorted(days.items()) if c > 0],
        )

    def last_evaluated(self, env: str) -> dict[str, int]:
        rows = self._db.execute(LAST_EVALUATED_SQL, (env,)).fetchall()
        return {str(flag): int(last) for flag, last in rows}

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
