"""Webhook test helpers: a store on port 0, and a tiny HTTP receiver (trio + h11 on a
loopback port).

It records every request and answers the status ``respond(n)`` gives for the n-th request
(0-based). ``stop()`` closes the listener, so connections are refused until ``serve`` runs
again on the same port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import h11
import httpx
import orjson
import trio

from store.service import StoreConfig, run_store
from store.webhooks.policy import WebhookPolicy


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def doc(self) -> dict[str, object]:
        value: dict[str, object] = orjson.loads(self.body)
        return value


class Receiver:
    def __init__(self, respond: Callable[[int], int] = lambda n: 200) -> None:
        self.respond = respond
        self.received: list[Received] = []
        self.port = 0
        self._scope: trio.CancelScope | None = None
        self.arrived = trio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx."""
        return [r for r in self.received if 200 <= r.status < 300]

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started()
            await trio.serve_listeners(self._handle, listeners)

    def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        head: h11.Request | None = None
        body = b""
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
            assert head is not None
            status = self.respond(len(self.received))
            headers = {k.decode().lower(): v.decode() for k, v in head.headers}
            self.received.append(Received(headers, body, status))
            self.arrived.set()
            self.arrived = trio.Event()
            await stream.send_all(conn.send(h11.Response(
                status_code=status, headers=[("content-length", "2"),
                                             ("connection", "close")])))
            await stream.send_all(conn.send(h11.Data(data=b"ok")))
            await stream.send_all(conn.send(h11.EndOfMessage()))
        except (trio.BrokenResourceError, h11.RemoteProtocolError):
            pass
        finally:
            await stream.aclose()


FLAG = {"variations": [True, False], "on": True, "fallthrough": {"variation": 0},
        "offVariation": 1}
FAST = WebhookPolicy(backoff_base_s=0.01, backoff_cap_s=0.05, idle_poll_s=600.0)
AUTH = {"Authorization": "Bearer t"}


def config(tmp_path: Path, policy: WebhookPolicy = FAST) -> StoreConfig:
    return StoreConfig(data_dir=tmp_path / "data", admin_bind=("127.0.0.1", 0),
                       admin_token="t", bus_address=f"ipc://{tmp_path}/bus",
                       snapshot_address=f"ipc://{tmp_path}/snap", heartbeat_interval_s=0.2,
                       insights=False, webhooks=policy)


@asynccontextmanager
async def store(tmp_path: Path, policy: WebhookPolicy = FAST
                ) -> AsyncIterator[httpx.AsyncClient]:
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(run_store, config(tmp_path, policy))
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", headers=AUTH) as c:
            yield c
        nursery.cancel_scope.cancel()
