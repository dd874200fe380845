"""The worker's directory: environment actors by key, and the credential index.

Theory of operation
-------------------
The directory implements :class:`bus.subscriber_ports.ChangeSink`: the bus subscriber hands it
snapshots and changes in order, and it routes each to the environment's actor (creating one
on first sight, stopping it when a full snapshot no longer names the environment). It keeps
the credential index (SDK key, mobile key, client-side ID, and rotated keys until they expire)
that the stream acceptor, the polling app and the ingest package use. Every kind of credential
has an index of its own, rotated keys included: a lookup finds only the kind it asks for, so a
mobile key (public: it ships inside apps) never opens a server-side endpoint, during its grace
period neither, and an SDK key or mobile key is no environment ID.

Its collaborators are constructor arguments: the stream gate (required; a worker without
admission control passes a gate with no limits), the counters and the optional propagation
probe. ``loaded`` becomes true when the first snapshot has been applied: before that, polls
get 503 and streams wait. ``ready`` additionally asks an optional readiness probe (the worker
passes "the bus subscriber is synced" once the subscriber, which needs the directory, exists).
A credential this worker does not know yet is looked up again as new ones arrive, for a
moment, before it is refused (:meth:`Directory.await_known`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

import trio

from bus.envelope import Change, EnvChange, EnvironmentInfo, Snapshot
from streamer.clientside.client_groups import MAX_WARM_GROUPS, GroupStatistics
from streamer.environments.env_actor import Apply, Close, EnvActor, Replace
from streamer.environments.envstate import EnvView
from streamer.fastpath.http_head import StreamKind, sdk_credential
from streamer.fastpath.stream_gate import StreamGate
from streamer.fastpath.worker_counters import WorkerCounters, WorkerStatistics

T = TypeVar("T")
# How long a request with an unknown credential waits for the bus to bring it (a key the admin
# API has just created) before it is refused.
UNKNOWN_CREDENTIAL_HOLD_S = 1.0


@dataclass(frozen=True, slots=True)
class DirectoryStatistics:
    environments: int
    loaded: bool
    counters: WorkerStatistics
    client_groups: GroupStatistics  # summed over the environments


class ChangeProbe(Protocol):
    """Propagation measurement (streamer/environments/propagation.py): told when a change arrives,
    and given the chance to wrap each environment actor's counters to see its fan-outs end."""

    def received(self, env: str) -> None: ...

    def wrap(self, env: str, counters: WorkerCounters) -> WorkerCounters: ...


