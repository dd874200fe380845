"""EnvState: versioned apply, snapshot diffs, shared payloads, ETags; and the slow-path Mailbox."""

from __future__ import annotations

import gzip
import json

import pytest

from bus.envelope import ItemChange
from streamer.environments.envstate import Delta, EnvState, delta_frames, etag_matches, item_etag
from streamer.fastpath.mailbox import HEARTBEAT_KEY, PUT_KEY, Mailbox
from streamer.fastpath.sse import ChunkedDecoder, SSEDecoder, SSEEvent


def flag(key: str, version: int, *, deleted: bool = False) -> ItemChange:
    if deleted:
        return ItemChange("flags", key, version, None)
    data = json.dumps({"key": key, "version": version, "on": True}).encode()
    return ItemChange("flags", key, version, data)


def seg(key: str, version: int) -> ItemChange:
    data = json.dumps({"key": key, "version": version}).encode()
    return ItemChange("segments", key, version, data)


def events(frame: bytes) -> list[SSEEvent]:
    out = SSEDecoder().feed(ChunkedDecoder().feed(frame))
    assert all(isinstance(e, SSEEvent) for e in out)
    return out  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("first", "then", "applied"),
    [
        ([flag("a", 1)], [flag("a", 2)], [("a", 2)]),
        ([flag("a", 2)], [flag("a", 2)], []),  # equal version: dropped
        ([flag("a", 3)], [flag("a", 2)], []),  # lower version: dropped
        ([flag("a", 3)], [flag("a", 4, deleted=True)], [("a", 4)]),
        ([flag("a", 4, deleted=True)], [flag("a", 3)], []),  # a tombstone blocks older patches
        ([], [flag("new", 1, deleted=True)], [("new", 1)]),
    ],
)
def test_apply_follows_the_version_rule(first: list[ItemChange], then: list[ItemChange],
                                        applied: list[tuple[str, int]]) -> None:
    state = EnvState()
    state.apply(first)
    revision = state.revision
    deltas = state.apply(then)
    assert [(d.key, d.version) for d in deltas] == applied
    assert state.revision == revision + (1 if applied else 0)


def test_put_payloads_skip_tombstones_and_are_shared() -> None:
    state = EnvState()
    state.apply([flag("a", 1), flag("b", 2, deleted=True), seg("s", 3)])
    view = state.view()
    assert view is state.view()  # one view per revision
    assert view.put_all_frame is view.put_all_frame  # encoded once
    (put,) = events(view.put_all_frame)
    body = json.loads(put.data)
    assert put.event == "put"
    assert body["path"] == "/"
    assert set(body["data"]["flags"]) == {"a"}
    assert body["data"]["segments"]["s"]["version"] == 3
    (legacy,) = events(view.put_flags_frame)
    assert set(json.loads(legacy.data)) == {"a"}
    assert json.loads(gzip.decompress(view.gzipped("all_json"))) == body["data"]
    assert view.item("flags", "b") is None and view.item("flags", "a") is not None


@pytest.mark.parametrize(
    ("delta", "all_event", "all_body", "flags_body"),
    [
        (Delta("flags", "f", 2, b'{"key":"f"}'), "patch",
         {"path": "/flags/f", "data": {"key": "f"}}, {"path": "/f", "data": {"key": "f"}}),
        (Delta("flags", "f", 3, None), "delete", {"path": "/flags/f", "version": 3},
         {"path": "/f", "version": 3}),
        (Delta("segments", "s", 4, b"{}"), "patch", {"path": "/segments/s", "data": {}}, None),
        (Delta("flags", 'q"\\', 1, None), "delete", {"path": '/flags/q"\\', "version": 1},
         {"path": '/q"\\', "version": 1}),
    ],
)
def test_delta_frames(delta: Delta, all_event: str, all_body: object, flags_body: object) -> None:
    frames = delta_frames(delta)
    (ev,) = events(frames.all)
    assert (ev.event, json.loads(ev.data)) == (all_event, all_body)
    if flags_body is None:
        assert frames.flags is None
    else:
        assert frames.flags is not None
        (ev,) = events(frames.flags)
        assert json.loads(ev.data) == flags_body


