"""The delivery actor and the webhook service on trio's mock clock: exact backoff times,
giving up after 24 h, waking on a commit, and a failing actor restarted in its boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from store.containment import Failures
from store.db import FlagDB
from store.records import ChangeRequest, ItemWrite
from store.webhooks.db import Webhook, WebhookDB
from store.webhooks.delivery import DeliveryActor
from store.webhooks.policy import WebhookPolicy
from store.webhooks.sender import Outcome, Sender
from store.webhooks.service import WebhookService
from store.webhooks.signal import CommitSignal
from store.webhooks.signing import verify_signature

EPOCH = 1_700_000_000.0
SECRET = "s" * 32


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def wall() -> float:
    return EPOCH + trio.current_time()


async def inline(fn: Any, *args: Any) -> Any:
    return fn(*args)  # no worker thread: the mock clock must not jump while a query runs


class NoBus:
    async def publish(self, msg: Any) -> None:
        pass


class ScriptedSender:
    """Answers ``statuses[n]`` to the n-th POST (the last one from then on); records when."""

    def __init__(self, *statuses: int | None, db: WebhookDB | None = None) -> None:
        self.statuses = list(statuses)
        self.times: list[float] = []
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[Mapping[str, str]] = []

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        self.times.append(trio.current_time())
        self.bodies.append(orjson.loads(body))
        self.headers.append(headers)
        n = len(self.times) - 1
        status = self.statuses[min(n, len(self.statuses) - 1)]
        return Outcome(status, None if status is not None else "ConnectError: refused")


class Stores:
    def __init__(self, tmp_path: Path) -> None:
        self.flags = FlagDB(tmp_path, clock=wall)
        self.hooks = WebhookDB(self.flags.path, clock=wall)
        self.flags.create_environment("prod", "prod")
        self.signal = CommitSignal(NoBus(), self.flags.latest_seq())

    def new_hook(self, **kw: Any) -> Webhook:
        args: dict[str, Any] = dict(url="http://127.0.0.1:9/hook", secret=SECRET,
                                    environments=None, kinds=None, enabled=True,
                                    actor="token:bootstrap", max_webhooks=10)
        args.update(kw)
        return self.hooks.create(**args)

    def change(self, key: str) -> int:
        committed = self.flags.commit([ChangeRequest("prod", "admin", (ItemWrite(
            "flags", key, {"on": True, "variations": [1], "fallthrough": {"variation": 0}}),))])
        seq = committed[0].change.seq
        self.signal.notify(seq)
        return seq

    def close(self) -> None:
        self.hooks.close()
        self.flags.close()


@pytest.fixture
async def stores(tmp_path: Path) -> Any:
    s = Stores(tmp_path)
    yield s
    s.close()


def actor(stores: Stores, hook: Webhook, sender: Sender, **policy: Any) -> DeliveryActor:
    return DeliveryActor(hook, stores.hooks, stores.signal, sender,
                         policy=WebhookPolicy(**policy), wall_clock=wall, draw=lambda: 1.0,
                         offload=inline)


async def test_retries_double_from_1s_to_the_5min_cap_in_order(
        stores: Stores, clock: trio.testing.MockClock) -> None:
    hook = stores.new_hook()
    first, second = stores.change("a"), stores.change("b")
    sender = ScriptedSender(*([500] * 10), 200)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor(stores, hook, sender).run)
        await trio.sleep(1000)
        nursery.cancel_scope.cancel()
    # failed attempts 1..10 wait 1, 2, 4, ... 256 s, then the 5 min cap; the second change
    # goes out right after the first is delivered, never before
    assert sender.times == [0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 811, 811]
    assert [b["seq"] for b in sender.bodies] == [first] * 11 + [second]
    assert all(verify_signature(SECRET, h["X-Flagstream-Signature"],
                                orjson.dumps(b), EPOCH + t, 300)
               for h, b, t in zip(sender.headers, sender.bodies, sender.times, strict=True))
    records = {d.seq: d for d in stores.hooks.deliveries(hook.id, 10)}
    assert records[first].attempts == 11 and records[first].status == "delivered"
    stored = stores.hooks.get(hook.id)
    assert stored is not None and stored.cursor == second and stored.state == "ok"


async def test_a_failed_attempt_records_its_error_and_next_retry(
        stores: Stores, clock: trio.testing.MockClock) -> None:
    hook = stores.new_hook()
    seq = stores.change("a")
    sender = ScriptedSender(None, 502, 200)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor(stores, hook, sender).run)
        await trio.sleep(0.5)  # between attempt 1 (t=0) and 2 (t=1)
        [record] = stores.hooks.deliveries(hook.id, 10)
        assert (record.status, record.attempts, record.http_status, record.error) == (
            "retrying", 1, None, "ConnectError: refused")
        assert record.next_retry_ms == int((EPOCH + 1) * 1000)
        stored = stores.hooks.get(hook.id)
        assert stored is not None and stored.state == "failing" and stored.cursor == seq - 1
        assert stored.failing_since_ms == int(EPOCH * 1000)
        await trio.sleep(1)  # attempt 2 at t=1 gets a 502, attempt 3 at t=3
        [record] = stores.hooks.deliveries(hook.id, 10)
        assert (record.attempts, record.http_status, record.error) == (2, 502, None)
        assert record.next_retry_ms == int((EPOCH + 3) * 1000)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    [record] = stores.hooks.deliveries(hook.id, 10)
    assert (record.status, record.attempts, record.http_status) == ("delivered", 3, 200)
    stored = stores.hooks.get(hook.id)
    assert stored is not None and stored.state == "ok" and stored.failing_since_ms is None


async def test_after_24h_of_failing_the_webhook_is_disabled_and_resumes_when_enabled(
        stores: Stores, clock: trio.testing.MockClock) -> None:
    hook = stores.new_hook()
    seq = stores.change("a")
    sender = ScriptedSender(503)
    await actor(stores, hook, sender).run()  # returns when it gives up
    # 10 attempts up to t=511, then every 300 s: the first at or past 24 h is t=86611
    assert trio.current_time() == 86611 and len(sender.times) == 297
    stored = stores.hooks.get(hook.id)
    assert stored is not None
    assert (stored.enabled, stored.state, stored.cursor) == (False, "disabled", seq - 1)
    assert stored.last_error is not None and stored.last_error.startswith("gave up")
    [record] = stores.hooks.deliveries(hook.id, 10)
    assert (record.status, record.attempts, record.next_retry_ms) == ("abandoned", 297, None)
    enabled = stores.hooks.update(hook.id, {"enabled": True})
    assert enabled is not None and enabled.state == "ok" and enabled.revision == 2
    ok = ScriptedSender(200)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor(stores, enabled, ok).run)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [b["seq"] for b in ok.bodies] == [seq]  # the missed change, from the cursor


async def test_a_commit_wakes_the_actor_and_the_idle_poll_is_only_a_backstop(
        stores: Stores, clock: trio.testing.MockClock) -> None:
    hook = stores.new_hook()
    sender = ScriptedSender(200)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor(stores, hook, sender, idle_poll_s=30).run)
        await trio.sleep(5)
        stores.change("a")  # announced: delivered at once
        await trio.sleep(1)
        assert sender.times == [5]
        stores.flags.commit([ChangeRequest("prod", "admin", (ItemWrite(
            "flags", "b", {"on": False, "variations": [1], "offVariation": 0}),))])
        await trio.sleep(100)  # not announced (a missed wake-up): the backstop finds it
        nursery.cancel_scope.cancel()
    assert sender.times == [5, 35]


class FlakySenders:
    """The first sender raises (a bug in the actor's path); later ones deliver."""

    def __init__(self) -> None:
        self.opened = 0
        self.delivered: list[tuple[float, int]] = []

    @asynccontextmanager
    async def __call__(self, policy: WebhookPolicy) -> AsyncIterator[Sender]:
        self.opened += 1
        yield self  # type: ignore[misc]

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        if self.opened == 1:
            raise RuntimeError("bug")
        self.delivered.append((trio.current_time(), orjson.loads(body)["seq"]))
        return Outcome(200)


async def test_a_failing_actor_restarts_in_its_boundary_and_the_service_goes_on(
        stores: Stores, clock: trio.testing.MockClock) -> None:
    failures = Failures(clock=trio.current_time)
    senders = FlakySenders()
    service = WebhookService(stores.hooks, stores.signal, failures=failures,
                             policy=WebhookPolicy(restart_delay_s=5), sender_factory=senders,
                             wall_clock=wall, draw=lambda: 1.0, offload=inline)
    hook = stores.new_hook()
    seq = stores.change("a")
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await trio.sleep(10)
        assert senders.delivered == [(5, seq)]
        assert failures.counts() == {("webhook", "RuntimeError"): 1}
        assert service.statistics().restarts == 1 and service.statistics().running == 1
        # an edit restarts the actor with the new settings; a delete stops it
        stores.hooks.update(hook.id, {"url": "http://127.0.0.1:10/other"})
        service.reload()
        await trio.sleep(1)
        assert service.statistics().running == 1 and senders.opened == 3
        stores.hooks.delete(hook.id)
        service.reload()
        await trio.sleep(1)
        assert service.statistics().running == 0
        nursery.cancel_scope.cancel()


async def test_only_the_newest_delivery_records_are_kept(
        stores: Stores, clock: trio.testing.MockClock) -> None:
    hook = stores.new_hook()
    seqs = [stores.change(f"f{n}") for n in range(6)]
    sender = ScriptedSender(200)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor(stores, hook, sender, deliveries_kept=3).run)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [b["seq"] for b in sender.bodies] == seqs
    assert [d.seq for d in stores.hooks.deliveries(hook.id, 100)] == seqs[:2:-1]
