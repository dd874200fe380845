"""Propagation measurement: from a change's arrival from the bus to the end of its fan-out.

``flagstream_propagation_seconds``: from the moment the worker receives a change from the bus
(``Directory.apply_change``) to the end of the first fan-out loop that follows for that
environment, i.e. the change's bytes are in every fast-path socket's kernel buffer. A change
that reaches no stream (no subscribers) is not observed. The directory is given a
:class:`PropagationProbe` at construction (its ``ChangeProbe``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class _EnvCounters:
    """One environment actor's view of the worker's shared counters: every attribute is the
    shared one, except that ``fanned_out`` also ends a pending propagation measurement."""

    def __init__(self, shared: Any, env: str, probe: PropagationProbe) -> None:
        object.__setattr__(self, "_shared", shared)
        object.__setattr__(self, "_env", env)
        object.__setattr__(self, "_probe", probe)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shared, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._shared, name, value)  # e.g. ``counters.slow_entries += 1``

    def fanned_out(self, streams: int, wall_ns: int, cpu_ns: int) -> None:
        self._shared.fanned_out(streams, wall_ns, cpu_ns)
        self._probe.fanned_out(self._env)


class PropagationProbe:
    """Implements ``streamer.environments.directory.ChangeProbe``: the oldest change of an
    environment
    not yet fanned out, matched with the end of its next fan-out loop. A change that fans out
    to nobody leaves its mark; after ``MATCH_WINDOW_S`` the mark is dropped unobserved, so a
    later heartbeat round is never mistaken for it."""

    MATCH_WINDOW_S = 5.0

    def __init__(self, observe: Callable[[float], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._observe = observe
        self._clock = clock
        self._pending: dict[str, float] = {}
        self.unmatched = 0

    def received(self, env: str) -> None:
        self._pending.setdefault(env, self._clock())

    def fanned_out(self, env: str) -> None:
        started = self._pending.pop(env, None)
        if started is None:
            return
        took = self._clock() - started
        if took > self.MATCH_WINDOW_S:
            self.unmatched += 1
            return
        self._observe(took)

    def wrap(self, env: str, counters: Any) -> Any:
        return _EnvCounters(counters, env, self)
