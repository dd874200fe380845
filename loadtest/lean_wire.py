"""The lean SSE client's wire pieces, pure (no IO): response head, chunked de-framing, SSE
events, propagation markers and the reconnect backoff.

Bytes flow through these stages in order. Two decoders give the same (event, data) pairs:
`FastDecoder`, specialised for the one-chunk-per-event shape a fan-out writes (about 2-3 µs per
event), and `SharedDecoder`, the project's full WHATWG decoder `streamer.fastpath.sse` (about 2x the
CPU, and the oracle the fast one is tested against). Before either, the clients try
`patch_mark` (`one_patch_mark`): a whole marked patch, the fan-out's usual piece, read in one
pass of a few C calls, about 1 µs less than decoding it and then finding its marker. All are
used by `loadtest.lean_client` (one process, epoll) and by the Locust users in
`loadtest.locustfile`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from streamer.fastpath import sse as shared_sse


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
_PATCH_LINE = b"event: patch\ndata: "


def one_patch_mark(data: bytes) -> tuple[int, int] | None:
    """(seq, t0) when `data` is exactly one chunk holding one `event: patch` whose one data line
    has a marker: the fan-out's shape, checked and read in one pass of a few C calls (about
    1 µs less per event than `one_event_chunk` then `find_mark`). None otherwise, and the
    caller takes the general path; for the bytes this accepts, that path finds the same mark."""
    if not data.endswith(b"\n\n\r\n"):
        return None
    nl = data.find(b"\r\n", 0, 10)
    if nl <= 0 or not data.startswith(_PATCH_LINE, nl + 2):
        return None
    end = len(data) - 2  # the chunk's data ends here, before its CRLF
    start = nl + 2 + len(_PATCH_LINE)  # the event's data begins here
    if data.find(b"\n", start) != end - 2 or data.find(b"\r", nl + 2, end) >= 0:
        return None  # more than one line of data, or CR line ends (the general path's work)
    try:
        if int(data[:nl], 16) != end - nl - 2:
            return None
    except ValueError:  # an extension or garbage in the size line
        return None
    m = _MARK.search(data, start, end - 2)
    if m is None:
        return None
    return int(m[1]), int(m[2])


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
    @property
    def retry_ms(self) -> int | None:
        """The latest SSE `retry:` field (ms): the SDKs take it as their reconnect base."""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]: ...

    def patch_mark(self, data: bytes) -> tuple[int, int] | None:
        """The mark of `data` when it is a whole marked patch and nothing is buffered (the
        fan-out's shape), else None: then `feed` it. Counts as having fed it."""


def parse_retry(block: bytes) -> int | None:
    """The milliseconds of a `retry:` line in an event block with no data, if any."""
    for line in block.split(b"\n"):
        if line.startswith(b"retry:"):
            value = line[6:].strip()
            if value.isdigit():
                return int(value)
    return None


class FastDecoder:
    """Body bytes in, (event name, data) out: the lean path (see `measure_decode`)."""

    __slots__ = ("_dechunk", "_split", "retry_ms")

    def __init__(self, *, chunked: bool) -> None:
        self._dechunk = Dechunker() if chunked else None
        self._split = EventSplitter()
        self.retry_ms: int | None = None

    def _between_chunks(self) -> bool:
        """Chunked, and nothing half-read in either stage: a whole chunk may skip both."""
        d, s = self._dechunk, self._split
        return d is not None and not (
            d._buf or d._remaining or d._crlf or d.finished or s._buf or s._skip_lf)

    def patch_mark(self, data: bytes) -> tuple[int, int] | None:
        return one_patch_mark(data) if self._between_chunks() else None

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        d, s = self._dechunk, self._split
        if d is not None:
            if self._between_chunks():
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
            elif (ms := parse_retry(block)) is not None:
                self.retry_ms = ms
        return out


class SharedDecoder:
    """The same contract on top of the project's full decoder, `streamer.fastpath.sse`."""

    __slots__ = ("_dechunk", "_sse")

    def __init__(self, *, chunked: bool) -> None:
        self._dechunk = shared_sse.ChunkedDecoder() if chunked else None
        self._sse = shared_sse.SSEDecoder()

    @property
    def retry_ms(self) -> int | None:
        return self._sse.retry

    def patch_mark(self, data: bytes) -> tuple[int, int] | None:
        return None  # the oracle takes every byte through the full decoder

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


def reconnect_delay(attempt: int, rand: float, *, base_s: float = 1.0, max_s: float = 30.0,
                    jitter: float = 0.5) -> float:
    """Seconds before reconnect attempt `attempt` (0-based), the way LaunchDarkly SDKs back off
    (PROTOCOL.md §1.3): base·2^attempt capped at max, minus up to `jitter` of it; `rand` in
    [0, 1) is the caller's random draw, so the function stays pure. A stream's `retry:` field
    replaces `base_s`, as in the SDKs."""
    delay = min(max_s, base_s * 2.0 ** min(attempt, 30))
    return delay - delay * jitter * rand


def retry_after_s(head: ResponseHead) -> float | None:
    """The `Retry-After` seconds of a response, if it has a numeric one."""
    for name, value in head.headers:
        if name == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
