"""The change-request table and the version guard of an approval, without HTTP."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from bus.envelope import EnvironmentInfo
from store.approvals import ApprovalDB, Status, TooManyPendingError, direct_write_refusal
from store.db import FlagDB
from store.patch_errors import PatchConflictError
from store.patch_format import Patch, PatchFormat, apply_patch
from store.writer import ConflictError, Writer
from tests.store.test_store_writer import FLAG, RecordingPublisher


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[tuple[FlagDB, ApprovalDB]]:
    db = FlagDB(tmp_path, clock=lambda: 1000.0)
    db.create_environment("prod", "Production")
    approvals = ApprovalDB(db.path, clock=lambda: 1000.0)
    yield db, approvals
    approvals.close()
    db.close()


def add(approvals: ApprovalDB, env: str = "prod") -> int:
    return approvals.add(env, "f", 1, "merge", {"on": False}, "why", "alice").id


def test_closed_requests_beyond_the_bound_are_dropped_oldest_decision_first(
        dbs: tuple[FlagDB, ApprovalDB], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("store.approvals.MAX_CLOSED_PER_ENV", 2)
    db, _ = dbs
    ticks = itertools.count(1000)
    approvals = ApprovalDB(db.path, clock=lambda: float(next(ticks)))
    ids = [add(approvals) for _ in range(4)]
    for i in (ids[1], ids[0], ids[2]):  # decided in this order
        assert approvals.close_request("prod", i, Status.DECLINED, "bob", None) is not None
    approvals.close()
    _, reader = dbs
    # ids[1] was decided first: it is gone; the pending ids[3] stays whatever the bound.
    assert [cr.id for cr in reader.list("prod")] == [ids[3], ids[2], ids[0]]
    assert [cr.id for cr in reader.list("prod", status=Status.PENDING)] == [ids[3]]


def test_pending_bound_refuses_and_stores_nothing(
        dbs: tuple[FlagDB, ApprovalDB], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("store.approvals.MAX_PENDING_PER_ENV", 2)
    db, approvals = dbs
    db.create_environment("test", "Test")
    add(approvals)
    add(approvals)
    with pytest.raises(TooManyPendingError):
        add(approvals)
    add(approvals, "test")  # the bound is per environment
    assert len(approvals.list("prod")) == 2


def test_a_closed_request_cannot_be_closed_again(dbs: tuple[FlagDB, ApprovalDB]) -> None:
    _, approvals = dbs
    i = add(approvals)
    done = approvals.close_request("prod", i, Status.APPROVED, "bob", "ok", applied_version=2)
    assert done is not None and done.applied_version == 2 and done.decided_by == "bob"
    assert approvals.close_request("prod", i, Status.DECLINED, "carol", None) is None
    assert approvals.close_request("test", i, Status.DECLINED, "carol", None) is None


STORED = {"key": "f", "version": 3, "on": True, "variations": [True, False]}


@pytest.mark.parametrize(("state", "expect", "applies"), [
    (STORED, 3, True),
    (STORED, 2, False),
    ({k: v for k, v in STORED.items() if k != "version"}, 3, False),  # a pending state
    (STORED, None, True),
])
def test_a_patch_with_an_expected_version_applies_only_at_that_version(
        state: dict[str, Any], expect: int | None, applies: bool) -> None:
    patch = Patch(PatchFormat.MERGE, {"on": False}, expect_version=expect)
    if applies:
        assert apply_patch(state, patch)["on"] is False
    else:
        with pytest.raises(PatchConflictError, match=f"no longer at version {expect}"):
            apply_patch(state, patch)


async def test_the_writer_refuses_a_guarded_patch_behind_a_pending_write(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    """Two approvals of requests made against the same version, in one coalescing window:
    the second must not apply on top of the first."""
    db = FlagDB(tmp_path)
    db.create_environment("prod", "Production")
    writer = Writer(db, RecordingPublisher(), window_s=0.005)
    guarded = Patch(PatchFormat.MERGE, {"on": False}, expect_version=1)
    results: dict[str, Any] = {}

    async def approve(name: str, patch: Patch) -> None:
        try:
            results[name] = (await writer.patch("prod", "flags", "f", patch)).item.version
        except ConflictError as exc:
            results[name] = exc

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.put("prod", "flags", "f", FLAG)
        async with trio.open_nursery() as both:
            both.start_soon(approve, "first", guarded)
            await trio.sleep(0.001)
            other = replace(guarded, body={"variations": [True, False, 1]})
            both.start_soon(approve, "second", other)
        nursery.cancel_scope.cancel()
    db.close()
    assert results["first"] == 2 and isinstance(results["second"], ConflictError)


def test_only_flag_writes_in_an_approval_environment_are_refused() -> None:
    env = EnvironmentInfo("prod", "P", "sdk-1", "mob-1", "c", require_approval=True)
    assert direct_write_refusal(env, "segments", "s") is None
    assert direct_write_refusal(replace(env, require_approval=False), "flags", "f") is None
    assert direct_write_refusal(env, "flags", "f") == (
        "environment prod requires approval: propose the change with POST "
        "/api/v1/environments/prod/flags/f/change-requests")
    assert "an import" in (direct_write_refusal(env, "flags", None) or "")
