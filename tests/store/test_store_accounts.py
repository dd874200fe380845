"""Accounts without HTTP: the login rate limits (pure, and in the Authenticator on a MockClock),
argon2 hashes, the dummy hash for unknown users, token digests, last-used writes, rights of a
token against its creator."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from argon2 import PasswordHasher, extract_parameters

from store.accounts import Principal, digest, exceeds, new_secret
from store.accounts_db import AccountsDB
from store.auth import DUMMY_HASH, Authenticator, LoginRefusedError, password_hasher
from store.db import DB_FILE
from store.login_limit import LoginLimiter

PASSWORD = "correct horse battery staple"


class CountingHasher(PasswordHasher):
    """Cheap parameters for speed; records which hashes were verified."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        return super().verify(hash, password)


@pytest.mark.parametrize(("failures", "at", "wait"), [
    ([0, 1, 2, 3], 4.0, 0.0),  # 4 failures: not yet limited
    ([0, 1, 2, 3, 4], 5.0, 295.0),  # the 5th: wait until the first leaves the window
    ([0, 1, 2, 3, 4], 299.0, 1.0),
    ([0, 1, 2, 3, 4], 300.0, 0.0),  # a failure counts for exactly window_s
    ([0, 1, 2, 3, 4], 301.0, 0.0),  # the first left the window: 4 in it
    ([0, 100, 200, 300, 400], 401.0, 0.0),  # spread out: never 5 in one window
])
def test_account_limit(failures: list[float], at: float, wait: float) -> None:
    limiter = LoginLimiter()
    for t in failures:
        limiter.failed("alice", f"10.0.0.{t}", t)
    assert limiter.retry_after("alice", "10.9.9.9", at) == wait


def test_address_limit_spans_accounts_and_success_clears_only_the_account() -> None:
    limiter = LoginLimiter()
    for i in range(20):
        limiter.failed(f"user{i}", "10.0.0.1", float(i))
    assert limiter.retry_after("someone", "10.0.0.1", 20.0) == 280.0
    assert limiter.retry_after("someone", "10.0.0.2", 20.0) == 0.0
    for i in range(5):
        limiter.failed("bob", "10.0.0.3", float(i))
    limiter.succeeded("bob")
    assert limiter.retry_after("bob", "10.0.0.4", 5.0) == 0.0
    assert limiter.retry_after("x", "10.0.0.1", 5.0) > 0  # the address still counts


def test_tables_are_bounded_and_evict_the_least_recent() -> None:
    limiter = LoginLimiter(max_keys=3)
    for i in range(5):
        limiter.failed(f"user{i}", f"addr{i}", float(i))
    assert limiter.sizes() == (3, 3)
    limiter = LoginLimiter(account_limit=1, max_keys=2)
    limiter.failed("a", "x", 0.0)
    limiter.failed("b", "x", 1.0)
    limiter.failed("a", "x", 2.0)  # "a" is now the most recent: "b" goes first
    limiter.failed("c", "x", 3.0)
    assert limiter.retry_after("a", "y", 3.0) > 0 and limiter.retry_after("b", "y", 3.0) == 0


@pytest.fixture
def accounts(tmp_path: Path) -> AccountsDB:
    db = AccountsDB(tmp_path / DB_FILE)
    yield db  # type: ignore[misc]
    db.close()


async def test_rate_limit_on_a_mock_clock(accounts: AccountsDB,
                                          autojump_clock: trio.testing.MockClock) -> None:
    hasher = CountingHasher()
    auth = Authenticator("boot", accounts, hasher=hasher)
    accounts.add_user("alice", hasher.hash(PASSWORD), "viewer", None)
    for _ in range(5):
        with pytest.raises(LoginRefusedError) as refused:
            await auth.check_password("alice", "wrong password!", "10.0.0.1")
        assert refused.value.status == 401
    with pytest.raises(LoginRefusedError) as refused:
        await auth.check_password("alice", PASSWORD, "10.0.0.2")  # right, but limited
    assert refused.value.status == 429 and refused.value.retry_after_s == 300
    await trio.sleep(299)
    with pytest.raises(LoginRefusedError):
        await auth.check_password("alice", PASSWORD, "10.0.0.2")
    await trio.sleep(1)
    assert (await auth.check_password("alice", PASSWORD, "10.0.0.2")).username == "alice"
    assert trio.current_time() == 300


