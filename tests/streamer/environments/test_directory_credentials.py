"""The directory's credential lookups: each kind of credential opens only its own kind of
endpoint, rotated keys in their grace period included (issue 12, finding 2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import trio
from streamer_testkit import ENV, snapshot

from bus.envelope import EnvChange
from streamer.environments.directory import Directory
from streamer.fastpath.http_head import StreamKind
from streamer.fastpath.stream_gate import StreamGate

NOW_MS = 1_000
ROTATED = replace(ENV, sdk_key="sdk-new", mobile_key="mob-new",
                  old_sdk_keys=(("sdk-prod-1", 5_000),), old_mobile_keys=(("mob-prod-1", 5_000),))
# The lookup behind each kind of endpoint, by what it authenticates.
Lookup = Callable[[Directory, str], bool]
LOOKUPS: dict[str, Lookup] = {
    # /all, /flags, /sdk/latest-*, /sdk/evalx/contexts, /bulk, /diagnostic
    "sdk": lambda d, c: d.env_key_for_sdk_key(c) is not None and d.stream_target(c) is not None,
    # /meval, /mping, /msdk/evalx, /mobile/*
    "mobile": lambda d, c: (d.env_key_for_mobile_key(c) is not None
                            and d.client_stream_target(StreamKind.MEVAL, c) is not None
                            and d.client_stream_target(StreamKind.MPING, c) is not None),
    # /eval/{envId}, /ping/{envId}, /sdk/evalx/{envId}, /events/bulk/{envId}
    "env id": lambda d, c: (d.env_key_for_client_side_id(c) is not None
                            and d.client_stream_target(StreamKind.EVAL, c) is not None
                            and d.client_stream_target(StreamKind.PING, c) is not None),
}
# credential -> the one kind of lookup that finds it
OPENS: list[tuple[str, str]] = [
    ("sdk-new", "sdk"),
    ("api_key sdk-new", "sdk"),
    ("sdk-prod-1", "sdk"),  # rotated SDK key, in its grace period
    ("api_key sdk-prod-1", "sdk"),
    ("mob-new", "mobile"),
    ("mob-prod-1", "mobile"),  # rotated mobile key, in its grace period: never an SDK key
    ("api_key mob-prod-1", "mobile"),
    ("cid-prod-1", "env id"),
]


@pytest.mark.parametrize(("credential", "kind"), OPENS)
async def test_each_credential_opens_only_its_kind(
    nursery: trio.Nursery, credential: str, kind: str
) -> None:
    directory = Directory(gate=StreamGate(), wall_clock_ms=lambda: NOW_MS)
    directory.unknown_credential_hold_s = 0
    await nursery.start(directory.run)
    await directory.apply_snapshot(snapshot(1, (ROTATED, ())), full=True)
    # an environment ID is a path segment, not a header: it has no "api_key " form
    opened = {name for name, lookup in LOOKUPS.items()
              if not (name == "env id" and credential.startswith("api_key "))
              and lookup(directory, credential)}
    assert opened == {kind}


async def test_rotated_keys_stop_at_their_expiry_in_their_own_kind(
    nursery: trio.Nursery
) -> None:
    now_ms = [NOW_MS]
    directory = Directory(gate=StreamGate(), wall_clock_ms=lambda: now_ms[0])
    await nursery.start(directory.run)
    await directory.apply_snapshot(snapshot(1, (ROTATED, ())), full=True)
    assert LOOKUPS["sdk"](directory, "sdk-prod-1")
    assert LOOKUPS["mobile"](directory, "mob-prod-1")
    now_ms[0] = 5_000
    assert not LOOKUPS["sdk"](directory, "sdk-prod-1")
    assert not LOOKUPS["mobile"](directory, "mob-prod-1")
    # a later snapshot without them removes them from their indexes
    await directory.apply_snapshot(snapshot(2, (replace(ROTATED, old_sdk_keys=(),
                                                        old_mobile_keys=()), ())), full=True)
    now_ms[0] = NOW_MS
    assert not LOOKUPS["sdk"](directory, "sdk-prod-1")
    assert not LOOKUPS["mobile"](directory, "mob-prod-1")


async def test_a_removed_environment_takes_every_credential_with_it(
    nursery: trio.Nursery
) -> None:
    directory = Directory(gate=StreamGate(), wall_clock_ms=lambda: NOW_MS)
    directory.unknown_credential_hold_s = 0
    await nursery.start(directory.run)
    await directory.apply_snapshot(snapshot(1, (ROTATED, ())), full=True)
    await directory.apply_change(EnvChange(2, ROTATED, removed=True))
    for credential, kind in OPENS:
        assert not LOOKUPS[kind](directory, credential), credential
    assert directory.environment(ROTATED.key) is None and directory.actor(ROTATED.key) is None
