"""The pure rules of webhooks (store/webhooks/policy.py): backoff, give-up, URLs, filters."""

from __future__ import annotations

import pytest

from store.webhooks.policy import (
    MAX_URL_LENGTH,
    WebhookPolicy,
    backoff_delay,
    gives_up,
    is_success,
    matches,
    secret_problem,
    url_problem,
)

POLICY = WebhookPolicy()


@pytest.mark.parametrize(("attempt", "draw", "delay"), [
    (1, 1.0, 1.0), (2, 1.0, 2.0), (3, 1.0, 4.0), (4, 1.0, 8.0), (9, 1.0, 256.0),
    (10, 1.0, 300.0), (11, 1.0, 300.0), (10_000, 1.0, 300.0),  # capped at 5 min
    (4, 0.5, 4.0), (4, 0.0, 0.0), (10, 0.25, 75.0),  # full jitter: uniform below the cap
    (0, 1.0, 1.0), (3, 7.0, 4.0), (3, -1.0, 0.0),  # out-of-range inputs are clamped
])
def test_backoff_is_full_jitter_doubling_from_1s_to_5min(attempt: int, draw: float,
                                                          delay: float) -> None:
    assert backoff_delay(attempt, draw, POLICY) == delay


def test_give_up_after_24_hours_of_failing() -> None:
    day_ms = 86_400_000
    assert not gives_up(None, day_ms * 5, POLICY)
    assert not gives_up(1000, 1000 + day_ms - 1, POLICY)
    assert gives_up(1000, 1000 + day_ms, POLICY)


@pytest.mark.parametrize(("status", "ok"), [
    (200, True), (202, True), (204, True), (299, True), (None, False), (199, False),
    (301, False), (302, False), (400, False), (500, False), (503, False)])
def test_only_2xx_delivers(status: int | None, ok: bool) -> None:
    assert is_success(status) is ok


@pytest.mark.parametrize(("envs", "kinds", "env", "kind", "hit"), [
    (None, None, "prod", "flags", True),
    (["prod"], None, "prod", "environment", True),
    (["prod"], None, "test", "flags", False),
    (None, ["segments"], "prod", "flags", False),
    (["prod", "test"], ["flags", "import"], "test", "import", True),
])
def test_filters(envs: list[str] | None, kinds: list[str] | None, env: str, kind: str,
                 hit: bool) -> None:
    assert matches(envs, kinds, env, kind) is hit


@pytest.mark.parametrize(("url", "problem"), [
    ("https://hooks.example.com/flagstream", None),
    ("http://127.0.0.1:9000/x?a=1", None),
    ("http://[::1]:8080/", None),
    ("ftp://example.com/", "only http:// and https://"),
    ("file:///etc/passwd", "only http:// and https://"),
    ("javascript:alert(1)", "only http:// and https://"),
    ("https://", "a host is required"),
    ("https:///path", "a host is required"),
    ("https://user:pw@example.com/", "credentials in the URL"),
    ("https://example.com/#frag", "fragment"),
    ("https://example.com:99999/", "url: Port out of range"),
    ("https://example.com:0/", "port 0"),
    ("https://exa mple.com/", "ASCII without spaces"),
    ("https://exämple.com/", "ASCII without spaces"),
    ("https://example.com/\n", "ASCII without spaces"),
    ("https://example.com/" + "a" * MAX_URL_LENGTH, f"at most {MAX_URL_LENGTH} characters"),
    ("", "required string"),
    (42, "required string"),
    (None, "required string"),
])
def test_url_validation(url: object, problem: str | None) -> None:
    got = url_problem(url)
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got


@pytest.mark.parametrize(("secret", "ok"), [
    ("x" * 16, True), ("x" * 256, True), ("x" * 15, False), ("x" * 257, False),
    ("ünïcode-secret-123", False), ("tab\tinside-secret", False), (123, False)])
def test_secret_validation(secret: object, ok: bool) -> None:
    assert (secret_problem(secret) is None) is ok
