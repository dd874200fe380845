"""Client-side and mobile evaluation streams grouped by context (pure).

Theory of operation
-------------------
A ``/eval`` or ``/meval`` stream carries flags evaluated for one context, so unlike ``/all``
its frames differ per client. Clients that would receive the very same bytes form a
:class:`Group`, keyed by :data:`GroupKey` = (the context JSON with sorted keys, withReasons,
mobile). A group keeps its evaluated payload as one pre-encoded JSON entry per flag, so the
``put`` on connect is a join of bytes and a change is re-evaluated once per group, never per
connection.

Memory. An entry is a few dozen bytes, but the ``bytes`` that ``orjson.dumps`` returns keeps
the buffer orjson wrote into (measured with orjson 3.13: ``sys.getsizeof`` says 89 bytes,
tracemalloc and RSS say about 4,100), and ``bytes(x)`` or ``x[:]`` return ``x`` itself. So
every cached entry is interned (:meth:`ClientGroups.intern`): copied once to an exact-size
object through a ``memoryview`` and shared by every group whose entry has the same content
(entries depend on the flag and the evaluation's outcome, not on the context, so most groups
share them). A group then costs one dict slot per flag. The ``put`` is joined on demand (about
0.2 ms for 1,000 flags), not cached: a cached put would cost the whole payload per group. The
intern table is bounded (``INTERN_MIN_ENTRIES`` or four per flag); overflow policy: clear it
(counted as ``intern_resets``); entries already cached stay valid, new ones are shared again
from then on.

Bounds. A group is freed as soon as its last connection leaves (:meth:`ClientGroups.remove`,
called by the environment actor when a stream closes; :meth:`prune` is the fallback). At most
``max_warm`` groups per environment keep their evaluated entries; overflow policy: the least
recently connected group goes *cold* (its entries are dropped, counted as ``evictions``). A
cold group keeps its context and connections, is evaluated in full again on demand (its next
connection, a ``put``), and on a change gets a ``patch`` for every changed flag (its version
went up, so an SDK applies it even if the value is the same) and a ``put`` for a change that
only reaches its flags through a prerequisite or segment.

:meth:`ClientGroups.on_change` receives what
:meth:`~streamer.clientside.client_model.EvalModel.sync`
reported, re-evaluates only the affected flags (the changed ones and their transitive readers,
see :meth:`~streamer.clientside.client_model.EvalModel.affected`), evaluating each distinct context
once per flag even when several groups share it, and compares each new entry with the old one:

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

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from flagmodel import Context, EvalDetail, client_side_flag, is_client_side_available
from streamer.clientside.client_model import Changed, EvalModel
from streamer.fastpath.sse import event_chunk

GroupKey = tuple[bytes, bool, bool]  # (context JSON with sorted keys, withReasons, mobile)
Frames = list[tuple[tuple[str, str], bytes]]
PUT_KEY = ("", "put")  # the same coalescing key as streamer.fastpath.mailbox.PUT_KEY
C = TypeVar("C")
Failed = Callable[[set[C], Exception], None]  # a group's evaluation failed: its connections
# Groups per environment that keep their evaluated entries (the rest go cold): 1,000 groups
# of 1,000 flags cost about 26 MB of dict slots; the entries themselves are shared.
MAX_WARM_GROUPS = 1000
INTERN_MIN_ENTRIES = 4096


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
                     with_reasons: bool, every_flag: bool = False,
                     intern: Callable[[bytes], bytes] | None = None) -> dict[str, bytes]:
    """Every live flag available to this kind of client (``every_flag``: to a server-side
    SDK, i.e. all of them), evaluated and encoded; ``intern`` for entries that are kept."""
    out: dict[str, bytes] = {}
    evaluate = model.evaluator.evaluate
    for key, flag in model.flags.items():
        if every_flag or is_client_side_available(flag, mobile=mobile):
            entry = orjson.dumps(client_side_flag(flag, evaluate(flag, context),
                                                  with_reasons=with_reasons))
            out[key] = entry if intern is None else intern(entry)
    return out


class Group(Generic[C]):
    __slots__ = ("conns", "context", "entries", "key", "mobile", "with_reasons")

    def __init__(self, key: GroupKey, context: Context,
                 entries: dict[str, bytes] | None) -> None:
        self.key = key
        self.context = context
        self.with_reasons = key[1]
        self.mobile = key[2]
        self.conns: set[C] = set()
        self.entries: dict[str, bytes] | None = entries  # None: cold (see the module doc)

    def put_frame(self) -> bytes:
        """The ``put`` of a warm group (a cold one asks :meth:`ClientGroups.put_frame`)."""
        assert self.entries is not None
        return event_chunk("put", payload_json(self.entries))


@dataclass(frozen=True, slots=True)
class GroupStatistics:
    groups: int
    warm: int  # groups that keep their evaluated entries
    connections: int
    evaluations: int  # flag evaluations done for streams
    evictions: int  # warm groups made cold by the max_warm bound
    freed: int  # groups freed when their last connection left
    interned: int  # distinct cached entries
    intern_resets: int

    @classmethod
    def total(cls, parts: list[GroupStatistics]) -> GroupStatistics:
        """The sum over several environments (the worker's metrics)."""
        return cls(*(sum(getattr(p, f) for p in parts) for f in cls.__slots__))


class ClientGroups(Generic[C]):
    """Every client-side group of one environment."""

    def __init__(self, model: EvalModel, *, max_warm: int = MAX_WARM_GROUPS) -> None:
        if max_warm < 1:
            raise ValueError("max_warm must be at least 1")
        self.model = model
        self.max_warm = max_warm
        self._groups: dict[GroupKey, Group[C]] = {}
        self._warm: OrderedDict[GroupKey, None] = OrderedDict()  # least recently used first
        self._interned: dict[bytes, bytes] = {}
        self.evaluations = 0  # flag evaluations done for streams (a statistic)
        self.evictions = 0
        self.freed = 0
        self.intern_resets = 0

    def __len__(self) -> int:
        return len(self._groups)

    def connections(self) -> int:
        return sum(len(g.conns) for g in self._groups.values())

    def statistics(self) -> GroupStatistics:
        return GroupStatistics(len(self._groups), len(self._warm), self.connections(),
                               self.evaluations, self.evictions, self.freed,
                               len(self._interned), self.intern_resets)

    def intern(self, entry: bytes) -> bytes:
        """The shared, exact-size copy of ``entry`` (see the module doc for why)."""
        got = self._interned.get(entry)
        if got is None:
            if len(self._interned) >= max(INTERN_MIN_ENTRIES, 4 * len(self.model.flags)):
                self._interned.clear()  # overflow policy: start over (entries stay valid)
                self.intern_resets += 1
            got = bytes(memoryview(entry))
            self._interned[got] = got
        return got

    def _evaluate(self, group: Group[C]) -> dict[str, bytes]:
        self.evaluations += len(self.model.flags)
        return evaluate_entries(self.model, group.context, mobile=group.mobile,
                                with_reasons=group.with_reasons, intern=self.intern)

    def add(self, key: GroupKey, context: Context, conn: C) -> Group[C]:
        """Put ``conn`` in its group (evaluating the context in full for a new or cold group);
        the group is the most recently used and warm."""
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key, context, None)
        if group.entries is None:
            group.entries = self._evaluate(group)
        self._warm[key] = None
        self._warm.move_to_end(key)
        while len(self._warm) > self.max_warm:
            cold, _ = self._warm.popitem(last=False)
            self._groups[cold].entries = None  # overflow policy: the LRU group goes cold
            self.evictions += 1
        group.conns.add(conn)
        return group

    def put_frame(self, key: GroupKey) -> bytes | None:
        group = self._groups.get(key)
        if group is None:
            return None
        if group.entries is None:  # cold: evaluated on demand, not kept
            return event_chunk("put", payload_json(self._evaluate(group)))
        return group.put_frame()

    def remove(self, key: GroupKey, conn: C) -> None:
        """``conn`` left: its group is freed with its last connection."""
        group = self._groups.get(key)
        if group is None:
            return
        group.conns.discard(conn)
        if not group.conns:
            self._free(key)

    def _free(self, key: GroupKey) -> None:
        del self._groups[key]
        self._warm.pop(key, None)
        self.freed += 1

    def prune(self, closed: Callable[[C], bool]) -> None:
        """Drop closed connections, then groups left without one."""
        for key in list(self._groups):
            group = self._groups[key]
            group.conns = {c for c in group.conns if not closed(c)}
            if not group.conns:
                self._free(key)

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
                self._free(key)
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
        entries = group.entries  # None: cold, what the clients hold is not known
        for key in affected:
            flag = model.flags.get(key)
            if flag is None or not is_client_side_available(flag, mobile=group.mobile):
                # a cold group may have held the flag if the flag itself changed
                held = (key in changed.flags if entries is None
                        else entries.pop(key, None) is not None)
                if held:
                    version = model.flag_version(key)
                    if version is None:  # vanished without a tombstone (a resync)
                        need_put = True
                    else:
                        frames.append((("flags", key), delete_frame(key, version)))
                continue
            if entries is None and key not in changed.flags:
                need_put = True  # a cold group cannot tell whether the result changed
                continue
            old = None if entries is None else entries.get(key)
            detail = details.get((ctx_key, key))
            if detail is None:
                detail = details[(ctx_key, key)] = model.evaluator.evaluate(flag,
                                                                            group.context)
                self.evaluations += 1
            entry = orjson.dumps(client_side_flag(flag, detail,
                                                  with_reasons=group.with_reasons))
            if entry == old:
                continue
            if entries is not None:
                entries[key] = self.intern(entry)
            if key in changed.flags:
                frames.append((("flags", key), patch_frame(key, entry)))
            else:
                need_put = True  # same flag version: an SDK would drop a patch
        if need_put:
            frames = [(PUT_KEY, self._put_of(group))]
        return frames

    def _put_of(self, group: Group[C]) -> bytes:
        put = self.put_frame(group.key)
        assert put is not None
        return put

    def _resync_frames(self, group: Group[C]) -> Frames:
        entries = self._evaluate(group)
        if group.entries is None:  # cold: the clients' state is not known, so a put
            return [(PUT_KEY, event_chunk("put", payload_json(entries)))]
        if entries == group.entries:
            return []
        group.entries = entries
        return [(PUT_KEY, group.put_frame())]
