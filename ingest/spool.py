"""The durable spool: append-only segment files of framed records (blocking file IO; the
actor calls it from a worker thread).

Theory of operation
-------------------
Every accepted payload's records are appended to the current segment and ``fdatasync``-ed
before the HTTP answer is 202, so the spool is a write-ahead log: what was acknowledged is on
disk. The shipper reads frames in order from its checkpoint (a ``Position``), sends them to
Kinesis and moves the checkpoint forward; segments wholly behind the checkpoint are deleted.
Without Kinesis the spool is the sink and segments are kept up to a retention budget, read by
the insights consumer.

Layout: ``DIR/000000000001.seg``, ``DIR/000000000002.seg``, … A frame is
``b"FSp1" | u32 length | u32 crc32(body) | body`` with ``body = u16 len(key) | key | data``.
A crash can leave a torn frame at the end of the last segment; it was never acknowledged (the
fsync had not returned), so ``SpoolWriter.open`` truncates it, and readers stop at it.

A write that fails (a full disk: ``os.write`` writes part of the frames, then ``ENOSPC``) must
not leave its partial frame in the middle of the log, or every frame appended after it, each
one acknowledged, would sit behind bytes that stop every reader. ``append`` therefore cuts the
segment back to its last durable end before raising; if even that fails, the segment is
sealed where it is (readers skip the leftover bytes of a sealed segment) and the next append
starts a new one.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from ingest.ports import Record

_HEAD = struct.Struct(">4sII")
_KEYLEN = struct.Struct(">H")
_MAGIC = b"FSp1"
SUFFIX = ".seg"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A byte offset in a segment; ordered like the log."""

    segment: int
    offset: int


def encode_frame(record: Record) -> bytes:
    key = record.partition_key.encode()
    body = _KEYLEN.pack(len(key)) + key + record.data
    return _HEAD.pack(_MAGIC, len(body), zlib.crc32(body)) + body


def segment_path(directory: Path, segment: int) -> Path:
    return directory / f"{segment:012d}{SUFFIX}"


def list_segments(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(n[: -len(SUFFIX)]) for n in names if n.endswith(SUFFIX) and n[:-4].isdigit())


def _parse(buf: bytes, start: int) -> tuple[list[tuple[Record, int]], int, bool]:
    """Complete, valid frames from ``buf[start:]``: (record, end offset) pairs, where parsing
    stopped, and whether it stopped at a bad frame (rather than at the end of the data)."""
    out: list[tuple[Record, int]] = []
    pos = start
    while pos + _HEAD.size <= len(buf):
        magic, length, crc = _HEAD.unpack_from(buf, pos)
        end = pos + _HEAD.size + length
        if magic != _MAGIC:
            return out, pos, True
        if end > len(buf):
            break
        body = buf[pos + _HEAD.size : end]
        if zlib.crc32(body) != crc:
            return out, pos, True
        (keylen,) = _KEYLEN.unpack_from(body, 0)
        key = body[2 : 2 + keylen].decode()
        out.append((Record(key, bytes(body[2 + keylen :])), end))
        pos = end
    return out, pos, False


def read_frames(
    directory: Path, start: Position, *, max_records: int, max_bytes: int
) -> list[tuple[Record, Position]]:
    """Up to ``max_records`` records (about ``max_bytes`` of data) from ``start`` on, each with
    the position just after it. Crosses into later segments; stops at the live tail."""
    segments = [s for s in list_segments(directory) if s >= start.segment]
    out: list[tuple[Record, Position]] = []
    total = 0
    pos = start
    chunk = max(max_bytes, 0) + 2 * 1024 * 1024  # always room for one maximal frame
    for index, seg in enumerate(segments):
        if seg != pos.segment:
            pos = Position(seg, 0)
        try:
            f = open(segment_path(directory, seg), "rb")  # noqa: SIM115
        except FileNotFoundError:
            continue  # deleted by retention meanwhile
        with f:
            while True:
                f.seek(pos.offset)
                frames, _stop, _bad = _parse(f.read(chunk), 0)
                for record, end in frames:
                    out.append((record, Position(seg, pos.offset + end)))
                    total += len(record.data)
                    if len(out) >= max_records or total >= max_bytes:
                        return out
                if not frames:
                    break
                pos = out[-1][1]
        if index == len(segments) - 1:
            return out  # the live segment: what follows is not written (or not whole) yet
        # A sealed segment was complete before its successor was created, so bytes left over
        # here are corruption: skip them rather than stall the log forever.
    return out


