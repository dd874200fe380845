"""The insights store: SQLite in ``DATA_DIR/insights.sqlite3`` (separate from the flag DB).
Blocking; the consumer calls it from a worker thread, one call at a time.

Counts and the read position (checkpoint) of the source are committed in one transaction, and
every counted event's ID is remembered (table ``seen``), so a crash, a duplicate delivery or a
replay never counts an event twice. ``seen`` rows older than ``keep_seen_days`` are pruned;
a replay reaching further back than that must use ``reset_since`` first (``replay`` does).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.insights.fold import NO_VARIATION, Contribution

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counts (
    env TEXT NOT NULL, flag TEXT NOT NULL, day TEXT NOT NULL, variation INTEGER NOT NULL,
    count INTEGER NOT NULL, last_ms INTEGER NOT NULL,
    PRIMARY KEY (env, flag, day, variation)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, day TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_day ON seen (day);
CREATE TABLE IF NOT EXISTS checkpoints (source TEXT PRIMARY KEY, position TEXT NOT NULL);
"""


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
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def checkpoint(self, source: str) -> str | None:
        row = self._db.execute(
            "SELECT position FROM checkpoints WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])

    def apply(self, events: Iterable[Sequence[Contribution]], source: str, position: str) -> int:
        """Count the events (each given as its contributions, all with one event ID) that were
        not counted before, and move ``source``'s checkpoint, atomically. Returns how many
        events were counted."""
        counted = 0
        with self._transaction():
            for parts in events:
                if not parts:
                    continue
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO seen (id, day) VALUES (?, ?)",
                    (parts[0].event_id, parts[0].day),
                )
                if cur.rowcount == 0:
                    continue  # already counted: a duplicate delivery or a replay
                counted += 1
                self._db.executemany(
                    "INSERT INTO counts (env, flag, day, variation, count, last_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (env, flag, day, variation) DO UPDATE "
                    "SET count = count + excluded.count, last_ms = max(last_ms, excluded.last_ms)",
                    [(c.env, c.flag, c.day, c.variation, c.count, c.last_ms) for c in parts],
                )
            self._db.execute(
                "INSERT INTO checkpoints (source, position) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET position = excluded.position",
                (source, position),
            )
        return counted

    def reset_since(self, day: str) -> None:
        """Forget counts and seen IDs from ``day`` on, and every checkpoint, so that re-reading
        the source rebuilds those days exactly (earlier days are kept and not re-counted)."""
        with self._transaction():
            self._db.execute("DELETE FROM counts WHERE day >= ?", (day,))
            self._db.execute("DELETE FROM seen WHERE day >= ?", (day,))
            self._db.execute("DELETE FROM checkpoints")

    def prune_seen(self, before_day: str) -> None:
        self._db.execute("DELETE FROM seen WHERE day < ?", (before_day,))

    def flag(self, env: str, key: str) -> FlagInsights | None:
        rows = self._db.execute(
            "SELECT day, variation, count, last_ms FROM counts WHERE env = ? AND flag = ?",
            (env, key),
        ).fetchall()
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
        rows = self._db.execute(
            "SELECT flag, max(last_ms) FROM counts WHERE env = ? GROUP BY flag", (env,)
        ).fetchall()
        return {str(flag): int(last) for flag, last in rows}

    def has_env(self, env: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM counts WHERE env = ? LIMIT 1", (env,)).fetchone()
            is not None
        )

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
