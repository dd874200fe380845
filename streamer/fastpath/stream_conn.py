"""The record of one attached stream, shared by its stream actor and its environment actor.

Theory of operation
-------------------
A :class:`StreamConn` is the only thing the two actors share, and it works like a channel:

* :attr:`ConnState.FAST`: the environment actor may ``send()`` directly.
* :attr:`ConnState.SLOW`: a send would have blocked. The environment actor stores the unsent
  remainder and later frames in ``conn.mailbox`` (bounded, coalescing, see
  :class:`~streamer.fastpath.mailbox.Mailbox`) and cancels ``conn.wait``, the scope the stream actor
  sleeps in; the stream actor drains the mailbox as the socket becomes writable and sets FAST
  again once it is empty, so the stream's order is kept.
* :attr:`ConnState.CLOSED`: set by the stream actor on exit; the environment actor drops the
  record lazily.

The fan-out loop compares ``conn.state`` once per stream per change, so the states are
compared by identity (``is``) against members bound to module-level names: an enum member
costs no more there than the integers it replaced (docs/BENCHMARKS.md, 2026-12-02).
"""

from __future__ import annotations

import enum
import socket

import trio

from flagmodel import Context
from streamer.clientside.client_groups import GroupKey
from streamer.fastpath.http_head import STREAM_RESPONSE_HEAD, StreamKind
from streamer.fastpath.mailbox import Mailbox


class ConnState(enum.Enum):
    FAST = 0
    SLOW = 1
    CLOSED = 2


FAST = ConnState.FAST
SLOW = ConnState.SLOW
CLOSED = ConnState.CLOSED


class StreamConn:
    """One attached SSE stream, shared by its stream actor and environment actor."""

    __slots__ = ("close_reason", "env_key", "kind", "mailbox", "scope", "sock", "state", "wait")

    def __init__(
        self, sock: socket.socket, kind: StreamKind, env_key: str, mailbox: Mailbox
    ) -> None:
        self.sock = sock
        self.kind = kind
        self.env_key = env_key
        self.mailbox = mailbox
        self.state = FAST
        self.wait: trio.CancelScope | None = None  # the scope the stream actor waits in
        self.scope: trio.CancelScope | None = None  # the whole stream's, with max_age only
        self.close_reason: str | None = None

    def closing(self) -> bool:
        """Asked to close (a call, so a type checker does not narrow it across an await)."""
        return self.close_reason is not None

    def enter_slow(self) -> None:
        self.state = SLOW
        if self.wait is not None:
            self.wait.cancel()

    def request_close(self, reason: str) -> None:
        """Ask the stream actor to end the connection (called by the environment actor).

        The stream actor checks ``close_reason`` before and after each wait; cancelling the
        wait it is in (``wait``: idle, or the slow path's) wakes it at once.
        """
        if self.close_reason is None:
            self.close_reason = reason
        if self.scope is not None:
            self.scope.cancel()
        if self.wait is not None:
            self.wait.cancel()


class ClientSideConn(StreamConn):
    """An attached client-side stream (browser or mobile SDK): its own response head (CORS)
    and its context group."""

    __slots__ = ("context", "group", "head")

    def __init__(self, sock: socket.socket, kind: StreamKind, env_key: str, mailbox: Mailbox,
                 *, head: bytes = STREAM_RESPONSE_HEAD, group: GroupKey | None = None,
                 context: Context | None = None) -> None:
        super().__init__(sock, kind, env_key, mailbox)
        self.head = head
        self.group = group  # None: a ping stream
        self.context = context
