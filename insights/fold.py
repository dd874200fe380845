"""Enriched events (``ingest.records``) to evaluation counts: pure.

Counts come from ``summary`` events only: every evaluation is counted in a summary (unless
the flag has ``excludeFromSummaries``), and a full ``feature`` event is an extra copy of an
evaluation that is also in the summary, so counting both would count it twice. ``feature``
events still move the flag's last-evaluated time. ``debug`` events are ignored.

A summary's counts are dated by its ``endDate`` (UTC day); a feature event by its
``creationDate``. Both are the SDK's clock, so a date more than ``MAX_EARLY_MS`` after or
``MAX_LATE_MS`` before the time flagstream received the event is replaced by the received
time: otherwise one client could spread counts over thousands of days (one row each). A
variation index outside ``0..MAX_VARIATION`` counts as "no variation" for the same reason.

The unit of de-duplication is the record (``fold_record``): a record is delivered, re-sent and
replayed whole, and an SDK's retry of a payload is split into the same records, so each
contribution carries the ID of its record's first event (``<payloadId>:<first>``) and the store
remembers one ID per record and day instead of one per event.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

NO_VARIATION = -1  # evaluations that produced no variation index (off with no offVariation, errors)
MAX_VARIATION = 999  # no real flag has more variations; a larger index is a client's invention
MAX_EARLY_MS = 86_400_000  # an SDK clock one day ahead is plausible, more is not
# Mobile SDKs send events queued while offline; older dates than this are not believed.
MAX_LATE_MS = 30 * 86_400_000
_EPOCH = dt.date(1970, 1, 1)
_LAST_DAY = (dt.date(9999, 12, 31) - _EPOCH).days
MAX_COUNT = 1_000_000_000  # per counter; keeps every sum far inside SQLite's 64-bit integers


@dataclass(frozen=True, slots=True)
class Contribution:
    record_id: str  # the de-duplication unit (module docstring)
    env: str
    flag: str
    day: str  # YYYY-MM-DD, UTC
    variation: int
    count: int
    last_ms: int


def day_of(ms: int) -> str:
    return _day(ms // 86_400_000)


@functools.lru_cache(maxsize=1024)  # a day's name is asked for once per event
def _day(number: int) -> str:
    # Clamped to the calendar's range: a foreign record's header may carry any number.
    return (_EPOCH + dt.timedelta(days=min(max(number, 0), _LAST_DAY))).strftime("%Y-%m-%d")


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _believed(when: int, received: int) -> int:
    return when if received - MAX_LATE_MS <= when <= received + MAX_EARLY_MS else received


def _variation(value: object) -> int:
    index = _int(value, NO_VARIATION)
    return index if 0 <= index <= MAX_VARIATION else NO_VARIATION


def fold_record(lines: list[dict[str, Any]]) -> list[Contribution]:
    """The contributions of one record's enriched events (``ingest.records.decode_record``),
    all carrying the record's ID."""
    if not lines:
        return []
    record_id = lines[0].get("id")
    if not isinstance(record_id, str):
        return []
    return [c for line in lines for c in _fold(line, record_id)]


def fold_line(line: dict[str, Any]) -> list[Contribution]:
    """The contributions of one enriched event (empty for anything else), under its own ID."""
    event_id = line.get("id")
    return _fold(line, event_id) if isinstance(event_id, str) else []


def _fold(line: dict[str, Any], event_id: str) -> list[Contribution]:
    event, env = line.get("event"), line.get("env")
    if not isinstance(event, dict) or not isinstance(env, str):
        return []
    if line.get("kind") != "analytics":
        return []
    received = _int(line.get("received"), 0)
    kind = event.get("kind")
    if kind == "feature" and isinstance(event.get("key"), str):
        when = _believed(_int(event.get("creationDate"), received), received)
        variation = _variation(event.get("variation"))
        return [Contribution(event_id, env, event["key"], day_of(when), variation, 0, when)]
    if kind != "summary" or not isinstance(event.get("features"), dict):
        return []
    when = _believed(_int(event.get("endDate"), received), received)
    day = day_of(when)
    out = []
    for flag, summary in event["features"].items():
        if not isinstance(summary, dict) or not isinstance(summary.get("counters"), list):
            continue
        for counter in summary["counters"]:
            if not isinstance(counter, dict):
                continue
            count = min(_int(counter.get("count"), 0), MAX_COUNT)
            if count <= 0:
                continue
            variation = _variation(counter.get("variation"))
            out.append(Contribution(event_id, env, str(flag), day, variation, count, when))
    return out
