"""A lean SSE load client: many raw non-blocking TCP streams in one process, driven by epoll.

Theory of operation
-------------------
One process holds up to ~15k `GET /all` streams (the per-process fd cap is 20,000). There is no
framework and no task per connection: one `select.epoll` loop owns every socket, the control
pipe (stdin) and the timers. Level-triggered epoll keeps the loop simple: a socket that still
has bytes after one `recv` is reported again on the next `poll`.

Connections are opened at a bounded concurrency (a connection is "in flight" from `connect()`
until its first `put` event arrives), round-robin over destination addresses 127.0.0.x so each
destination gets its own ~28k ephemeral ports. Every socket has `SO_LINGER 0`, so closing it
sends RST and leaves no TIME_WAIT behind between runs.

Bytes flow through pure stages (below, no IO): response head, chunked de-framing, SSE event
splitting. Two decoders give the same (event, data) pairs: `FastDecoder`, specialised for the
one-chunk-per-event shape a fan-out writes (the default, about 2-3 µs per event), and
`SharedDecoder`, the project's full WHATWG decoder `streamer.sse` (about 2x the CPU; selectable
with `--decoder shared`, and the oracle the fast one is tested against).

Each `patch` event carries a marker the writer embedded in the flag's
variations (`fsmark:<seq>:<t0>:…`, t0 = `time.monotonic_ns()` in the writer just before its
write); the client records `monotonic_ns() - t0`. CLOCK_MONOTONIC is one clock for every
process on a host, so the difference is a true cross-process latency.

Control protocol: JSON lines on stdin, JSON lines on stdout (see `Client._on_command`). The
process exits by itself at its hard time limit, on stdin EOF, or on `{"cmd": "close"}`.
"""

from __future__ import annotations

import argparse
import errno
import gc
import os
import re
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from streamer import sse as shared_sse

# ---- pure wire pieces (no IO): response head, chunked de-framing, SSE events, marker ----------


