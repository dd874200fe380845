"""A lean SSE load client: many raw non-blocking TCP streams in one process, driven by epoll.

Theory of operation
-------------------
One process holds up to ~15k streams (the per-process fd cap is 20,000). There is no framework
and no task per connection: one `select.epoll` loop owns every socket, the control pipe (stdin)
and the timers. Level-triggered epoll keeps the loop simple: a socket that still has bytes after
one `recv` is reported again on the next `poll`. The bytes go through the pure stages of
`loadtest.lean_wire` (head, de-chunking, SSE events, markers).

Connections are opened at a bounded concurrency (a connection is "in flight" from `connect()`
until its first `put` event arrives), round-robin over destination addresses 127.0.0.x so each
destination gets its own ephemeral ports (the runners give each at most 60 % of the half of
the range that `connect()` searches first: `rounds.destination_count`), and round-robin
over request paths (one `/all` path, or many `/eval/...` paths with different contexts). Every
socket has `SO_LINGER 0`, so closing it sends RST and leaves no TIME_WAIT behind between runs.

Each `patch` event carries a marker the writer embedded in the flag (`fsmark:<seq>:<t0>:…`, t0 =
`time.monotonic_ns()` in the writer just before its write); the client records
`monotonic_ns() - t0`. CLOCK_MONOTONIC is one clock for every process on a host, so the
difference is a true cross-process latency.

Two extra behaviours serve the failure scenarios:
* reconnect (opt-in per connect command): a stream that drops is reopened after the SDKs'
  jittered exponential backoff, or after the server's `Retry-After` when it answered 503; the
  time from a marked instant (`storm_mark`) to each fresh `put` is recorded;
* stalled streams (`"read": false`): connected with a tiny receive buffer, the request sent, then
  never read; `check_stalled` later drains them to learn whether the server has closed them.

Control protocol: JSON lines on stdin, JSON lines on stdout (see `Client._on_command` and
loadtest/README.md). The process exits by itself at its hard time limit, on stdin EOF, or on
`{"cmd": "close"}`.
"""

from __future__ import annotations

import argparse
import errno
import gc
import heapq
import os
import random
import select
import socket
import struct
import sys
import time
from typing import Any

import orjson

from loadtest.lean_wire import (
    DECODERS,
    HeadParser,
    ProtocolError,
    StreamDecoder,
    build_request,
    find_mark,
    mark_value,
    reconnect_delay,
    retry_after_s,
)
from streamer.fastpath import sse as shared_sse


def retry_after_summary(seen: list[float]) -> dict[str, Any]:
    """How many answers carried a Retry-After, their range, and how many distinct values."""
    return {"count": len(seen), "min": min(seen, default=None), "max": max(seen, default=None),
            "distinct": len(set(seen))}


def measure_decode(kind: str, *, events: int = 50_000, connections: int = 1000) -> float:
    """CPU µs per event of the decode path alone, on realistic one-chunk patch frames."""
    flag = {
        "key": "bench-flag", "version": 7, "on": True, "salt": "x", "deleted": False,
        "variations": [mark_value(7, time.monotonic_ns(), s) for s in "ab"],
        "offVariation": 1, "fallthrough": {"variation": 0}, "targets": [], "rules": [],
        "prerequisites": [], "clientSide": False, "trackEvents": False,
    }  # fmt: skip
    frame = shared_sse.event_chunk(
        "patch", orjson.dumps({"path": "/flags/bench-flag", "data": flag})
    )
    decs = [DECODERS[kind](chunked=True) for _ in range(connections)]
    t0 = time.process_time_ns()
    for i in range(events):  # as the clients read: the one-pass mark first, else the decoder
        dec = decs[i % connections]
        if dec.patch_mark(frame) is None:
            for name, data in dec.feed(frame):
                if name == b"patch":
                    find_mark(data)
    return (time.process_time_ns() - t0) / events / 1000


