"""What a webhook is allowed and how its deliveries are paced: the pure rules.

No IO and no clock: the delivery actor passes ``now`` and the random draw in.

Backoff: a failed delivery is retried after ``uniform(0, min(cap, base * 2**(attempt-1)))``
seconds ("full jitter": receivers that came back after an outage are not hit by every node
at once). With the defaults, 1 s doubling to 5 min.

Giving up: a webhook whose current change has been failing for ``give_up_after_s`` (24 h by
default, counted on the wall clock from the first failed attempt and kept in the database,
so a restart does not reset it) is disabled (``enabled: false``, ``state: "disabled"``,
``lastError`` says why). Its cursor stays where it is: re-enabling it (PATCH
``{"enabled": true}``) delivers every change it missed, in order, from that change on.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

MAX_URL_LENGTH = 2048
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
MAX_FILTER_ITEMS = 100  # environments or kinds a webhook lists


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """The bounds of webhook delivery (tests shorten the times)."""

    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    give_up_after_s: float = 86_400.0
    request_timeout_s: float = 10.0  # one attempt, connect to last byte read
    max_response_bytes: int = 4096  # read of a receiver's answer; the rest is dropped
    deliveries_kept: int = 100  # per webhook: older delivery records are deleted
    max_webhooks: int = 50  # one more is refused with 409
    batch: int = 100  # history rows read per query
    idle_poll_s: float = 30.0  # a webhook with nothing to do re-reads the history this often
    restart_delay_s: float = 5.0  # a delivery actor that failed starts again after this


def backoff_delay(attempt: int, draw: float, policy: WebhookPolicy) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based); ``draw`` is a
    uniform random number in [0, 1] (1.0 gives the upper bound of the schedule)."""
    exponent = min(max(attempt - 1, 0), 62)
    ceiling = min(policy.backoff_cap_s, policy.backoff_base_s * 2.0**exponent)
    return ceiling * min(max(draw, 0.0), 1.0)


def gives_up(failing_since_ms: int | None, now_ms: int, policy: WebhookPolicy) -> bool:
    """Whether a webhook failing since ``failing_since_ms`` has failed for too long."""
    return failing_since_ms is not None and now_ms - failing_since_ms >= \
        policy.give_up_after_s * 1000


def is_success(status: int | None) -> bool:
    """Only a 2xx answer delivers (a redirect is not followed and counts as a failure)."""
    return status is not None and 200 <= status < 300


def matches(environments: Sequence[str] | None, kinds: Sequence[str] | None,
            env: str, kind: str) -> bool:
    """Whether a change of ``kind`` in ``env`` goes to a webhook with these filters (None:
    every environment, every kind)."""
    return (environments is None or env in environments) and (kinds is None or kind in kinds)


def url_problem(url: object) -> str | None:
    """Why ``url`` cannot be a webhook's target, or None when it can."""
    if not isinstance(url, str) or not url:
        return "url: required string"
    if len(url) > MAX_URL_LENGTH:
        return f"url: at most {MAX_URL_LENGTH} characters"
    if not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        return "url: must be ASCII without spaces (percent-encode other characters)"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"url: {exc}"
    if parts.scheme not in ("http", "https"):
        return "url: only http:// and https:// URLs can receive webhooks"
    if not parts.hostname:
        return "url: a host is required"
    if parts.username is not None or parts.password is not None:
        return "url: credentials in the URL are not allowed (sign with the secret instead)"
    if parts.fragment:
        return "url: a fragment (#...) is never sent; leave it out"
    if port == 0:
        return "url: port 0 cannot be called"
    return None


def secret_problem(secret: object) -> str | None:
    """Why ``secret`` cannot sign a webhook's deliveries, or None when it can."""
    if not isinstance(secret, str):
        return "secret: expected a string"
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        return f"secret: {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters"
    if not secret.isascii() or not secret.isprintable():
        return "secret: printable ASCII only"
    return None
