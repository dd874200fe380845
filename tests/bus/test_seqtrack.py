"""Decision tables for the subscriber's pure sequence tracker (bus/seqtrack.py)."""

from __future__ import annotations

import pytest

from bus.envelope import Change, EnvChange, EnvironmentInfo, Heartbeat
from bus.seqtrack import Action, BusEvent, Decision, Reason, SeqTracker, decide

ENV = EnvironmentInfo("prod", "P", "s", "m", "c")


def chg(seq: int) -> Change:
    return Change(seq, "prod", ())


DECIDE: list[tuple[str, int | None, str | None, BusEvent, Action, Reason]] = [
    ("next change applies", 5, "e", chg(6), Action.APPLY, Reason.IN_ORDER),
    ("next env change applies", 5, "e", EnvChange(6, ENV), Action.APPLY, Reason.IN_ORDER),
    ("first change after empty snapshot", 0, "e", chg(1), Action.APPLY, Reason.IN_ORDER),
    ("duplicate ignored", 5, "e", chg(5), Action.IGNORE, Reason.ALREADY_HAVE),
    ("old change ignored", 5, "e", chg(2), Action.IGNORE, Reason.ALREADY_HAVE),
    ("old env change ignored", 5, "e", EnvChange(1, ENV), Action.IGNORE, Reason.ALREADY_HAVE),
    ("gap of one", 5, "e", chg(7), Action.RESYNC, Reason.GAP),
    ("big gap", 5, "e", chg(500), Action.RESYNC, Reason.GAP),
    ("env change gap", 5, "e", EnvChange(8, ENV), Action.RESYNC, Reason.GAP),
    ("heartbeat at last", 5, "e", Heartbeat(5, "e"), Action.IGNORE, Reason.HEARTBEAT_OK),
    ("heartbeat behind a snapshot", 5, "e", Heartbeat(3, "e"),
     Action.IGNORE, Reason.HEARTBEAT_OK),
    ("heartbeat ahead", 5, "e", Heartbeat(6, "e"), Action.RESYNC, Reason.HEARTBEAT_AHEAD),
    ("new epoch, older db", 5, "e", Heartbeat(2, "f"), Action.RESYNC, Reason.EPOCH_CHANGED),
    ("new epoch, same seq", 5, "e", Heartbeat(5, "f"), Action.RESYNC, Reason.EPOCH_CHANGED),
    ("new epoch, ahead", 5, "e", Heartbeat(9, "f"), Action.RESYNC, Reason.EPOCH_CHANGED),
    ("not synced: change", None, None, chg(1), Action.RESYNC, Reason.NOT_SYNCED),
    ("not synced: heartbeat", None, None, Heartbeat(1, "e"), Action.RESYNC, Reason.NOT_SYNCED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "last", "epoch", "msg", "action", "reason"), DECIDE, ids=[r[0] for r in DECIDE]
)
def test_decide(
    name: str, last: int | None, epoch: str | None, msg: BusEvent, action: Action, reason: Reason
) -> None:
    d = decide(last, epoch, msg)
    assert (d.action, d.reason) == (action, reason)


# (event, now, expected action, expected last_seq afterwards); "snap:S:E" = snapshot,
# "tick" = no message. heartbeat_timeout is 3.0.
SCRIPTS: list[tuple[str, list[tuple[str | BusEvent, float, Action | None, int | None]]]] = [
    ("in order then gap", [
        ("snap:10:e", 0.0, None, 10),
        (chg(11), 0.5, Action.APPLY, 11),
        (chg(12), 0.6, Action.APPLY, 12),
        (chg(12), 0.7, Action.IGNORE, 12),
        (chg(14), 0.8, Action.RESYNC, 12),
        ("snap:14:e", 1.0, None, 14),
        (chg(13), 1.1, Action.IGNORE, 14),
        (chg(15), 1.2, Action.APPLY, 15),
    ]),
    ("silence", [
        ("snap:3:e", 10.0, None, 3),
        ("tick", 12.9, Action.IGNORE, 3),
        ("tick", 13.0, Action.RESYNC, 3),
        ("snap:3:e", 13.5, None, 3),
        ("tick", 16.4, Action.IGNORE, 3),
        (Heartbeat(3, "e"), 16.0, Action.IGNORE, 3),
        ("tick", 18.9, Action.IGNORE, 3),
        ("tick", 19.0, Action.RESYNC, 3),
    ]),
    ("store restored from an older db", [
        ("snap:50:e1", 0.0, None, 50),
        (chg(20), 1.0, Action.IGNORE, 50),
        (Heartbeat(20, "e2"), 1.1, Action.RESYNC, 50),
        ("snap:20:e2", 1.2, None, 20),
        (Heartbeat(20, "e2"), 2.0, Action.IGNORE, 20),
        (chg(21), 2.1, Action.APPLY, 21),
    ]),
    ("before any snapshot", [
        ("tick", 100.0, Action.RESYNC, None),
        (chg(1), 100.1, Action.RESYNC, None),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_tracker_scripts(
    name: str, script: list[tuple[str | BusEvent, float, Action | None, int | None]]
) -> None:
    t = SeqTracker(heartbeat_timeout=3.0)
    for step, (event, now, action, last_after) in enumerate(script):
        if isinstance(event, str) and event.startswith("snap:"):
            _, seq, epoch = event.split(":")
            t.on_snapshot(int(seq), epoch, now)
        elif event == "tick":
            assert t.on_tick(now).action is action, step
        else:
            assert not isinstance(event, str)
            assert t.on_message(event, now).action is action, step
        assert t.last_seq == last_after, step


def test_deadline_follows_messages_and_never_goes_back() -> None:
    t = SeqTracker(heartbeat_timeout=2.0)
    assert t.deadline() is None and not t.synced
    t.on_snapshot(1, "e", now=5.0)
    assert t.synced and t.deadline() == 7.0
    t.on_message(Heartbeat(1, "e"), now=6.0)
    assert t.deadline() == 8.0 and t.last_message_at == 6.0
    # a buffered message decided late carries its earlier arrival time
    t.on_message(chg(2), now=5.5)
    assert t.deadline() == 8.0 and t.last_message_at == 6.0 and t.last_seq == 2


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"^heartbeat_timeout must be positive$"):
        SeqTracker(heartbeat_timeout=timeout)


def test_a_timeout_below_one_second_is_kept_exactly() -> None:
    t = SeqTracker(heartbeat_timeout=0.25)
    assert t.epoch is None and t.last_seq is None and t.last_message_at is None
    t.on_snapshot(1, "e", now=10.0)
    assert t.deadline() == 10.25
    assert t.on_tick(10.2) == Decision(Action.IGNORE, Reason.WAITING)
    assert t.on_tick(10.25) == Decision(Action.RESYNC, Reason.SILENCE)


def test_tick_reasons() -> None:
    t = SeqTracker(heartbeat_timeout=3.0)
    assert t.on_tick(1.0) == Decision(Action.RESYNC, Reason.NOT_SYNCED)
    t.on_snapshot(1, "e", now=1.0)
    assert t.on_tick(4.0) == Decision(Action.RESYNC, Reason.SILENCE)
