"""FlagDB on real SQLite files: versions, tombstones, seqs, history, snapshots, restart."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from bus.envelope import Change, ItemChange
from store.db import EnvironmentExistsError, FlagDB
from store.normalize import normalize
from store.records import ChangeRequest, HistoryFilter, ItemWrite


def put(kind: Any, key: str, data: dict[str, Any] | None = None) -> ItemWrite:
    return ItemWrite(kind, key, normalize(kind, key, data or {}, salt="s"))


def delete(kind: Any, key: str) -> ItemWrite:
    return ItemWrite(kind, key, None)


def one(env: str, w: ItemWrite, actor: str = "alice") -> ChangeRequest:
    return ChangeRequest(env, actor, (w,))


@pytest.fixture
def db(tmp_path: Path) -> Any:
    d = FlagDB(tmp_path, clock=lambda: 1700000000.123)
    d.create_environment("prod", "Production")
    yield d
    d.close()


def test_wal_mode_and_full_sync(db: FlagDB) -> None:
    conn = sqlite3.connect(db.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert db.path.name == "flagstream.db"


def test_environment_credentials_and_conflict(db: FlagDB) -> None:
    env = db.get_environment("prod")
    assert env is not None
    assert env.sdk_key.startswith("sdk-") and len(env.sdk_key) == 40
    assert env.mobile_key.startswith("mob-") and len(env.mobile_key) == 40
    assert len(env.client_side_id) == 24 and set(env.client_side_id) <= set("0123456789abcdef")
    with pytest.raises(EnvironmentExistsError):
        db.create_environment("prod", "Again")
    msg = db.create_environment("test", "Test", secure_mode=True)
    assert msg.seq == 2 and msg.env.secure_mode
    assert [e.key for e in db.list_environments()] == ["prod", "test"]
    assert db.get_environment("nope") is None


# (operations on one flag, expected (version, deleted) after each)
VERSION_TABLE = [
    ("create", ["put"], [(1, False)]),
    ("update twice", ["put", "put", "put"], [(1, False), (2, False), (3, False)]),
    ("delete keeps a tombstone", ["put", "delete"], [(1, False), (2, True)]),
    (
        "re-create continues from the tombstone",
        ["put", "delete", "put", "delete", "put"],
        [(1, False), (2, True), (3, False), (4, True), (5, False)],
    ),
]


@pytest.mark.parametrize(
    ("name", "ops", "expected"), VERSION_TABLE, ids=[r[0] for r in VERSION_TABLE]
)
def test_versions_increase_strictly(
    db: FlagDB, name: str, ops: list[str], expected: list[tuple[int, bool]]
) -> None:
    for op, (version, deleted) in zip(ops, expected, strict=True):
        w = put("flags", "f") if op == "put" else delete("flags", "f")
        (res,) = db.commit([one("prod", w)])
        stored = db.get_item("prod", "flags", "f")
        assert stored is not None
        assert (stored.version, stored.deleted) == (version, deleted)
        assert res.items[0].stored == stored
        doc = stored.as_dict()
        assert doc["version"] == version and doc["key"] == "f" and doc.get("deleted") is deleted


def test_created_flag_and_stored_json(db: FlagDB) -> None:
    (a,) = db.commit([one("prod", put("flags", "f", {"variations": [1]}))])
    (b,) = db.commit([one("prod", put("flags", "f", {"variations": [2]}))])
    (c,) = db.commit([one("prod", delete("flags", "f"))])
    (d,) = db.commit([one("prod", put("flags", "f"))])
    assert [x.items[0].created for x in (a, b, c, d)] == [True, False, False, True]
    doc = orjson.loads(b.items[0].stored.json)
    assert list(doc)[:2] == ["key", "version"]  # key and version lead, as the SDKs write
    assert doc["variations"] == [2] and doc["prerequisites"] == [] and doc["deleted"] is False
    assert orjson.loads(c.items[0].stored.json) == {"key": "f", "version": 3, "deleted": True}


def test_group_commit_assigns_consecutive_seqs_in_order(db: FlagDB) -> None:
    base = db.latest_seq()
    results = db.commit(
        [
            one("prod", put("flags", "a")),
            one("prod", put("segments", "s")),
            one("prod", put("flags", "a")),
        ]
    )
    assert [r.change.seq for r in results] == [base + 1, base + 2, base + 3]
    assert results[0].change == Change(
        base + 1, "prod", (ItemChange("flags", "a", 1, results[0].items[0].stored.json),)
    )
    assert [r.change.items[0].version for r in results] == [1, 1, 2]
    assert db.latest_seq() == base + 3


def test_import_is_one_change_with_many_items(db: FlagDB) -> None:
    (res,) = db.commit(
        [
            ChangeRequest(
                "prod",
                "bob",
                (
                    put("flags", "a"),
                    put("flags", "b"),
                    put("segments", "s"),
                    delete("flags", "gone"),
                ),
                label="import",
            )
        ]
    )
    assert len(res.change.items) == 4
    assert res.change.items[3] == ItemChange("flags", "gone", 1, None)
    (row,) = db.history("prod", limit=1)
    assert row.seq == res.change.seq and row.kind == "import" and row.actor == "bob"
    assert row.as_dict()["after"] == {"flags": {"a": 1, "b": 1, "gone": 1}, "segments": {"s": 1}}


def test_history_newest_first_with_before_and_after(db: FlagDB) -> None:
    db.commit([one("prod", put("flags", "f", {"variations": [1]}), actor="alice")])
    db.commit([one("prod", put("flags", "f", {"variations": [2]}), actor="bob")])
    db.commit([one("prod", delete("flags", "f"), actor="carol")])
    rows = db.history("prod", limit=10)
    assert [r.actor for r in rows] == ["carol", "bob", "alice", "admin"]
    assert [r.kind for r in rows] == ["flags", "flags", "flags", "environment"]
    carol, bob, alice = (r.as_dict() for r in rows[:3])
    assert alice["before"] is None and alice["after"]["variations"] == [1]
    assert bob["before"]["variations"] == [1] and bob["after"]["variations"] == [2]
    assert carol["before"]["version"] == 2 and carol["after"] is None
    assert alice["atMs"] == 1700000000123 and alice["at"] == "2023-11-14T22:13:20.123Z"
    page = db.history("prod", limit=2, before=rows[1].seq)
    assert [r.seq for r in page] == [rows[2].seq, rows[3].seq]
    assert db.history("other", limit=10) == []


def test_history_filters(tmp_path: Path) -> None:
    now = [1700000000.0]
    d = FlagDB(tmp_path, clock=lambda: now[0])
    try:
        d.create_environment("prod", "Production", actor="ops")
        for i, (kind, key, who) in enumerate([("flags", "a", "alice"), ("flags", "b", "bob"),
                                              ("segments", "a", "alice"), ("flags", "a", "bob")]):
            now[0] += 60
            d.commit([one("prod", put(kind, key, {"variations": [i]} if kind == "flags" else {}),
                          actor=who)])

        def keys(**kw: Any) -> list[tuple[str, str, str]]:
            return [(r.kind, r.key, r.actor) for r in d.history("prod", limit=10,
                                                                 filters=HistoryFilter(**kw))]

        table: list[tuple[dict[str, Any], list[tuple[str, str, str]]]] = [
            ({}, [("flags", "a", "bob"), ("segments", "a", "alice"), ("flags", "b", "bob"),
                  ("flags", "a", "alice"), ("environment", "prod", "ops")]),
            ({"kind": "flags", "key": "a"}, [("flags", "a", "bob"), ("flags", "a", "alice")]),
            ({"key": "a"}, [("flags", "a", "bob"), ("segments", "a", "alice"),
                            ("flags", "a", "alice")]),
            ({"actor": "alice"}, [("segments", "a", "alice"), ("flags", "a", "alice")]),
            ({"kind": "environment"}, [("environment", "prod", "ops")]),
            ({"since_ms": 1700000180000}, [("flags", "a", "bob"), ("segments", "a", "alice")]),
            ({"actor": "bob", "since_ms": 1700000180000}, [("flags", "a", "bob")]),
            ({"actor": "nobody"}, []),
            ({"until_ms": 1700000120000}, [("flags", "b", "bob"), ("flags", "a", "alice"),
                                           ("environment", "prod", "ops")]),
            ({"until_ms": 1700000119999}, [("flags", "a", "alice"),
                                           ("environment", "prod", "ops")]),
            ({"since_ms": 1700000120000, "until_ms": 1700000180000},
             [("segments", "a", "alice"), ("flags", "b", "bob")]),
            ({"key": "a", "until_ms": 1700000180000}, [("segments", "a", "alice"),
                                                       ("flags", "a", "alice")]),
            ({"until_ms": 1699999999999}, []),
        ]
        for kw, expected in table:
            assert keys(**kw) == expected, kw
    finally:
        d.close()


@pytest.mark.parametrize(("filters", "index"), [
    (HistoryFilter(), "history_by_env"),
    (HistoryFilter(kind="flags"), "history_by_env"),
    (HistoryFilter(kind="flags", key="a"), "history_by_key"),
    (HistoryFilter(key="a", since_ms=1), "history_by_key"),
    (HistoryFilter(actor="alice"), "history_by_actor"),
    (HistoryFilter(since_ms=1), "history_by_env"),
    (HistoryFilter(actor="alice", since_ms=1), "history_by_actor"),
    (HistoryFilter(until_ms=1), "history_by_env"),
    (HistoryFilter(key="a", since_ms=1, until_ms=2), "history_by_key"),
])
def test_history_filters_use_an_index(db: FlagDB, filters: HistoryFilter, index: str) -> None:
    plan = " | ".join(db.history_plan("prod", filters))
    assert plan.startswith(f"SEARCH history USING INDEX {index} (env=?"), plan
    assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan
    if filters.since_ms is not None:  # since: a seq bound found in the time index
        assert "seq>? AND seq<?" in plan and "COVERING INDEX history_by_time" in plan, plan


def test_list_items_leaves_out_tombstones(db: FlagDB) -> None:
    db.commit(
        [
            one("prod", put("flags", "b")),
            one("prod", put("flags", "a")),
            one("prod", put("flags", "c")),
            one("prod", put("segments", "s")),
        ]
    )
    db.commit([one("prod", delete("flags", "c"))])
    assert [i.key for i in db.list_items("prod", "flags")] == ["a", "b"]
    assert [i.key for i in db.list_items("prod", "segments")] == ["s"]


def test_snapshot_is_consistent_and_includes_tombstones(db: FlagDB) -> None:
    db.create_environment("test", "Test")
    db.commit(
        [
            one("prod", put("flags", "a")),
            one("prod", put("flags", "b")),
            one("test", put("segments", "s")),
        ]
    )
    db.commit([one("prod", delete("flags", "b"))])
    snap = db.snapshot(None)
    assert snap.seq == db.latest_seq() == 6 and snap.epoch == db.epoch
    assert [e.env.key for e in snap.envs] == ["prod", "test"]
    prod = snap.envs[0]
    assert [(i.key, i.version, i.deleted) for i in prod.items] == [("a", 1, False), ("b", 2, True)]
    only = db.snapshot("test")
    assert [e.env.key for e in only.envs] == ["test"] and only.envs[0].items[0].key == "s"
    assert db.snapshot("nope").envs == ()


def test_snapshot_from_threads_while_writing(db: FlagDB) -> None:
    """Snapshots taken while the writer commits always agree with their seq."""
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        for _ in range(200):
            if stop.is_set():
                return
            snap = db.snapshot("prod")
            items = snap.envs[0].items if snap.envs else ()
            # every commit below adds one flag and one seq: items == seq - 1 (the env's own)
            if len(items) != snap.seq - 1:
                errors.append(f"seq {snap.seq} with {len(items)} items")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(100):
        db.commit([one("prod", put("flags", f"f{i}"))])
    stop.set()
    for t in threads:
        t.join(10)
    assert errors == []


def test_state_and_epoch_survive_reopen(tmp_path: Path) -> None:
    first = FlagDB(tmp_path)
    first.create_environment("prod", "P")
    first.commit([one("prod", put("flags", "f")), one("prod", delete("flags", "f"))])
    epoch, seq = first.epoch, first.latest_seq()
    first.close()
    again = FlagDB(tmp_path)
    assert (again.epoch, again.latest_seq()) == (epoch, seq)
    (res,) = again.commit([one("prod", put("flags", "f"))])
    assert res.change.seq == seq + 1 and res.items[0].stored.version == 3
    again.close()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_database_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """flagstream.db holds every SDK and mobile key (issue 12, finding 7)."""
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    old_mask = os.umask(0o022)
    try:
        # A database from before, 0644 with its -wal and -shm (a connection holds them open,
        # as a crashed process would have left them).
        before = sqlite3.connect(tmp_path / "old" / "flagstream.db")
        before.execute("PRAGMA journal_mode=WAL")
        before.execute("CREATE TABLE t (x)")
        fresh = FlagDB(tmp_path / "new")
        fresh.create_environment("prod", "Production")  # a write: the -wal and -shm exist
        reopened = FlagDB(tmp_path / "old")
    finally:
        os.umask(old_mask)
    try:
        for directory in (tmp_path / "new", tmp_path / "old"):
            for name in ("flagstream.db", "flagstream.db-wal", "flagstream.db-shm"):
                assert _mode(directory / name) == 0o600, (directory, name)
    finally:
        before.close()
        fresh.close()
        reopened.close()