@pytest.mark.parametrize(
    ("old", "new", "changed", "needs_put"),
    [
        ([flag("a", 1)], [flag("a", 1)], [], False),
        ([flag("a", 1)], [flag("a", 2)], [("a", 2)], False),
        ([flag("a", 1)], [flag("a", 2, deleted=True)], [("a", 2)], False),
        ([flag("a", 1)], [flag("a", 1), flag("b", 1)], [("b", 1)], False),
        ([flag("a", 1)], [], [], True),  # vanished without a tombstone
        ([flag("a", 5)], [flag("a", 3)], [("a", 3)], True),  # version went backwards
        ([], [flag(f"k{i}", 1) for i in range(65)], [(f"k{i}", 1) for i in range(65)], True),
    ],
)
def test_replace_diffs(old: list[ItemChange], new: list[ItemChange],
                       changed: list[tuple[str, int]], needs_put: bool) -> None:
    state = EnvState(put_threshold=64)
    state.apply(old)
    result = state.replace(new)
    assert [(d.key, d.version) for d in result.deltas] == changed
    assert result.needs_put == needs_put
    assert {k for k, i in state.view().flags.items()} == {c.key for c in new}


def test_etags_follow_key_versions() -> None:
    state = EnvState()
    state.apply([flag("a", 1), seg("s", 1)])
    v1 = state.view()
    state.apply([seg("s", 2)])
    v2 = state.view()
    assert v1.etag_flags == v2.etag_flags  # flags unchanged
    assert v1.etag_all != v2.etag_all
    state.apply([flag("a", 2, deleted=True)])
    assert state.view().etag_flags != v2.etag_flags
    item = v1.item("flags", "a")
    assert item is not None and item_etag(item) == '"fs-v1"'


@pytest.mark.parametrize(
    ("header", "etag", "match"),
    [
        ('"x"', '"x"', True),
        ('W/"x"', '"x"', True),
        ('"y", "x"', '"x"', True),
        ("*", '"x"', True),
        ("x", '"x"', True),
        ('"y"', '"x"', False),
        ("", '"x"', False),
    ],
)
def test_etag_matches(header: str, etag: str, match: bool) -> None:
    assert etag_matches(header, etag) == match


def test_mailbox_coalesces_latest_per_key() -> None:
    box = Mailbox(max_items=10, max_bytes=1000)
    assert box.push(("flags", "a"), b"a1")
    assert box.push(("flags", "b"), b"b1")
    assert box.push(("flags", "a"), b"a2")
    box.push_heartbeat(b"hb")  # something is queued already: no heartbeat needed
    drained = []
    while (chunk := box.next_chunk()) is not None:
        drained.append(bytes(chunk))
        box.consumed(len(chunk))
    assert drained == [b"b1", b"a2"]
    assert box.queued_bytes == 0


def test_mailbox_put_replaces_backlog_and_partial_sends_resume() -> None:
    box = Mailbox(max_items=10, max_bytes=1000)
    box.set_inflight(b"rest-of-frame")
    box.push(("flags", "a"), b"a1")
    box.reset_to_put(b"PUT")
    assert box.has_queued_put
    box.push(("flags", "b"), b"b1")
    chunk = box.next_chunk()
    assert chunk is not None and bytes(chunk) == b"rest-of-frame"
    box.consumed(5)
    chunk = box.next_chunk()
    assert chunk is not None and bytes(chunk) == b"of-frame"
    box.consumed(len(chunk))
    out = []
    while (chunk := box.next_chunk()) is not None:
        out.append(bytes(chunk))
        box.consumed(len(chunk))
    assert out == [b"PUT", b"b1"]


@pytest.mark.parametrize(
    ("max_items", "max_bytes", "frames", "ok"),
    [
        (2, 100, [b"x", b"y"], [True, True]),
        (2, 100, [b"x", b"y", b"z"], [True, True, False]),
        (10, 5, [b"abc", b"def"], [True, False]),
    ],
)
def test_mailbox_bounds(
    max_items: int, max_bytes: int, frames: list[bytes], ok: list[bool]
) -> None:
    box = Mailbox(max_items, max_bytes)
    box.reset_to_put(b"P" * 1000)  # the shared put does not count against the bound
    assert [box.push(("flags", str(i)), f) for i, f in enumerate(frames)] == ok


def test_mailbox_heartbeat_only_when_idle() -> None:
    box = Mailbox(4, 100)
    box.push_heartbeat(b"hb")
    assert len(box) == 1
    chunk = box.next_chunk()
    assert chunk is not None and bytes(chunk) == b"hb"
    assert PUT_KEY != HEARTBEAT_KEY
