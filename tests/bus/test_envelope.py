"""Round-trip and malformed-input tables for the bus envelope (bus/envelope.py)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from bus.envelope import (
    Change,
    EnvChange,
    EnvelopeError,
    EnvironmentInfo,
    EnvSnapshot,
    ErrorReply,
    Heartbeat,
    ItemChange,
    Message,
    Snapshot,
    SnapshotRequest,
    decode,
    encode,
)

PROD = EnvironmentInfo("prod", "Production", "sdk-1", "mob-1", "cid-1")
ROTATED = EnvironmentInfo(
    "stage", "Stäging ✓", "sdk-2", "mob-2", "cid-2", secure_mode=True,
    old_sdk_keys=(("sdk-old", 1_700_000_000_000),), old_mobile_keys=(("mob-old", 0),),
    require_approval=True,
)  # fmt: skip
FLAG = ItemChange("flags", "new-checkout", 7, b'{"key":"new-checkout","version":7,"on":true}')
TOMBSTONE = ItemChange("segments", "beta-users", 3, None)

ROUND_TRIP: list[tuple[str, Message]] = [
    ("change", Change(42, "prod", (FLAG,))),
    ("change with tombstone", Change(43, "prod", (FLAG, TOMBSTONE))),
    ("change without items", Change(1, "prod", ())),
    ("change with empty bytes", Change(2, "prod", (ItemChange("flags", "k", 1, b""),))),
    ("change with huge seq", Change(2**62, "prod", (FLAG,))),
    ("env change", EnvChange(5, PROD)),
    ("env change with rotated keys", EnvChange(6, ROTATED)),
    ("env removed", EnvChange(7, PROD, removed=True)),
    ("heartbeat", Heartbeat(0, "epoch-a")),
    ("heartbeat empty epoch", Heartbeat(9, "")),
    ("snapshot request for all", SnapshotRequest(None)),
    ("snapshot request for one", SnapshotRequest("prod")),
    ("empty snapshot", Snapshot(0, "e")),
    (
        "snapshot",
        Snapshot(10, "e1", (EnvSnapshot(PROD, (FLAG, TOMBSTONE)), EnvSnapshot(ROTATED, ()))),
    ),
    ("error", ErrorReply("unknown environment 'x'")),
    ("error unicode", ErrorReply("kaputt: ü ✗")),
]


@pytest.mark.parametrize(("name", "msg"), ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_round_trip(name: str, msg: Message) -> None:
    raw = encode(msg)
    assert isinstance(raw, bytes)
    assert decode(raw) == msg
    assert encode(decode(raw)) == raw  # the encoding is canonical


def test_wire_form_is_the_documented_one() -> None:
    raw = encode(Change(3, "prod", (FLAG, TOMBSTONE)))
    assert msgpack.unpackb(raw) == {
        "t": "chg",
        "seq": 3,
        "env": "prod",
        "items": [
            ["flags", "new-checkout", 7, FLAG.data],
            ["segments", "beta-users", 3, None],
        ],
    }
    env_wire = msgpack.unpackb(encode(EnvChange(4, ROTATED)))
    assert env_wire == {
        "t": "env",
        "seq": 4,
        "env": {
            "key": "stage", "name": "Stäging ✓", "sdkKey": "sdk-2", "mobileKey": "mob-2",
            "clientSideId": "cid-2", "secureMode": True, "requireApproval": True,
            "oldSdkKeys": [["sdk-old", 1_700_000_000_000]], "oldMobileKeys": [["mob-old", 0]],
            # both kinds in one list, soonest expiry first, for nodes before the lists above
            "oldKeys": [["mob-old", 0], ["sdk-old", 1_700_000_000_000]],
        },
    }  # fmt: skip
    assert msgpack.unpackb(encode(Heartbeat(8, "ep"))) == {"t": "hb", "seq": 8, "epoch": "ep"}
    assert msgpack.unpackb(encode(SnapshotRequest(None))) == {"t": "sreq", "env": None}


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def _env_map(**overrides: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "key": "prod", "name": "P", "sdkKey": "s", "mobileKey": "m", "clientSideId": "c",
    }  # fmt: skip
    m.update(overrides)
    return m


MALFORMED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not msgpack", b"\xc1"),
    ("truncated", encode(Change(1, "prod", (FLAG,)))[:-3]),
    ("trailing bytes", encode(Heartbeat(1, "e")) + b"\x00"),
    ("not a map", _pack([1, 2, 3])),
    ("no type", _pack({"seq": 1})),
    ("unknown type", _pack({"t": "nope"})),
    ("type not a string", _pack({"t": 3})),
    ("int map key", b"\x81\x01\x02"),
    ("invalid utf-8", b"\x81\xa1t\xa2\xff\xfe"),
    ("change missing seq", _pack({"t": "chg", "env": "prod", "items": []})),
    ("change seq is a string", _pack({"t": "chg", "seq": "5", "env": "prod", "items": []})),
    ("change seq is a float", _pack({"t": "chg", "seq": 5.7, "env": "prod", "items": []})),
    ("change seq is a bool", _pack({"t": "chg", "seq": True, "env": "prod", "items": []})),
    ("change env not a string", _pack({"t": "chg", "seq": 1, "env": 5, "items": []})),
    ("change items not a list", _pack({"t": "chg", "seq": 1, "env": "p", "items": {}})),
    ("item not a list", _pack({"t": "chg", "seq": 1, "env": "p", "items": ["x"]})),
    ("item too short", _pack({"t": "chg", "seq": 1, "env": "p", "items": [["flags", "k", 1]]})),
    ("item kind unknown", _pack({"t": "chg", "seq": 1, "env": "p",
                                 "items": [["users", "k", 1, None]]})),
    ("item key not str", _pack({"t": "chg", "seq": 1, "env": "p",
                                "items": [["flags", 1, 1, None]]})),
    ("item version str", _pack({"t": "chg", "seq": 1, "env": "p",
                                "items": [["flags", "k", "1", None]]})),
    ("item version bool", _pack({"t": "chg", "seq": 1, "env": "p",
                                 "items": [["flags", "k", False, None]]})),
    ("item data str", _pack({"t": "chg", "seq": 1, "env": "p",
                             "items": [["flags", "k", 1, "{}"]]})),
    ("env change env not a map", _pack({"t": "env", "seq": 1, "env": "prod"})),
    ("env missing sdkKey", _pack({"t": "env", "seq": 1, "env": {"key": "p", "name": "P"}})),
    ("env secureMode not bool", _pack({"t": "env", "seq": 1, "env": _env_map(secureMode="y")})),
    ("env oldKeys not a list", _pack({"t": "env", "seq": 1, "env": _env_map(oldKeys=5)})),
    ("env oldKeys bad pair", _pack({"t": "env", "seq": 1, "env": _env_map(oldKeys=[["a"]])})),
    ("env oldKeys time str", _pack({"t": "env", "seq": 1,
                                    "env": _env_map(oldKeys=[["a", "1"]])})),
    ("env oldSdkKeys not a list", _pack({"t": "env", "seq": 1, "env": _env_map(oldSdkKeys=5)})),
    ("env oldMobileKeys bad pair", _pack({"t": "env", "seq": 1,
                                          "env": _env_map(oldMobileKeys=[["mob-a"]])})),
    ("env oldMobileKeys time str", _pack({"t": "env", "seq": 1,
                                          "env": _env_map(oldMobileKeys=[["mob-a", "1"]])})),
    ("heartbeat epoch missing", _pack({"t": "hb", "seq": 1})),
    ("heartbeat epoch not str", _pack({"t": "hb", "seq": 1, "epoch": b"e"})),
    ("request env not str", _pack({"t": "sreq", "env": 5})),
    ("snapshot envs not a list", _pack({"t": "snap", "seq": 1, "epoch": "e", "envs": "ab"})),
    ("snapshot env entry not a map", _pack({"t": "snap", "seq": 1, "epoch": "e",
                                            "envs": [["x"]]})),
    ("snapshot entry missing items", _pack({"t": "snap", "seq": 1, "epoch": "e",
                                            "envs": [{"env": _env_map()}]})),
    ("error message missing", _pack({"t": "err"})),
]  # fmt: skip


# The reason each one is refused (the start of its message; a wrapped exception's text after
# its type name is Python's): the subscriber logs it, and a decoder that refused everything for
# one wrong reason would otherwise pass the table above.
REASONS: dict[str, str] = {
    'empty': "not msgpack: ValueError('Unpack failed: incomplete input')",
    'not msgpack': 'not msgpack: FormatError()',
    'truncated': "not msgpack: ValueError('Unpack failed: incomplete input')",
    'trailing bytes': "not msgpack: ExtraData({'t': 'hb', 'seq': 1, 'epoch': 'e'}, b'\\x00')",
    'not a map': 'message is not a map',
    'no type': 'unknown message type None',
    'unknown type': "unknown message type 'nope'",
    'type not a string': 'unknown message type 3',
    'int map key': "not msgpack: ValueError(",
    'invalid utf-8': "not msgpack: UnicodeDecodeError(",
    'change missing seq': "malformed message: KeyError('seq')",
    'change seq is a string': 'expected an integer, got str',
    'change seq is a float': 'expected an integer, got float',
    'change seq is a bool': 'expected an integer, got bool',
    'change env not a string': 'expected a string, got int',
    'change items not a list': 'items is not a list',
    'item not a list': 'item is not a 4-element list',
    'item too short': 'item is not a 4-element list',
    'item kind unknown': "unknown item kind 'users'",
    'item key not str': 'expected a string, got int',
    'item version str': 'expected an integer, got str',
    'item version bool': 'expected an integer, got bool',
    'item data str': 'item data is neither bytes nor nil',
    'env change env not a map': 'environment is not a map',
    'env missing sdkKey': "bad environment: KeyError('sdkKey')",
    'env secureMode not bool': "bad environment: EnvelopeError('expected a boolean, got str')",
    'env oldKeys not a list': "bad environment: EnvelopeError('expected a list, got int')",
    'env oldKeys bad pair': "bad environment: ValueError(",
    'env oldKeys time str': "bad environment: EnvelopeError('expected an integer, got str')",
    'env oldSdkKeys not a list': "bad environment: EnvelopeError('expected a list, got int')",
    'env oldMobileKeys bad pair': "bad environment: ValueError(",
    'env oldMobileKeys time str': "bad environment: EnvelopeError('expected an integer, got str')",
    'heartbeat epoch missing': "malformed message: KeyError('epoch')",
    'heartbeat epoch not str': 'expected a string, got bytes',
    'request env not str': 'expected a string, got int',
    'snapshot envs not a list': 'expected a list, got str',
    'snapshot env entry not a map': "malformed message: TypeError(",
    'snapshot entry missing items': "malformed message: KeyError('items')",
    'error message missing': "malformed message: KeyError('message')",
    "item a 4-character string": "item is not a 4-element list",
}  # fmt: skip

MALFORMED.append(("item a 4-character string",
                  _pack({"t": "chg", "seq": 1, "env": "p", "items": ["abcd"]})))


@pytest.mark.parametrize(("name", "raw"), MALFORMED, ids=[n for n, _ in MALFORMED])
def test_malformed_input_raises_envelope_error(name: str, raw: bytes) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode(raw)
    assert str(info.value).startswith(REASONS[name]), str(info.value)


def test_unknown_map_keys_are_ignored() -> None:
    raw = _pack({"t": "hb", "seq": 4, "epoch": "e", "future": [1, 2]})
    assert decode(raw) == Heartbeat(4, "e")
    env = _env_map(newField={"x": 1})
    assert decode(_pack({"t": "env", "seq": 2, "env": env})) == EnvChange(
        2, EnvironmentInfo("prod", "P", "s", "m", "c")
    )


def test_encode_refuses_a_non_message() -> None:
    with pytest.raises(TypeError, match=r"^not a bus message: str$"):
        encode("hello")  # type: ignore[arg-type]


# The rotated keys of an EnvironmentInfo-map, as each kind of sender writes them: what the
# decoder makes of them, (old SDK keys, old mobile keys).
OLD_KEYS_ON_THE_WIRE: list[tuple[str, dict[str, Any], tuple[Any, Any]]] = [
    ("per-kind lists", {"oldSdkKeys": [["sdk-a", 5]], "oldMobileKeys": [["mob-b", 6]]},
     ((("sdk-a", 5),), (("mob-b", 6),))),
    # the per-kind lists win over the legacy list written beside them
    ("per-kind lists and legacy", {"oldSdkKeys": [], "oldMobileKeys": [["mob-b", 6]],
                                   "oldKeys": [["mob-b", 6], ["sdk-x", 9]]},
     ((), (("mob-b", 6),))),
    ("only one per-kind list", {"oldMobileKeys": [["mob-b", 6]], "oldKeys": [["sdk-x", 9]]},
     ((), (("mob-b", 6),))),
    # an older store: the kind is the issue prefix; an old mobile key never becomes an SDK key
    ("legacy only", {"oldKeys": [["sdk-a", 5], ["mob-b", 6]]},
     ((("sdk-a", 5),), (("mob-b", 6),))),
    ("legacy without prefix is dropped", {"oldKeys": [["a-key", 5], ["mob-b", 6]]},
     ((), (("mob-b", 6),))),
    ("none", {}, ((), ())),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fields", "expected"), OLD_KEYS_ON_THE_WIRE,
                         ids=[n for n, _, _ in OLD_KEYS_ON_THE_WIRE])
def test_old_keys_keep_their_kind(name: str, fields: dict[str, Any],
                                  expected: tuple[Any, Any]) -> None:
    msg = decode(_pack({"t": "env", "seq": 1, "env": _env_map(**fields)}))
    assert isinstance(msg, EnvChange)
    assert (msg.env.old_sdk_keys, msg.env.old_mobile_keys) == expected
