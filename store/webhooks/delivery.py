"""The delivery actor: one per enabled webhook, tailing the history after its cursor.

Theory of operation
-------------------
``run`` reads up to ``batch`` history rows after the cursor (store/webhooks/db.py explains
why the history is the outbox). A row the webhook's filters leave out only moves the cursor.
A matching row is POSTed, signed (store/webhooks/signing.py), until an attempt gets a 2xx:
rows go out one at a time, in ``seq`` order, so a receiver sees changes in the order they
were committed, and the next change waits for the one before it (a receiver that fails
holds its own webhook back, never another: each webhook has its own actor). After a
failure the actor sleeps a jittered, doubling delay (store/webhooks/policy.py); a webhook
that keeps failing for ``give_up_after_s`` is disabled and the actor ends. Every attempt is
recorded (one row per change, with its attempt count and next retry time) before the sleep.
With nothing left to read the actor waits on the :class:`CommitSignal` (woken by the writer's
publish), or ``idle_poll_s`` at most.

In flight per webhook: one request, bounded by ``request_timeout_s``. The body is the change
record exactly as ``GET /api/v1/environments/{env}/changes`` shows it, plus ``webhookId`` and
``deliveryId`` (the same for every attempt at one change). Time: sleeps use trio's clock (a
MockClock in the tests); "now" for the records and the signature comes from ``wall_clock``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import trio

from store.item_diff import change_json
from store.records import HistoryEntry
from store.webhooks.db import Webhook, WebhookDB, delivery_id
from store.webhooks.policy import WebhookPolicy, backoff_delay, gives_up, is_success, matches
from store.webhooks.sender import Outcome, Sender
from store.webhooks.signal import CommitSignal
from store.webhooks.signing import SIGNATURE_HEADER, sign

DELIVERY_HEADER = "X-Flagstream-Delivery"
# Runs a blocking database call: ``trio.to_thread.run_sync`` with a limiter in the store,
# a direct call in the mock-clock tests (a thread would let the clock jump meanwhile).
Offload = Callable[..., Awaitable[Any]]


def delivery_body(entry: HistoryEntry, webhook_id: str) -> bytes:
    """The JSON a webhook receives for one change: the record ``.../changes`` shows."""
    doc: dict[str, Any] = change_json(entry)
    doc["webhookId"] = webhook_id
    doc["deliveryId"] = delivery_id(webhook_id, entry.seq)
    return orjson.dumps(doc)


class DeliveryActor:
    """Delivers the changes after ``hook.cursor`` to ``hook.url`` (see the module docstring)."""

    def __init__(self, hook: Webhook, db: WebhookDB, signal: CommitSignal, sender: Sender, *,
                 policy: WebhookPolicy, wall_clock: Callable[[], float],
                 draw: Callable[[], float] = random.random,
                 offload: Offload = trio.to_thread.run_sync) -> None:
        self._hook = hook
        self._db = db
        self._signal = signal
        self._sender = sender
        self._policy = policy
        self._wall_clock = wall_clock
        self._draw = draw
        self._offload = offload
        self._cursor = hook.cursor
        self._failing_since_ms = hook.failing_since_ms

    async def run(self) -> None:
        """Deliver until cancelled; return when the webhook gives up (it is then disabled)."""
        hook = self._hook
        while True:
            rows = await self._offload(self._db.history_after, self._cursor,
                                         self._policy.batch)
            if not rows:
                await self._signal.wait_beyond(self._cursor, self._policy.idle_poll_s)
                continue
            skipped: int | None = None
            for entry in rows:
                if not matches(hook.environments, hook.kinds, entry.env, entry.kind):
                    skipped = self._cursor = entry.seq
                    continue
                if not await self._deliver(entry):
                    return
                skipped, self._cursor = None, entry.seq
            if skipped is not None:
                await self._offload(self._db.skip_to, hook.id, skipped)

    async def _deliver(self, entry: HistoryEntry) -> bool:
        """Attempt ``entry`` until a 2xx (True) or until the webhook gives up (False)."""
        hook = self._hook
        body = delivery_body(entry, hook.id)
        attempt = 0
        while True:
            attempt += 1
            headers = {"Content-Type": "application/json",
                       SIGNATURE_HEADER: sign(hook.secret, int(self._wall_clock()), body),
                       DELIVERY_HEADER: delivery_id(hook.id, entry.seq)}
            outcome = await self._sender.post(hook.url, body, headers)
            now_ms = int(self._wall_clock() * 1000)
            if is_success(outcome.http_status):
                await self._record(entry.seq, outcome, delivered=True)
                self._failing_since_ms = None
                return True
            if self._failing_since_ms is None:
                self._failing_since_ms = now_ms
            give_up = gives_up(self._failing_since_ms, now_ms, self._policy)
            delay = backoff_delay(attempt, self._draw(), self._policy)
            await self._record(entry.seq, outcome, delivered=False, give_up=give_up,
                               next_retry_ms=None if give_up else now_ms + int(delay * 1000))
            if give_up:
                return False
            await trio.sleep(delay)

    async def _record(self, seq: int, outcome: Outcome, *, delivered: bool,
                      give_up: bool = False, next_retry_ms: int | None = None) -> None:
        await self._offload(
            lambda: self._db.record_attempt(
                self._hook.id, seq, delivered=delivered, http_status=outcome.http_status,
                error=outcome.error, next_retry_ms=next_retry_ms, give_up=give_up,
                kept=self._policy.deliveries_kept))
