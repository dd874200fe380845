"""Parsed flags and segments of one environment, and what depends on what (pure).

Theory of operation
-------------------
Client-side and mobile endpoints evaluate flags, so they need the items parsed
(:class:`~flagmodel.Flag`, :class:`~flagmodel.Segment`), not the stored
JSON bytes the server-side paths splice. :class:`EvalModel` is that parsed copy. It is created
lazily (only environments with client-side traffic pay for it) and kept current with
:meth:`EvalModel.sync`, which compares the model with an
:class:`~streamer.environments.envstate.EnvView`
item by item (a dict walk, no parsing) and re-parses only the items that changed. The
returned :class:`Changed` names them, so the same call serves polls (bring the model up to the
current revision) and streams (which items to re-evaluate).

Dependencies: a flag depends on its prerequisite flags and on the segments named by its rules'
``segmentMatch`` clauses; a segment depends on the segments its rules name. The reverse edges
are kept up to date per re-parsed item, and :meth:`EvalModel.affected` walks them
transitively: the flags whose evaluation can differ after a change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from flagmodel import Evaluator, Flag, Segment
from flagmodel.clauses import Clause
from streamer.environments.envstate import EnvView, Item


@dataclass(frozen=True, slots=True)
class Changed:
    flags: frozenset[str]
    segments: frozenset[str]
    everything: bool = False  # first sync: every group must be re-evaluated in full

    def __bool__(self) -> bool:
        return bool(self.flags or self.segments or self.everything)


NOTHING = Changed(frozenset(), frozenset())


def _segment_refs(clauses_of: Iterable[tuple[Clause, ...]]) -> set[str]:
    out: set[str] = set()
    for clauses in clauses_of:
        for clause in clauses:
            if clause.is_segment:
                out.update(clause.segment_keys)
    return out


def flag_dependencies(flag: Flag) -> tuple[frozenset[str], frozenset[str]]:
    """(prerequisite flag keys, segment keys) that ``flag`` reads directly."""
    prereqs = frozenset(key for key, _ in flag.prerequisites)
    return prereqs, frozenset(_segment_refs(rule.clauses for rule in flag.rules))


def segment_dependencies(segment: Segment) -> frozenset[str]:
    return frozenset(_segment_refs(rule.clauses for rule in segment.rules))


def _parse(item: Item) -> dict[str, object] | None:
    if item.data is None:
        return None
    try:
        value = orjson.loads(item.data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class EvalModel:
    """Parsed live items of one environment plus tombstone versions and dependency edges."""

    def __init__(self) -> None:
        self.revision = -1
        self.flags: dict[str, Flag] = {}
        self.segments: dict[str, Segment] = {}
        self.items: dict[tuple[str, str], Item] = {}  # (kind, key) -> stored item, tombstones too
        # reverse edges: item -> flags/segments that read it
        self._flag_readers_of_flag: dict[str, set[str]] = {}
        self._flag_readers_of_segment: dict[str, set[str]] = {}
        self._segment_readers_of_segment: dict[str, set[str]] = {}
        self._flag_deps: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._segment_deps: dict[str, frozenset[str]] = {}
        self.evaluator = Evaluator(self.flags.get, self.segments.get)

    def flag_version(self, key: str) -> int | None:
        """The stored version of a flag, live or tombstoned."""
        item = self.items.get(("flags", key))
        return None if item is None else item.version

    def sync(self, view: EnvView) -> Changed:
        """Bring the model to ``view``'s revision; the items that changed."""
        if view.revision == self.revision:
            return NOTHING
        first = self.revision < 0
        self.revision = view.revision
        changed_flags = self._sync_kind("flags", view.flags)
        changed_segments = self._sync_kind("segments", view.segments)
        return Changed(frozenset(changed_flags), frozenset(changed_segments), first)

    def _sync_kind(self, kind: str, items: dict[str, Item]) -> set[str]:
        changed: set[str] = set()
        known = self.items
        for key, item in items.items():
            old = known.get((kind, key))
            if old is not item and old != item:  # EnvState shares unchanged Item objects
                known[(kind, key)] = item
                self._reparse(kind, key, item)
                changed.add(key)
        gone = [k for (knd, k) in known if knd == kind and k not in items]
        for key in gone:
            del known[(kind, key)]
            self._reparse(kind, key, Item(0, None))
            changed.add(key)
        return changed

    def _reparse(self, kind: str, key: str, item: Item) -> None:
        data = _parse(item)
        if kind == "flags":
            flag = None if data is None else Flag.from_json(data)
            if flag is not None and flag.deleted:
                flag = None
            old_p, old_s = self._flag_deps.pop(key, (frozenset(), frozenset()))
            for dep in old_p:
                self._flag_readers_of_flag.get(dep, set()).discard(key)
            for dep in old_s:
                self._flag_readers_of_segment.get(dep, set()).discard(key)
            if flag is None:
                self.flags.pop(key, None)
                return
            flag.key = key  # the stored key wins over a body that disagrees
            self.flags[key] = flag
            prereqs, segs = self._flag_deps[key] = flag_dependencies(flag)
            for dep in prereqs:
                self._flag_readers_of_flag.setdefault(dep, set()).add(key)
            for dep in segs:
                self._flag_readers_of_segment.setdefault(dep, set()).add(key)
        else:
            segment = None if data is None else Segment.from_json(data)
            if segment is not None and segment.deleted:
                segment = None
            for dep in self._segment_deps.pop(key, frozenset()):
                self._segment_readers_of_segment.get(dep, set()).discard(key)
            if segment is None:
                self.segments.pop(key, None)
                return
            segment.key = key
            self.segments[key] = segment
            deps = self._segment_deps[key] = segment_dependencies(segment)
            for dep in deps:
                self._segment_readers_of_segment.setdefault(dep, set()).add(key)

    def affected(self, changed: Changed) -> set[str]:
        """Flag keys whose evaluation may differ after ``changed`` (transitive readers)."""
        if changed.everything:
            return set(self.flags) | {k for (kind, k) in self.items if kind == "flags"}
        segments = set(changed.segments)
        todo = list(segments)
        while todo:
            for reader in self._segment_readers_of_segment.get(todo.pop(), ()):
                if reader not in segments:
                    segments.add(reader)
                    todo.append(reader)
        flags = set(changed.flags)
        for seg in segments:
            flags |= self._flag_readers_of_segment.get(seg, set())
        todo = list(flags)
        while todo:
            for reader in self._flag_readers_of_flag.get(todo.pop(), ()):
                if reader not in flags:
                    flags.add(reader)
                    todo.append(reader)
        return flags
