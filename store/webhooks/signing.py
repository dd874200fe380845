"""Webhook signatures: ``X-Flagstream-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The MAC covers ``"<t>." + body`` under the webhook's secret, so a receiver knows the body
came from this node (only it and the receiver hold the secret) and when it was signed; a
receiver refuses a signature older than its tolerance (5 minutes is the documented default),
which bounds how long a captured request can be replayed. Retries of one delivery carry the
same body (and ``deliveryId``) with a fresh ``t``, so a receiver de-duplicates by
``deliveryId``, never by signature.

Pure: no IO, no clock (``now`` is an argument), no trio. :func:`verify_signature` is what a
receiver written in Python runs; the README shows the same steps for any language.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Flagstream-Signature"
DEFAULT_TOLERANCE_S = 300
SCHEME = "v1"
_MAX_HEADER = 1024  # a longer header is refused unread


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"


def parse_header(header: str) -> tuple[int, list[str]] | None:
    """``(t, [v1 signatures])``, or None when the header is not a well-formed signature.
    Unknown schemes are skipped, so a later ``v2`` can be sent beside ``v1``."""
    if len(header) > _MAX_HEADER:
        return None
    timestamp: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if name == "t":
            if not value.isascii() or not value.isdigit() or timestamp is not None:
                return None
            timestamp = int(value)
        elif name == SCHEME:
            sigs.append(value)
    if timestamp is None or not sigs:
        return None
    return timestamp, sigs


def verify_signature(secret: str, header: str, body: bytes, now: float,
                     tolerance: float = DEFAULT_TOLERANCE_S) -> bool:
    """True when ``header`` signs exactly ``body`` under ``secret`` and its timestamp is
    within ``tolerance`` seconds of ``now`` (either side: clocks drift). Every comparison of
    a MAC is constant-time."""
    parsed = parse_header(header)
    if parsed is None:
        return False
    timestamp, sigs = parsed
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).encode()
    # compare against every v1 given (no early exit on the first match's position)
    matches = [hmac.compare_digest(expected, s.encode()) for s in sigs if s.isascii()]
    return any(matches)