async def test_an_unknown_user_is_verified_against_a_dummy_hash(accounts: AccountsDB) -> None:
    hasher = CountingHasher()
    auth = Authenticator("boot", accounts, hasher=hasher)
    with pytest.raises(LoginRefusedError):
        await auth.check_password("nobody", PASSWORD, "10.0.0.1")
    assert len(hasher.verified) == 1  # the same work as for a known user
    assert extract_parameters(hasher.verified[0]).memory_cost == 8  # the hasher's own params
    # The shipped dummy has the store's parameters, so it is used as it is.
    stored = extract_parameters(DUMMY_HASH)
    real = password_hasher()
    assert (stored.type, stored.time_cost, stored.memory_cost, stored.parallelism) == (
        real.type, real.time_cost, real.memory_cost, real.parallelism)


async def test_passwords_are_argon2id_and_tokens_sha256(accounts: AccountsDB) -> None:
    auth = Authenticator("boot", accounts, hasher=CountingHasher())
    hashed = await auth.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    secret = new_secret("fst_")
    assert secret.startswith("fst_") and len(secret) == 4 + 43  # 32 bytes, urlsafe base64
    import hashlib

    assert digest(secret) == hashlib.sha256(secret.encode()).hexdigest()


async def test_last_used_is_written_at_most_once_a_minute(tmp_path: Path) -> None:
    now = [1_000_000.0]
    accounts = AccountsDB(tmp_path / DB_FILE, clock=lambda: now[0])
    try:
        auth = Authenticator("boot", accounts, hasher=CountingHasher())
        secret = new_secret("fst_")
        accounts.add_token("id1", "ci", digest(secret), "editor", ("dev",), "admin", None)
        principal = await auth.authenticate(f"Bearer {secret}")
        assert principal == Principal("token:ci", "editor", ("dev",), "token", "id1")
        first = accounts.get_token("id1")
        assert first is not None and first.last_used_ms == 1_000_000_000
        now[0] += 59
        await auth.authenticate(f"Bearer {secret}")
        again = accounts.get_token("id1")
        assert again is not None and again.last_used_ms == 1_000_000_000
        now[0] += 1
        await auth.authenticate(f"Bearer {secret}")
        later = accounts.get_token("id1")
        assert later is not None and later.last_used_ms == 1_000_060_000
        accounts.add_token("id2", "old", digest("fst_x"), "admin", None, "admin",
                           int(now[0] * 1000))
        assert await auth.authenticate("Bearer fst_x") is None  # expired at this instant
        assert await auth.authenticate("Bearer boot") == Principal(
            "token:bootstrap", "admin", None, "bootstrap", "bootstrap")
        for header in (None, "", "Bearer", "Basic boot", "Bearer fst_nope", "Bearer fss_nope"):
            assert await auth.authenticate(header) is None
    finally:
        accounts.close()


@pytest.mark.parametrize(("creator", "role", "envs", "refused"), [
    (Principal("v", "viewer", None, "token"), "viewer", None, False),
    (Principal("v", "viewer", None, "token"), "editor", None, True),
    (Principal("e", "editor", ("dev",), "token"), "editor", ("dev",), False),
    (Principal("e", "editor", ("dev",), "token"), "editor", ("dev", "prod"), True),
    (Principal("e", "editor", ("dev",), "token"), "editor", None, True),
    (Principal("e", "editor", ("dev",), "token"), "admin", None, True),
    (Principal("e", "editor", None, "token"), "editor", ("prod",), False),
    (Principal("a", "admin", None, "session"), "admin", None, False),
])
def test_a_token_gets_no_more_rights_than_its_creator(
        creator: Principal, role: str, envs: tuple[str, ...] | None, refused: bool) -> None:
    assert (exceeds(creator, role, envs) is not None) == refused  # type: ignore[arg-type]
