"""hypercorn as flagstream runs it on the SDK and admin listeners.

Two of hypercorn's own manners are corrected here, once, for every process that serves with it:

- **Its log.** Given no logger, hypercorn adds a stderr handler of its own to
  ``hypercorn.error`` and lets the records propagate too, so each of its lines came out twice,
  once in its format and once in ours; and it logs ``Running on http://...`` once per socket
  per process (the same SDK address once per worker). The node prints one ``listening`` line
  per listener itself (:mod:`node.supervisor`), so :func:`base_config` hands hypercorn
  the ``flagstream.http`` logger, which drops those lines and passes the rest to our handlers.
- **Its status lines.** hypercorn builds h11 responses without a reason phrase, so they went
  out as ``HTTP/1.1 503 \\r\\n``. The phrase is optional (RFC 9112 §4) but clients, proxies and
  people reading a capture show it; every status line flagstream writes itself carries it.
  :func:`install_reason_phrases` wraps the one method through which hypercorn's HTTP/1.1
  protocol sends its events (``H11Protocol._send_h11_event``, Hypercorn 0.18.0 as pinned in
  constraints.txt) to fill in ``HTTPStatus(code).phrase`` where none is set.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import h11
from hypercorn.config import Config
from hypercorn.protocol.h11 import H11Protocol

HTTP_LOG = logging.getLogger("flagstream.http")


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of ``status``; b"" for a code without one."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def with_reason(event: Any) -> Any:
    """``event`` with its status's reason phrase if it is a response that has none."""
    if isinstance(event, (h11.Response, h11.InformationalResponse)) and not event.reason:
        return type(event)(headers=event.headers, status_code=event.status_code,
                           http_version=event.http_version, reason=reason_phrase(
                               event.status_code))
    return event


_installed = False


def install_reason_phrases() -> None:
    """Make hypercorn's HTTP/1.1 status lines carry their reason phrase (idempotent)."""
    global _installed
    if _installed:
        return
    send: Callable[[H11Protocol, Any], Awaitable[None]] = H11Protocol._send_h11_event

    async def send_with_reason(self: H11Protocol, event: Any) -> None:
        await send(self, with_reason(event))

    H11Protocol._send_h11_event = send_with_reason  # type: ignore[method-assign]
    _installed = True


class _NoRunningOn(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Running on ")


if not any(isinstance(f, _NoRunningOn) for f in HTTP_LOG.filters):
    HTTP_LOG.addFilter(_NoRunningOn())


def base_config(*, graceful_timeout_s: float) -> Config:
    """A hypercorn config with no access log, errors to ``flagstream.http`` and reason
    phrases on every status line."""
    install_reason_phrases()
    config = Config()
    config.accesslog = None
    config.errorlog = HTTP_LOG
    config.graceful_timeout = graceful_timeout_s
    return config
