"""The Kinesis batch planner, retry backoff and throttle pacing: pure, time and randomness
are arguments (STYLE.md principles 1 and 2).

Service limits (Kinesis ``PutRecords``): at most 500 records and 5 MiB per call, each record at
most 1 MiB, sizes counting the data blob *and* the partition key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.ports import Record, RecordOutcome

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1024 * 1024
THROTTLED = "ProvisionedThroughputExceededException"


def record_size(record: Record) -> int:
    return len(record.data) + len(record.partition_key.encode())


def plan_batch(
    records: Sequence[Record],
    *,
    max_records: int = MAX_RECORDS_PER_CALL,
    max_bytes: int = MAX_BYTES_PER_CALL,
) -> int:
    """How many leading ``records`` go into one call without breaking a limit. Records are
    built below ``MAX_BYTES_PER_RECORD`` (``ingest.records``), so the answer is at least 1
    whenever ``records`` is not empty."""
    total = 0
    for count, record in enumerate(records[:max_records]):
        size = record_size(record)
        if size > MAX_BYTES_PER_RECORD:
            raise ValueError(f"record of {size} bytes exceeds the Kinesis per-record limit")
        if total + size > max_bytes:
            return count
        total += size
    return min(len(records), max_records)


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one call's outcomes mean for the retry loop."""

    stored: int
    failed: tuple[int, ...]  # indexes into the call's records, to be retried
    throttled: int  # how many of ``failed`` were throttled


def classify(outcomes: Sequence[RecordOutcome]) -> CallResult:
    failed = tuple(i for i, o in enumerate(outcomes) if o.error_code is not None)
    throttled = sum(1 for i in failed if outcomes[i].error_code == THROTTLED)
    return CallResult(stored=len(outcomes) - len(failed), failed=failed, throttled=throttled)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits in [c/2, c], c = base·2ⁿ
    capped, so retries never come sooner than half the nominal delay nor bunch up."""

    base_s: float = 0.1
    cap_s: float = 10.0

    def delay(self, attempt: int, rand: float) -> float:
        ceiling = min(self.cap_s, self.base_s * float(2 ** min(attempt, 30)))
        return ceiling / 2 + rand * ceiling / 2


class Pacer:
    """Delay before each PutRecords call: doubles (from ``min_s``) whenever Kinesis throttles
    and halves after each call that was not throttled, dropping to zero below ``min_s``."""

    def __init__(self, *, min_s: float = 0.05, max_s: float = 5.0) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.delay_s = 0.0

    def on_throttled(self) -> None:
        self.delay_s = min(self.max_s, max(self.min_s, self.delay_s * 2))

    def on_clean(self) -> None:
        half = self.delay_s / 2
        self.delay_s = half if half >= self.min_s else 0.0


class Episode:
    """Log a trouble once when it starts and once when it ends, not once per occurrence."""

    def __init__(self) -> None:
        self.active = False
        self.count = 0

    def occurred(self) -> bool:
        """Count one occurrence; True if it starts a new episode."""
        self.count += 1
        started = not self.active
        self.active = True
        return started

    def resolved(self) -> bool:
        """True if an episode was active and is now over."""
        ended = self.active
        self.active = False
        return ended
