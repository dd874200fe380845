"""A slow stream's backlog (pure: no trio, no IO).

The environment actor writes frames straight to a stream's socket while it keeps up. When a
send would block, the unsent remainder and later frames go to the stream's :class:`Mailbox`
and its stream actor drains it as the socket becomes writable
(:mod:`streamer.fastpath.stream_actor`). The bound and its overflow policy are described on the
class.
"""

from __future__ import annotations

PUT_KEY = ("", "put")
HEARTBEAT_KEY = ("", "heartbeat")


class Mailbox:
    """A slow stream's backlog: the unsent remainder of one frame, then queued frames.

    Frames are queued under a coalescing key ((kind, key) for an item, :data:`PUT_KEY`,
    :data:`HEARTBEAT_KEY`); a newer frame for a key replaces the older one and moves to the
    end. That reordering is safe because items are independent and versioned. A ``put``
    replaces the whole queue. The bound counts queued frames other than the put (whose bytes
    are shared with every other stream): :meth:`push` returns False once it is exceeded, and
    the caller applies the overflow policy (replace the backlog with a fresh put).
    """

    __slots__ = ("_bytes", "_queue", "inflight", "max_bytes", "max_items")

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.inflight: memoryview | None = None
        self._queue: dict[tuple[str, str], bytes] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._queue) + (self.inflight is not None)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    @property
    def has_queued_put(self) -> bool:
        return PUT_KEY in self._queue

    def set_inflight(self, remainder: bytes | memoryview) -> None:
        self.inflight = memoryview(remainder) if remainder else None

    def push(self, key: tuple[str, str], frame: bytes) -> bool:
        old = self._queue.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._queue[key] = frame
        self._bytes += len(frame)
        items = len(self._queue) - (PUT_KEY in self._queue)
        return items <= self.max_items and self._bytes <= self.max_bytes

    def push_heartbeat(self, frame: bytes) -> None:
        if not self._queue and self.inflight is None:
            self._queue[HEARTBEAT_KEY] = frame  # any queued frame already keeps the link alive

    def reset_to_put(self, put_frame: bytes) -> None:
        self._queue.clear()
        self._queue[PUT_KEY] = put_frame
        self._bytes = 0

    def next_chunk(self) -> memoryview | None:
        if self.inflight is None and self._queue:
            key = next(iter(self._queue))
            frame = self._queue.pop(key)
            if key != PUT_KEY:
                self._bytes -= len(frame)
            self.inflight = memoryview(frame)
        return self.inflight

    def consumed(self, sent: int) -> None:
        assert self.inflight is not None
        rest = self.inflight[sent:]
        self.inflight = rest if len(rest) else None
