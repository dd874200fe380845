"""Flags and segments parsed once from SDK JSON (PROTOCOL.md §4.1, §4.2) into evaluation form.

Parsing is tolerant, as an SDK's evaluator is: a flag whose JSON has a property of the wrong
type (``"rules": 5``) still parses, with ``malformed`` set to the reason, and every evaluation
of it answers ERROR/MALFORMED_FLAG. Semantic problems (a variation index out of range, an
empty rollout, an invalid attribute reference) are kept as they are and reported only when an
evaluation reaches them, exactly where the SDKs report them. ``raw`` is the original dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagmodel.attrref import AttrRef, ref_for
from flagmodel.bucketing import cumulative_thresholds, weight_fraction
from flagmodel.clauses import Clause, compile_clause
from flagmodel.context import DEFAULT_KIND


class _Odd(Exception):
    """A property of the wrong JSON type."""


def _get(d: Mapping[str, Any], name: str, types: type | tuple[type, ...], default: Any) -> Any:
    value = d.get(name)
    if value is None:
        return default
    if types is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Odd(f"{name} should be an integer")
        return value
    if not isinstance(value, types) or (types is not bool and isinstance(value, bool)):
        raise _Odd(f"{name} has the wrong type")
    return value


def _objects(d: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    items: list[Mapping[str, Any]] = _get(d, name, list, [])
    if not all(isinstance(i, dict) for i in items):
        raise _Odd(f"{name} should be an array of objects")
    return items


def _strings(d: Mapping[str, Any], name: str) -> frozenset[str]:
    items = _get(d, name, list, [])
    if not all(isinstance(i, str) for i in items):
        raise _Odd(f"{name} should be an array of strings")
    return frozenset(items)


def _clauses(d: Mapping[str, Any]) -> tuple[Clause, ...]:
    out = []
    for c in _objects(d, "clauses"):
        values = _get(c, "values", list, [])
        out.append(compile_clause(_get(c, "op", str, ""), _get(c, "contextKind", str, ""),
                                  _get(c, "attribute", str, None), _get(c, "negate", bool, False),
                                  values))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Rollout:
    experiment: bool
    context_kind: str  # normalised: "" becomes "user"
    bucket_by: AttrRef | None
    seed: int | None
    variations: tuple[int, ...]
    untracked: tuple[bool, ...]
    thresholds: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class VariationOrRollout:
    variation: int | None
    rollout: Rollout | None  # None also when the rollout has no variations (an error if reached)


def _variation_or_rollout(d: Mapping[str, Any]) -> VariationOrRollout:
    variation = _get(d, "variation", int, None)
    r = _get(d, "rollout", dict, None)
    if r is None:
        return VariationOrRollout(variation, None)
    kind = _get(r, "contextKind", str, "")
    wvs = _objects(r, "variations")
    weights = [_get(w, "weight", int, 0) for w in wvs]
    rollout = Rollout(
        experiment=_get(r, "kind", str, "") == "experiment",
        context_kind=kind or DEFAULT_KIND,
        bucket_by=ref_for(_get(r, "bucketBy", str, None), kind),
        seed=_get(r, "seed", int, None),
        variations=tuple(_get(w, "variation", int, 0) for w in wvs),
        untracked=tuple(_get(w, "untracked", bool, False) for w in wvs),
        thresholds=cumulative_thresholds(weights),
    )
    return VariationOrRollout(variation, rollout if wvs else None)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    clauses: tuple[Clause, ...]
    outcome: VariationOrRollout
    track_events: bool


@dataclass(frozen=True, slots=True)
class Target:
    context_kind: str  # normalised
    values: frozenset[str]
    variation: int


class Flag:
    """A feature flag ready for evaluation. Build with ``Flag.from_json``."""

    __slots__ = ("client_side", "debug_events_until_date", "deleted", "fallthrough", "key",
                 "malformed", "off_variation", "on", "prerequisites", "raw", "rules", "salt",
                 "targets", "track_events", "track_events_fallthrough", "using_environment_id",
                 "using_mobile_key", "variations", "version")

    key: str
    version: int
    raw: dict[str, Any]
    deleted: bool
    malformed: str | None
    on: bool
    variations: tuple[Any, ...]
    off_variation: int | None
    fallthrough: VariationOrRollout
    prerequisites: tuple[tuple[str, int], ...]
    targets: tuple[Target, ...]  # the effective scan order of §4.4 step 3
    rules: tuple[Rule, ...]
    salt: str
    track_events: bool
    track_events_fallthrough: bool
    debug_events_until_date: int | None
    using_environment_id: bool
    using_mobile_key: bool
    client_side: bool

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Flag:
        self = cls.__new__(cls)
        self.raw = d
        key, version = d.get("key"), d.get("version")
        self.key = key if isinstance(key, str) else ""
        self.version = int(version) if isinstance(version, int | float) else 0
        self.deleted = d.get("deleted") is True
        self.malformed = None
        self.on, self.variations, self.off_variation = False, (), None
        self.fallthrough = VariationOrRollout(None, None)
        self.prerequisites, self.targets, self.rules = (), (), ()
        self.salt = ""
        self.track_events = self.track_events_fallthrough = False
        self.debug_events_until_date = None
        self.using_environment_id = self.client_side = False
        self.using_mobile_key = True
        try:
            self._parse(d)
        except _Odd as e:
            self.malformed = str(e)
        return self

    def _parse(self, d: Mapping[str, Any]) -> None:
        self.on = _get(d, "on", bool, False)
        self.variations = tuple(_get(d, "variations", list, []))
        self.off_variation = _get(d, "offVariation", int, None)
        self.fallthrough = _variation_or_rollout(_get(d, "fallthrough", dict, {}))
        self.prerequisites = tuple((_get(p, "key", str, ""), _get(p, "variation", int, 0))
                                   for p in _objects(d, "prerequisites"))
        targets = [Target(_get(t, "contextKind", str, "") or DEFAULT_KIND,
                          _strings(t, "values"), _get(t, "variation", int, 0))
                   for t in _objects(d, "targets")]
        context_targets = [Target(_get(t, "contextKind", str, "") or DEFAULT_KIND,
                                  _strings(t, "values"), _get(t, "variation", int, 0))
                           for t in _objects(d, "contextTargets")]
        self.targets = tuple(_effective_targets(targets, context_targets))
        self.rules = tuple(Rule(_get(r, "id", str, ""), _clauses(r), _variation_or_rollout(r),
                                _get(r, "trackEvents", bool, False))
                           for r in _objects(d, "rules"))
        self.salt = _get(d, "salt", str, "")
        self.track_events = _get(d, "trackEvents", bool, False)
        self.track_events_fallthrough = _get(d, "trackEventsFallthrough", bool, False)
        debug = _get(d, "debugEventsUntilDate", (int, float), None)
        self.debug_events_until_date = int(debug) if debug else None
        self.client_side = _get(d, "clientSide", bool, False)
        csa = _get(d, "clientSideAvailability", dict, None)
        if csa is None:  # legacy schema: mobile always, JS only with clientSide
            self.using_mobile_key, self.using_environment_id = True, self.client_side
        else:
            self.using_mobile_key = _get(csa, "usingMobileKey", bool, False)
            self.using_environment_id = _get(csa, "usingEnvironmentId", bool, False)

    def __repr__(self) -> str:
        return f"Flag({self.key!r}, version={self.version})"


def _effective_targets(targets: list[Target], context_targets: list[Target]) -> list[Target]:
    """§4.4 step 3 flattened: a user-kind contextTargets entry with no values stands for the
    first ``targets`` entry with the same variation."""
    if not context_targets:
        return targets
    out = []
    for t in context_targets:
        if t.context_kind == DEFAULT_KIND and not t.values:
            same = next((u for u in targets if u.variation == t.variation), None)
            if same is not None:
                out.append(same)
        else:
            out.append(t)
    return out


@dataclass(frozen=True, slots=True)
class SegmentRule:
    clauses: tuple[Clause, ...]
    threshold: float | None  # float32(weight)/100000; None: no weight, clauses decide alone
    bucket_by: AttrRef | None
    rollout_context_kind: str  # normalised


class Segment:
    """A segment ready for evaluation. Build with ``Segment.from_json``."""

    __slots__ = ("deleted", "excluded", "excluded_contexts", "generation", "included",
                 "included_contexts", "key", "malformed", "raw", "rules", "salt", "unbounded",
                 "unbounded_context_kind", "version")

    key: str
    version: int
    raw: dict[str, Any]
    deleted: bool
    malformed: str | None
    included: frozenset[str]
    excluded: frozenset[str]
    included_contexts: tuple[tuple[str, frozenset[str]], ...]
    excluded_contexts: tuple[tuple[str, frozenset[str]], ...]
    rules: tuple[SegmentRule, ...]
    salt: str
    unbounded: bool
    unbounded_context_kind: str
    generation: int | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Segment:
        self = cls.__new__(cls)
        self.raw = d
        key, version = d.get("key"), d.get("version")
        self.key = key if isinstance(key, str) else ""
        self.version = int(version) if isinstance(version, int | float) else 0
        self.deleted = d.get("deleted") is True
        self.malformed = None
        self.included = self.excluded = frozenset()
        self.included_contexts = self.excluded_contexts = ()
        self.rules, self.salt, self.unbounded = (), "", False
        self.unbounded_context_kind, self.generation = DEFAULT_KIND, None
        try:
            self._parse(d)
        except _Odd as e:
            self.malformed = str(e)
        return self

    def _parse(self, d: Mapping[str, Any]) -> None:
        self.included = _strings(d, "included")
        self.excluded = _strings(d, "excluded")
        self.included_contexts = tuple(
            (_get(t, "contextKind", str, "") or DEFAULT_KIND, _strings(t, "values"))
            for t in _objects(d, "includedContexts"))
        self.excluded_contexts = tuple(
            (_get(t, "contextKind", str, "") or DEFAULT_KIND, _strings(t, "values"))
            for t in _objects(d, "excludedContexts"))
        rules = []
        for r in _objects(d, "rules"):
            weight = _get(r, "weight", int, None)
            kind = _get(r, "rolloutContextKind", str, "")
            rules.append(SegmentRule(_clauses(r),
                                     None if weight is None else weight_fraction(weight),
                                     ref_for(_get(r, "bucketBy", str, None), kind),
                                     kind or DEFAULT_KIND))
        self.rules = tuple(rules)
        self.salt = _get(d, "salt", str, "")
        self.unbounded = _get(d, "unbounded", bool, False)
        self.unbounded_context_kind = _get(d, "unboundedContextKind", str, "") or DEFAULT_KIND
        self.generation = _get(d, "generation", int, None)

    def __repr__(self) -> str:
        return f"Segment({self.key!r}, version={self.version})"