class ProtocolError(ValueError):
    """The server's bytes are not what an SSE stream over HTTP/1.1 should be."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    headers: tuple[tuple[str, str], ...]  # names lower-cased
    chunked: bool
    rest: bytes  # body bytes that arrived with the head


def build_request(path: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HeadParser:
    """Accumulates a response head (bounded) and parses it once the blank line arrives."""

    __slots__ = ("_buf",)
    MAX_HEAD = 16 * 1024

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> ResponseHead | None:
        buf = self._buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.MAX_HEAD:
                raise ProtocolError("head_too_large")
            self._buf = buf
            return None
        lines = buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError("bad_status_line")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError("bad_header_line")
            headers.append((name.strip().lower(), value.strip()))
        chunked = any(n == "transfer-encoding" and "chunked" in v.lower() for n, v in headers)
        return ResponseHead(int(parts[1]), tuple(headers), chunked, buf[end + 4 :])


class Dechunker:
    """Turns an HTTP/1.1 chunked body fed in arbitrary pieces back into its bytes.

    The common case, one whole chunk per `recv`, takes a single fast branch.
    """

    __slots__ = ("_buf", "_crlf", "_remaining", "finished")
    MAX_SIZE_LINE = 1024

    def __init__(self) -> None:
        self._buf = b""  # an incomplete size line
        self._remaining = 0  # data bytes left in the current chunk
        self._crlf = 0  # CRLF bytes still expected after the chunk data
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        if not (self._buf or self._remaining or self._crlf or self.finished):
            nl = data.find(b"\r\n")
            if 0 < nl < 9:
                try:
                    size = int(data[:nl], 16)
                except ValueError:  # an extension or garbage: the slow path sorts it out
                    size = 0
                end = nl + 2 + size
                if size > 0 and len(data) == end + 2 and data[end:] == b"\r\n":
                    return data[nl + 2 : end]
        return self._feed_slow(data)

    def _feed_slow(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        self._buf = b""
        out: list[bytes] = []
        pos, n = 0, len(buf)
        while pos < n and not self.finished:
            if self._remaining:
                take = min(self._remaining, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._crlf = 2
            elif self._crlf:
                want = b"\r\n"[2 - self._crlf]
                if buf[pos] != want:
                    raise ProtocolError("missing_chunk_crlf")
                pos += 1
                self._crlf -= 1
            else:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    if n - pos > self.MAX_SIZE_LINE:
                        raise ProtocolError("chunk_size_line_too_long")
                    self._buf = buf[pos:]
                    break
                try:
                    size = int(buf[pos:nl].split(b";", 1)[0], 16)
                except ValueError:
                    raise ProtocolError("bad_chunk_size") from None
                if size < 0:
                    raise ProtocolError("bad_chunk_size")
                pos = nl + 2
                if size == 0:
                    self.finished = True  # end of body; trailers are ignored
                self._remaining = size
        return out[0] if len(out) == 1 else b"".join(out)


class EventSplitter:
    """Splits SSE text into event blocks (the lines before a blank line), input split anywhere.

    Line ends may be LF, CRLF or CR; CR-bearing input is normalised to LF. A CR at the very end
    of one piece ends its line at once; an LF starting the next piece is then the rest of that
    CRLF and is dropped.
    """

    __slots__ = ("_buf", "_skip_lf", "max_buffer")

    def __init__(self, max_buffer: int = 64 * 1024 * 1024) -> None:
        self._buf = b""
        self._skip_lf = False
        self.max_buffer = max_buffer

    def feed(self, data: bytes) -> list[bytes]:
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\r" in data:
            self._skip_lf = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + data if self._buf else data
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        if len(self._buf) > self.max_buffer:
            raise ProtocolError("event_too_large")
        return blocks


def parse_event(block: bytes) -> tuple[bytes, bytes] | None:
    """(event name, data) of one event block; None for a block with no data (comments).

    Fast branch for the shape every LaunchDarkly-style server writes: `event: X\\ndata: Y`.
    """
    if block.startswith(b"event: "):
        nl = block.find(b"\n")
        if nl > 0 and block.startswith(b"data: ", nl + 1) and block.find(b"\n", nl + 1) < 0:
            return block[7:nl], block[nl + 7 :]
    name = b"message"
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # empty or a ':' comment
            continue
        field, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if field == b"event":
            name = value
        elif field == b"data":
            data.append(value)
    if not data:
        return None
    return (name or b"message"), b"\n".join(data)


def one_event_chunk(data: bytes) -> tuple[bytes, bytes] | None:
    """(name, data) when `data` is exactly one chunk holding exactly one `event: X\\ndata: Y`
    event with LF line ends, else None (the caller then takes the general path)."""
    nl = data.find(b"\r\n", 0, 10)
    if nl <= 0:
        return None
    try:
        size = int(data[:nl], 16)
    except ValueError:
        return None
    start = nl + 2
    end = start + size
    if size < 16 or len(data) != end + 2 or not data.endswith(b"\r\n"):
        return None
    if not data.startswith(b"event: ", start):
        return None
    nl2 = data.find(b"\n", start, end)
    if nl2 < 0 or not data.startswith(b"data: ", nl2 + 1):
        return None
    if data.find(b"\n", nl2 + 1, end) != end - 2 or data[end - 1] != 0x0A:
        return None
    if data.find(b"\r", start, end) >= 0:
        return None
    return data[start + 7 : nl2], data[nl2 + 7 : end - 2]


_MARK = re.compile(rb"fsmark:(\d+):(\d+)")


def mark_value(seq: int, t0_ns: int, suffix: str) -> str:
    """The flag variation value a writer embeds so the client can time its delivery."""
    return f"fsmark:{seq}:{t0_ns}:{suffix}"


def find_mark(data: bytes) -> tuple[int, int] | None:
    """(seq, t0 in monotonic ns) from the first marker in a patch's data, if any."""
    m = _MARK.search(data)
    if m is None:
        return None
    return int(m[1]), int(m[2])


class StreamDecoder(Protocol):
    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]: ...


class FastDecoder:
    """Body bytes in, (event name, data) out: the lean path (see `measure_decode`)."""

    __slots__ = ("_dechunk", "_split")

    def __init__(self, *, chunked: bool) -> None:
        self._dechunk = Dechunker() if chunked else None
        self._split = EventSplitter()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        d, s = self._dechunk, self._split
        if d is not None:
            if not (d._buf or d._remaining or d._crlf or d.finished or s._buf or s._skip_lf):
                ev = one_event_chunk(data)  # the fan-out's shape: skip both stages
                if ev is not None:
                    return [ev]
            data = d.feed(data)
            if not data:
                return []
        out = []
        for block in s.feed(data):
            ev = parse_event(block)
            if ev is not None:
                out.append(ev)
        return out


class SharedDecoder:
    """The same contract on top of the project's full decoder, `streamer.sse`."""

    __slots__ = ("_dechunk", "_sse")

    def __init__(self, *, chunked: bool) -> None:
        self._dechunk = shared_sse.ChunkedDecoder() if chunked else None
        self._sse = shared_sse.SSEDecoder()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        if self._dechunk is not None:
            try:
                data = self._dechunk.feed(data)
            except shared_sse.FramingError as exc:
                raise ProtocolError("chunked") from exc
        try:
            items = self._sse.feed(data)
        except shared_sse.FramingError as exc:
            raise ProtocolError("sse") from exc
        return [
            (it.event.encode(), it.data.encode())
            for it in items
            if isinstance(it, shared_sse.SSEEvent)
        ]


