"""The supervisor's held listening sockets (node/supervisor.py ``HeldListeners``): kept
open across an immediate restart, closed while a crash loop backs off, on a real worker slot
whose "worker" is a tiny process that says it is ready, checks its sockets, and exits."""

from __future__ import annotations

import errno
import socket
import sys

import trio

from node.supervisor import HeldListeners, WorkerSupervisor

# A stand-in worker: prints the readiness line if both inherited fds are listening sockets
# (SO_ACCEPTCONN), then exits after a moment, so the supervisor restarts it.
FAKE_WORKER = r"""
import json, socket, sys, time
fds = [int(sys.argv[sys.argv.index(o) + 1]) for o in ("--stream-fd", "--sdk-fd")]
socks = [socket.socket(fileno=fd) for fd in fds]
ok = all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in socks)
for s in socks:
    s.detach()
try:
    print(json.dumps({"event": "ready" if ok else "bad fds"}), flush=True)
    time.sleep(0.3)
except BrokenPipeError:  # the supervisor stopped reading: it is shutting down
    pass
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connect_errno(port: int) -> int:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port))


def test_open_is_idempotent_and_close_frees_the_port() -> None:
    held = HeldListeners(("127.0.0.1", _free_port()), ("127.0.0.1", _free_port()))
    first = held.open()
    assert held.open() == first and held.is_open
    assert _connect_errno(held.stream[1]) == 0  # queued by the kernel: nobody accepts yet
    held.close()
    assert not held.is_open
    assert _connect_errno(held.stream[1]) == errno.ECONNREFUSED


async def test_kept_across_an_immediate_restart_and_closed_during_backoff() -> None:
    held = HeldListeners(("127.0.0.1", _free_port()), ("127.0.0.1", _free_port()))
    sup = WorkerSupervisor(0, [sys.executable, "-c", FAKE_WORKER], held)
    port = held.stream[1]
    seen: list[tuple[int, int]] = []  # (restarts, connect errno) sampled every 20 ms
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with trio.fail_after(20):
            while sup.restarts < 2:  # first restart at once, the second after 1 s of backoff
                seen.append((sup.restarts, _connect_errno(port)))
                await trio.sleep(0.02)
        await sup.terminate(1.0)  # and run() returns: the nursery ends by itself
    assert {e for r, e in seen if r == 0} == {0}  # first worker and the gap after it: queued
    assert errno.ECONNREFUSED in {e for r, e in seen if r == 1}  # closed while backing off
    assert not held.is_open  # and closed at shutdown