_CONNECTING, _HEAD, _STREAM = 1, 2, 3
_LINGER0 = struct.pack("ii", 1, 0)
_RECV = 65536
_MAX_ROUNDS_KEPT = 64
_EPOLL_BATCH = 1024
_SMALL_BATCH = 64  # a poll that returns fewer ready sockets than this waits for company
_STALLED_RCVBUF = 1024  # the kernel doubles it and applies its minimum (~2.3 KB)


class _Conn:
    __slots__ = ("addr", "attempt", "base_s", "decoder", "got_put", "head", "initial",
                 "last_seq", "request", "retry_after", "sock", "state")  # fmt: skip

    def __init__(self, sock: socket.socket, addr: str, request: bytes, *, initial: bool) -> None:
        self.sock = sock
        self.addr = addr
        self.request = request
        self.initial = initial  # counted in the connect phase (not a reconnection)
        self.state = _CONNECTING
        self.head: HeadParser | None = HeadParser()
        self.decoder: StreamDecoder | None = None
        self.got_put = False
        self.last_seq = -1
        self.attempt = 0  # failed reconnect attempts in a row
        self.retry_after: float | None = None
        self.base_s: float | None = None  # backoff base from the stream's retry: (as SDKs do)


class _Round:
    __slots__ = ("cpu0", "deadline", "events0", "lat", "seq", "waiting")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.lat: list[int] = []
        self.waiting = False
        self.deadline = 0.0
        self.cpu0 = 0
        self.events0 = 0