DECODERS: dict[str, type[FastDecoder] | type[SharedDecoder]] = {
    "fast": FastDecoder,
    "shared": SharedDecoder,
}


def measure_decode(kind: str, *, events: int = 50_000, connections: int = 1000) -> float:
    """CPU µs per event of the decode path alone, on realistic one-chunk patch frames."""
    flag = {
        "key": "bench-flag",
        "version": 7,
        "on": True,
        "salt": "x",
        "deleted": False,
        "variations": [mark_value(7, time.monotonic_ns(), s) for s in "ab"],
        "offVariation": 1,
        "fallthrough": {"variation": 0},
        "targets": [],
        "rules": [],
        "prerequisites": [],
        "clientSide": False,
        "trackEvents": False,
    }
    frame = shared_sse.event_chunk(
        "patch", orjson.dumps({"path": "/flags/bench-flag", "data": flag})
    )
    decs = [DECODERS[kind](chunked=True) for _ in range(connections)]
    t0 = time.process_time_ns()
    for i in range(events):
        for name, data in decs[i % connections].feed(frame):
            if name == b"patch":
                find_mark(data)
    return (time.process_time_ns() - t0) / events / 1000


# ---- the epoll client ---------------------------------------------------------------------

_CONNECTING, _HEAD, _STREAM = 1, 2, 3
_LINGER0 = struct.pack("ii", 1, 0)
_RECV = 65536
_MAX_ROUNDS_KEPT = 64
_EPOLL_BATCH = 1024


