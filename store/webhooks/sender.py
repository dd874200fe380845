"""The one place a webhook request meets the network (httpx, which runs on trio via anyio).

One attempt is one POST with the whole attempt bounded by ``request_timeout_s`` (connect,
send, answer), no redirect followed (a 3xx is a failed attempt: the admin registered this
URL, not wherever it points), no proxy or ``.netrc`` from the environment, and at most
``max_response_bytes`` of the answer read (reading stops at the network read that reaches
it, itself at most 64 KiB; the rest is dropped with the connection).
Every httpx error becomes an :class:`Outcome` with a one-line reason (STYLE 9: translated
once, here); ``trio.Cancelled`` passes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import httpx
import trio

from store.webhooks.policy import WebhookPolicy

USER_AGENT = "flagstream-webhooks/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got: an HTTP status, or why there was none."""

    http_status: int | None
    error: str | None = None


class Sender(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome: ...


class HttpSender:
    """:class:`Sender` over one ``httpx.AsyncClient`` (one connection: one request at a
    time per webhook)."""

    def __init__(self, client: httpx.AsyncClient, policy: WebhookPolicy) -> None:
        self._client = client
        self._policy = policy

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        timeout = self._policy.request_timeout_s
        with trio.move_on_after(timeout):
            try:
                async with self._client.stream("POST", url, content=body,
                                               headers=dict(headers)) as resp:
                    await _read_at_most(resp, self._policy.max_response_bytes)
                    return Outcome(resp.status_code)
            except httpx.TimeoutException:
                pass
            except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                return Outcome(None, _reason(exc))
        return Outcome(None, f"no answer within {timeout:g} s")


async def _read_at_most(resp: httpx.Response, limit: int) -> None:
    got = 0
    async for chunk in resp.aiter_raw():
        got += len(chunk)
        if got >= limit:
            return  # closing the stream drops the rest with the connection


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@asynccontextmanager
async def open_http_sender(policy: WebhookPolicy) -> AsyncIterator[Sender]:
    """An :class:`HttpSender` whose client is closed when the block ends."""
    timeout = httpx.Timeout(policy.request_timeout_s)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False,
                                 trust_env=False,
                                 headers={"User-Agent": USER_AGENT}) as client:
        yield HttpSender(client, policy)