class Client:
    """The epoll loop. Not thread-safe; one per process."""

    def __init__(self, *, time_limit_s: float, decoder: str = "fast",
                 coalesce_s: float = 0.0) -> None:
        self._decoder_cls = DECODERS[decoder]
        self._coalesce_s = coalesce_s
        self._ep = select.epoll()
        self._conns: dict[int, _Conn] = {}
        self._stalled: dict[int, socket.socket] = {}
        self._draining: dict[str, float] = {}  # while check_stalled runs: deadline and counts
        self._hard_deadline = time.monotonic() + time_limit_s
        self._stdin_fd = sys.stdin.fileno()
        os.set_blocking(self._stdin_fd, False)
        self._ep.register(self._stdin_fd, select.EPOLLIN)
        self._cmd_buf = b""
        self._out = sys.stdout.buffer
        self._running = True
        self._rng = random.Random()
        # connect phase
        self._connecting = False
        self._to_start = 0
        self._inflight = 0
        self._started = 0
        self._addresses: list[str] = []
        self._port = 0
        self._requests: list[bytes] = []
        self._read = True
        self._concurrency = 256
        self._connect_deadline = 0.0
        self._phase_t0 = 0
        self._phase_target = 0
        self._phase_failed = 0
        self._phase_put = 0
        self._phase_ra0 = 0  # retry_after_seen's length when the connect phase began
        self._errors: dict[str, int] = {}
        # reconnects: a heap of (due monotonic s, tiebreak, addr, request, attempt)
        self._reconnect: dict[str, float] | None = None
        # (due, tiebreak, address, request, attempt, backoff base from a retry: field)
        self._pending: list[tuple[float, int, str, bytes, int, float | None]] = []
        self._tiebreak = 0
        self.reconnects = 0
        self.retry_after_seen: list[float] = []
        self._storm_since = 0
        self._recovered: list[int] = []
        self._await_live: tuple[int, float] | None = None  # (target, deadline)
        # streaming
        self.live = 0  # connections that have their `put`
        self.closed_by_peer = 0
        self.events = 0
        self.patches = 0
        self.unmarked_patches = 0
        self.duplicates = 0
        self._rounds: dict[int, _Round] = {}

    # -- control ---------------------------------------------------------------------------
    def _emit(self, obj: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(obj) + b"\n")
        self._out.flush()

    def _read_commands(self) -> None:
        try:
            data = os.read(self._stdin_fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self._running = False
            return
        self._cmd_buf += data
        while b"\n" in self._cmd_buf:
            line, _, self._cmd_buf = self._cmd_buf.partition(b"\n")
            if line.strip():
                try:
                    self._on_command(orjson.loads(line))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    self._emit({"ev": "error", "message": f"bad command: {exc!r}"})

    def _on_command(self, cmd: dict[str, Any]) -> None:
        """Commands: connect, expect, stats, storm_mark, await_live, check_stalled, close.
        Each answers with one JSON line (expect and await_live when they complete)."""
        kind = cmd["cmd"]
        if kind == "connect":
            self._begin_connect(cmd)
        elif kind == "expect":
            rnd = self._round(int(cmd["seq"]))
            rnd.waiting = True
            rnd.deadline = time.monotonic() + float(cmd.get("timeout_s", 20.0))
            rnd.cpu0 = time.process_time_ns()
            rnd.events0 = self.events
        elif kind == "stats":
            self._emit({"ev": "stats", **self._stats()})
        elif kind == "storm_mark":
            self._storm_since = int(cmd["t_ns"])
            self._recovered = []
            self._emit({"ev": "storm_marked"})
        elif kind == "await_live":  # answers once n streams have a fresh put since the mark
            self._await_live = (int(cmd["n"]), time.monotonic() + float(cmd["timeout_s"]))
        elif kind == "check_stalled":
            self._begin_drain(float(cmd.get("timeout_s", 10.0)))
        elif kind == "close":
            self._close_all()
            self._emit({"ev": "bye", **self._stats()})
            self._running = False
        else:
            self._emit({"ev": "error", "message": f"unknown command {kind!r}"})

    def _stats(self) -> dict[str, Any]:
        return {
            "live": self.live, "open": len(self._conns), "stalled": len(self._stalled),
            "closed_by_peer": self.closed_by_peer, "events": self.events,
            "patches": self.patches, "unmarked_patches": self.unmarked_patches,
            "duplicates": self.duplicates, "reconnects": self.reconnects,
            "pending_reconnects": len(self._pending), "cpu_ns": time.process_time_ns(),
            "errors": dict(self._errors),
        }  # fmt: skip

    def _round(self, seq: int) -> _Round:
        rnd = self._rounds.get(seq)
        if rnd is None:
            rnd = self._rounds[seq] = _Round(seq)
            if len(self._rounds) > _MAX_ROUNDS_KEPT:  # bounded: drop the oldest idle round
                for old in sorted(self._rounds):
                    if not self._rounds[old].waiting:
                        del self._rounds[old]
                        break
        return rnd

    # -- connect phase ---------------------------------------------------------------------
    def _begin_connect(self, cmd: dict[str, Any]) -> None:
        self._addresses = list(cmd["addresses"])
        self._port = int(cmd["port"])
        headers = {str(k): str(v) for k, v in dict(cmd.get("headers", {})).items()}
        paths = [str(p) for p in cmd.get("paths") or [cmd.get("path", "/all")]]
        self._requests = [build_request(p, self._addresses[0], headers) for p in paths]
        self._read = bool(cmd.get("read", True))
        if "reconnect" in cmd:  # kept across connect commands unless given again
            rec = cmd["reconnect"]
            self._reconnect = {k: float(v) for k, v in dict(rec).items()} if rec else None
        self._concurrency = int(cmd.get("concurrency", 256))
        self._to_start = int(cmd["n"])
        self._connect_deadline = time.monotonic() + float(cmd.get("timeout_s", 120.0))
        self._phase_t0 = time.monotonic_ns()
        self._phase_target = self._to_start
        self._phase_failed = 0
        self._phase_put = 0
        self._phase_ra0 = len(self.retry_after_seen)
        self._connecting = True

    def _fail(self, reason: str) -> None:
        self._errors[reason] = self._errors.get(reason, 0) + 1

    def _open(self, addr: str, request: bytes, *, initial: bool) -> _Conn | None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            self._fail(errno.errorcode.get(exc.errno or 0, "socket"))
            return None
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
        if initial and not self._read:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _STALLED_RCVBUF)
        err = sock.connect_ex((addr, self._port))
        if err not in (0, errno.EINPROGRESS):
            self._fail(errno.errorcode.get(err, str(err)))
            sock.close()
            return None
        conn = _Conn(sock, addr, request, initial=initial)
        self._conns[sock.fileno()] = conn
        self._ep.register(sock.fileno(), select.EPOLLOUT)
        return conn

    def _start_connects(self) -> None:
        budget = self._concurrency  # bounded per loop turn
        while self._to_start > 0 and self._inflight < self._concurrency and budget > 0:
            budget -= 1
            self._to_start -= 1
            i = self._started
            self._started += 1
            addr = self._addresses[i % len(self._addresses)]
            request = self._requests[i % len(self._requests)]
            if self._open(addr, request, initial=True) is None:
                self._phase_failed += 1
            else:
                self._inflight += 1

    def _start_reconnects(self, now: float) -> None:
        budget = self._concurrency
        while self._pending and self._pending[0][0] <= now and budget > 0:
            budget -= 1
            _, _, addr, request, attempt, base_s = heapq.heappop(self._pending)
            self.reconnects += 1
            conn = self._open(addr, request, initial=False)
            if conn is None:
                self._schedule(addr, request, attempt + 1, None, now, base_s)
            else:
                conn.attempt = attempt
                conn.base_s = base_s

    def _schedule(
        self, addr: str, request: bytes, attempt: int, retry_after: float | None, now: float,
        base_s: float | None = None,
    ) -> None:
        rec = self._reconnect
        assert rec is not None
        if retry_after is not None:  # the server's hint, plus our own jitter on top
            delay = retry_after + rec.get("jitter", 0.5) * self._rng.random()
        else:
            base = base_s if base_s is not None else rec.get("base_s", 1.0)
            delay = reconnect_delay(attempt, self._rng.random(), base_s=base,
                                    max_s=rec.get("max_s", 30.0), jitter=rec.get("jitter", 0.5))
        self._tiebreak += 1
        heapq.heappush(self._pending,
                       (now + delay, self._tiebreak, addr, request, attempt, base_s))

    def _drop(self, fd: int, conn: _Conn, reason: str | None) -> None:
        del self._conns[fd]
        self._ep.unregister(fd)
        conn.sock.close()
        if conn.got_put:
            self.live -= 1
            if reason is not None:
                self.closed_by_peer += 1
                self._fail("stream_" + reason)
        elif conn.initial:
            self._inflight -= 1
            self._phase_failed += 1
            self._fail(reason or "closed")
        else:
            self._fail("reconnect_" + (reason or "closed"))
        if self._reconnect is not None and self._running and (conn.got_put or not conn.initial):
            attempt = 0 if conn.got_put else conn.attempt + 1
            retry_ms = conn.decoder.retry_ms if conn.decoder is not None else None
            base_s = retry_ms / 1000 if retry_ms is not None else conn.base_s
            self._schedule(conn.addr, conn.request, attempt, conn.retry_after, time.monotonic(),
                           base_s)

    def _on_writable(self, fd: int, conn: _Conn) -> None:
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop(fd, conn, errno.errorcode.get(err, str(err)))
            return
        try:
            sent = conn.sock.send(conn.request)
        except OSError as exc:
            self._drop(fd, conn, errno.errorcode.get(exc.errno or 0, "send"))
            return
        if sent != len(conn.request):  # a fresh socket's send buffer takes a ~200 B request
            self._drop(fd, conn, "short_send")
            return
        if conn.initial and not self._read:  # a stalled stream: held, never read again
            del self._conns[fd]
            self._ep.unregister(fd)
            self._stalled[fd] = conn.sock
            self._inflight -= 1
            self._phase_put += 1
            return
        conn.state = _HEAD
        self._ep.modify(fd, select.EPOLLIN)

    def _finish_connect_phase(self, now: float) -> None:
        done = self._to_start == 0 and self._inflight == 0
        if not done and now < self._connect_deadline:
            return
        timed_out = 0
        for fd, conn in list(self._conns.items()):
            if conn.initial and not conn.got_put:  # deadline passed: give up on stragglers
                self._drop(fd, conn, "timeout")
                timed_out += 1
        self._to_start = 0
        self._connecting = False
        elapsed = (time.monotonic_ns() - self._phase_t0) / 1e9
        self._emit({
            "ev": "connected", "requested": self._phase_target, "connected": self._phase_put,
            "failed": self._phase_failed, "timed_out": timed_out, "live": self.live,
            "stalled": len(self._stalled), "elapsed_s": elapsed,
            "rate_per_s": self._phase_put / elapsed if elapsed > 0 else 0.0,
            "errors": dict(self._errors),
            "retry_after": retry_after_summary(self.retry_after_seen[self._phase_ra0:]),
        })  # fmt: skip
        gc.freeze()  # the connection graph is long-lived: keep it out of every later GC pass

    def _begin_drain(self, timeout_s: float) -> None:
        """Start reading every stalled socket; `_drain_turn` answers once all have ended or at
        the deadline. A server that gave up on a stalled client closed it with its backlog
        still queued, so the end (FIN or RST) only arrives after that backlog is read."""
        for fd in self._stalled:
            self._ep.register(fd, select.EPOLLIN)
        self._draining = {"deadline": time.monotonic() + timeout_s, "closed": 0, "bytes": 0}

    def _drain_one(self, fd: int) -> None:
        sock = self._stalled[fd]
        ended = False
        try:
            data = sock.recv(_RECV)
            self._draining["bytes"] += len(data)
            ended = not data
        except BlockingIOError:
            return
        except OSError:
            ended = True
        if ended:
            self._draining["closed"] += 1
            del self._stalled[fd]
            self._ep.unregister(fd)
            sock.close()

    def _drain_turn(self, now: float) -> None:
        d = self._draining
        if self._stalled and now < d["deadline"]:
            return
        self._draining = {}
        self._emit({"ev": "stalled", "closed_by_server": int(d["closed"]),
                    "still_open": len(self._stalled), "drained_bytes": int(d["bytes"])})

    # -- data path -------------------------------------------------------------------------
    def _on_readable(self, fd: int, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError as exc:
            self._drop(fd, conn, errno.errorcode.get(exc.errno or 0, "recv"))
            return
        if not data:
            self._drop(fd, conn, "eof")
            return
        now_ns = time.monotonic_ns()
        if conn.state == _STREAM:
            assert conn.decoder is not None
            mark = conn.decoder.patch_mark(data)
            if mark is not None:  # the fan-out's shape: one whole marked patch
                self.events += 1
                self.patches += 1
                self._on_mark(conn, mark, now_ns)
                return
        try:
            if conn.state == _HEAD:
                assert conn.head is not None
                head = conn.head.feed(data)
                if head is None:
                    return
                if head.status != 200:
                    conn.retry_after = retry_after_s(head)
                    if conn.retry_after is not None:
                        self.retry_after_seen.append(conn.retry_after)
                    self._drop(fd, conn, f"http_{head.status}")
                    return
                conn.state = _STREAM
                conn.head = None
                conn.decoder = self._decoder_cls(chunked=head.chunked)
                data = head.rest
                if not data:
                    return
            self._on_body(conn, data, now_ns)
        except ProtocolError as exc:
            self._drop(fd, conn, "protocol_" + exc.reason)

    def _on_body(self, conn: _Conn, data: bytes, now_ns: int) -> None:
        assert conn.decoder is not None
        for name, payload in conn.decoder.feed(data):
            self.events += 1
            if name == b"patch":
                self.patches += 1
                mark = find_mark(payload)
                if mark is None:
                    self.unmarked_patches += 1
                else:
                    self._on_mark(conn, mark, now_ns)
            elif name == b"put" and not conn.got_put:
                conn.got_put = True
                conn.attempt = 0
                self.live += 1
                if conn.initial:
                    self._inflight -= 1
                    self._phase_put += 1
                elif self._storm_since:
                    self._recovered.append(now_ns - self._storm_since)

    def _on_mark(self, conn: _Conn, mark: tuple[int, int], now_ns: int) -> None:
        seq, t0 = mark
        if seq <= conn.last_seq:
            self.duplicates += 1
            return
        conn.last_seq = seq
        self._round(seq).lat.append(now_ns - t0)

    def _check_rounds(self, now: float) -> None:
        for rnd in list(self._rounds.values()):
            if rnd.waiting and (len(rnd.lat) >= self.live or now >= rnd.deadline):
                rnd.waiting = False
                self._emit({
                    "ev": "round", "seq": rnd.seq, "expected": self.live,
                    "received": len(rnd.lat), "complete": len(rnd.lat) >= self.live,
                    "cpu_ns": time.process_time_ns() - rnd.cpu0,
                    "events": self.events - rnd.events0, "lat_ns": rnd.lat,
                })  # fmt: skip

    def _check_await_live(self, now: float) -> None:
        assert self._await_live is not None
        target, deadline = self._await_live  # target: fresh puts since the storm mark
        if len(self._recovered) < target and now < deadline:
            return
        self._await_live = None
        self._emit({
            "ev": "live", "target": target, "live": self.live,
            "reached": len(self._recovered) >= target,
            "recovered_ns": self._recovered, "reconnects": self.reconnects,
            "pending_reconnects": len(self._pending), "errors": dict(self._errors),
            "retry_after": retry_after_summary(self.retry_after_seen),
        })  # fmt: skip

    def _close_all(self) -> None:
        for fd, conn in list(self._conns.items()):
            self._ep.unregister(fd)
            conn.sock.close()  # SO_LINGER 0: RST, no TIME_WAIT
        for fd, sock in self._stalled.items():
            if self._draining:
                self._ep.unregister(fd)
            sock.close()
        self._conns.clear()
        self._stalled.clear()
        self._pending.clear()
        self.live = 0

    # -- loop ------------------------------------------------------------------------------
    def run(self) -> int:
        conns = self._conns
        while self._running:
            now = time.monotonic()
            if now >= self._hard_deadline:
                self._close_all()
                self._emit({"ev": "time_limit"})
                return 3
            if self._connecting:
                self._start_connects()
            if self._pending:
                self._start_reconnects(now)
            ready = self._ep.poll(0.05, _EPOLL_BATCH)
            if 0 < len(ready) < _SMALL_BATCH and self._coalesce_s and not self._connecting:
                # Few sockets ready: let more arrive before paying for a loop turn. On shared
                # cores every wake-up of the load generator also takes CPU from the server;
                # one short pause per turn turns a trickle into batches (adds ≤ coalesce_s).
                time.sleep(self._coalesce_s)
                ready = self._ep.poll(0, _EPOLL_BATCH)
            for fd, _mask in ready:
                conn = conns.get(fd)
                if conn is None:
                    if fd == self._stdin_fd:
                        self._read_commands()
                    elif fd in self._stalled and self._draining:
                        self._drain_one(fd)
                    continue
                if conn.state == _CONNECTING:
                    self._on_writable(fd, conn)
                else:
                    self._on_readable(fd, conn)
            now = time.monotonic()
            if self._connecting:
                self._finish_connect_phase(now)
            if self._rounds:
                self._check_rounds(now)
            if self._await_live is not None:
                self._check_await_live(now)
            if self._draining:
                self._drain_turn(now)
        self._close_all()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--time-limit", type=float, default=600.0, help="hard exit after S s")
    parser.add_argument("--decoder", choices=sorted(DECODERS), default="fast")
    parser.add_argument("--coalesce-ms", type=float, default=0.0,
                        help="when few sockets are ready, wait this long for more (0: never)")
    parser.add_argument(
        "--measure-decode", action="store_true", help="print the decode CPU per event and exit"
    )
    args = parser.parse_args(argv)
    if args.measure_decode:
        for kind in sorted(DECODERS):
            print(f"{kind}: {measure_decode(kind):.2f} µs CPU per patch event (decode only)")
        return 0
    gc.set_threshold(100_000, 50, 100)  # the load generator must not pause for GC mid-round
    client = Client(time_limit_s=args.time_limit, decoder=args.decoder,
                    coalesce_s=args.coalesce_ms / 1000)
    profile_to = os.environ.get("LEAN_CLIENT_PROFILE")  # a path: write a cProfile of the run
    if profile_to:
        import cProfile

        with cProfile.Profile() as prof:
            rc = client.run()
        prof.dump_stats(profile_to)
        return rc
    return client.run()


if __name__ == "__main__":
    sys.exit(main())