class _Conn:
    __slots__ = ("decoder", "got_put", "head", "last_seq", "sock", "state")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.state = _CONNECTING
        self.head: HeadParser | None = HeadParser()
        self.decoder: StreamDecoder | None = None
        self.got_put = False
        self.last_seq = -1


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

    def __init__(self, *, time_limit_s: float, decoder: str = "fast") -> None:
        self._decoder_cls = DECODERS[decoder]
        self._ep = select.epoll()
        self._conns: dict[int, _Conn] = {}
        self._hard_deadline = time.monotonic() + time_limit_s
        self._stdin_fd = sys.stdin.fileno()
        os.set_blocking(self._stdin_fd, False)
        self._ep.register(self._stdin_fd, select.EPOLLIN)
        self._cmd_buf = b""
        self._out = sys.stdout.buffer
        self._running = True
        # connect phase
        self._connecting = False
        self._to_start = 0
        self._inflight = 0
        self._started = 0
        self._addresses: list[str] = []
        self._port = 0
        self._request = b""
        self._concurrency = 256
        self._connect_deadline = 0.0
        self._phase_t0 = 0
        self._phase_target = 0
        self._phase_failed = 0
        self._phase_put = 0
        self._errors: dict[str, int] = {}
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
        """Commands: connect, expect, stats, close. Each answers with one JSON line."""
        kind = cmd["cmd"]
        if kind == "connect":
            self._begin_connect(cmd)
        elif kind == "expect":
            seq = int(cmd["seq"])
            rnd = self._round(seq)
            rnd.waiting = True
            rnd.deadline = time.monotonic() + float(cmd.get("timeout_s", 20.0))
            rnd.cpu0 = time.process_time_ns()
            rnd.events0 = self.events
        elif kind == "stats":
            self._emit({"ev": "stats", **self._stats()})
        elif kind == "close":
            self._close_all()
            self._emit({"ev": "bye", **self._stats()})
            self._running = False
        else:
            self._emit({"ev": "error", "message": f"unknown command {kind!r}"})

    def _stats(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "open": len(self._conns),
            "closed_by_peer": self.closed_by_peer,
            "events": self.events,
            "patches": self.patches,
            "unmarked_patches": self.unmarked_patches,
            "duplicates": self.duplicates,
            "cpu_ns": time.process_time_ns(),
            "errors": dict(self._errors),
        }

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
        self._request = build_request(str(cmd.get("path", "/all")), self._addresses[0], headers)
        self._concurrency = int(cmd.get("concurrency", 256))
        self._to_start = int(cmd["n"])
        self._connect_deadline = time.monotonic() + float(cmd.get("timeout_s", 120.0))
        self._phase_t0 = time.monotonic_ns()
        self._phase_target = self._to_start
        self._phase_failed = 0
        self._phase_put = 0
        self._connecting = True

    def _fail(self, reason: str) -> None:
        self._errors[reason] = self._errors.get(reason, 0) + 1

    def _start_connects(self) -> None:
        budget = self._concurrency  # bounded per loop turn
        while self._to_start > 0 and self._inflight < self._concurrency and budget > 0:
            budget -= 1
            self._to_start -= 1
            addr = self._addresses[self._started % len(self._addresses)]
            self._started += 1
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                self._fail(errno.errorcode.get(exc.errno or 0, "socket"))
                self._phase_failed += 1
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
            err = sock.connect_ex((addr, self._port))
            if err not in (0, errno.EINPROGRESS):
                self._fail(errno.errorcode.get(err, str(err)))
                self._phase_failed += 1
                sock.close()
                continue
            conn = _Conn(sock)
            self._conns[sock.fileno()] = conn
            self._ep.register(sock.fileno(), select.EPOLLOUT)
            self._inflight += 1

    def _drop(self, fd: int, conn: _Conn, reason: str | None) -> None:
        del self._conns[fd]
        self._ep.unregister(fd)
        conn.sock.close()
        if conn.got_put:
            self.live -= 1
            if reason is not None:
                self.closed_by_peer += 1
                self._fail("stream_" + reason)
        else:
            self._inflight -= 1
            self._phase_failed += 1
            self._fail(reason or "closed")

    def _on_writable(self, fd: int, conn: _Conn) -> None:
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop(fd, conn, errno.errorcode.get(err, str(err)))
            return
        try:
            sent = conn.sock.send(self._request)
        except OSError as exc:
            self._drop(fd, conn, errno.errorcode.get(exc.errno or 0, "send"))
            return
        if sent != len(self._request):  # a fresh socket's send buffer takes a ~200 B request
            self._drop(fd, conn, "short_send")
            return
        conn.state = _HEAD
        self._ep.modify(fd, select.EPOLLIN)

    def _finish_connect_phase(self, now: float) -> None:
        done = self._to_start == 0 and self._inflight == 0
        if not done and now < self._connect_deadline:
            return
        timed_out = 0
        for fd, conn in list(self._conns.items()):
            if not conn.got_put:  # deadline passed: give up on the stragglers
                self._drop(fd, conn, "timeout")
                timed_out += 1
        self._to_start = 0
        self._connecting = False
        elapsed = (time.monotonic_ns() - self._phase_t0) / 1e9
        self._emit(
            {
                "ev": "connected",
                "requested": self._phase_target,
                "connected": self._phase_put,
                "failed": self._phase_failed,
                "timed_out": timed_out,
                "live": self.live,
                "elapsed_s": elapsed,
                "rate_per_s": self._phase_put / elapsed if elapsed > 0 else 0.0,
                "errors": dict(self._errors),
            }
        )
        gc.freeze()  # the connection graph is long-lived: keep it out of every later GC pass

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
        try:
            if conn.state == _HEAD:
                assert conn.head is not None
                head = conn.head.feed(data)
                if head is None:
                    return
                if head.status != 200:
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
                    continue
                seq, t0 = mark
                if seq <= conn.last_seq:
                    self.duplicates += 1
                    continue
                conn.last_seq = seq
                self._round(seq).lat.append(now_ns - t0)
            elif name == b"put" and not conn.got_put:
                conn.got_put = True
                self.live += 1
                self._inflight -= 1
                self._phase_put += 1

    def _check_rounds(self, now: float) -> None:
        for rnd in list(self._rounds.values()):
            if rnd.waiting and (len(rnd.lat) >= self.live or now >= rnd.deadline):
                rnd.waiting = False
                self._emit(
                    {
                        "ev": "round",
                        "seq": rnd.seq,
                        "expected": self.live,
                        "received": len(rnd.lat),
                        "complete": len(rnd.lat) >= self.live,
                        "cpu_ns": time.process_time_ns() - rnd.cpu0,
                        "events": self.events - rnd.events0,
                        "lat_ns": rnd.lat,
                    }
                )

    def _close_all(self) -> None:
        for fd, conn in list(self._conns.items()):
            self._ep.unregister(fd)
            conn.sock.close()  # SO_LINGER 0: RST, no TIME_WAIT
        self._conns.clear()
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
            for fd, _mask in self._ep.poll(0.05, _EPOLL_BATCH):
                conn = conns.get(fd)
                if conn is None:
                    if fd == self._stdin_fd:
                        self._read_commands()
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
        self._close_all()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-limit", type=float, default=600.0, help="hard exit after S s")
    parser.add_argument("--decoder", choices=sorted(DECODERS), default="fast")
    parser.add_argument(
        "--measure-decode", action="store_true", help="print the decode CPU per event and exit"
    )
    args = parser.parse_args(argv)
    if args.measure_decode:
        for kind in sorted(DECODERS):
            print(f"{kind}: {measure_decode(kind):.2f} µs CPU per patch event (decode only)")
        return 0
    gc.set_threshold(100_000, 50, 100)  # the load generator must not pause for GC mid-round
    client = Client(time_limit_s=args.time_limit, decoder=args.decoder)
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
