"""Containment: the failure of one actor, request or evaluation ends that one only.

Theory of operation
-------------------
Every client actor, environment actor, context-group evaluation and HTTP handler runs inside
a boundary (:meth:`Failures.contain`, or :func:`install_http_boundary` for a Quart app). An
exception that reaches a boundary is handled by its type:

* not an :class:`Exception` (``trio.Cancelled``, ``KeyboardInterrupt``, ``SystemExit``, or a
  ``BaseExceptionGroup`` holding one of them): passed on untouched. Cancellation is how trio
  ends work on purpose (drain, shutdown); swallowing it would leave the worker hanging.
* :class:`InputError`: the client sent something it must fix. Its answer is a 400 with the
  message (:func:`answer_for`).
* any other :class:`Exception`: a server fault. The request gets a 503 with ``Retry-After``, or,
  when its answer had already started, its stream is closed (an SDK reconnects); what else
  ends is the boundary's own business (an environment actor restarts, an evaluation's group
  closes its connections: see :mod:`streamer.environments.env_actor`).

Either way the failure is counted under ``(actor, reason)`` (``reason``: the exception's type
name), which ``flagstream_actor_failures_total{actor,reason}`` exposes, and logged **once per
episode**: the first failure of a kind logs one line with its traceback, the repeats are only
counted. An episode of a kind ends when ``quiet_s`` pass without a failure of that kind; the
next one then logs again, with the number of repeats the previous episode counted.

The table of kinds is bounded (``max_kinds``); overflow policy: a new kind past the bound is
counted under ``(actor, "other")``. The actor names are a fixed set (:data:`ACTORS`).

This module is shared by the streamer and the store (``store`` never imports ``streamer``),
and reads no clock of its own beyond the one it is given, so tests run it on trio's mock clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final

from quart import Quart, Response, request

log = logging.getLogger("flagstream.containment")

ACTORS: Final = ("client", "environment", "evaluation", "http", "scheduler", "webhook",
                  "writer")
QUIET_S = 60.0  # an episode ends after this long without a failure of its kind
MAX_KINDS = 64
OVERFLOW_REASON = "other"
RETRY_AFTER_S = 5
SERVER_FAULT = "the server failed to answer this request; try again"


class InputError(ValueError):
    """Input the client must fix; the message goes into a 400 answer."""


def failure_reason(exc: BaseException) -> str:
    """The exception's type name; a group of one is named after what it holds."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return type(exc).__name__


def answer_for(exc: Exception) -> tuple[int, str]:
    """The status and message a request that ended with ``exc`` gets, if none was sent."""
    if isinstance(exc, InputError):
        return 400, str(exc)
    return 503, SERVER_FAULT


class Contained:
    """One boundary (``with failures.contain(actor) as outcome:``): an :class:`Exception`
    ends the block, is recorded and is left in ``error``; anything else passes on. A class
    rather than a generator-based context manager: it runs once per accepted connection, and
    this costs a tenth of that."""

    __slots__ = ("_actor", "_failures", "_where", "error")

    def __init__(self, failures: Failures, actor: str, where: str) -> None:
        self._failures = failures
        self._actor = actor
        self._where = where
        self.error: Exception | None = None

    def __enter__(self) -> Contained:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if not isinstance(exc, Exception):
            return False  # no exception, or one that is not ours to stop (Cancelled...)
        self.error = exc
        failures = self._failures
        failures.record(self._actor, exc, failures.now(), self._where)
        return True


class Failures:
    """One process's failure counts by (actor, reason), and the once-per-episode log."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, quiet_s: float = QUIET_S,
                 max_kinds: int = MAX_KINDS, logger: logging.Logger = log) -> None:
        self._clock = clock
        self.quiet_s = quiet_s
        self.max_kinds = max_kinds
        self._log = logger
        self._counts: dict[tuple[str, str], int] = {}
        self._last: dict[tuple[str, str], float] = {}  # kind -> time of its latest failure
        self._repeats: dict[tuple[str, str], int] = {}  # kind -> unlogged failures this episode

    def now(self) -> float:
        return self._clock()

    def counts(self) -> dict[tuple[str, str], int]:
        return dict(self._counts)

    def record(self, actor: str, exc: Exception, now: float, where: str = "") -> bool:
        """Count ``exc``; log it if it opens an episode of its kind. True when logged."""
        kind = (actor, failure_reason(exc))
        if kind not in self._counts and len(self._counts) >= self.max_kinds:
            kind = (actor, OVERFLOW_REASON)
        self._counts[kind] = self._counts.get(kind, 0) + 1
        last = self._last.get(kind)
        self._last[kind] = now
        if last is not None and now - last < self.quiet_s:
            self._repeats[kind] = self._repeats.get(kind, 0) + 1
            return False
        repeats = self._repeats.pop(kind, 0)
        self._log.error("%s failed with %s%s%s; later failures of this kind are counted "
                        "until %.0f s pass without one", actor, kind[1],
                        f" on {where}" if where else "",
                        f" (the previous episode counted {repeats} more)" if repeats else "",
                        self.quiet_s, exc_info=exc)
        return True

    def contain(self, actor: str, where: str = "") -> Contained:
        """The boundary of one ``actor`` run: see :class:`Contained`."""
        return Contained(self, actor, where)


def install_http_boundary(app: Quart, failures: Failures,
                          render: Callable[[int, str], Response]) -> None:
    """Make ``app`` answer any exception its handlers leave (HTTP errors keep their own
    handler, which Quart prefers as the more specific one) as :func:`answer_for` says, with
    ``render(status, message)``; a 503 also carries ``Retry-After``."""

    @app.errorhandler(Exception)
    async def _contained(exc: Exception) -> Response:
        failures.record("http", exc, failures.now(), f"{request.method} {request.path}")
        status, message = answer_for(exc)
        response = render(status, message)
        if status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
