"""Revert: the pure planner (store/history_revert.py) as a table, and the writer checking the
references after the writes before it, on a mock clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from store.db import FlagDB
from store.history_revert import RevertRefusedError, missing_references, plan_revert
from store.writer import ConflictError, Writer
from tests.store.test_store_writer import RecordingPublisher

FLAG = {"key": "f", "version": 2, "on": True, "variations": [True, False],
        "fallthrough": {"variation": 0}, "salt": "old-salt", "deleted": False}
SEG_RULE = {"clauses": [{"attribute": "", "op": "segmentMatch", "values": ["beta", "gone"]}],
            "variation": 1}


@pytest.mark.parametrize(("old", "status", "words"), [
    (None, 404, "not in the history"),
    ({"key": "f", "version": 2, "deleted": True}, 400, "deletion"),
    ({**FLAG, "fallthrough": {"variation": 5}}, 409, "no longer validates"),
])
def test_refusals(old: dict[str, Any] | None, status: int, words: str) -> None:
    with pytest.raises(RevertRefusedError) as exc:
        plan_revert("flags", "f", 2, old)
    assert exc.value.status == status and words in exc.value.message


def test_the_content_comes_back_with_its_salt() -> None:
    data = plan_revert("flags", "f", 2, FLAG)
    assert "version" not in data and data["salt"] == "old-salt" and data["on"] is True


def test_missing_references_names_each() -> None:
    flag = {**FLAG, "rules": [SEG_RULE], "prerequisites": [{"key": "dep", "variation": 0}]}
    have = {("segments", "beta")}
    message = missing_references("flags", "f", 2, flag, lambda k, key: (k, key) in have)
    assert message is not None
    assert 'prerequisite flag "dep"' in message and 'segment "gone"' in message
    assert '"beta"' not in message
    assert missing_references("flags", "f", 2, FLAG, lambda k, key: False) is None


async def test_a_pending_delete_of_a_named_segment_refuses_the_revert(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    db = FlagDB(tmp_path)
    db.create_environment("prod", "P")
    writer = Writer(db, pub := RecordingPublisher(), window_s=10.0)
    refused: list[Exception] = []

    def exists(kind: str, key: str) -> bool:
        item = db.get_item("prod", kind, key)  # type: ignore[arg-type]
        return item is not None and not item.deleted

    async def revert() -> None:
        data = plan_revert("flags", "f", 1, {**FLAG, "rules": [SEG_RULE]})
        data["rules"][0]["clauses"][0]["values"] = ["beta"]
        try:
            await writer.revert("prod", "flags", "f", data, revert_of=1, precondition=lambda:
                                missing_references("flags", "f", 1, data, exists))
        except ConflictError as exc:
            refused.append(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.put("prod", "segments", "beta", {"included": ["u1"]})
        nursery.start_soon(writer.delete, "prod", "segments", "beta")  # pending for 10 s
        await trio.sleep(1.0)
        assert exists("segments", "beta")  # the delete is still in its window
        before = trio.current_time()
        await revert()
        assert trio.current_time() == before  # at once: the delete was flushed, not awaited
        nursery.cancel_scope.cancel()
    assert len(refused) == 1 and 'segment "beta"' in str(refused[0])
    assert not exists("segments", "beta") and db.get_item("prod", "flags", "f") is None
    assert [c.items[0].key for _, c in pub.log[-2:]] == ["beta", "beta"]  # put, then delete
    db.close()
