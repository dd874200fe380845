"""The snapshot server: nng Rep0 answering :class:`SnapshotRequest` with a :class:`Snapshot`.

Theory of operation
-------------------
A Rep0 context holds one request at a time, so ``serve_snapshots`` opens ``concurrency``
contexts on one socket, each served by its own task: that many workers can fetch at once and
the rest queue inside nng. Reading the store (SQLite) and encoding a large snapshot both
block, so each reply is built in a worker thread, at most ``concurrency`` at a time.

Every request gets exactly one reply: a snapshot re-stamped with this store's ``epoch``, or an
:class:`ErrorReply` saying what was wrong (garbage, a message that is not a request, an unknown
environment, a failing store). No input ends the server.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pynng
import trio

from bus.addresses import listen
from bus.envelope import EnvelopeError, ErrorReply, SnapshotRequest, decode, encode
from bus.store_ports import SnapshotSource

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
# Requests are a few bytes; anything much larger is garbage and nng drops it unread.
MAX_REQUEST_BYTES = 64 * 1024


async def serve_snapshots(
    address: str,
    source: SnapshotSource,
    *,
    epoch: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve snapshots from ``source`` at ``address`` until cancelled.

    ``task_status.started`` gets the address actually bound (tcp port 0 resolved).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    limiter = trio.CapacityLimiter(concurrency)
    sock = pynng.Rep0(recv_max_size=MAX_REQUEST_BYTES)
    try:
        bound = listen(sock, address)
        contexts = [sock.new_context() for _ in range(concurrency)]
        async with trio.open_nursery() as nursery:
            for ctx in contexts:
                nursery.start_soon(_serve_context, ctx, source, epoch, limiter)
            task_status.started(bound)
    finally:
        sock.close()


async def _serve_context(
    ctx: Any, source: SnapshotSource, epoch: str, limiter: trio.CapacityLimiter
) -> None:
    try:
        while True:
            raw = await ctx.arecv()
            reply = await trio.to_thread.run_sync(_answer, raw, source, epoch, limiter=limiter)
            try:
                await ctx.asend(reply)
            except pynng.NNGException as exc:
                # The requester went away (closed, timed out and re-sent): nothing to answer.
                log.debug("snapshot reply not delivered: %s", exc)
    finally:
        ctx.close()


def _answer(raw: bytes, source: SnapshotSource, epoch: str) -> bytes:
    """Build the encoded reply to one request (runs in a worker thread)."""
    try:
        request = decode(raw)
    except EnvelopeError as exc:
        return encode(ErrorReply(f"bad request: {exc}"))
    if not isinstance(request, SnapshotRequest):
        return encode(ErrorReply(f"expected a snapshot request, got {type(request).__name__}"))
    try:
        snapshot = source.snapshot(request.env)
    except LookupError:
        return encode(ErrorReply(f"unknown environment {request.env!r}"))
    except Exception as exc:  # a failing store must not end the server; report it instead
        log.exception("snapshot of %r failed", request.env)
        return encode(ErrorReply(f"snapshot failed: {exc}"))
    if request.env is not None and not any(e.env.key == request.env for e in snapshot.envs):
        return encode(ErrorReply(f"unknown environment {request.env!r}"))
    return encode(dataclasses.replace(snapshot, epoch=epoch))
