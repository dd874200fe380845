"""The parsed model, dependency walk and per-context groups of client-side streams (pure)."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from bus.envelope import ItemChange
from flagmodel import parse_context
from streamer.clientside.client_groups import (
    ClientGroups,
    evaluate_entries,
    group_key,
    payload_json,
)
from streamer.clientside.client_model import Changed, EvalModel
from streamer.environments.envstate import EnvState
from streamer.fastpath.sse import ChunkedDecoder, SSEDecoder, SSEEvent, event_chunk


def flag(key: str, version: int, **over: Any) -> ItemChange:
    body: dict[str, Any] = {
        "key": key, "version": version, "on": True, "salt": "s", "variations": [False, True],
        "offVariation": 0, "fallthrough": {"variation": 0}, "targets": [], "rules": [],
        "prerequisites": [], "clientSideAvailability": {"usingEnvironmentId": True,
                                                        "usingMobileKey": True},
    }  # fmt: skip
    body.update(over)
    return ItemChange("flags", key, version, json.dumps(body).encode())


def segment(key: str, version: int, **over: Any) -> ItemChange:
    body: dict[str, Any] = {"key": key, "version": version, "included": [], "excluded": [],
                            "rules": [], "salt": "s"}
    body.update(over)
    return ItemChange("segments", key, version, json.dumps(body).encode())


def seg_rule(*segments: str) -> dict[str, Any]:
    return {"id": "r", "variation": 1,
            "clauses": [{"attribute": "", "op": "segmentMatch", "values": list(segments)}]}


def events(frames: list[tuple[tuple[str, str], bytes]]) -> list[tuple[str, Any]]:
    sse = SSEDecoder()
    out = []
    for _, frame in frames:
        for item in sse.feed(ChunkedDecoder().feed(frame)):
            assert isinstance(item, SSEEvent)
            out.append((item.event, json.loads(item.data)))
    return out


class World:
    def __init__(self, *items: ItemChange) -> None:
        self.state = EnvState()
        self.state.apply(items)
        self.model = EvalModel()
        assert self.model.sync(self.state.view()).everything
        self.groups: ClientGroups[str] = ClientGroups(self.model)

    def join(self, conn: str, key: str, *, mobile: bool = False, reasons: bool = False) -> Any:
        raw = {"kind": "user", "key": key}
        group = self.groups.add(group_key(raw, with_reasons=reasons, mobile=mobile),
                                parse_context(raw), conn)
        return events([(("", "put"), group.put_frame())])[0][1]

    def change(self, *items: ItemChange) -> dict[frozenset[str], list[tuple[str, Any]]]:
        self.state.apply(items)
        changed = self.model.sync(self.state.view())
        out = self.groups.on_change(changed)
        return {frozenset(conns): events(frames) for conns, frames in out}


def test_dependencies_are_walked_transitively() -> None:
    w = World(
        flag("base", 1), flag("child", 1, prerequisites=[{"key": "base", "variation": 1}]),
        flag("grandchild", 1, prerequisites=[{"key": "child", "variation": 0}]),
        flag("segflag", 1, rules=[seg_rule("outer")]), flag("alone", 1),
        segment("inner", 1), segment("outer", 1, rules=[{"clauses": [
            {"attribute": "", "op": "segmentMatch", "values": ["inner"]}]}]),
    )
    m = w.model
    assert m.affected(Changed(frozenset({"base"}), frozenset())) == {"base", "child", "grandchild"}
    assert m.affected(Changed(frozenset(), frozenset({"inner"}))) == {"segflag"}
    assert m.affected(Changed(frozenset({"alone"}), frozenset())) == {"alone"}
    # an edge disappears when the reader changes
    w.state.apply([flag("child", 2)])
    m.sync(w.state.view())
    assert m.affected(Changed(frozenset({"base"}), frozenset())) == {"base"}


def test_put_then_patch_only_for_changed_entries() -> None:
    w = World(flag("f", 1, targets=[{"values": ["bob"], "variation": 1}]), flag("g", 1))
    assert w.join("c1", "bob") == {
        "f": {"value": True, "variation": 1, "version": 1, "flagVersion": 1},
        "g": {"value": False, "variation": 0, "version": 1, "flagVersion": 1}}
    w.join("c2", "bob")
    w.join("c3", "amy")
    assert len(w.groups) == 2 and w.groups.connections() == 3
    before = w.groups.evaluations
    out = w.change(flag("f", 2, targets=[{"values": ["amy"], "variation": 1}]))
    assert out == {
        frozenset({"c1", "c2"}): [("patch", {"key": "f", "value": False, "variation": 0,
                                             "version": 2, "flagVersion": 2})],
        frozenset({"c3"}): [("patch", {"key": "f", "value": True, "variation": 1,
                                       "version": 2, "flagVersion": 2})]}
    assert w.groups.evaluations - before == 2  # once per distinct context, not per connection


def test_prerequisite_change_sends_a_put_to_groups_whose_result_changed() -> None:
    w = World(flag("base", 1, targets=[{"values": ["bob"], "variation": 1}]),
              flag("child", 1, prerequisites=[{"key": "base", "variation": 1}],
                   fallthrough={"variation": 1}))
    assert w.join("bob1", "bob")["child"]["value"] is True
    assert w.join("amy1", "amy")["child"]["value"] is False
    out = w.change(flag("base", 2, fallthrough={"variation": 1}))
    # bob: base's version moved but nothing evaluated differently except the version -> patch;
    # amy: base now passes, so child (same version 1) flips -> a put
    assert out[frozenset({"bob1"})] == [("patch", {"key": "base", "value": True, "variation": 1,
                                                   "version": 2, "flagVersion": 2})]
    (event, body), = out[frozenset({"amy1"})]
    assert event == "put" and body["child"]["value"] is True and body["base"]["version"] == 2


def test_segment_change_reaches_readers_only() -> None:
    w = World(flag("segflag", 1, rules=[seg_rule("s")]), flag("other", 1), segment("s", 1))
    assert w.join("c", "bob")["segflag"]["value"] is False
    out = w.change(segment("s", 2, included=["bob"]))
    (event, body), = out[frozenset({"c"})]
    assert event == "put" and body["segflag"]["value"] is True
    assert w.change(segment("s", 3, included=["bob"], salt="x")) == {}  # same result: nothing


@pytest.mark.parametrize("mobile", [False, True])
def test_unavailable_or_deleted_flag_is_a_delete(mobile: bool) -> None:
    w = World(flag("f", 1), flag("g", 1))
    w.join("c", "bob", mobile=mobile)
    hide = ({"usingEnvironmentId": True, "usingMobileKey": False} if mobile
            else {"usingEnvironmentId": False, "usingMobileKey": True})
    assert w.change(flag("f", 2, clientSideAvailability=hide)) == {
        frozenset({"c"}): [("delete", {"key": "f", "version": 2})]}
    assert w.change(ItemChange("flags", "g", 5, None)) == {
        frozenset({"c"}): [("delete", {"key": "g", "version": 5})]}
    assert w.change(flag("f", 3)) == {frozenset({"c"}): [(
        "patch", {"key": "f", "value": False, "variation": 0, "version": 3, "flagVersion": 3})]}


def test_legacy_client_side_flag_and_reasons() -> None:
    legacy = flag("legacy", 1, clientSide=False)
    body = json.loads(legacy.data or b"")
    del body["clientSideAvailability"]
    w = World(ItemChange("flags", "legacy", 1, json.dumps(body).encode()))
    assert w.join("js", "bob") == {}
    assert w.join("mob", "bob", mobile=True, reasons=True) == {"legacy": {
        "value": False, "variation": 0, "version": 1, "flagVersion": 1,
        "reason": {"kind": "FALLTHROUGH"}}}


def test_resync_puts_only_groups_that_differ_and_prune_drops_empty_groups() -> None:
    w = World(flag("f", 1), flag("g", 1, targets=[{"values": ["bob"], "variation": 1}]))
    w.join("bob", "bob")
    w.join("amy", "amy")
    # same version, other data (a repaired store): only amy's result differs
    result = w.state.replace([flag("f", 1), flag("g", 1, targets=[
        {"values": ["bob", "amy"], "variation": 1}])])
    assert result.needs_put
    changed = w.model.sync(w.state.view())
    out = w.groups.on_change(Changed(changed.flags, changed.segments, everything=True))
    assert [(sorted(conns), [e for e, _ in events(frames)]) for conns, frames in out] == [
        (["amy"], ["put"])]
    w.groups.prune(lambda c: c == "amy")
    assert len(w.groups) == 1 and w.groups.connections() == 1


# -- memory: compact entries, the warm-group bound -------------------------------------------

def _reference_put(w: World, raw: dict[str, Any], *, mobile: bool, reasons: bool) -> bytes:
    """The put as the code before the compact cache built it: one fresh entry per flag."""
    entries = evaluate_entries(w.model, parse_context(raw), mobile=mobile, with_reasons=reasons)
    return event_chunk("put", payload_json(entries))


RULED = [flag(f"f{i}", 1 + i % 3, rules=[{"id": "r", "variation": 1, "trackEvents": i % 2 == 0,
                                         "clauses": [{"attribute": "group", "op": "in",
                                                      "values": [i % 4]}]}])
         for i in range(40)]


@pytest.mark.parametrize(("mobile", "reasons"), [(False, False), (True, False), (False, True)])
def test_compact_cache_puts_the_same_bytes_and_costs_little(mobile: bool,
                                                            reasons: bool) -> None:
    w = World(*RULED)
    contexts = [{"kind": "user", "key": f"u{i}", "group": i % 4} for i in range(200)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        groups = [w.groups.add(group_key(raw, with_reasons=reasons, mobile=mobile),
                               parse_context(raw), f"c{i}") for i, raw in enumerate(contexts)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    for raw, group in zip(contexts, groups, strict=True):
        assert w.groups.put_frame(group.key) == _reference_put(w, raw, mobile=mobile,
                                                                reasons=reasons)
    per_group = sum(s.size_diff for s in after.compare_to(before, "filename")) / 200
    # measured: about 6 KB per group (its dict of 40 slots, context, key, connection set;
    # the entries are shared); a fresh orjson entry per flag holds about 4 KiB: 160 KB
    assert per_group < 10_000, per_group
    assert w.groups.statistics().interned <= 40 * 2 * 2


def test_cold_groups_are_reevaluated_and_get_correct_frames() -> None:
    w = World(flag("f", 1, targets=[{"values": ["bob"], "variation": 1}]),
              flag("seg", 1, rules=[seg_rule("s")]), segment("s", 1))
    w.groups.max_warm = 2
    w.join("bob1", "bob")
    w.join("amy1", "amy")
    w.join("cat1", "cat")  # bob's group is the least recently used: it goes cold
    stats = w.groups.statistics()
    assert (stats.groups, stats.warm, stats.evictions) == (3, 2, 1)
    # a flag that changed (so did its version): every group gets its patch
    out = w.change(flag("f", 2, targets=[{"values": ["bob", "amy"], "variation": 1}]))
    assert out[frozenset({"bob1"})] == [("patch", {"key": "f", "value": True, "variation": 1,
                                                   "version": 2, "flagVersion": 2})]
    assert out[frozenset({"amy1"})] == [("patch", {"key": "f", "value": True, "variation": 1,
                                                   "version": 2, "flagVersion": 2})]
    assert out[frozenset({"cat1"})] == [("patch", {"key": "f", "value": False, "variation": 0,
                                                   "version": 2, "flagVersion": 2})]
    # a segment change reaches a cold group as a put, evaluated now
    out = w.change(segment("s", 2, included=["bob"]))
    (event, body), = out[frozenset({"bob1"})]
    assert event == "put" and body["seg"]["value"] is True and body["f"]["value"] is True
    assert frozenset({"amy1"}) not in out and frozenset({"cat1"}) not in out
    # a deleted flag: the cold group gets the delete as well
    assert w.change(ItemChange("flags", "f", 3, None))[frozenset({"bob1"})] == [
        ("delete", {"key": "f", "version": 3})]
    # a new connection warms the group again (cat's goes cold) with the same payload
    assert w.join("bob2", "bob") == {"seg": {"value": True, "variation": 1, "version": 1,
                                             "flagVersion": 1}}
    stats = w.groups.statistics()
    assert (stats.groups, stats.warm, stats.evictions) == (3, 2, 2)
    out = w.change(segment("s", 3, included=[]))
    assert [e for e, _ in out[frozenset({"bob1", "bob2"})]] == ["put"]


def test_a_group_is_freed_with_its_last_connection() -> None:
    w = World(flag("f", 1))
    w.join("a1", "amy")
    w.join("a2", "amy")
    w.join("b1", "bob")
    key = group_key({"kind": "user", "key": "amy"}, with_reasons=False, mobile=False)
    w.groups.remove(key, "a1")
    assert len(w.groups) == 2
    w.groups.remove(key, "a2")
    stats = w.groups.statistics()
    assert (stats.groups, stats.warm, stats.connections, stats.freed) == (1, 1, 1, 1)
    assert w.groups.put_frame(key) is None
