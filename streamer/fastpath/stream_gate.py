"""The stream gate: admission control, per-key and per-address limits, key-rotation
enforcement and the spread-out close of a graceful drain, for one worker's streams.

Theory of operation
-------------------
Every stream passes :meth:`StreamGate.enter` just before it attaches and :meth:`leave` when it
ends (the stream actor calls both). ``enter`` refuses, in this order: a draining worker (503),
a worker at ``max_connections`` (503), a saturated worker (503: its event loop lags or its RSS
is over budget, see :mod:`streamer.fastpath.load_monitor`), a key at ``max_per_key`` or an address
at ``max_per_address`` (429). Each refusal carries a ``Retry-After`` drawn uniformly from
``[retry_after_s, 2 * retry_after_s]`` (from ``[n, 3 n]`` with the load budget's shorter ``n``
for saturation, which passes within seconds), so refused clients do not come back in step.
The first three refuse everyone alike: :meth:`refusal_for_all` answers them alone, so the
acceptor can shed a connection before any actor or head parse (:mod:`streamer.fastpath.acceptor`).

The gate remembers which credential each stream authenticated with. When the directory
indexes new credentials for an environment (:meth:`credentials_changed`), every stream on a
credential that is no longer the environment's current key is either closed now (no grace)
or scheduled to close when its rotated key's grace period ends (``reason="key_rotated"``).
One task (:meth:`run`) sleeps until the earliest such deadline; nothing runs per stream.

:meth:`drain` stops admissions and closes the open streams spread evenly over a window, so
the clients' reconnects reach the other workers and nodes as a trickle, not a burst.

Pure bookkeeping plus one trio task; the connections are anything :class:`Closable`. Its
collaborators (the limits, the load monitor, the duration observer) are constructor
arguments: the worker builds the gate whole and hands it to the directory.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import resource
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import trio

from streamer.fastpath.load_monitor import LoadMonitor

log = logging.getLogger(__name__)

class Closable(Protocol):
    """A stream as the gate sees it: it can be asked to close, and says why it closed."""

    @property
    def close_reason(self) -> str | None: ...

    def request_close(self, reason: str) -> None: ...


# Open files a worker keeps for everything but its streams: listeners, the bus, the spool and
# log files, polling and event requests, streams still in their handshake. A twentieth of the
# limit, and never fewer than this.
FD_RESERVE_MIN = 256


def streams_for_open_files(nofile: int) -> int | None:
    """How many streams a worker whose open-file limit is ``nofile`` can hold (None: no
    limit). The worker caps ``max_connections`` at it; the SLO runner sizes its overload."""
    if nofile < 0 or nofile == resource.RLIM_INFINITY:
        return None
    return max(1, nofile - max(FD_RESERVE_MIN, nofile // 20))


@dataclass(frozen=True, slots=True)
class GateLimits:
    max_connections: int = 0  # per worker; 0: no limit
    max_per_key: int = 0
    max_per_address: int = 0
    retry_after_s: int = 5


def fd_capped(limits: GateLimits, nofile: int) -> GateLimits:
    """``limits`` with ``max_connections`` lowered to what the open-file limit ``nofile`` leaves
    for streams (:func:`streams_for_open_files`), so a full worker answers 503 instead of
    failing ``accept`` with EMFILE and leaving the herd in its queue; 0 (no limit) means this
    cap. The worker applies it at start-up."""
    cap = streams_for_open_files(nofile)
    if cap is None or (limits.max_connections and limits.max_connections <= cap):
        return limits
    if limits.max_connections:
        log.warning("--max-connections %d is more than the open-file limit (%d) allows; "
                    "using %d", limits.max_connections, nofile, cap)
    return replace(limits, max_connections=cap)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    retry_after: int
    saturated: str | None = None  # "loop_lag" or "memory" for a saturated worker's 503


@dataclass(frozen=True, slots=True)
class _Entry:
    credential: str
    address: str
    env: str
    opened_at: float


class StreamGate:
    def __init__(self, limits: GateLimits | None = None, *,
                 load: LoadMonitor | None = None,
                 observe_duration: Callable[[str, float], None] | None = None,
                 wall_clock_ms: Callable[[], int] | None = None,
                 rng: random.Random | None = None) -> None:
        """``limits``: none by default (admits every stream). ``load``: the worker's load
        monitor (default: one with the default budget, fed by nobody). ``observe_duration``:
        called with (close reason, seconds open) as each stream ends (the metrics'
        histogram)."""
        self.limits = limits or GateLimits()
        self._rng = rng or random.Random()
        self._wall_ms = wall_clock_ms
        self._open: dict[Closable, _Entry] = {}
        self._by_key: dict[str, set[Closable]] = {}
        self._by_address: dict[str, int] = {}
        self._expiry: list[tuple[float, int, str, str]] = []  # (trio time, n, env, credential)
        self._order = itertools.count()
        self._wake = trio.Event()
        self.draining = False
        self._refusing = False
        self.refused: dict[int, int] = {}
        self.load = load if load is not None else LoadMonitor()
        self.saturated_refusals: dict[str, int] = {}  # 503s for saturation, by reason
        self.rotated_closed = 0
        self._observe_duration = observe_duration

    def __len__(self) -> int:
        return len(self._open)

    # -- admission ----------------------------------------------------------------------------

    def enter(self, conn: Closable, credential: str, address: str, env: str) -> Refusal | None:
        refusal = self.refusal_for_all() or self._refusal_for(credential, address)
        if refusal is not None:
            self.count_refusal(refusal)
            return refusal
        if self._refusing:
            self._refusing = False
            log.info("admitting streams again (%d open)", len(self._open))
        self._open[conn] = _Entry(credential, address, env, trio.current_time())
        self._by_key.setdefault(credential, set()).add(conn)
        self._by_address[address] = self._by_address.get(address, 0) + 1
        return None

    def refusal_for_all(self, *, held: int = 0) -> Refusal | None:
        """The refusal every new stream would get now, whoever it is (draining, at capacity,
        saturated), or None. Not counted: the caller that acts on it calls count_refusal.
        ``held``: the connections the worker holds, those still sending their head included
        (the acceptor counts them), when that is more than the streams admitted."""
        lim = self.limits
        if self.draining:
            return Refusal(503, "this worker is shutting down; reconnect", self._retry_after())
        if lim.max_connections and max(len(self._open), held) >= lim.max_connections:
            return Refusal(503, "this worker is at its connection limit", self._retry_after())
        saturated = self.load.saturated(trio.current_time())
        if saturated is not None:
            n = self.load.budget.retry_after_s
            what = "event loop is lagging" if saturated == "loop_lag" else "memory is over budget"
            return Refusal(503, f"this worker is saturated ({what}); reconnect later",
                           self._rng.randint(n, 3 * n), saturated)
        return None

    def count_refusal(self, refusal: Refusal) -> None:
        self.refused[refusal.status] = self.refused.get(refusal.status, 0) + 1
        if refusal.saturated is not None:
            why = refusal.saturated
            self.saturated_refusals[why] = self.saturated_refusals.get(why, 0) + 1
        if not self._refusing and not self.draining:
            self._refusing = True  # logged once per episode, not once per client
            log.warning("refusing new streams: %s (%d open)", refusal.message, len(self._open))

    def leave(self, conn: Closable) -> None:
        entry = self._open.pop(conn, None)
        if entry is None:
            return
        if self._observe_duration is not None:
            reason = conn.close_reason or "shutdown"
            self._observe_duration(reason, trio.current_time() - entry.opened_at)
        conns = self._by_key.get(entry.credential)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_key[entry.credential]
        left = self._by_address.get(entry.address, 1) - 1
        if left > 0:
            self._by_address[entry.address] = left
        else:
            self._by_address.pop(entry.address, None)

    def _retry_after(self) -> int:
        base = self.limits.retry_after_s
        return self._rng.randint(base, 2 * base)

    def _refusal_for(self, credential: str, address: str) -> Refusal | None:
        lim = self.limits
        if lim.max_per_key and len(self._by_key.get(credential, ())) >= lim.max_per_key:
            return Refusal(429, "too many streams for this key", self._retry_after())
        if lim.max_per_address and self._by_address.get(address, 0) >= lim.max_per_address:
            return Refusal(429, "too many streams from this address", self._retry_after())
        return None

    # -- key rotation -------------------------------------------------------------------------

    def credentials_changed(self, env: str, current: set[str],
                            old: dict[str, int], now_ms: int) -> None:
        """``env`` now accepts ``current`` and, until their expiry (wall ms), ``old``."""
        for cred in [c for c, conns in self._by_key.items()
                     if c not in current and any(self._open[x].env == env for x in conns)]:
            expires = old.get(cred)
            if expires is None or expires <= now_ms:
                self._close_key(env, cred)
        # Every key in its grace period gets a deadline, also with no stream on it yet: a
        # client may still connect with it during the grace period.
        for cred, expires in old.items():
            if cred not in current and expires > now_ms:
                due = trio.current_time() + (expires - now_ms) / 1000.0
                heapq.heappush(self._expiry, (due, next(self._order), env, cred))
                self._wake.set()

    def _close_key(self, env: str, cred: str) -> None:
        for conn in list(self._by_key.get(cred, ())):
            entry = self._open.get(conn)
            if entry is not None and entry.env == env:
                self.rotated_closed += 1
                conn.request_close("key_rotated")

    async def run(self, *, still_valid: Callable[[str, str], bool],
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Close streams whose rotated key expired; ``still_valid(env, cred)`` re-checks (a
        later rotation or a restored key may have changed the answer)."""
        task_status.started()
        while True:
            if not self._expiry:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            with trio.move_on_at(self._expiry[0][0]):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            while self._expiry and self._expiry[0][0] <= now:
                _, _, env, cred = heapq.heappop(self._expiry)
                if not still_valid(env, cred):
                    self._close_key(env, cred)

    # -- drain --------------------------------------------------------------------------------

    async def drain(self, window_s: float) -> int:
        """Refuse new streams and close the open ones spread evenly over ``window_s``."""
        self.draining = True
        conns = list(self._open)
        self._rng.shuffle(conns)
        if not conns:
            return 0
        step = window_s / len(conns)
        start = trio.current_time()
        for i, conn in enumerate(conns):
            await trio.sleep_until(start + i * step)
            if conn in self._open:
                conn.request_close("shutdown")
        return len(conns)
