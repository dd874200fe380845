"""Server-Sent Events and HTTP/1.1 chunked framing, both directions (sans-IO).

Theory of operation
-------------------
The streamer builds every SSE frame once and writes the very same ``bytes`` to many sockets,
so the encoder returns complete wire frames: :func:`encode_event` gives the SSE text of one
event, :func:`chunk` wraps it as one HTTP/1.1 chunk (``<hex len>\\r\\n<frame>\\r\\n``), and
:func:`event_chunk` does both. Payloads are spliced in as bytes; nothing is re-encoded.

The decoders are for clients (tests and the load tester): :class:`ChunkedDecoder` turns a
chunked body back into its bytes, and :class:`SSEDecoder` turns SSE text into
:class:`SSEEvent` and :class:`SSEComment` records, accepting ``\\n``, ``\\r\\n`` and ``\\r``
line ends and input split at any byte (the WHATWG event-stream rules, minus ``id`` tracking
across reconnects, which callers keep themselves via :attr:`SSEDecoder.last_event_id`).
"""

from __future__ import annotations

from dataclasses import dataclass

HEARTBEAT = b":\n\n"  # an empty comment; the blank line keeps every frame self-delimiting
END_OF_BODY = b"0\r\n\r\n"  # the terminating chunk of a chunked body


def encode_event(event: str, data: bytes, *, event_id: str | None = None) -> bytes:
    """One SSE event: ``event:``, one ``data:`` line per line of ``data``, a blank line."""
    parts = [b"event: ", event.encode(), b"\n"]
    if event_id:
        parts += [b"id: ", event_id.encode(), b"\n"]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for line in data.split(b"\n"):
        parts += [b"data: ", line, b"\n"]
    parts.append(b"\n")
    return b"".join(parts)


def encode_comment(text: bytes = b"") -> bytes:
    """A comment line (``:<text>``) closed by a blank line."""
    return b":" + text.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n\n"


def encode_retry(milliseconds: int) -> bytes:
    return b"retry: %d\n\n" % milliseconds


def chunk(frame: bytes) -> bytes:
    """Frame ``frame`` as one HTTP/1.1 chunk. An empty frame would end the body: refused."""
    if not frame:
        raise ValueError("an empty chunk would terminate the chunked body")
    return b"%x\r\n%b\r\n" % (len(frame), frame)


def event_chunk(event: str, data: bytes) -> bytes:
    return chunk(encode_event(event, data))


HEARTBEAT_CHUNK = chunk(HEARTBEAT)

# The SSE ``retry:`` field each stream starts with: the SDK's reconnect base delay. Every
# connection gets its own value in [base, base + jitter), so that after a node restart the
# clients' first reconnect attempts spread out instead of arriving in one burst. The mean is
# the SDKs' own default base (1 s): spreading must not make the average client wait longer.
RETRY_BASE_MS = 500
RETRY_JITTER_MS = 1000


# Every possible block, framed once (about 20 KB): a stream's opening costs one index.
_RETRY_CHUNKS = tuple(chunk(encode_retry(RETRY_BASE_MS + i)) for i in range(RETRY_JITTER_MS))


def retry_chunk(unit: float) -> bytes:
    """The chunk-framed ``retry:`` block for a jitter draw ``unit`` in [0, 1)."""
    return _RETRY_CHUNKS[int(unit * RETRY_JITTER_MS)]


class FramingError(ValueError):
    """Bytes that are not a valid chunked body."""


class ChunkedDecoder:
    """Decodes an HTTP/1.1 chunked body fed in arbitrary pieces; chunk extensions are skipped."""

    _MAX_SIZE_LINE = 1024

    def __init__(self) -> None:
        self._buf = bytearray()
        self._remaining = -1  # -1: expecting a size line; >0: data bytes left; 0: expecting CRLF
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """Return the body bytes contained in ``data`` (and what was buffered before)."""
        self._buf += data
        out = bytearray()
        while not self.finished:
            if self._remaining < 0:
                end = self._buf.find(b"\r\n")
                if end < 0:
                    if len(self._buf) > self._MAX_SIZE_LINE:
                        raise FramingError("chunk size line too long")
                    break
                size_text = bytes(self._buf[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise FramingError(f"bad chunk size {size_text!r}") from None
                if size < 0:
                    raise FramingError("negative chunk size")
                del self._buf[: end + 2]
                if size == 0:
                    self.finished = True  # trailers, if any, are ignored
                    break
                self._remaining = size
            elif self._remaining > 0:
                take = min(self._remaining, len(self._buf))
                if not take:
                    break
                out += self._buf[:take]
                del self._buf[:take]
                self._remaining -= take
            else:
                if len(self._buf) < 2:
                    break
                if self._buf[:2] != b"\r\n":
                    raise FramingError("chunk data not followed by CRLF")
                del self._buf[:2]
                self._remaining = -1
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None
    retry: int | None = None


@dataclass(frozen=True, slots=True)
class SSEComment:
    text: str


class SSEDecoder:
    """Incremental SSE parser: :meth:`feed` bytes, get the events and comments they complete."""

    def __init__(self, *, max_line: int = 64 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._skip_lf = False  # the previous chunk ended in CR; a leading LF belongs to it
        self._event = ""
        self._data: list[str] | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self.last_event_id: str | None = None
        self.retry: int | None = None  # the latest ``retry:`` field seen, in milliseconds

    def feed(self, data: bytes) -> list[SSEEvent | SSEComment]:
        out: list[SSEEvent | SSEComment] = []
        if self._skip_lf and data[:1] == b"\n":
            data = data[1:]
        self._skip_lf = False
        self._buf += data
        start = 0
        buf = self._buf
        while True:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, lf if lf >= 0 else len(buf))
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < len(buf):
                    if buf[nxt] == 0x0A:
                        nxt += 1
                else:
                    self._skip_lf = True  # "\r" at the end: a following "\n" is the same line end
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            self._line(bytes(buf[start:end]).decode("utf-8", "replace"), out)
            start = nxt
        del buf[:start]
        if len(buf) > self._max_line:
            raise FramingError("SSE line too long")
        return out

    def _line(self, line: str, out: list[SSEEvent | SSEComment]) -> None:
        if not line:
            if self._data is not None:
                if self._id is not None:
                    self.last_event_id = self._id
                out.append(SSEEvent(self._event or "message", "\n".join(self._data),
                                    self._id, self._retry))
            self._event, self._data, self._id, self._retry = "", None, None, None
            return
        if line[0] == ":":
            out.append(SSEComment(line[1:]))
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == "id":
            if "\x00" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = self.retry = int(value)
