"""Sequence tracking for the bus subscriber: the pure decision core (no IO, no trio).

Theory of operation
-------------------
The store numbers every change with a store-wide ``seq`` and publishes it once; nng PUB/SUB
may drop any message. The tracker holds the ``seq`` and ``epoch`` of the state the worker has
(set by a snapshot, advanced by each applied change) and the time the last bus message came.
For each incoming message it answers one of three things:

* ``APPLY``: a change with ``seq == last + 1``. The tracker advances ``last`` at once, on the
  promise that the caller applies it.
* ``IGNORE``: a change the state already contains (``seq <= last``: duplicates, or changes a
  snapshot already covered), and heartbeats that announce nothing new.
* ``RESYNC``: the state can no longer be advanced change by change, so the caller fetches a
  full snapshot: a gap (``seq > last + 1``); a heartbeat announcing a ``seq`` above ``last``
  (the changes in between were dropped); a heartbeat from another epoch (the store was
  restarted on other data, e.g. restored from an older backup, so ``seq`` values are not
  comparable any more); silence for ``heartbeat_timeout`` (publisher gone or the link dead).

A heartbeat of the same epoch with ``seq < last`` is normal and ignored: a snapshot is read
from the database, which may be ahead of what the publisher had announced when it sent that
heartbeat. Time is an argument (``now``), in seconds on any monotonic clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bus.envelope import Change, EnvChange, Heartbeat

BusEvent = Change | EnvChange | Heartbeat


class Action(enum.Enum):
    APPLY = "apply"
    IGNORE = "ignore"
    RESYNC = "resync"


class Reason(enum.Enum):
    IN_ORDER = "in-order"
    ALREADY_HAVE = "already-have"
    HEARTBEAT_OK = "heartbeat-ok"
    GAP = "gap"
    HEARTBEAT_AHEAD = "heartbeat-ahead"
    EPOCH_CHANGED = "epoch-changed"
    SILENCE = "silence"
    OVERFLOW = "overflow"  # the subscriber's resync buffer overflowed
    NOT_SYNCED = "not-synced"
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: Reason


APPLY_IN_ORDER = Decision(Action.APPLY, Reason.IN_ORDER)
IGNORE_ALREADY_HAVE = Decision(Action.IGNORE, Reason.ALREADY_HAVE)
IGNORE_HEARTBEAT_OK = Decision(Action.IGNORE, Reason.HEARTBEAT_OK)
IGNORE_WAITING = Decision(Action.IGNORE, Reason.WAITING)


def decide(last_seq: int | None, epoch: str | None, msg: BusEvent) -> Decision:
    """What to do with ``msg`` given the state's ``last_seq`` and ``epoch`` (stateless)."""
    if last_seq is None:
        return Decision(Action.RESYNC, Reason.NOT_SYNCED)
    if isinstance(msg, Heartbeat):
        if msg.epoch != epoch:
            return Decision(Action.RESYNC, Reason.EPOCH_CHANGED)
        if msg.seq > last_seq:
            return Decision(Action.RESYNC, Reason.HEARTBEAT_AHEAD)
        return IGNORE_HEARTBEAT_OK
    if msg.seq <= last_seq:
        return IGNORE_ALREADY_HAVE
    if msg.seq == last_seq + 1:
        return APPLY_IN_ORDER
    return Decision(Action.RESYNC, Reason.GAP)


class SeqTracker:
    """The subscriber's sequence state; every method takes ``now`` instead of reading a clock."""

    def __init__(self, heartbeat_timeout: float) -> None:
        if heartbeat_timeout <= 0:
            raise ValueError("heartbeat_timeout must be positive")
        self.heartbeat_timeout = heartbeat_timeout
        self.last_seq: int | None = None
        self.epoch: str | None = None
        self.last_message_at: float | None = None
        self._quiet_since: float | None = None  # start of the current silence window

    @property
    def synced(self) -> bool:
        return self.last_seq is not None

    def on_snapshot(self, seq: int, epoch: str, now: float) -> None:
        """The state was replaced by a snapshot consistent with ``seq`` in ``epoch``."""
        self.last_seq = seq
        self.epoch = epoch
        # A fresh state restarts the silence window: the next timeout is a full period away.
        self._quiet_since = now

    def on_message(self, msg: BusEvent, now: float) -> Decision:
        """Decide on one bus message; advance ``last_seq`` when the answer is APPLY."""
        # Buffered messages are decided after the snapshot, with their (earlier) arrival times:
        # time only moves forward here.
        self.last_message_at = _later(self.last_message_at, now)
        self._quiet_since = _later(self._quiet_since, now)
        decision = decide(self.last_seq, self.epoch, msg)
        if decision.action is Action.APPLY:
            self.last_seq = msg.seq
        return decision

    def deadline(self) -> float | None:
        """When silence becomes a reason to resync (None before the first snapshot)."""
        if self._quiet_since is None:
            return None
        return self._quiet_since + self.heartbeat_timeout

    def on_tick(self, now: float) -> Decision:
        """Called when no message came; RESYNC once ``heartbeat_timeout`` has passed."""
        deadline = self.deadline()
        if deadline is None:
            return Decision(Action.RESYNC, Reason.NOT_SYNCED)
        if now >= deadline:
            return Decision(Action.RESYNC, Reason.SILENCE)
        return IGNORE_WAITING


def _later(current: float | None, now: float) -> float:
    return now if current is None or now > current else current
