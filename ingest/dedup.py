"""Remembers recently accepted ``X-LaunchDarkly-Payload-ID``s so an SDK's retry of a payload
that was already accepted is answered 202 without being queued twice (pure; ``now`` is an
argument).

Scope: one worker process, ``capacity`` entries, ``ttl_s`` seconds. An SDK retries exactly
once, one second later (PROTOCOL.md §3.3), so a short window suffices; a retry that lands on
another worker (SO_REUSEPORT) is queued again and removed by consumers through the stable
event ``id`` (``ingest.records``).
"""

from __future__ import annotations

from collections import OrderedDict


class PayloadDedup:
    def __init__(self, *, capacity: int = 100_000, ttl_s: float = 600.0) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def seen(self, env: str, payload_id: str, now: float) -> bool:
        self._expire(now)
        return (env, payload_id) in self._seen

    def remember(self, env: str, payload_id: str, now: float) -> None:
        key = (env, payload_id)
        self._seen.pop(key, None)
        self._seen[key] = now + self.ttl_s
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._seen:
            key, expiry = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[key]
