"""The bus message schema and its msgpack codec (sans-IO).

Theory of operation
-------------------
The store is the only writer. Every committed change gets a store-wide sequence number
(``seq``), strictly increasing and persisted with the change history, so it survives a
store restart. The store publishes one :class:`Change` per committed change on nng PUB/SUB.
It also publishes a :class:`Heartbeat` every second or so carrying the newest ``seq``.

nng PUB/SUB drops messages silently when a subscriber falls behind. A subscriber therefore
tracks the last ``seq`` it applied. When a message arrives with ``seq > last + 1`` (a gap),
when a heartbeat announces a ``seq`` it has not seen, or when heartbeats stop, it asks the
snapshot server (nng REQ/REP) for a :class:`Snapshot` and replaces its state. A snapshot
carries the ``seq`` it is consistent with; changes at or below it are then ignored.

Item payloads are the SDK JSON of PROTOCOL.md §4.1-4.2 as UTF-8 bytes, exactly as stored, so
a streamer can splice them into SSE frames without re-encoding. ``data is None`` means the
item is deleted (a tombstone at ``version``).

Wire form: a msgpack map whose ``"t"`` names the message type::

    {"t": "chg", "seq": int, "env": str, "items": [[kind, key, version, data|None], ...]}
    {"t": "env", "seq": int, "env": EnvironmentInfo-map, "removed": bool}
    {"t": "hb",  "seq": int, "epoch": str}
    {"t": "sreq", "env": str|None}
    {"t": "snap", "seq": int, "epoch": str, "envs": [{"env": EnvironmentInfo-map,
                                                     "items": [[kind, key, version, data|None]]}]}
    {"t": "err", "message": str}

``kind`` is ``"flags"`` or ``"segments"``. EnvironmentInfo-map keys: ``key``, ``name``,
``sdkKey``, ``mobileKey``, ``clientSideId``, ``secureMode``, ``requireApproval`` (flag
changes go through change requests; the streamers ignore it), ``oldSdkKeys`` and
``oldMobileKeys`` (lists of ``[credential, expires_at_ms]`` pairs: rotated keys that stay
valid until then, each only as the kind of key it was; empty unless a key was rotated).
Unknown map keys are ignored, so fields can be added without breaking older nodes.

``removed: true`` (absent means false) says the environment was deleted: a streamer drops it,
its credentials and its streams. A streamer older than this field takes the message for an
update and keeps serving the environment until its next full snapshot, which no longer names
it (during a rolling upgrade only).

``oldKeys`` (the same pairs, both kinds in one list) is what nodes before the per-kind lists
read and wrote. It is still written, so an older streamer keeps honouring grace periods during
a rolling upgrade. It is read only from a map that has neither per-kind list (a message from
an older store); the kind of each credential is then its issue prefix (``sdk-``, ``mob-``,
bus/credentials.py), and a credential with neither prefix is dropped: a rotated key that
stops early is better than a mobile key accepted as an SDK key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import msgpack

from bus.credentials import MOBILE_KEY_PREFIX, SDK_KEY_PREFIX

ItemKind = Literal["flags", "segments"]
ITEM_KINDS: tuple[ItemKind, ...] = ("flags", "segments")
_Pairs = tuple[tuple[str, int], ...]  # rotated keys: (credential, expires_at_ms)


class EnvelopeError(ValueError):
    """A bus message that cannot be decoded."""


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    key: str
    name: str
    sdk_key: str
    mobile_key: str
    client_side_id: str
    secure_mode: bool = False
    # Rotated keys in their grace period, one tuple per kind: an old mobile key ships inside
    # apps and must never open the server-side endpoints.
    old_sdk_keys: _Pairs = ()
    old_mobile_keys: _Pairs = ()
    # Direct flag writes are refused; changes go through change requests (store/approvals.py).
    require_approval: bool = False

    @property
    def old_keys(self) -> _Pairs:
        """Every rotated key of either kind, soonest expiry first (for listings, not lookups)."""
        return tuple(sorted(self.old_sdk_keys + self.old_mobile_keys, key=lambda k: (k[1], k[0])))


@dataclass(frozen=True, slots=True)
class ItemChange:
    kind: ItemKind
    key: str
    version: int
    data: bytes | None  # SDK JSON of the item; None for a tombstone

    @property
    def deleted(self) -> bool:
        return self.data is None


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    env: str
    items: tuple[ItemChange, ...]


@dataclass(frozen=True, slots=True)
class EnvChange:
    """An environment was created, changed (name, secure mode, credentials) or removed."""

    seq: int
    env: EnvironmentInfo
    removed: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    seq: int
    epoch: str


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    env: str | None  # None: every environment


@dataclass(frozen=True, slots=True)
class EnvSnapshot:
    env: EnvironmentInfo
    items: tuple[ItemChange, ...]  # tombstones included, so versions keep increasing


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    epoch: str
    envs: tuple[EnvSnapshot, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class ErrorReply:
    message: str


Message = Change | EnvChange | Heartbeat | SnapshotRequest | Snapshot | ErrorReply


def _env_to_wire(env: EnvironmentInfo) -> dict[str, Any]:
    return {
        "key": env.key,
        "name": env.name,
        "sdkKey": env.sdk_key,
        "mobileKey": env.mobile_key,
        "clientSideId": env.client_side_id,
        "secureMode": env.secure_mode,
        "requireApproval": env.require_approval,
        "oldSdkKeys": [list(k) for k in env.old_sdk_keys],
        "oldMobileKeys": [list(k) for k in env.old_mobile_keys],
        "oldKeys": [list(k) for k in env.old_keys],  # for nodes before the lists above
    }


def _env_from_wire(m: Any) -> EnvironmentInfo:
    if not isinstance(m, dict):
        raise EnvelopeError("environment is not a map")
    try:
        old_sdk, old_mobile = _old_keys_from_wire(m)
        return EnvironmentInfo(
            key=_str(m["key"]),
            name=_str(m["name"]),
            sdk_key=_str(m["sdkKey"]),
            mobile_key=_str(m["mobileKey"]),
            client_side_id=_str(m["clientSideId"]),
            secure_mode=_bool(m.get("secureMode", False)),
            old_sdk_keys=old_sdk,
            old_mobile_keys=old_mobile,
            require_approval=_bool(m.get("requireApproval", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"bad environment: {exc!r}") from exc


def _pairs(v: Any) -> _Pairs:
    return tuple((_str(k), _int(t)) for k, t in _list(v))


def _old_keys_from_wire(m: dict[str, Any]) -> tuple[_Pairs, _Pairs]:
    """(old SDK keys, old mobile keys) of an EnvironmentInfo-map."""
    if "oldSdkKeys" in m or "oldMobileKeys" in m:
        return _pairs(m.get("oldSdkKeys", [])), _pairs(m.get("oldMobileKeys", []))
    legacy = _pairs(m.get("oldKeys", []))  # an older store: see the module docstring
    return (tuple(k for k in legacy if k[0].startswith(SDK_KEY_PREFIX)),
            tuple(k for k in legacy if k[0].startswith(MOBILE_KEY_PREFIX)))


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise EnvelopeError(f"expected a string, got {type(v).__name__}")
    return v


def _int(v: Any) -> int:
    # int("5"), int(5.7) and True would all pass a bare int(); the wire form has real ints only.
    if not isinstance(v, int) or isinstance(v, bool):
        raise EnvelopeError(f"expected an integer, got {type(v).__name__}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise EnvelopeError(f"expected a boolean, got {type(v).__name__}")
    return v


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise EnvelopeError(f"expected a list, got {type(v).__name__}")
    return v


def _items_to_wire(items: tuple[ItemChange, ...]) -> list[list[Any]]:
    return [[i.kind, i.key, i.version, i.data] for i in items]


def _items_from_wire(raw: Any) -> tuple[ItemChange, ...]:
    if not isinstance(raw, list):
        raise EnvelopeError("items is not a list")
    out = []
    for entry in raw:
        if not isinstance(entry, list) or len(entry) != 4:
            raise EnvelopeError("item is not a 4-element list")
        kind, key, version, data = entry
        if kind not in ITEM_KINDS:
            raise EnvelopeError(f"unknown item kind {kind!r}")
        if not (data is None or isinstance(data, bytes)):
            raise EnvelopeError("item data is neither bytes nor nil")
        out.append(ItemChange(kind, _str(key), _int(version), data))
    return tuple(out)


def encode(msg: Message) -> bytes:
    """Encode one bus message to msgpack bytes."""
    wire: dict[str, Any]
    match msg:
        case Change(seq, env, items):
            wire = {"t": "chg", "seq": seq, "env": env, "items": _items_to_wire(items)}
        case EnvChange(seq, env, removed):
            wire = {"t": "env", "seq": seq, "env": _env_to_wire(env)}
            if removed:
                wire["removed"] = True
        case Heartbeat(seq, epoch):
            wire = {"t": "hb", "seq": seq, "epoch": epoch}
        case SnapshotRequest(env):
            wire = {"t": "sreq", "env": env}
        case Snapshot(seq, epoch, envs):
            wire = {
                "t": "snap",
                "seq": seq,
                "epoch": epoch,
                "envs": [
                    {"env": _env_to_wire(e.env), "items": _items_to_wire(e.items)} for e in envs
                ],
            }
        case ErrorReply(message):
            wire = {"t": "err", "message": message}
        case _:
            raise TypeError(f"not a bus message: {type(msg).__name__}")
    return msgpack.packb(wire, use_bin_type=True)  # type: ignore[no-any-return]


def decode(raw: bytes) -> Message:
    """Decode one bus message; raise :class:`EnvelopeError` for anything malformed."""
    try:
        m = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise EnvelopeError(f"not msgpack: {exc!r}") from exc
    if not isinstance(m, dict):
        raise EnvelopeError("message is not a map")
    try:
        match m.get("t"):
            case "chg":
                return Change(_int(m["seq"]), _str(m["env"]), _items_from_wire(m["items"]))
            case "env":
                return EnvChange(_int(m["seq"]), _env_from_wire(m["env"]),
                                 _bool(m.get("removed", False)))
            case "hb":
                return Heartbeat(_int(m["seq"]), _str(m["epoch"]))
            case "sreq":
                env = m.get("env")
                return SnapshotRequest(None if env is None else _str(env))
            case "snap":
                envs = tuple(
                    EnvSnapshot(_env_from_wire(e["env"]), _items_from_wire(e["items"]))
                    for e in _list(m["envs"])
                )
                return Snapshot(_int(m["seq"]), _str(m["epoch"]), envs)
            case "err":
                return ErrorReply(_str(m["message"]))
            case other:
                raise EnvelopeError(f"unknown message type {other!r}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, EnvelopeError):
            raise
        raise EnvelopeError(f"malformed message: {exc!r}") from exc