class SpoolWriter:
    """Appends framed records to the current segment; one instance per spool directory."""

    def __init__(self, directory: Path, *, segment_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._segment = 0  # 0: not open yet
        self._size = 0
        self._sealed = False  # True: the next append starts a new segment

    def open(self) -> Position:
        """Recover: truncate a torn tail of the last segment; return the end of the log."""
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = list_segments(self.directory)
        if not segments:
            self._start_segment(1)
            return Position(1, 0)
        last = segments[-1]
        path = segment_path(self.directory, last)
        data = path.read_bytes()
        _frames, stop, _bad = _parse(data, 0)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        if stop < len(data):
            os.ftruncate(self._fd, stop)
            os.fsync(self._fd)
        self._segment, self._size = last, stop
        return Position(last, stop)

    def append(self, frames: bytes) -> Position:
        """Write pre-encoded frames and make them durable; returns the new end of the log."""
        if self._segment == 0:
            raise RuntimeError("spool writer is not open")
        if self._sealed or (self._size > 0 and self._size + len(frames) > self.segment_bytes):
            self._start_segment(self._segment + 1)
        fd = self._fd
        assert fd is not None  # not sealed: the segment's file is open
        try:
            view = memoryview(frames)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fdatasync(fd)
        except OSError:
            self._cut_back(fd)
            raise
        self._size += len(frames)
        return Position(self._segment, self._size)

    def _cut_back(self, fd: int) -> None:
        """After a failed write: drop what it left past the durable end, or seal the segment."""
        try:
            os.ftruncate(fd, self._size)
        except OSError:
            self._sealed = True

    def end(self) -> Position:
        return Position(self._segment, self._size)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._sealed = True

    def _start_segment(self, segment: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._sealed = True  # until the new segment is there: a failure below is retried
        path = segment_path(self.directory, segment)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name must survive a crash, not only its bytes
        finally:
            os.close(dir_fd)
        self._segment, self._size, self._sealed = segment, 0, False


def delete_segments_before(directory: Path, segment: int) -> int:
    """Remove segments wholly behind ``segment``; returns how many were removed."""
    removed = 0
    for seg in list_segments(directory):
        if seg >= segment:
            break
        segment_path(directory, seg).unlink(missing_ok=True)
        removed += 1
    return removed


def enforce_retention(directory: Path, keep_bytes: int, *, active: int) -> int:
    """Spool-as-sink mode: delete the oldest segments (never ``active``) beyond a byte budget."""
    segments = list_segments(directory)
    sizes = {s: segment_path(directory, s).stat().st_size for s in segments}
    total = sum(sizes.values())
    removed = 0
    for seg in segments:
        if total <= keep_bytes or seg >= active:
            break
        segment_path(directory, seg).unlink(missing_ok=True)
        total -= sizes[seg]
        removed += 1
    return removed


def read_checkpoint(path: Path) -> Position | None:
    try:
        seg, off = path.read_text().split()
        return Position(int(seg), int(off))
    except (FileNotFoundError, ValueError):
        return None


def write_checkpoint(path: Path, pos: Position) -> None:
    """Atomic replace. Losing the newest checkpoint in a crash only re-sends records, which
    carry stable IDs, so fsync of the file is enough and the directory sync is skipped."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(f"{pos.segment} {pos.offset}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def bytes_after(directory: Path, pos: Position) -> int:
    """Spool bytes from ``pos`` to the end of the log (the shipper's backlog)."""
    total = 0
    for seg in list_segments(directory):
        if seg < pos.segment:
            continue
        try:
            size = segment_path(directory, seg).stat().st_size
        except FileNotFoundError:
            continue
        total += size - pos.offset if seg == pos.segment else size
    return max(total, 0)
