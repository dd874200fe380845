"""A minimal sse-starlette server on uvicorn: what a Python developer would write.

One `asyncio.Queue` per client, an `EventSourceResponse` fed by an async generator, a
broadcast that puts each message into every queue. Contract: `loadtest/baselines/__init__.py`.

    python3 -m loadtest.baselines.starlette_sse [--host 0.0.0.0] [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

clients: set[asyncio.Queue[str]] = set()


async def stream(request: Request) -> EventSourceResponse:
    queue: asyncio.Queue[str] = asyncio.Queue()
    clients.add(queue)

    async def events() -> AsyncIterator[dict[str, Any]]:
        try:
            yield {"event": "put", "data": "{}"}
            while True:
                yield {"event": "patch", "data": await queue.get()}
        finally:
            clients.discard(queue)

    return EventSourceResponse(events(), ping=20)


app = Starlette(routes=[Route("/{path:path}", stream)])


_pending = bytearray()


def _on_stdin() -> None:
    chunk = os.read(sys.stdin.fileno(), 65536)
    if not chunk:
        asyncio.get_running_loop().stop()
        return
    _pending.extend(chunk)
    while (nl := _pending.find(b"\n")) >= 0:
        data = _pending[:nl].decode()
        del _pending[: nl + 1]
        for queue in clients:
            queue.put_nowait(data)


async def _serve(sock: socket.socket) -> None:
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), _on_stdin)
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=4096,
                            timeout_keep_alive=3600)
    await uvicorn.Server(config).serve(sockets=[sock])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(4096)
    print(f"listening {sock.getsockname()[1]}", flush=True)
    asyncio.run(_serve(sock))


if __name__ == "__main__":
    main()
