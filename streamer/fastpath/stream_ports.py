"""What a stream actor needs from the rest of the worker, as the actor sees it.

The worker's :class:`~streamer.environments.directory.Directory`,
:class:`~streamer.environments.env_actor.EnvActor`
and :class:`~streamer.fastpath.stream_gate.StreamGate` implement these; tests pass fakes. The gate
is part of the directory's seam (a constructor argument of the directory), not an optional
attribute: a worker without admission control passes a gate with no limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from bus.envelope import EnvironmentInfo
from streamer.fastpath.http_head import StreamKind
from streamer.fastpath.stream_conn import StreamConn
from streamer.fastpath.stream_gate import Refusal

T = TypeVar("T")


class EnvLink(Protocol):
    """An environment actor, as the stream it serves sees it."""

    env_key: str

    async def attach(self, conn: StreamConn) -> None: ...

    def detach_nowait(self, conn: StreamConn) -> None: ...


class StreamAdmission(Protocol):
    """The stream gate, as a stream sees it: asked before it attaches, told when it ends."""

    def enter(self, conn: StreamConn, credential: str, address: str,
              env: str) -> Refusal | None: ...

    def leave(self, conn: StreamConn) -> None: ...


class StreamDirectory(Protocol):
    """The worker's directory, as a stream actor sees it."""

    @property
    def loaded(self) -> bool: ...

    @property
    def gate(self) -> StreamAdmission: ...

    async def wait_loaded(self) -> None: ...

    def stream_target(self, credential: str) -> EnvLink | None: ...

    async def await_known(self, find: Callable[[], T | None]) -> T | None: ...

    def client_stream_target(
        self, kind: StreamKind, credential: str
    ) -> tuple[EnvLink, EnvironmentInfo] | None: ...
