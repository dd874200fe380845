"""The limits of one stream's lifetime, from its request head to its slow path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamLimits:
    header_timeout: float = 10.0  # seconds to receive a complete request head
    max_head_bytes: int = 16 * 1024
    unloaded_hold: float = 60.0  # how long a stream waits for the worker's first data; then 503
    max_age: float | None = None  # optional max connection age (seconds), jittered down by 25 %
    stall_timeout: float = 60.0  # a slow stream whose socket takes no byte this long is dropped
    mailbox_items: int = 256
    mailbox_bytes: int = 4 * 1024 * 1024
