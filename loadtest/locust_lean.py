"""The lean Locust user's engine: many raw SSE sockets read in one loop inside a gevent greenlet.

Theory of operation
-------------------
Locust runs on gevent, and one greenlet per stream costs 18-31 µs of CPU per received event
(docs/research/fanout.md). A :class:`StreamSet` instead owns thousands of plain (unpatched) non-
blocking sockets and one real ``epoll`` (taken from before gevent's monkey-patching, which hides
it), and drains ready sockets in a tight loop through `loadtest.lean_wire` (about 2-3 µs per
event of Python). Latencies are handed back in batches: one call per loop turn, not per event.

The owning greenlet polls that epoll without blocking and, when little or nothing is ready,
sleeps in gevent for ``coalesce_s`` (2 ms) before looking again, so the rest of Locust keeps
running and one loop turn serves many sockets (on shared cores each wake-up also takes CPU
from the server under test). After about 0.1 s with nothing at all it naps ``idle_nap_s``
(10 ms) instead: an idle worker wakes 100 times a second, and only the first events of a
change can wait that long, since the loop stays awake through the rest of it.

It does not wait on the epoll fd through gevent. That nests an epoll of thousands of sockets
inside libev's, and every ``EPOLL_CTL_ADD`` of an epoll fd makes the kernel walk the whole
nested set to check for loops; gevent adds the fd again on every wait, so at 12,500 streams a
worker spent about 4 ms of kernel time per wait, 88-96 ms of CPU per second with no event
arriving (perf and strace, 2026-12-01). Nor does the loop run on its own thread: with more
Locust processes than cores, every hand-over of the GIL between it and the gevent hub waited
for a scheduler slice, and the connect rate fell to tens per second.

Connections open at a bounded concurrency, round-robin over destination addresses; a stream
that drops is reopened after the SDKs' jittered backoff (`lean_wire.reconnect_delay`).
"""

from __future__ import annotations

import errno
import random
import struct
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent import monkey

from loadtest.lean_wire import (
    DECODERS,
    HeadParser,
    ProtocolError,
    StreamDecoder,
    build_request,
    find_mark,
    reconnect_delay,
)

_socket_mod: Any = monkey.get_original("socket", ["socket"])[0]
_epoll: Any = monkey.get_original("select", ["epoll"])[0]
_EPOLLIN, _EPOLLOUT = 0x001, 0x004
_LINGER0 = struct.pack("ii", 1, 0)
_SOL_SOCKET, _SO_LINGER, _SO_ERROR = 1, 13, 4


