"""The floor: a raw epoll SSE server whose fan-out is one loop of non-blocking `send()` calls.

This is the cheapest way Python can put one pre-encoded frame on N loopback sockets (docs/research/
fanout.md: about 9 µs per client, nearly all kernel time); flagstream's fan-out time is reported
as a ratio to it. Several processes share the port with `SO_REUSEPORT`, as flagstream's workers
do. Contract: `loadtest/baselines/__init__.py` (stdin lines are published by every process).

    python3 -m loadtest.baselines.raw_floor [--host 0.0.0.0] [--port 0]

A send that would block is counted (`blocked`) and the frame is dropped for that client: a
floor has no slow path. Stats go to stderr at exit.
"""

from __future__ import annotations

import argparse
import gc
import os
import select
import socket
import sys

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def chunk_event(event: bytes, data: bytes) -> bytes:
    frame = b"event: %s\ndata: %s\n\n" % (event, data)
    return b"%x\r\n%s\r\n" % (len(frame), frame)


def serve(listener: socket.socket) -> None:
    ep = select.epoll()
    lfd, sfd = listener.fileno(), sys.stdin.fileno()
    ep.register(lfd, select.EPOLLIN)
    ep.register(sfd, select.EPOLLIN)
    pending: dict[int, tuple[socket.socket, bytes]] = {}  # request head not complete yet
    streams: dict[int, socket.socket] = {}
    put = HEAD + chunk_event(b"put", b"{}")
    stdin_buf = b""
    blocked = sent = 0
    while True:
        for fd, _ in ep.poll(1.0):
            if fd == lfd:
                for _ in range(256):
                    try:
                        conn, _addr = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    pending[conn.fileno()] = (conn, b"")
                    ep.register(conn.fileno(), select.EPOLLIN)
            elif fd == sfd:
                data = os.read(sfd, 65536)
                if not data:
                    print(f"raw_floor: sent {sent}, blocked {blocked}", file=sys.stderr)
                    return
                stdin_buf += data
                while b"\n" in stdin_buf:
                    line, _, stdin_buf = stdin_buf.partition(b"\n")
                    frame = chunk_event(b"patch", line)
                    for s in streams.values():  # the floor: one loop, one syscall per client
                        try:
                            if s.send(frame) == len(frame):
                                sent += 1
                                continue
                        except (BlockingIOError, OSError):
                            pass
                        blocked += 1
            elif fd in pending:
                conn, buf = pending[fd]
                try:
                    data = conn.recv(16384)
                except OSError:
                    data = b""
                if not data:
                    ep.unregister(fd)
                    del pending[fd]
                    conn.close()
                    continue
                buf += data
                if b"\r\n\r\n" not in buf:
                    pending[fd] = (conn, buf)
                    continue
                del pending[fd]
                conn.send(put)
                streams[fd] = conn
            else:  # a held stream is readable: the client left (or sent junk)
                held = streams.get(fd)
                if held is None:
                    continue
                try:
                    data = held.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    ep.unregister(fd)
                    del streams[fd]
                    held.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind after a crash
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((args.host, args.port))
    listener.listen(4096)
    listener.setblocking(False)
    print(f"listening {listener.getsockname()[1]}", flush=True)
    gc.disable()  # nothing here makes cycles; a floor must not pause
    serve(listener)


if __name__ == "__main__":
    main()
