"""Who is calling: the bearer credential of an admin request becomes a :class:`Principal`.

Three kinds of bearer, told apart by their prefix: the bootstrap token (the node's generated
``admin-token``, or ``--admin-token``; principal ``token:bootstrap``, role admin), an API token
(``fst_...``, principal ``token:<name>``), and a user's session (``fss_...``, from
``POST /api/v1/sessions``; principal the username, with the user's role as it is now).
Every lookup reads the database, so a revoked token, a deleted user or a changed password
takes effect on the next request. Comparisons of secrets are constant-time
(``hmac.compare_digest``); a token is found by its SHA-256, whose timing tells nothing of any
stored secret.

Passwords: argon2id with ``time_cost=2, memory_cost=19 MiB, parallelism=1`` (OWASP's
recommended minimum for argon2id). ``.venv/bin/python -m store.auth`` prints the cost:
134-158 ms per verification on this 2-core machine at a load average of 10 (eight sessions
sharing it), so tens of ms on an idle core (not measured idle). Hashing and
verifying run in worker threads, at most ``HASH_THREADS`` at a time (a bound on memory, 19 MiB
each, and on CPU). A sign-in for an unknown user verifies against a dummy hash of the same
parameters, so it takes as long as a wrong password for a known one.

Last-used times of API tokens are written at most once per ``TOUCH_INTERVAL_MS`` per token,
which bounds the writes that reads cause.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable

import trio
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from store.accounts import (
    BOOTSTRAP,
    SESSION_PREFIX,
    TOKEN_PREFIX,
    Principal,
    digest,
    new_secret,
)
from store.accounts_db import AccountsDB, UserRecord
from store.login_limit import LoginLimiter

HASH_THREADS = 2
TOUCH_INTERVAL_MS = 60_000
SESSION_TTL_S = 12 * 3600.0
# argon2id of a random password nobody kept, with PASSWORD_HASHER's parameters: what an
# unknown username is verified against (see the module docstring).
DUMMY_HASH = ("$argon2id$v=19$m=19456,t=2,p=1$saOFJGH1h/EDg1BqLzyWnQ$"
              "2khGkwj+r/GJbXdnBe6qppQg/M6ZSmphN1MZfphwgK8")


def password_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class LoginRefusedError(Exception):
    """A sign-in failed: ``status`` 401 (bad credentials) or 429 (``retry_after_s``)."""

    def __init__(self, status: int, message: str, retry_after_s: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class Authenticator:
    """Turns bearer credentials into principals and checks passwords."""

    def __init__(self, bootstrap_token: str, accounts: AccountsDB, *,
                 hasher: PasswordHasher | None = None, limiter: LoginLimiter | None = None,
                 session_ttl_s: float = SESSION_TTL_S,
                 now: Callable[[], float] = trio.current_time) -> None:
        self.accounts = accounts
        self._bootstrap = bootstrap_token.encode()
        self._hasher = hasher or password_hasher()
        self._limiter = limiter or LoginLimiter()
        self._session_ttl_ms = int(session_ttl_s * 1000)
        self._now = now
        self._threads = trio.CapacityLimiter(HASH_THREADS)
        params = extract_parameters(DUMMY_HASH)
        same = (params.time_cost, params.memory_cost, params.parallelism) == (
            self._hasher.time_cost, self._hasher.memory_cost, self._hasher.parallelism)
        self._dummy = DUMMY_HASH if same else self._hasher.hash(new_secret(""))

    async def authenticate(self, header: str | None) -> Principal | None:
        """The principal of ``Authorization: Bearer <secret>``, or None."""
        if not header:
            return None
        scheme, _, given = header.partition(" ")
        secret = given.strip()
        if scheme.lower() != "bearer" or not secret:
            return None
        if hmac.compare_digest(secret.encode(), self._bootstrap):
            return Principal(BOOTSTRAP, "admin", None, "bootstrap", "bootstrap")
        wanted = digest(secret)
        if secret.startswith(TOKEN_PREFIX):
            token = self.accounts.token_by_digest(wanted)
            if token is None or not hmac.compare_digest(token.digest, wanted):
                return None
            now_ms = self.accounts.now_ms()
            if token.expires_ms is not None and token.expires_ms <= now_ms:
                return None
            if token.last_used_ms is None or now_ms - token.last_used_ms >= TOUCH_INTERVAL_MS:
                await trio.to_thread.run_sync(self.accounts.touch_token, token.id, now_ms)
            return Principal(f"token:{token.name}", token.role, token.environments, "token",
                             token.id)
        if secret.startswith(SESSION_PREFIX):
            found = self.accounts.session_user(wanted)
            if found is None:
                return None
            user = found[0]
            return Principal(user.username, user.role, user.environments, "session", wanted)
        return None

    async def hash_password(self, password: str) -> str:
        return await trio.to_thread.run_sync(self._hasher.hash, password,
                                             limiter=self._threads)

    async def check_password(self, username: str, password: str, address: str) -> UserRecord:
        """The user if ``password`` is theirs; else :class:`LoginRefusedError` (401, or 429
        past the rate limits of store/login_limit.py)."""
        wait = self._limiter.retry_after(username, address, self._now())
        if wait > 0:
            raise LoginRefusedError(429, "too many failed sign-ins: try again later",
                                    max(1, math.ceil(wait)))
        user = self.accounts.get_user(username)
        stored = self._dummy if user is None else user.password_hash
        ok = await trio.to_thread.run_sync(self._verify, stored, password,
                                           limiter=self._threads)
        if user is None or not ok:
            self._limiter.failed(username, address, self._now())
            raise LoginRefusedError(401, "invalid username or password")
        self._limiter.succeeded(username)
        return user

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def open_session(self, username: str) -> tuple[str, int]:
        """A new session secret for ``username`` and its expiry (ms)."""
        secret = new_secret(SESSION_PREFIX)
        expires = await trio.to_thread.run_sync(self.accounts.add_session, username,
                                                digest(secret), self._session_ttl_ms)
        return secret, expires


def _bench() -> None:
    """Print the cost of one hash and one verification with the store's parameters."""
    hasher = password_hasher()
    start = time.perf_counter()
    stored = hasher.hash("correct horse battery staple")
    hashed = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(10):
        hasher.verify(stored, "correct horse battery staple")
    print(f"argon2id t=2 m=19456 KiB p=1: hash {hashed * 1000:.1f} ms, "
          f"verify {(time.perf_counter() - start) * 100:.1f} ms (mean of 10)")


if __name__ == "__main__":
    _bench()
