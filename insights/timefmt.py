"""Timestamps as the admin API (its insights routes included) shows and reads them (pure).

It lives in `insights` because the insights routes use it and `store` may import `insights`
(the store process serves those routes), not the other way round: the arrow test
(tests/test_import_graph.py) holds both to that.

The store keeps milliseconds since the Unix epoch; people read ISO-8601 in UTC with
milliseconds (``2026-12-02T13:00:00.123Z``). Query parameters accept either form.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant ISO-8601 years hold


def iso_from_ms(ms: int) -> str:
    """``ms`` since the epoch as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    at = datetime.fromtimestamp(ms / 1000, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ms_from_text(text: str) -> int:
    """Milliseconds since the epoch from ``text``: digits are milliseconds, anything else an
    ISO-8601 date or date-time (without a zone offset it is UTC). ValueError if neither."""
    if text.isdigit():
        ms = int(text)
    else:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"expected milliseconds or an ISO-8601 time, got {text[:64]!r}") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        ms = (at - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"time out of range: {text[:64]!r}")
    return ms
