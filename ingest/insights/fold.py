"""Enriched events (``ingest.records``) to evaluation counts: pure.

Counts come from ``summary`` events only: every evaluation is counted in a summary (unless
the flag has ``excludeFromSummaries``), and a full ``feature`` event is an extra copy of an
evaluation that is also in the summary, so counting both would count it twice. ``feature``
events still move the flag's last-evaluated time. ``debug`` events are ignored.

A summary's counts are dated by its ``endDate`` (UTC day); a feature event by its
``creationDate``. Each contribution carries the event's stable ``id`` so the store can drop a
duplicate delivery (at-least-once stream) or a replayed event it has already counted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

NO_VARIATION = -1  # evaluations that produced no variation index (off with no offVariation, errors)


@dataclass(frozen=True, slots=True)
class Contribution:
    event_id: str
    env: str
    flag: str
    day: str  # YYYY-MM-DD, UTC
    variation: int
    count: int
    last_ms: int


def day_of(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def fold_line(line: dict[str, Any]) -> list[Contribution]:
    """The contributions of one enriched event (empty for anything else)."""
    event = line.get("event")
    event_id, env = line.get("id"), line.get("env")
    if not isinstance(event, dict) or not isinstance(event_id, str) or not isinstance(env, str):
        return []
    if line.get("kind") != "analytics":
        return []
    received = _int(line.get("received"), 0)
    kind = event.get("kind")
    if kind == "feature" and isinstance(event.get("key"), str):
        when = _int(event.get("creationDate"), received)
        variation = _int(event.get("variation"), NO_VARIATION)
        return [Contribution(event_id, env, event["key"], day_of(when), variation, 0, when)]
    if kind != "summary" or not isinstance(event.get("features"), dict):
        return []
    when = _int(event.get("endDate"), received)
    day = day_of(when)
    out = []
    for flag, summary in event["features"].items():
        if not isinstance(summary, dict) or not isinstance(summary.get("counters"), list):
            continue
        for counter in summary["counters"]:
            if not isinstance(counter, dict):
                continue
            count = _int(counter.get("count"), 0)
            if count <= 0:
                continue
            variation = _int(counter.get("variation"), NO_VARIATION)
            out.append(Contribution(event_id, env, str(flag), day, variation, count, when))
    return out
