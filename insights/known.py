"""Which flag keys the insights count: only the flags the environment has.

Any client holding an environment's public client-side ID can post summaries for flag keys
that do not exist; counting them gave one row per invented key and day, without bound, and a
stale-flags answer that grew with them. So every contribution is checked against the
environment's flags (``ingest.ports.FlagCatalog``, the flag store's own table) and the others
are dropped and counted per environment.

The catalog is a database read, so each environment's keys are cached: refreshed every
``refresh_s``, and at most every ``miss_refresh_s`` on a miss, so that a flag created a moment
ago is counted from its first evaluation while a flood of invented keys costs at most one read
per ``miss_refresh_s``. The cache holds at most ``max_envs`` environments (the least recently read
evicted first). Blocking: the consumer calls it from its worker thread, like the store.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from ingest.ports import FlagCatalog
from insights.fold import Contribution

SAMPLE_KEYS = 5  # unknown keys kept per batch for the log line; the rest are only counted


@dataclass(frozen=True, slots=True)
class Split:
    kept: list[Contribution]
    unknown: dict[str, int] = field(default_factory=dict)  # env -> contributions dropped
    sample: tuple[str, ...] = ()  # up to SAMPLE_KEYS "env/flag" of the dropped ones


@dataclass(frozen=True, slots=True)
class _Entry:
    keys: frozenset[str] | None  # None: the environment does not exist
    read_at: float


class KnownFlags:
    def __init__(
        self,
        catalog: FlagCatalog,
        *,
        max_envs: int = 1000,
        refresh_s: float = 5.0,
        miss_refresh_s: float = 1.0,
    ) -> None:
        self._catalog = catalog
        self._max_envs = max_envs
        self._refresh_s = refresh_s
        self._miss_refresh_s = miss_refresh_s
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def split(self, contributions: list[Contribution], now: float) -> Split:
        """The contributions for known flags, and a count of the others per environment."""
        kept: list[Contribution] = []
        unknown: dict[str, int] = {}
        sample: list[str] = []
        for c in contributions:
            if self._knows(c.env, c.flag, now):
                kept.append(c)
                continue
            unknown[c.env] = unknown.get(c.env, 0) + 1
            if len(sample) < SAMPLE_KEYS:
                sample.append(f"{c.env}/{c.flag}")
        return Split(kept, unknown, tuple(sample))

    def _knows(self, env: str, flag: str, now: float) -> bool:
        entry = self._cache.get(env)
        if entry is None or now - entry.read_at >= self._refresh_s:
            entry = self._read(env, now)
        if entry.keys is not None and flag in entry.keys:
            return True
        if now - entry.read_at < self._miss_refresh_s:
            return False
        entry = self._read(env, now)
        return entry.keys is not None and flag in entry.keys

    def _read(self, env: str, now: float) -> _Entry:
        keys = self._catalog.flag_keys(env)
        entry = _Entry(None if keys is None else frozenset(keys), now)
        self._cache[env] = entry
        self._cache.move_to_end(env)
        while len(self._cache) > self._max_envs:
            self._cache.popitem(last=False)
        return entry
