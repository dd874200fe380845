"""Login rate limits, pure core: failed sign-ins per account and per client address.

A key (an attempted username, or a client address) that has ``limit`` failures within the
last ``window_s`` seconds is refused until the oldest of them leaves the window; the caller
answers 429 with that wait as ``Retry-After``. A success clears the account's failures (not
the address's: one good password must not reset a guesser spraying many accounts).

Bounds: each table holds at most ``max_keys`` keys and each key at most ``limit`` times.
Overflow policy "evict-least-recent": a new key pushes out the key whose last failure is the
oldest. A flood of distinct keys can so push a key out early; it is then limited again after
``limit`` more failures, and the per-address limit still holds a single client to its own
pace. Time is an argument (seconds on a monotonic clock; the shell passes
``trio.current_time()``).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW_S = 300.0
MAX_KEYS = 10_000


@dataclass
class _Table:
    limit: int
    window_s: float
    max_keys: int
    keys: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def wait(self, key: str, now: float) -> float:
        times = self.keys.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self.keys[key]
            return 0.0
        return times[0] + self.window_s - now if len(times) >= self.limit else 0.0

    def fail(self, key: str, now: float) -> None:
        times = self.keys.pop(key, None)
        if times is None:
            times = deque(maxlen=self.limit)
            while len(self.keys) >= self.max_keys:
                self.keys.popitem(last=False)  # evict-least-recent
        times.append(now)
        self.keys[key] = times  # now the most recent


class LoginLimiter:
    """Failed sign-ins per account and per address (see the module docstring)."""

    def __init__(self, *, account_limit: int = ACCOUNT_LIMIT, address_limit: int = ADDRESS_LIMIT,
                 window_s: float = WINDOW_S, max_keys: int = MAX_KEYS) -> None:
        self._accounts = _Table(account_limit, window_s, max_keys)
        self._addresses = _Table(address_limit, window_s, max_keys)

    def retry_after(self, account: str, address: str, now: float) -> float:
        """Seconds to wait before another attempt (0: go ahead)."""
        return max(self._accounts.wait(account, now), self._addresses.wait(address, now))

    def failed(self, account: str, address: str, now: float) -> None:
        self._accounts.fail(account, now)
        self._addresses.fail(address, now)

    def succeeded(self, account: str) -> None:
        self._accounts.keys.pop(account, None)

    def sizes(self) -> tuple[int, int]:
        """Keys held (accounts, addresses): each at most ``max_keys``."""
        return len(self._accounts.keys), len(self._addresses.keys)
