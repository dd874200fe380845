"""A patch's comment reaches the change history: the coalescer keeps it, FlagDB stores it,
and a database made before the column existed gets it on open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from store.coalescer import Coalescer, OpKind, WriteOp
from store.db import DB_FILE, FlagDB
from store.patch_format import Patch, PatchFormat, parse_patch
from store.records import ChangeRequest, ItemId, ItemWrite

F1 = ItemId("prod", "flags", "f1")
FLAG = {"key": "f1", "on": True, "variations": [True, False], "fallthrough": {"variation": 0}}


def turn(kind: str) -> Patch:
    return parse_patch(PatchFormat.SEMANTIC, {"instructions": [{"kind": kind}]})


def test_coalesced_writes_keep_every_comment() -> None:
    co: Coalescer[int] = Coalescer(0.005, salt_source=lambda: "s")
    ops = [WriteOp(F1, OpKind.PATCH, turn("turnFlagOff"), "ann", "first"),
           WriteOp(F1, OpKind.PATCH, {"offVariation": 1}, "bob"),
           WriteOp(F1, OpKind.PATCH, turn("turnFlagOn"), "ann", "second")]
    for token, op in enumerate(ops):
        assert co.submit(op, token, 0.0, lambda item: dict(FLAG)) is None
    [due] = co.take_due(1.0)
    assert due.comment == "first; second" and due.actor == "ann, bob"
    assert due.value is not None and due.value["on"] is True and due.value["offVariation"] == 1


def test_history_has_the_comment_and_an_old_database_gets_the_column(tmp_path: Path) -> None:
    db = FlagDB(tmp_path)
    db.create_environment("prod", "Prod")
    db.close()
    with sqlite3.connect(tmp_path / DB_FILE) as conn:  # the schema before comments existed
        conn.execute("ALTER TABLE history DROP COLUMN comment")
    db = FlagDB(tmp_path)
    try:
        write = ItemWrite("flags", "f1", dict(FLAG))
        db.commit([ChangeRequest("prod", "ann", (write,), comment="incident 42"),
                   ChangeRequest("prod", "bob", (write,))])
        rows = [e.as_dict() for e in db.history("prod", limit=10)]
        assert [r.get("comment") for r in rows] == [None, "incident 42", None]
        assert "comment" not in rows[0]  # no comment, no member: older readers see no change
    finally:
        db.close()