class _Stream:
    __slots__ = ("addr", "attempt", "decoder", "got_put", "head", "last_seq", "sent", "sock")

    def __init__(self, sock: Any, addr: str) -> None:
        self.sock = sock
        self.addr = addr
        self.head: HeadParser | None = HeadParser()
        self.decoder: StreamDecoder | None = None
        self.got_put = False
        self.last_seq = 0  # seq 0 marks the flag's initial value, not a change
        self.attempt = 0
        self.sent = False  # the request is out; from now on only readability matters

    def deliver(self, mark: tuple[int, int], now_ns: int, out: list[tuple[int, int]]) -> None:
        """Add (seq, latency µs) to `out`, unless this stream already had this change or a
        newer one."""
        seq, t0 = mark
        if seq > self.last_seq:
            self.last_seq = seq
            out.append((seq, (now_ns - t0) // 1000))


Deliveries = Callable[[list[tuple[int, int]]], None]  # [(seq, latency µs), ...]


class StreamSet:
    """`n` streams to `port` on `addresses`; call :meth:`run` from one greenlet."""

    IDLE_POLLS = 50  # empty polls in a row (about 0.1 s) before the loop naps for idle_nap_s

    def __init__(self, *, n: int, addresses: list[str], port: int, path: str,
                 headers: dict[str, str], on_deliveries: Deliveries,
                 clock: Callable[[], int] = time.monotonic_ns, concurrency: int = 128,
                 decoder: str = "fast", coalesce_s: float = 0.002,
                 idle_nap_s: float = 0.01) -> None:
        self.n = n
        self.addresses = addresses
        self.port = port
        self.request = build_request(path, addresses[0], headers)
        self.on_deliveries = on_deliveries
        self.clock = clock
        self.concurrency = concurrency
        self.coalesce_s = coalesce_s
        self.idle_nap_s = idle_nap_s
        self.decoder_cls = DECODERS[decoder]
        self.ep = _epoll()
        self.streams: dict[int, _Stream] = {}
        self.pending: list[tuple[float, str, int]] = []  # (due, addr, attempt)
        self.started = 0
        self.live = 0
        self.errors: dict[str, int] = {}
        self.running = True

    def _fail(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def _open(self, addr: str, attempt: int) -> None:
        sock = _socket_mod(2, 1)  # AF_INET, SOCK_STREAM
        sock.setblocking(False)
        sock.setsockopt(_SOL_SOCKET, _SO_LINGER, _LINGER0)
        err = sock.connect_ex((addr, self.port))
        if err not in (0, errno.EINPROGRESS):
            self._fail(errno.errorcode.get(err, str(err)))
            sock.close()
            self._later(addr, attempt + 1)
            return
        st = _Stream(sock, addr)
        st.attempt = attempt
        self.streams[sock.fileno()] = st
        self.ep.register(sock.fileno(), _EPOLLOUT)

    def _later(self, addr: str, attempt: int) -> None:
        due = time.monotonic() + reconnect_delay(attempt, random.random())
        self.pending.append((due, addr, attempt))

    def _drop(self, fd: int, st: _Stream, reason: str) -> None:
        del self.streams[fd]
        self.ep.unregister(fd)
        st.sock.close()
        self._fail(reason)
        if st.got_put:
            self.live -= 1
        if self.running:
            self._later(st.addr, 0 if st.got_put else st.attempt + 1)

    def _inflight(self) -> int:
        return len(self.streams) - self.live

    def _start(self) -> None:
        now = time.monotonic()
        due = [p for p in self.pending if p[0] <= now]
        if due:
            self.pending = [p for p in self.pending if p[0] > now]
        for _, addr, attempt in due:
            self._open(addr, attempt)
        while self.started < self.n and self._inflight() < self.concurrency:
            addr = self.addresses[self.started % len(self.addresses)]
            self.started += 1
            self._open(addr, 0)

    def _on_event(self, fd: int, st: _Stream, out: list[tuple[int, int]]) -> None:
        try:
            data = st.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._drop(fd, st, errno.errorcode.get(exc.errno or 0, "recv"))
            return
        if not data:
            self._drop(fd, st, "eof")
            return
        now = self.clock()
        if st.decoder is not None:
            mark = st.decoder.patch_mark(data)
            if mark is not None:  # the fan-out's shape: one whole marked patch
                st.deliver(mark, now, out)
                return
        try:
            if st.decoder is None:
                assert st.head is not None
                head = st.head.feed(data)
                if head is None:
                    return
                if head.status != 200:
                    self._drop(fd, st, f"http_{head.status}")
                    return
                st.head = None
                st.decoder = self.decoder_cls(chunked=head.chunked)
                data = head.rest
            for name, payload in st.decoder.feed(data) if data else ():
                if name == b"patch":
                    mark = find_mark(payload)
                    if mark is not None:
                        st.deliver(mark, now, out)
                elif name == b"put" and not st.got_put:
                    st.got_put = True
                    st.attempt = 0
                    self.live += 1
        except ProtocolError as exc:
            self._drop(fd, st, "protocol_" + exc.reason)

    def _on_writable(self, fd: int, st: _Stream) -> None:
        err = st.sock.getsockopt(_SOL_SOCKET, _SO_ERROR)
        if err:
            self._drop(fd, st, errno.errorcode.get(err, str(err)))
            return
        try:
            st.sock.send(self.request)
        except OSError as exc:
            self._drop(fd, st, errno.errorcode.get(exc.errno or 0, "send"))
            return
        st.sent = True
        self.ep.modify(fd, _EPOLLIN)

    def run(self) -> None:
        """Until :meth:`stop`: poll the epoll, drain what is ready, sleep in gevent when idle."""
        streams, ep = self.streams, self.ep
        nap = self.coalesce_s or 0.002
        empty = 0  # polls in a row that found nothing
        while self.running:
            self._start()
            ready = ep.poll(0, 1024)
            empty = 0 if ready else empty + 1
            if not ready or (len(ready) < 64 and self.coalesce_s and self.started >= self.n):
                # nothing, or a trickle: wait for company (lean_client); quiet for a while:
                # wake less often (a first event waits at most idle_nap_s, the rest none)
                gevent.sleep(self.idle_nap_s if empty > self.IDLE_POLLS else nap)
                if self._stopped():
                    break  # stopped meanwhile: the epoll is closed
                ready = ep.poll(0, 1024)
            out: list[tuple[int, int]] = []
            for fd, _mask in ready:
                st = streams.get(fd)
                if st is None:
                    continue
                if not st.sent:
                    self._on_writable(fd, st)
                else:
                    self._on_event(fd, st, out)
            if out:
                self.on_deliveries(out)
            if ready:
                gevent.idle()  # busy: let the hub poll its I/O and timers (sleep(0) would not)

    def _stopped(self) -> bool:
        return not self.running  # a call, so a type checker does not narrow across the sleep

    def stop(self) -> None:
        self.running = False
        for fd, st in list(self.streams.items()):
            self.ep.unregister(fd)
            st.sock.close()
        self.streams.clear()
        self.live = 0
        self.ep.close()
