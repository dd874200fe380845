"""Table-driven tests of the pure write coalescer (time is an argument)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from store.coalescer import Coalescer, OpKind, RejectReason, WriteOp
from store.records import ItemId

W = 0.005
F1 = ItemId("prod", "flags", "f1")
F2 = ItemId("prod", "flags", "f2")
S1 = ItemId("prod", "segments", "s1")
OTHER_ENV = ItemId("test", "flags", "f1")
BASE = {
    "key": "f1",
    "version": 3,
    "on": False,
    "variations": [1, 2],
    "salt": "stored-salt",
    "fallthrough": {"variation": 0},
}


@dataclass
class Case:
    name: str
    steps: list[tuple[float, ItemId, OpKind, Any]]
    stored: dict[ItemId, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[int, RejectReason] = field(default_factory=dict)  # step index -> reason
    # take_due(at) -> [(item, expected subset of value or None for a delete, tokens)]
    take: list[tuple[float, list[tuple[ItemId, dict[str, Any] | None, list[int]]]]] = field(
        default_factory=list
    )


CASES = [
    Case(
        "single put is due one window later",
        [(0.0, F1, OpKind.PUT, {"variations": [True]})],
        take=[(0.0049, []), (0.005, [(F1, {"variations": [True], "on": False}, [0])])],
    ),
    Case(
        "last put wins, one change, every token answered",
        [
            (0.0, F1, OpKind.PUT, {"variations": [1]}),
            (0.001, F1, OpKind.PUT, {"variations": [2]}),
            (0.004, F1, OpKind.PUT, {"variations": [3]}),
        ],
        take=[(0.005, [(F1, {"variations": [3]}, [0, 1, 2])])],
    ),
    Case(
        "window counts from the first write, so a stream cannot postpone it",
        [(0.0, F1, OpKind.PUT, {}), (0.0049, F1, OpKind.PUT, {"on": False})],
        take=[(0.005, [(F1, {"on": False}, [0, 1])])],
    ),
    Case(
        "write after the take opens a new change",
        [(0.0, F1, OpKind.PUT, {}), (0.006, F1, OpKind.PUT, {"variations": ["x"]})],
        take=[
            (0.005, [(F1, {"variations": []}, [0])]),
            (0.011, [(F1, {"variations": ["x"]}, [1])]),
        ],
    ),
    Case(
        "patches compose onto the pending put",
        [
            (0.0, F1, OpKind.PUT, {"variations": [1, 2]}),
            (0.001, F1, OpKind.PATCH, {"on": True, "fallthrough": {"variation": 1}}),
            (0.002, F1, OpKind.PATCH, {"offVariation": 0}),
        ],
        take=[
            (
                0.005,
                [
                    (
                        F1,
                        {
                            "on": True,
                            "offVariation": 0,
                            "variations": [1, 2],
                            "fallthrough": {"variation": 1},
                        },
                        [0, 1, 2],
                    )
                ],
            )
        ],
    ),
    Case(
        "patch composes onto the stored item and keeps its salt",
        [(0.0, F1, OpKind.PATCH, {"offVariation": 1})],
        stored={F1: BASE},
        take=[
            (0.005, [(F1, {"offVariation": 1, "salt": "stored-salt", "variations": [1, 2]}, [0])])
        ],
    ),
    Case(
        "put without salt keeps the stored salt",
        [(0.0, F1, OpKind.PUT, {"variations": [5]})],
        stored={F1: BASE},
        take=[(0.005, [(F1, {"salt": "stored-salt", "variations": [5]}, [0])])],
    ),
    Case(
        "a bad patch is refused alone and leaves the pending state",
        [
            (0.0, F1, OpKind.PUT, {"variations": [1, 2]}),
            (0.001, F1, OpKind.PATCH, {"offVariation": 7}),
            (0.002, F1, OpKind.PATCH, {"offVariation": 1}),
        ],
        rejected={1: RejectReason.INVALID},
        take=[(0.005, [(F1, {"offVariation": 1}, [0, 2])])],
    ),
    Case(
        "an invalid put is refused and opens nothing",
        [(0.0, F1, OpKind.PUT, {"offVariation": 3})],
        rejected={0: RejectReason.INVALID},
        take=[(1.0, [])],
    ),
    Case(
        "patch of a missing item is not found",
        [(0.0, F1, OpKind.PATCH, {"on": False})],
        rejected={0: RejectReason.NOT_FOUND},
        take=[(1.0, [])],
    ),
    Case(
        "delete of a missing item is not found",
        [(0.0, F1, OpKind.DELETE, None)],
        rejected={0: RejectReason.NOT_FOUND},
        take=[(1.0, [])],
    ),
    Case(
        "put then delete ends deleted",
        [(0.0, F1, OpKind.PUT, {}), (0.001, F1, OpKind.DELETE, None)],
        take=[(0.005, [(F1, None, [0, 1])])],
    ),
    Case(
        "delete then patch in the window is not found",
        [(0.0, F1, OpKind.DELETE, None), (0.001, F1, OpKind.PATCH, {"on": False})],
        stored={F1: BASE},
        rejected={1: RejectReason.NOT_FOUND},
        take=[(0.005, [(F1, None, [0])])],
    ),
    Case(
        "delete then put re-creates",
        [(0.0, F1, OpKind.DELETE, None), (0.001, F1, OpKind.PUT, {"variations": [9]})],
        stored={F1: BASE},
        take=[(0.005, [(F1, {"variations": [9]}, [0, 1])])],
    ),
    Case(
        "different keys, kinds and envs stay apart and come out in due order",
        [
            (0.0, F1, OpKind.PUT, {}),
            (0.001, S1, OpKind.PUT, {"included": ["u"]}),
            (0.002, OTHER_ENV, OpKind.PUT, {}),
            (0.003, F2, OpKind.PUT, {}),
        ],
        take=[
            (0.006, [(F1, {}, [0]), (S1, {"included": ["u"]}, [1])]),
            (0.1, [(OTHER_ENV, {}, [2]), (F2, {}, [3])]),
        ],
    ),
    Case(
        "patch replacing the whole document must still be an object",
        [(0.0, F1, OpKind.PATCH, [1])],
        stored={F1: BASE},
        rejected={0: RejectReason.INVALID},
        take=[(1.0, [])],
    ),
    Case(
        "patch of null is an invalid document, not a delete",
        [(0.0, F1, OpKind.PATCH, None), (0.0, F1, OpKind.PUT, None)],
        stored={F1: BASE},
        rejected={0: RejectReason.INVALID, 1: RejectReason.INVALID},
        take=[(1.0, [])],
    ),
    Case(
        "patch changing the key is refused",
        [(0.0, F1, OpKind.PATCH, {"key": "f9"})],
        stored={F1: BASE},
        rejected={0: RejectReason.INVALID},
        take=[(1.0, [])],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_coalescer(case: Case) -> None:
    co: Coalescer[int] = Coalescer(W, salt_source=lambda: "new-salt")
    lookups: list[ItemId] = []

    def current(item: ItemId) -> dict[str, Any] | None:
        lookups.append(item)
        return case.stored.get(item)

    rejected = {}
    takes = list(case.take)  # a take at time T happens before the steps later than T

    def run_takes(until: float) -> None:
        while takes and takes[0][0] < until:
            check_take(co, *takes.pop(0))

    for i, (t, item, op, body) in enumerate(case.steps):
        run_takes(t)
        r = co.submit(WriteOp(item, op, body), i, t, current)
        if r is not None:
            rejected[i] = r.reason
            assert r.errors and all(isinstance(e, str) for e in r.errors)
    run_takes(math.inf)
    assert rejected == case.rejected
    assert len(co) == 0 or co.next_due() > case.take[-1][0]


def check_take(
    co: Coalescer[int], at: float, expected: list[tuple[ItemId, dict[str, Any] | None, list[int]]]
) -> None:
    dues = co.take_due(at)
    assert [(d.item, list(d.tokens)) for d in dues] == [(e[0], e[2]) for e in expected]
    for due, (_, subset, _) in zip(dues, expected, strict=True):
        if subset is None:
            assert due.value is None
        else:
            assert due.value is not None
            assert {k: due.value[k] for k in subset} == subset
            assert due.value["key"] == due.item.key and due.value["deleted"] is False
            assert "version" not in due.value


def test_current_is_read_only_when_nothing_is_pending() -> None:
    co: Coalescer[int] = Coalescer(W)
    reads: list[ItemId] = []

    def current(item: ItemId) -> dict[str, Any] | None:
        reads.append(item)
        return dict(BASE)

    for i in range(5):
        assert co.submit(WriteOp(F1, OpKind.PATCH, {"on": i % 2 == 0}), i, 0.0, current) is None
    assert reads == [F1]


def test_next_due_and_take_all() -> None:
    co: Coalescer[str] = Coalescer(0.01)
    assert co.next_due() == math.inf
    co.submit(WriteOp(F1, OpKind.PUT, {}), "a", 1.0, lambda _: None)
    co.submit(WriteOp(F2, OpKind.PUT, {}), "b", 1.002, lambda _: None)
    assert co.next_due() == pytest.approx(1.01)
    assert [d.tokens for d in co.take_all()] == [("a",), ("b",)]
    assert co.next_due() == math.inf and len(co) == 0


def test_default_window_is_5_ms() -> None:
    co: Coalescer[str] = Coalescer()
    co.submit(WriteOp(F1, OpKind.PUT, {}), "a", 2.0, lambda _: None)
    assert co.next_due() == 2.005


@pytest.mark.parametrize(("item", "op"), [(F1, OpKind.PATCH), (F1, OpKind.DELETE),
                                          (S1, OpKind.PATCH), (S1, OpKind.DELETE)])
def test_missing_item_is_named_in_the_rejection(item: ItemId, op: OpKind) -> None:
    co: Coalescer[int] = Coalescer(W)
    rejected = co.submit(WriteOp(item, op, {"on": True}), 0, 0.0, lambda _: None)
    assert rejected is not None
    noun = {"flags": "flag", "segments": "segment"}[item.kind]
    assert (rejected.reason, rejected.errors) == (RejectReason.NOT_FOUND, (f"{noun} not found",))


def test_new_item_gets_defaults_and_generated_salt() -> None:
    co: Coalescer[int] = Coalescer(W, salt_source=lambda: "generated")
    co.submit(WriteOp(F1, OpKind.PUT, {"variations": [True]}), 0, 0.0, lambda _: None)
    co.submit(WriteOp(S1, OpKind.PUT, {}), 1, 0.0, lambda _: None)
    flag, seg = (d.value for d in co.take_due(1.0))
    assert flag == {
        "key": "f1",
        "variations": [True],
        "on": False,
        "prerequisites": [],
        "targets": [],
        "contextTargets": [],
        "rules": [],
        "trackEvents": False,
        "trackEventsFallthrough": False,
        "salt": "generated",
        "deleted": False,
    }
    assert seg == {
        "key": "s1",
        "included": [],
        "excluded": [],
        "includedContexts": [],
        "excludedContexts": [],
        "rules": [],
        "salt": "generated",
        "deleted": False,
    }


def test_actors_are_recorded() -> None:
    co: Coalescer[int] = Coalescer(W)
    co.submit(WriteOp(F1, OpKind.PUT, {}, actor="alice"), 0, 0.0, lambda _: None)
    co.submit(WriteOp(F1, OpKind.PUT, {}, actor="bob"), 1, 0.0, lambda _: None)
    co.submit(WriteOp(F1, OpKind.PUT, {}, actor="alice"), 2, 0.0, lambda _: None)
    (due,) = co.take_due(1.0)
    assert due.actor == "alice, bob" and due.writes == 3
