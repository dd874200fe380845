"""Versions read back from the history (store/item_versions.py): each lookup is an index
search, and a database made before reverts existed gets the column and indexes on open."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path

from store.db import DB_FILE, FlagDB
from store.item_versions import list_versions, version_json
from store.records import ChangeRequest, ItemWrite

FLAG = {"on": True, "variations": [True, False], "fallthrough": {"variation": 0}}


def test_an_old_database_gets_revert_of_and_the_version_indexes(tmp_path: Path) -> None:
    db = FlagDB(tmp_path)
    db.create_environment("prod", "Prod")
    db.commit([ChangeRequest("prod", "ann", (ItemWrite("flags", "f", FLAG),))])
    db.close()
    with sqlite3.connect(tmp_path / DB_FILE) as conn:  # the schema before reverts existed
        conn.execute("DROP INDEX history_by_after_version")
        conn.execute("DROP INDEX history_by_before_version")
        conn.execute("ALTER TABLE history DROP COLUMN revert_of")
    db = FlagDB(tmp_path)
    try:
        db.commit([ChangeRequest("prod", "bob", (ItemWrite("flags", "f", FLAG),), revert_of=1)])
        rows = db.read(partial(list_versions, env="prod", kind="flags", key="f", limit=10,
                               before=None))
        assert [(r.version, r.revert_of) for r in rows] == [(2, 1), (1, None)]
        assert db.history("prod", limit=1)[0].as_dict()["revertOf"] == 1
        found = db.read(partial(version_json, env="prod", kind="flags", key="f", version=1))
        assert found is not None and found["version"] == 1
        plans = db.read(lambda conn: [str(r[3]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT after FROM history INDEXED BY history_by_after_version"
            " WHERE env = ? AND key = ? AND kind = ? AND json_extract(after, '$.version') = ?",
            ("prod", "f", "flags", 1))])
        assert any("USING INDEX history_by_after_version" in p for p in plans), plans
        assert not any("SCAN" in p for p in plans), plans
    finally:
        db.close()
