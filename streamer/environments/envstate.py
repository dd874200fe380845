"""One environment's flags and segments, and every payload built from them (pure).

Theory of operation
-------------------
:class:`EnvState` holds the items of one environment as the store sent them: per kind, key to
:class:`Item` (version and the stored SDK JSON bytes, or None for a tombstone). It applies bus
changes with the SDKs' own rule (a change wins only with a higher version) and returns the
:class:`Delta` list that really changed, which the environment actor turns into SSE frames with
:func:`delta_frames`. A snapshot is applied with :meth:`EnvState.replace`, which diffs old and
new; when the diff is large, or when it cannot be expressed as versioned patches (an item
vanished without a tombstone, or a version went backwards), it asks for a fresh ``put``.

Every change bumps ``revision``. :meth:`EnvState.view` returns an immutable :class:`EnvView`
of the current revision whose payloads (the ``put`` frames of both stream kinds, the polling
JSON, ETags) are encoded lazily, once per revision, and shared by every client that needs them.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from bus.envelope import ItemChange, ItemKind
from streamer.fastpath.sse import event_chunk


@dataclass(frozen=True, slots=True)
class Item:
    version: int
    data: bytes | None  # None: tombstone


@dataclass(frozen=True, slots=True)
class Delta:
    kind: ItemKind
    key: str
    version: int
    data: bytes | None


@dataclass(frozen=True, slots=True)
class DeltaFrames:
    """The chunk-framed SSE frames of one delta: for ``/all``, and for ``/flags`` (or None)."""

    coalesce_key: tuple[str, str]
    all: bytes
    flags: bytes | None


def delta_frames(delta: Delta) -> DeltaFrames:
    """Encode one delta once for each stream kind."""
    all_path = orjson.dumps(f"/{delta.kind}/{delta.key}")
    flags_path = orjson.dumps(f"/{delta.key}") if delta.kind == "flags" else None
    if delta.data is None:
        tail = b',"version":%d}' % delta.version
        event = "delete"
    else:
        tail = b',"data":' + delta.data + b"}"
        event = "patch"
    all_frame = event_chunk(event, b'{"path":' + all_path + tail)
    flags_frame = None
    if flags_path is not None:
        flags_frame = event_chunk(event, b'{"path":' + flags_path + tail)
    return DeltaFrames((delta.kind, delta.key), all_frame, flags_frame)


def _json_map(items: dict[str, Item]) -> bytes:
    parts = [orjson.dumps(k) + b":" + i.data for k, i in items.items() if i.data is not None]
    return b"{" + b",".join(parts) + b"}"


def _etag(*groups: tuple[str, dict[str, Item]]) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for name, items in groups:
        h.update(name.encode() + b"\n")
        for key in sorted(k for k, i in items.items() if i.data is not None):
            h.update(f"{key}:{items[key].version}\n".encode())
    return f'"fs-{h.hexdigest()[:15]}"'


class EnvView:
    """An immutable view of one revision; each payload is built on first use, then cached."""

    __slots__ = ("_cache", "flags", "revision", "segments")

    def __init__(self, revision: int, flags: dict[str, Item], segments: dict[str, Item]) -> None:
        self.revision = revision
        self.flags = flags
        self.segments = segments
        self._cache: dict[str, bytes | str] = {}

    def _bytes(self, name: str) -> bytes:
        value = self._cache.get(name)
        if value is None:
            value = self._build(name)
            self._cache[name] = value
        assert isinstance(value, bytes)
        return value

    def _build(self, name: str) -> bytes:
        match name:
            case "flags_json":
                return _json_map(self.flags)
            case "segments_json":
                return _json_map(self.segments)
            case "all_json":
                segments = _json_map(self.segments)
                return b'{"flags":' + self.flags_json + b',"segments":' + segments + b"}"
            case "put_all":
                return event_chunk("put", b'{"path":"/","data":' + self.all_json + b"}")
            case "put_flags":
                return event_chunk("put", self.flags_json)
            case "all_json_gz":
                return gzip.compress(self.all_json, compresslevel=6, mtime=0)
            case "flags_json_gz":
                return gzip.compress(self.flags_json, compresslevel=6, mtime=0)
            case "segments_json_gz":
                return gzip.compress(self.segments_json, compresslevel=6, mtime=0)
        raise KeyError(name)

    @property
    def flags_json(self) -> bytes:
        return self._bytes("flags_json")

    @property
    def all_json(self) -> bytes:
        return self._bytes("all_json")

    @property
    def segments_json(self) -> bytes:
        return self._bytes("segments_json")

    @property
    def put_all_frame(self) -> bytes:
        return self._bytes("put_all")

    @property
    def put_flags_frame(self) -> bytes:
        return self._bytes("put_flags")

    def gzipped(self, which: str) -> bytes:
        """``which`` is ``"all_json"``, ``"flags_json"`` or ``"segments_json"``."""
        return self._bytes(which + "_gz")

    @property
    def etag_all(self) -> str:
        tag = self._cache.get("etag_all")
        if tag is None:
            tag = _etag(("flags", self.flags), ("segments", self.segments))
            self._cache["etag_all"] = tag
        assert isinstance(tag, str)
        return tag

    @property
    def etag_flags(self) -> str:
        return self._etag_of("flags", self.flags)

    @property
    def etag_segments(self) -> str:
        return self._etag_of("segments", self.segments)

    def _etag_of(self, name: str, items: dict[str, Item]) -> str:
        tag = self._cache.get(f"etag_{name}")
        if tag is None:
            tag = self._cache[f"etag_{name}"] = _etag((name, items))
        assert isinstance(tag, str)
        return tag

    def item(self, kind: ItemKind, key: str) -> Item | None:
        """A live item, or None when unknown or deleted."""
        item = (self.flags if kind == "flags" else self.segments).get(key)
        return item if item is not None and item.data is not None else None


def item_etag(item: Item) -> str:
    return f'"fs-v{item.version}"'


@dataclass(frozen=True, slots=True)
class ReplaceResult:
    deltas: tuple[Delta, ...]
    needs_put: bool  # send every client a fresh put instead of the deltas


class EnvState:
    """Mutable state of one environment; owned by exactly one environment actor."""

    def __init__(self, *, put_threshold: int = 64) -> None:
        self._items: dict[str, dict[str, Item]] = {"flags": {}, "segments": {}}
        self._put_threshold = put_threshold
        self.revision = 0
        self._view: EnvView | None = None

    def apply(self, changes: Iterable[ItemChange]) -> list[Delta]:
        """Apply in-order changes; return those with a higher version than stored."""
        out: list[Delta] = []
        for ch in changes:
            items = self._items[ch.kind]
            old = items.get(ch.key)
            if old is not None and old.version >= ch.version:
                continue
            items[ch.key] = Item(ch.version, ch.data)
            out.append(Delta(ch.kind, ch.key, ch.version, ch.data))
        if out:
            self._bump()
        return out

    def replace(self, snapshot_items: Iterable[ItemChange]) -> ReplaceResult:
        """Replace everything with a snapshot; return the diff, or ask for a fresh put."""
        new: dict[str, dict[str, Item]] = {"flags": {}, "segments": {}}
        for ch in snapshot_items:
            new[ch.kind][ch.key] = Item(ch.version, ch.data)
        deltas: list[Delta] = []
        needs_put = False
        for kind in ("flags", "segments"):
            old_items, new_items = self._items[kind], new[kind]
            for key, item in new_items.items():
                old = old_items.get(key)
                if old is None or old.version != item.version or old.data != item.data:
                    if old is not None and old.version >= item.version:
                        needs_put = True  # cannot be expressed as a versioned patch
                    deltas.append(Delta(kind, key, item.version, item.data))
            if any(key not in new_items for key in old_items):
                needs_put = True  # vanished without a tombstone: no version to delete it with
        self._items = new
        if deltas or needs_put:
            self._bump()
        needs_put = needs_put or len(deltas) > self._put_threshold
        return ReplaceResult(tuple(deltas), needs_put)

    def _bump(self) -> None:
        self.revision += 1
        self._view = None

    def view(self) -> EnvView:
        if self._view is None:
            self._view = EnvView(
                self.revision, dict(self._items["flags"]), dict(self._items["segments"])
            )
        return self._view


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value matches ``etag`` (weak comparison, ``*`` matches)."""
    want = etag.removeprefix("W/").strip('"')
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.removeprefix("W/").strip('"') == want:
            return True
    return False
