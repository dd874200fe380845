"""Client-side and mobile evaluation streams grouped by context (pure).

Theory of operation
-------------------
A ``/eval`` or ``/meval`` stream carries flags evaluated for one context, so unlike ``/all``
its frames differ per client. Clients that would receive the very same bytes form a
:class:`Group`, keyed by :data:`GroupKey` = (the context JSON with sorted keys, withReasons,
mobile). A group keeps its evaluated payload as one pre-encoded JSON entry per flag, so the
``put`` on connect is a join of bytes (cached until the next change) and a change is
re-evaluated once per group, never per connection.

:meth:`ClientGroups.on_change` receives what :meth:`~streamer.client_model.EvalModel.sync`
reported, re-evaluates only the affected flags (the changed ones and their transitive readers,
see :meth:`~streamer.client_model.EvalModel.affected`), evaluating each distinct context once
per flag even when several groups share it, and compares each new entry with the old one:

* an entry that did not change sends nothing;
* a flag that changed itself gets ``patch`` (the flag object plus ``key``), or ``delete``
  (``{"key","version"}``) when it was deleted or is no longer available to this kind of client.
  Its version went up, so the SDK's "only a higher version wins" rule accepts it;
* a flag whose *result* changed only because something it reads changed (a prerequisite, a
  segment) still has its old version, which an SDK would ignore in a patch; that group gets a
  fresh ``put`` instead (an SDK applies a put unconditionally and reports only real changes).
  So does every group after a resynchronisation (``Changed.everything``).

The frames of one group are returned with the group's connection set; the environment actor
writes them with its ordinary fan-out loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson

from flagmodel import Context, EvalDetail, client_side_flag, is_client_side_available
from streamer.client_model import Changed, EvalModel
from streamer.sse import event_chunk

GroupKey = tuple[bytes, bool, bool]  # (context JSON with sorted keys, withReasons, mobile)
Frames = list[tuple[tuple[str, str], bytes]]
PUT_KEY = ("", "put")  # the same coalescing key as streamer.client_actor.PUT_KEY
C = TypeVar("C")
Failed = Callable[[set[C], Exception], None]  # a group's evaluation failed: its connections


def group_key(context_json: dict[str, Any], *, with_reasons: bool, mobile: bool) -> GroupKey:
    return (orjson.dumps(context_json, option=orjson.OPT_SORT_KEYS), with_reasons, mobile)


def payload_json(entries: dict[str, bytes]) -> bytes:
    """The evaluated-flags object of PROTOCOL.md §2.4 from pre-encoded entries."""
    return b"{" + b",".join(orjson.dumps(k) + b":" + e for k, e in entries.items()) + b"}"


def patch_frame(key: str, entry: bytes) -> bytes:
    return event_chunk("patch", b'{"key":' + orjson.dumps(key) + b"," + entry[1:])


def delete_frame(key: str, version: int) -> bytes:
    return event_chunk("delete", b'{"key":' + orjson.dumps(key) + b',"version":%d}' % version)


def evaluate_entries(model: EvalModel, context: Context, *, mobile: bool,
                     with_reasons: bool, every_flag: bool = False) -> dict[str, bytes]:
    """Every live flag available to this kind of client (``every_flag``: to a server-side
    SDK, i.e. all of them), evaluated and encoded."""
    out: dict[str, bytes] = {}
    evaluate = model.evaluator.evaluate
    for key, flag in model.flags.items():
        if every_flag or is_client_side_available(flag, mobile=mobile):
            out[key] = orjson.dumps(client_side_flag(flag, evaluate(flag, context),
                                                     with_reasons=with_reasons))
    return out


class Group(Generic[C]):
    __slots__ = ("_put", "conns", "context", "entries", "key", "mobile", "with_reasons")

    def __init__(self, key: GroupKey, context: Context, entries: dict[str, bytes]) -> None:
        self.key = key
        self.context = context
        self.with_reasons = key[1]
        self.mobile = key[2]
        self.conns: set[C] = set()
        self.entries = entries
        self._put: bytes | None = None

    def put_frame(self) -> bytes:
        if self._put is None:
            self._put = event_chunk("put", payload_json(self.entries))
        return self._put


class ClientGroups(Generic[C]):
    """Every client-side group of one environment."""

    def __init__(self, model: EvalModel) -> None:
        self.model = model
        self._groups: dict[GroupKey, Group[C]] = {}
        self.evaluations = 0  # flag evaluations done for streams (a statistic)

    def __len__(self) -> int:
        return len(self._groups)

    def connections(self) -> int:
        return sum(len(g.conns) for g in self._groups.values())

    def add(self, key: GroupKey, context: Context, conn: C) -> Group[C]:
        """Put ``conn`` in its group (evaluating the context in full for a new group)."""
        group = self._groups.get(key)
        if group is None:
            entries = evaluate_entries(self.model, context, mobile=key[2], with_reasons=key[1])
            self.evaluations += len(self.model.flags)
            group = self._groups[key] = Group(key, context, entries)
        group.conns.add(conn)
        return group

    def put_frame(self, key: GroupKey) -> bytes | None:
        group = self._groups.get(key)
        return None if group is None else group.put_frame()

    def prune(self, closed: Callable[[C], bool]) -> None:
        """Drop closed connections, then groups left without one."""
        for key in list(self._groups):
            group = self._groups[key]
            group.conns = {c for c in group.conns if not closed(c)}
            if not group.conns:
                del self._groups[key]

    def on_change(self, changed: Changed, failed: Failed[C] | None = None
                  ) -> list[tuple[set[C], Frames]]:
        """Re-evaluate what ``changed`` affects; the frames to send, per group.

        ``failed``: the containment boundary of each group's evaluation. A group whose
        evaluation raises is removed and handed to ``failed`` with the exception (its caller
        closes the group's connections); the other groups go on. Without it, it raises.
        """
        if not changed or not self._groups:
            return []
        model = self.model
        if changed.everything:
            return self._each_group(lambda g: self._resync_frames(g), failed)
        affected = sorted(model.affected(changed))
        details: dict[tuple[bytes, str], EvalDetail] = {}
        return self._each_group(lambda g: self._change_frames(g, changed, affected, details),
                                failed)

    def _each_group(self, frames_of: Callable[[Group[C]], Frames],
                    failed: Failed[C] | None) -> list[tuple[set[C], Frames]]:
        out: list[tuple[set[C], Frames]] = []
        for key, group in list(self._groups.items()):
            try:
                frames = frames_of(group)
            except Exception as exc:
                if failed is None:
                    raise
                del self._groups[key]
                failed(group.conns, exc)
                continue
            if frames:
                out.append((group.conns, frames))
        return out

    def _change_frames(self, group: Group[C], changed: Changed, affected: list[str],
                       details: dict[tuple[bytes, str], EvalDetail]) -> Frames:
        model = self.model
        frames: Frames = []
        need_put = False
        ctx_key = group.key[0]
        for key in affected:
            flag = model.flags.get(key)
            old = group.entries.get(key)
            if flag is None or not is_client_side_available(flag, mobile=group.mobile):
                if old is not None:
                    del group.entries[key]
                    version = model.flag_version(key)
                    if version is None:  # vanished without a tombstone (a resync)
                        need_put = True
                    else:
                        frames.append((("flags", key), delete_frame(key, version)))
                continue
            detail = details.get((ctx_key, key))
            if detail is None:
                detail = details[(ctx_key, key)] = model.evaluator.evaluate(flag,
                                                                            group.context)
                self.evaluations += 1
            entry = orjson.dumps(client_side_flag(flag, detail,
                                                  with_reasons=group.with_reasons))
            if entry == old:
                continue
            group.entries[key] = entry
            if key in changed.flags:
                frames.append((("flags", key), patch_frame(key, entry)))
            else:
                need_put = True  # same flag version: an SDK would drop a patch
        if need_put or frames:
            group._put = None
        if need_put:
            frames = [(PUT_KEY, group.put_frame())]
        return frames

    def _resync_frames(self, group: Group[C]) -> Frames:
        entries = evaluate_entries(self.model, group.context, mobile=group.mobile,
                                   with_reasons=group.with_reasons)
        self.evaluations += len(self.model.flags)
        if entries == group.entries:
            return []
        group.entries, group._put = entries, None
        return [(PUT_KEY, group.put_frame())]
