"""The evaluator: PROTOCOL.md §4.4 over precompiled flags, with the Go SDK's error semantics.

Theory of operation. ``evaluate`` walks off → prerequisites → targets → rules → fallthrough.
Two kinds of failure exist, as in go-server-sdk-evaluation:

- *local* errors (a variation index out of range, a rollout with no variations, an invalid
  ``bucketBy``, a flag whose JSON had the wrong types) make that flag's result
  ERROR/MALFORMED_FLAG; when the flag is a prerequisite, the parent just sees a failed
  prerequisite;
- *fatal* errors (a clause with a missing or invalid attribute reference, a prerequisite or
  segment cycle, an invalid segment rule) abort the whole evaluation, parents included, with
  ERROR/MALFORMED_FLAG. They travel as ``MalformedFlagError``.

Unbounded ("big") segments are answered as by an SDK with no big segment store: the reason
gets ``bigSegmentsStatus: NOT_CONFIGURED`` and only the segment's rules can match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flagmodel.bucketing import KEY_REF, bucket_context
from flagmodel.clauses import Clause, MalformedFlagError
from flagmodel.context import DEFAULT_KIND, Context
from flagmodel.model import Flag, Segment, VariationOrRollout

Result = tuple[Any, int | None, dict[str, Any]]
NOT_CONFIGURED = "NOT_CONFIGURED"


@dataclass(frozen=True, slots=True)
class EvalDetail:
    """One evaluation. ``reason`` is LaunchDarkly's reason JSON; do not mutate it.

    ``in_experiment`` is Go's ``Result.IsExperiment`` (§4.4 isExperiment: the reason says
    ``inExperiment``, or a fallthrough with ``trackEventsFallthrough``, or a rule match whose
    rule has ``trackEvents``); ``track_events`` is ``flag.trackEvents or in_experiment``.
    ``prerequisites`` lists the prerequisite flags this flag evaluated directly, in order.
    """

    value: Any
    variation_index: int | None
    reason: dict[str, Any]
    prerequisites: tuple[str, ...] = ()
    in_experiment: bool = False
    track_events: bool = False


def error_detail(error_kind: str) -> EvalDetail:
    return EvalDetail(None, None, {"kind": "ERROR", "errorKind": error_kind})


def _malformed() -> Result:
    return None, None, {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}


class _Scope:
    __slots__ = ("big_segments_status", "context", "prereq_chain", "prereqs", "segment_chain")

    def __init__(self, context: Context) -> None:
        self.context = context
        self.prereq_chain: list[str] = []
        self.segment_chain: list[str] = []
        self.prereqs: list[str] = []
        self.big_segments_status: str | None = None


def _variation(flag: Flag, index: int, reason: dict[str, Any]) -> Result:
    if 0 <= index < len(flag.variations):
        return flag.variations[index], index, reason
    return _malformed()


def _off(flag: Flag, reason: dict[str, Any]) -> Result:
    if flag.off_variation is None:
        return None, None, reason
    return _variation(flag, flag.off_variation, reason)


def is_experiment(flag: Flag, reason: dict[str, Any]) -> bool:
    if reason.get("inExperiment") is True:
        return True
    kind = reason["kind"]
    if kind == "FALLTHROUGH":
        return flag.track_events_fallthrough
    if kind == "RULE_MATCH":
        i: int = reason["ruleIndex"]
        return 0 <= i < len(flag.rules) and flag.rules[i].track_events
    return False


class Evaluator:
    """Evaluates flags; ``get_flag``/``get_segment`` resolve prerequisites and segments."""

    def __init__(self, get_flag: Callable[[str], Flag | None],
                 get_segment: Callable[[str], Segment | None]) -> None:
        self._get_flag = get_flag
        self._get_segment = get_segment

    def evaluate_key(self, key: str, context: Context) -> EvalDetail:
        """Like ``evaluate``, answering FLAG_NOT_FOUND for an unknown or deleted key."""
        flag = self._get_flag(key)
        if flag is None or flag.deleted:
            return error_detail("FLAG_NOT_FOUND")
        return self.evaluate(flag, context)

    def evaluate(self, flag: Flag, context: Context) -> EvalDetail:
        scope = _Scope(context)
        try:
            value, index, reason = self._eval(flag, scope, 0)
        except MalformedFlagError:
            value, index, reason = _malformed()
        if scope.big_segments_status is not None:
            reason = {**reason, "bigSegmentsStatus": scope.big_segments_status}
        experiment = is_experiment(flag, reason)
        return EvalDetail(value, index, reason, tuple(scope.prereqs), experiment,
                          flag.track_events or experiment)

    def _eval(self, flag: Flag, scope: _Scope, depth: int) -> Result:
        if flag.malformed is not None:
            return _malformed()
        if not flag.on:
            return _off(flag, {"kind": "OFF"})
        if flag.prerequisites:
            failed = self._failed_prerequisite(flag, scope, depth)
            if failed is not None:
                return _off(flag, {"kind": "PREREQUISITE_FAILED", "prerequisiteKey": failed})
        by_kind = scope.context._by_kind
        for t in flag.targets:
            ctx = by_kind.get(t.context_kind)
            if ctx is not None and ctx.key in t.values:
                return _variation(flag, t.variation, {"kind": "TARGET_MATCH"})
        for i, rule in enumerate(flag.rules):
            if self._all_match(rule.clauses, scope):
                reason = {"kind": "RULE_MATCH", "ruleIndex": i}
                if rule.id:
                    reason["ruleId"] = rule.id
                return self._outcome(flag, rule.outcome, reason, scope)
        return self._outcome(flag, flag.fallthrough, {"kind": "FALLTHROUGH"}, scope)

    def _failed_prerequisite(self, flag: Flag, scope: _Scope, depth: int) -> str | None:
        chain = scope.prereq_chain
        chain.append(flag.key)
        try:
            for key, wanted in flag.prerequisites:
                pre = self._get_flag(key)
                if pre is None or pre.deleted:
                    return key
                if pre.key in chain:
                    raise MalformedFlagError(f"prerequisite cycle through {key!r}")
                if depth == 0:
                    scope.prereqs.append(key)
                _, index, _ = self._eval(pre, scope, depth + 1)
                if not pre.on or index != wanted:
                    return key
            return None
        finally:
            chain.pop()

    def _outcome(self, flag: Flag, vr: VariationOrRollout, reason: dict[str, Any],
                 scope: _Scope) -> Result:
        if vr.variation is not None:
            return _variation(flag, vr.variation, reason)
        r = vr.rollout
        if r is None:
            return _malformed()
        ref = r.bucket_by
        if r.experiment or ref is None:
            ref = KEY_REF
        elif ref.error is not None:
            return _malformed()
        prefix = str(r.seed) if r.seed is not None else f"{flag.key}.{flag.salt}"
        bucket = bucket_context(scope.context, r.context_kind, ref, prefix)
        has_kind = bucket is not None
        b = bucket if bucket is not None else 0.0
        for i, threshold in enumerate(r.thresholds):
            if b < threshold:
                index, in_exp = r.variations[i], r.experiment and not r.untracked[i] and has_kind
                break
        else:  # past the last bucket (rounding, or weights short of 100%): the last variation
            index, in_exp = r.variations[-1], r.experiment and not r.untracked[-1]
        if in_exp:
            reason["inExperiment"] = True
        return _variation(flag, index, reason)

    def _all_match(self, clauses: tuple[Clause, ...], scope: _Scope) -> bool:
        for clause in clauses:
            if clause.is_segment:
                if not self._segment_clause(clause, scope):
                    return False
            elif not clause.match(scope.context):
                return False
        return True

    def _segment_clause(self, clause: Clause, scope: _Scope) -> bool:
        for key in clause.segment_keys:
            segment = self._get_segment(key)
            if segment is not None and not segment.deleted and self._in_segment(segment, scope):
                return not clause.negate
        return clause.negate

    def _in_segment(self, seg: Segment, scope: _Scope) -> bool:
        chain = scope.segment_chain
        if seg.key in chain:
            raise MalformedFlagError(f"segment cycle through {seg.key!r}")
        if seg.malformed is not None:
            raise MalformedFlagError(f"segment {seg.key!r}: {seg.malformed}")
        context = scope.context
        by_kind = context._by_kind
        chain.append(seg.key)
        try:
            if seg.unbounded:
                # No big segment store: membership is unknown, only the rules can match.
                if seg.generation is None or seg.unbounded_context_kind in by_kind:
                    scope.big_segments_status = NOT_CONFIGURED
                if seg.generation is None or seg.unbounded_context_kind not in by_kind:
                    return False
            else:
                user = by_kind.get(DEFAULT_KIND)
                only_user = context.kind == DEFAULT_KIND  # Go skips *Contexts lists then
                if user is not None and user.key in seg.included:
                    return True
                if not only_user:
                    for kind, keys in seg.included_contexts:
                        ctx = by_kind.get(kind)
                        if ctx is not None and ctx.key in keys:
                            return True
                if user is not None and user.key in seg.excluded:
                    return False
                if not only_user:
                    for kind, keys in seg.excluded_contexts:
                        ctx = by_kind.get(kind)
                        if ctx is not None and ctx.key in keys:
                            return False
            prefix = f"{seg.key}.{seg.salt}"
            for rule in seg.rules:
                if not self._all_match(rule.clauses, scope):
                    continue
                if rule.threshold is None:
                    return True
                ref = rule.bucket_by or KEY_REF
                if ref.error is not None:
                    raise MalformedFlagError(f"segment {seg.key!r}: invalid bucketBy")
                bucket = bucket_context(context, rule.rollout_context_kind, ref, prefix)
                if bucket is not None and bucket < rule.threshold:
                    return True
            return False
        finally:
            chain.pop()