class Directory:
    def __init__(
        self,
        *,
        gate: StreamGate,
        probe: ChangeProbe | None = None,
        heartbeat_interval: float = 20.0,
        ping_jitter: float = 0.5,
        counters: WorkerCounters | None = None,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        max_context_groups: int = MAX_WARM_GROUPS,
    ) -> None:
        if not 0 < heartbeat_interval < 60:
            raise ValueError("heartbeat_interval must be between 0 and 60 seconds")
        self.heartbeat_interval = heartbeat_interval
        self.ping_jitter = ping_jitter
        self.max_context_groups = max_context_groups
        self.counters = counters if counters is not None else WorkerCounters()
        self._wall_clock_ms = wall_clock_ms
        self._actors: dict[str, EnvActor] = {}
        self._envs: dict[str, EnvironmentInfo] = {}
        self._by_sdk: dict[str, str] = {}
        self._by_mobile: dict[str, str] = {}
        self._by_client_id: dict[str, str] = {}
        # rotated credential -> (env, expires_at_ms), one index per kind
        self._old_sdk: dict[str, tuple[str, int]] = {}
        self._old_mobile: dict[str, tuple[str, int]] = {}
        self._loaded = trio.Event()
        # Set (and replaced) whenever credentials become usable: see await_known.
        self._learned = trio.Event()
        self.unknown_credential_hold_s = UNKNOWN_CREDENTIAL_HOLD_S
        self._readiness: Callable[[], bool] = lambda: True
        self._nursery: trio.Nursery | None = None
        # Admission, limits, rotated-key expiry, drain (streamer/fastpath/stream_gate.py).
        self._gate = gate
        self._change_probe = probe  # propagation metrics (streamer/environments/propagation.py)

    async def run(
        self, *, task_status: trio.TaskStatus[Directory] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Owns the environment actors; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(partial(self._gate.run, still_valid=self._still_valid))
            task_status.started(self)
            await trio.sleep_forever()

    # -- ChangeSink ------------------------------------------------------------------------

    async def apply_change(self, msg: Change | EnvChange) -> None:
        match msg:
            case Change(_, env, items):
                if self._change_probe is not None:
                    self._change_probe.received(env)
                actor = await self._ensure(env)
                await actor.send(Apply(items))
            case EnvChange(_, info, True):
                await self._remove(info.key)  # its streams end; its credentials stop working
            case EnvChange(_, info):
                self._index(info)
                await self._ensure(info.key)
                self._notify_learned()

    async def apply_snapshot(self, snapshot: Snapshot, *, full: bool) -> None:
        named = set()
        for env_snap in snapshot.envs:
            key = env_snap.env.key
            named.add(key)
            self._index(env_snap.env)
            actor = await self._ensure(key)
            await actor.send(Replace(env_snap.items))
        if full:
            for key in [k for k in self._actors if k not in named]:
                await self._remove(key)
        self._loaded.set()
        self._notify_learned()

    # -- lookups ---------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    @property
    def gate(self) -> StreamGate:
        """The worker's stream gate (given at construction)."""
        return self._gate

    async def wait_loaded(self) -> None:
        await self._loaded.wait()

    def set_readiness_probe(self, probe: Callable[[], bool]) -> None:
        self._readiness = probe

    @property
    def ready(self) -> bool:
        return self.loaded and self._readiness()

    def env_key_for_sdk_key(self, credential: str) -> str | None:
        """The environment of an SDK key (raw or ``api_key `` prefixed), or None."""
        return self._lookup(self._by_sdk, self._old_sdk, credential)

    def env_key_for_mobile_key(self, credential: str) -> str | None:
        return self._lookup(self._by_mobile, self._old_mobile, credential)

    def env_key_for_client_side_id(self, client_side_id: str) -> str | None:
        return self._by_client_id.get(client_side_id.strip())

    def environment(self, env_key: str) -> EnvironmentInfo | None:
        return self._envs.get(env_key)

    async def await_known(self, find: Callable[[], T | None]) -> T | None:
        """``find()``, or, while it finds nothing, ``find()`` again each time this worker
        learns new credentials, for up to ``unknown_credential_hold_s``.

        The admin API answers as soon as the store has committed a new environment or key;
        the bus brings it to each worker a moment later. An SDK that connects in that moment
        must not be told 401: several SDKs then give up for good (PROTOCOL.md §1.3). A key
        that is really unknown gets its 401 after the hold.
        """
        found = find()
        if found is not None or self.unknown_credential_hold_s <= 0:
            return found
        with trio.move_on_after(self.unknown_credential_hold_s):
            while found is None:
                await self._learned.wait()
                found = find()
        return found

    def _notify_learned(self) -> None:
        self._learned.set()
        self._learned = trio.Event()

    def stream_target(self, credential: str) -> EnvActor | None:
        """The environment actor a stream with this SDK key attaches to."""
        env = self.env_key_for_sdk_key(credential)
        return None if env is None else self._actors.get(env)

    def client_stream_target(
        self, kind: StreamKind, credential: str
    ) -> tuple[EnvActor, EnvironmentInfo] | None:
        """The actor and environment of a client-side stream: by mobile key for ``/meval``
        and ``/mping``, by client-side ID (environment ID) for ``/eval`` and ``/ping``."""
        if kind in (StreamKind.MEVAL, StreamKind.MPING):
            env = self.env_key_for_mobile_key(credential)
        else:
            env = self.env_key_for_client_side_id(credential)
        actor = None if env is None else self._actors.get(env)
        info = None if env is None else self._envs.get(env)
        return None if actor is None or info is None else (actor, info)

    def actor(self, env_key: str) -> EnvActor | None:
        return self._actors.get(env_key)

    def view(self, env_key: str) -> EnvView | None:
        """The current data of an environment (read-only), for polling."""
        actor = self._actors.get(env_key)
        return None if actor is None else actor.view()

    def statistics(self) -> DirectoryStatistics:
        groups = [g.statistics() for a in self._actors.values()
                  if (g := a.client_groups) is not None]
        return DirectoryStatistics(len(self._actors), self.loaded, self.counters.statistics(),
                                   GroupStatistics.total(groups))

    # -- internals -------------------------------------------------------------------------

    def _lookup(self, index: dict[str, str], old_index: dict[str, tuple[str, int]],
                credential: str) -> str | None:
        cred = sdk_credential(credential)
        if cred is None:
            return None
        env = index.get(cred)
        if env is not None:
            return env
        old = old_index.get(cred)
        if old is not None and old[1] > self._wall_clock_ms():
            return old[0]
        return None

    def _index(self, info: EnvironmentInfo) -> None:
        self._unindex(info.key)
        self._envs[info.key] = info
        self._by_sdk[info.sdk_key] = info.key
        self._by_mobile[info.mobile_key] = info.key
        self._by_client_id[info.client_side_id] = info.key
        for old_index, pairs in ((self._old_sdk, info.old_sdk_keys),
                                 (self._old_mobile, info.old_mobile_keys)):
            for cred, expires_at_ms in pairs:
                old_index[cred] = (info.key, expires_at_ms)
        self._gate.credentials_changed(info.key, {info.sdk_key, info.mobile_key,
                                                 info.client_side_id},
                                      dict(info.old_keys), self._wall_clock_ms())

    def _still_valid(self, env: str, cred: str) -> bool:
        info = self._envs.get(env)
        if info is None:
            return False
        if cred in (info.sdk_key, info.mobile_key, info.client_side_id):
            return True
        # A stream was admitted by the index of its kind; this only asks whether its key
        # is still in its grace period.
        old = self._old_sdk.get(cred) or self._old_mobile.get(cred)
        return old is not None and old[0] == env and old[1] > self._wall_clock_ms()

    def version_sums(self) -> dict[str, int]:
        """Per environment, the sum of its item versions (tombstones included): the same
        number on the store and on every worker that is in sync (drift alerts)."""
        out = {}
        for env, actor in self._actors.items():
            view = actor.view()
            out[env] = sum(i.version for i in view.flags.values()) + sum(
                i.version for i in view.segments.values())
        return out

    def _unindex(self, env_key: str) -> None:
        old = self._envs.pop(env_key, None)
        if old is None:
            return
        for index, cred in ((self._by_sdk, old.sdk_key), (self._by_mobile, old.mobile_key),
                            (self._by_client_id, old.client_side_id)):
            if index.get(cred) == env_key:
                del index[cred]
        for old_index, pairs in ((self._old_sdk, old.old_sdk_keys),
                                 (self._old_mobile, old.old_mobile_keys)):
            for cred, _ in pairs:
                if old_index.get(cred, ("",))[0] == env_key:
                    del old_index[cred]

    async def _ensure(self, env_key: str) -> EnvActor:
        actor = self._actors.get(env_key)
        if actor is None:
            if self._nursery is None:
                raise RuntimeError("Directory.run() is not running")
            probe = self._change_probe
            counters = self.counters if probe is None else probe.wrap(env_key, self.counters)
            actor = EnvActor(env_key, counters, heartbeat_interval=self.heartbeat_interval,
                             ping_jitter=self.ping_jitter,
                             max_warm_groups=self.max_context_groups)
            self._actors[env_key] = actor  # before the await, so a concurrent call finds it
            await self._nursery.start(actor.run)
        return actor

    async def _remove(self, env_key: str) -> None:
        self._unindex(env_key)
        actor = self._actors.pop(env_key, None)
        if actor is not None:
            await actor.send(Close("env_removed"))
