"""The webhook service: one delivery actor per enabled webhook, in the store's nursery.

Theory of operation
-------------------
``run`` reconciles the running actors with the ``webhooks`` table: at start, and each time
an admin route calls :meth:`WebhookService.reload` after a change (create, edit, delete). An
actor runs while its webhook is enabled and at the same ``revision``; an edit bumps the
revision, so the actor is cancelled and a new one starts with the new URL, secret and
filters, from the durable cursor (a delivery cut off in flight is sent again: at least once).

Containment: each actor runs inside ``Failures.contain("webhook", <id>)``; an unexpected
exception (a database error, a bug) ends that actor alone, is counted in
``flagstream_actor_failures_total{actor="webhook"}`` and logged once per episode, and the
actor starts again after ``restart_delay_s`` from its webhook's stored state. The store
never ends because of a webhook.

Bounds: at most ``max_webhooks`` actors (the table's bound); each has one request in flight.
Database work of all actors runs in worker threads through one ``CapacityLimiter(2)``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial

import trio

from store.containment import Failures
from store.webhooks.db import Webhook, WebhookDB
from store.webhooks.delivery import DeliveryActor, Offload
from store.webhooks.policy import WebhookPolicy
from store.webhooks.sender import Sender, open_http_sender
from store.webhooks.signal import CommitSignal

log = logging.getLogger(__name__)

SenderFactory = Callable[[WebhookPolicy], AbstractAsyncContextManager[Sender]]


@dataclass(frozen=True, slots=True)
class WebhookStatistics:
    running: int  # delivery actors running now
    restarts: int  # actors started again after a contained failure


class WebhookService:
    def __init__(self, db: WebhookDB, signal: CommitSignal, *,
                 policy: WebhookPolicy | None = None, failures: Failures | None = None,
                 sender_factory: SenderFactory = open_http_sender,
                 wall_clock: Callable[[], float] = time.time,
                 draw: Callable[[], float] = random.random,
                 offload: Offload | None = None) -> None:
        self.db = db
        self.policy = policy or WebhookPolicy()
        self._signal = signal
        self._failures = failures or Failures()
        self._sender_factory = sender_factory
        self._wall_clock = wall_clock
        self._draw = draw
        self._offload = offload or partial(trio.to_thread.run_sync,
                                           limiter=trio.CapacityLimiter(2))
        self._dirty = trio.Event()
        self._running: dict[str, tuple[int, trio.CancelScope]] = {}
        self._restarts = 0

    def statistics(self) -> WebhookStatistics:
        return WebhookStatistics(len(self._running), self._restarts)

    def reload(self) -> None:
        """Re-read the webhooks table (the routes call this after every change)."""
        self._dirty.set()

    async def run(self, *, task_status: trio.TaskStatus[WebhookService]
                  = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started(self)
            while True:
                self._dirty = trio.Event()
                hooks = await self._offload(self.db.all)
                self._reconcile(nursery, {h.id: h for h in hooks if h.enabled})
                await self._dirty.wait()

    def _reconcile(self, nursery: trio.Nursery, wanted: dict[str, Webhook]) -> None:
        for hook_id, (revision, scope) in list(self._running.items()):
            hook = wanted.get(hook_id)
            if hook is None or hook.revision != revision:
                scope.cancel()
                del self._running[hook_id]
        for hook_id, hook in wanted.items():
            if hook_id not in self._running:
                scope = trio.CancelScope()
                self._running[hook_id] = (hook.revision, scope)
                nursery.start_soon(self._supervise, hook, scope)

    async def _supervise(self, hook: Webhook, scope: trio.CancelScope) -> None:
        current: Webhook | None = hook
        try:
            with scope:
                while current is not None:
                    with self._failures.contain("webhook", current.id) as outcome:
                        async with self._sender_factory(self.policy) as sender:
                            await DeliveryActor(
                                current, self.db, self._signal, sender, policy=self.policy,
                                wall_clock=self._wall_clock, draw=self._draw,
                                offload=self._offload).run()
                    if outcome.error is None:
                        log.warning("webhook %s gave up and is disabled", current.id)
                        return  # it gave up and is disabled
                    self._restarts += 1
                    await trio.sleep(self.policy.restart_delay_s)
                    current = await self._offload(self.db.get, hook.id)
                    if current is None or not current.enabled:
                        return
        finally:
            entry = self._running.get(hook.id)
            if entry is not None and entry[1] is scope:
                del self._running[hook.id]
