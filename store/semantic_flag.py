"""The flag instructions of LaunchDarkly's semantic patch (pure); see store.semantic_patch.

How LaunchDarkly's IDs map onto the SDK flag model that flagstream stores:

- ``variationId`` is the variation's index in ``variations`` (``0``, or the string ``"0"``:
  LaunchDarkly's IDs are strings); ``rolloutWeights`` maps such indices to weights in
  thousandths of a percent, which must sum to 100000.
- ``ruleId`` is a rule's ``id``; ``addRule`` and ``replaceRules`` give each new rule a fresh
  ``id`` (``replaceRules`` keeps an ``_id`` it is given).
- ``addTargets``/``removeTargets`` with ``contextKind`` "user" (the default) change ``targets``,
  any other kind ``contextTargets``; a context is targeted by one variation at a time, so adding
  it to one removes it from the others of its kind.
- A rule's ``description`` is accepted and not stored: the SDK data model has no such field.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from store.patch_errors import PatchError

NewId = Callable[[], str]
Item = dict[str, Any]
# An instruction's handler changes the item in place; PatchError if it does not fit.
Handler = Callable[[Item, dict[str, Any], NewId], None]
Instructions = dict[str, tuple[Handler, tuple[str, ...]]]  # kind -> (handler, parameters)
_Flag = Item
_CLAUSE_FIELDS = frozenset({"contextKind", "attribute", "op", "negate", "values", "_id"})
_SERVE = ("variationId", "rolloutWeights", "rolloutBucketBy", "rolloutContextKind")
_RULE = ("clauses", *_SERVE, "description", "trackEvents")


def new_rule_id() -> str:
    return str(uuid.uuid4())


# -- parameters -----------------------------------------------------------------------------

def _variation(flag: _Flag, value: Any, name: str = "variationId") -> int:
    if isinstance(value, str) and value.isdigit() and value.isascii() and len(value) <= 9:
        value = int(value)  # (longer digit strings are no index; int() refuses > 4300 digits)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PatchError(f"{name}: expected a variation index (0, 1, ...), got {value!r}")
    variations = flag.get("variations")
    count = len(variations) if isinstance(variations, list) else 0
    if value >= count:
        raise PatchError(f"{name}: the flag has no variation {value} (it has {count})")
    return value


def _serve(flag: _Flag, ins: dict[str, Any]) -> dict[str, Any]:
    """``{"variation": i}`` or ``{"rollout": ...}`` from variationId or rolloutWeights."""
    has_var, weights = "variationId" in ins, ins.get("rolloutWeights")
    if has_var == (weights is not None):
        raise PatchError("needs exactly one of variationId and rolloutWeights")
    if has_var:
        return {"variation": _variation(flag, ins["variationId"])}
    if not isinstance(weights, dict) or not weights:
        raise PatchError("rolloutWeights: expected an object of variation index to weight")
    parts = []
    for var, weight in weights.items():
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
            raise PatchError(f"rolloutWeights.{var}: expected a non-negative integer")
        parts.append({"variation": _variation(flag, var, f"rolloutWeights.{var}"),
                      "weight": weight})
    rollout: dict[str, Any] = {"variations": sorted(parts, key=lambda p: p["variation"])}
    for param, field in (("rolloutBucketBy", "bucketBy"), ("rolloutContextKind", "contextKind")):
        if ins.get(param) is not None:
            if not isinstance(ins[param], str):
                raise PatchError(f"{param}: expected a string")
            rollout[field] = ins[param]
    return {"rollout": rollout}


def _objects(value: Any, name: str, known: frozenset[str]) -> list[dict[str, Any]]:
    """``value`` as an array of objects with no member outside ``known``."""
    if not isinstance(value, list):
        raise PatchError(f"{name}: expected an array")
    for i, obj in enumerate(value):
        if not isinstance(obj, dict):
            raise PatchError(f"{name}[{i}]: expected an object")
        extra = sorted(set(obj) - known)
        if extra:
            raise PatchError(f'{name}[{i}]: unknown field "{extra[0]}"; expected '
                             + ", ".join(sorted(known)))
    return value


def _clauses(value: Any) -> list[dict[str, Any]]:
    # LaunchDarkly's clauses may carry an ``_id``; the SDK model has none, so it is dropped.
    return [{"negate": False, **{k: v for k, v in clause.items() if k != "_id"}}
            for clause in _objects(value, "clauses", _CLAUSE_FIELDS)]


def _rule_index(flag: _Flag, rule_id: Any, name: str = "ruleId") -> int:
    for i, rule in enumerate(flag.get("rules") or ()):
        if isinstance(rule, dict) and rule.get("id") == rule_id and isinstance(rule_id, str):
            return i
    raise PatchError(f"{name}: the flag has no rule with id {rule_id!r}")


def _new_rule(flag: _Flag, spec: dict[str, Any], rule_id: str) -> dict[str, Any]:
    if "description" in spec and not isinstance(spec["description"], str):
        raise PatchError("description: expected a string")
    track = spec.get("trackEvents", False)
    if not isinstance(track, bool):
        raise PatchError("trackEvents: expected a boolean")
    return {"id": rule_id, "clauses": _clauses(spec.get("clauses", [])), **_serve(flag, spec),
            "trackEvents": track}


def _rules(flag: _Flag) -> list[Any]:
    rules = flag.get("rules")
    if not isinstance(rules, list):
        rules = flag["rules"] = []
    return rules


# -- instructions ---------------------------------------------------------------------------

def _turn_on(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    flag["on"] = True


def _turn_off(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    flag["on"] = False


def _add_rule(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    rule = _new_rule(flag, ins, new_id())
    before = ins.get("beforeRuleId")
    at = len(_rules(flag)) if before is None else _rule_index(flag, before, "beforeRuleId")
    _rules(flag).insert(at, rule)


def _remove_rule(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    del _rules(flag)[_rule_index(flag, ins.get("ruleId"))]


def _add_clauses(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    rule = _rules(flag)[_rule_index(flag, ins.get("ruleId"))]
    clauses = _clauses(ins.get("clauses"))
    if not clauses:
        raise PatchError("clauses: expected at least one clause")
    rule["clauses"] = [*(rule.get("clauses") or []), *clauses]


def _fallthrough(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    flag["fallthrough"] = _serve(flag, ins)


def _off_variation(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    flag["offVariation"] = _variation(flag, ins.get("variationId"))


def _replace_rules(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    rules = []
    for i, spec in enumerate(_objects(ins.get("rules"), "rules", frozenset({*_RULE, "_id"}))):
        given = spec.get("_id")
        try:
            rules.append(_new_rule(flag, spec, given if isinstance(given, str) else new_id()))
        except PatchError as exc:
            raise PatchError(f"rules[{i}]: {exc.message}") from None
    flag["rules"] = rules


def target_values(ins: dict[str, Any]) -> tuple[str, list[str]]:
    """The ``contextKind`` (default "user") and ``values`` (context keys) of a targets
    instruction."""
    kind = ins.get("contextKind", "user")
    if not isinstance(kind, str) or not kind:
        raise PatchError("contextKind: expected a non-empty string")
    values = ins.get("values")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise PatchError("values: expected a non-empty array of context keys")
    return kind, values


def _target_args(flag: _Flag, ins: dict[str, Any]) -> tuple[str, int, list[str]]:
    kind, values = target_values(ins)
    return kind, _variation(flag, ins.get("variationId")), values


def _target_list(flag: _Flag, kind: str) -> list[Any]:
    """``targets`` for kind "user", else ``contextTargets`` (created if missing)."""
    name = "targets" if kind == "user" else "contextTargets"
    targets = flag.get(name)
    if not isinstance(targets, list):
        targets = flag[name] = []
    return targets


def _entries(flag: _Flag, kind: str) -> list[dict[str, Any]]:
    return [t for t in _target_list(flag, kind) if isinstance(t, dict)
            and (kind == "user" or t.get("contextKind") == kind)]


def without(keys: Any, drop: set[str]) -> list[Any]:
    """``keys`` (if a list; else nothing) less the strings in ``drop``: a set, so a patch of
    many keys costs linear time, never keys times values."""
    if not isinstance(keys, list):
        return []
    return [k for k in keys if not (isinstance(k, str) and k in drop)]


def _add_targets(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    kind, var, values = _target_args(flag, ins)
    values = list(dict.fromkeys(values))
    for entry in _entries(flag, kind):  # one variation per context: leave the others
        entry["values"] = without(entry.get("values"), set(values))
    found = [t for t in _entries(flag, kind) if t.get("variation") == var]
    if found:
        found[0]["values"].extend(values)
    else:
        extra = {} if kind == "user" else {"contextKind": kind}
        _target_list(flag, kind).append({**extra, "variation": var, "values": list(values)})
    _tidy_targets(flag, kind)


def _remove_targets(flag: _Flag, ins: dict[str, Any], new_id: NewId) -> None:
    kind, var, values = _target_args(flag, ins)
    for entry in _entries(flag, kind):
        if entry.get("variation") == var:
            entry["values"] = without(entry.get("values"), set(values))
    _tidy_targets(flag, kind)


def _tidy_targets(flag: _Flag, kind: str) -> None:
    """Drop emptied entries, and keep ``contextTargets``' "user" placeholders in step with
    ``targets``: once ``contextTargets`` is not empty the SDKs read user targets only
    through such a placeholder (an entry of kind "user" with no values)."""
    targets = _target_list(flag, "user")
    targets[:] = [t for t in targets if not isinstance(t, dict) or t.get("values")]
    contexts = _target_list(flag, "any other kind")
    contexts[:] = [t for t in contexts if not isinstance(t, dict)
                   or t.get("contextKind") == "user" or t.get("values")]
    user_vars = [t.get("variation") for t in targets if isinstance(t, dict)]
    contexts[:] = [t for t in contexts if not isinstance(t, dict)
                   or t.get("contextKind") != "user" or t.get("variation") in user_vars]
    if any(isinstance(t, dict) and t.get("contextKind") != "user" for t in contexts):
        held = {t.get("variation") for t in contexts
                if isinstance(t, dict) and t.get("contextKind") == "user"}
        contexts.extend({"contextKind": "user", "variation": v, "values": []}
                        for v in user_vars if v not in held)
    else:  # only placeholders left: SDKs fall back to targets by themselves
        contexts.clear()


FLAG_INSTRUCTIONS: Instructions = {
    "turnFlagOn": (_turn_on, ()),
    "turnFlagOff": (_turn_off, ()),
    "addRule": (_add_rule, (*_RULE, "beforeRuleId")),
    "removeRule": (_remove_rule, ("ruleId",)),
    "addClauses": (_add_clauses, ("ruleId", "clauses")),
    "updateFallthroughVariationOrRollout": (_fallthrough, _SERVE),
    "updateOffVariation": (_off_variation, ("variationId",)),
    "addTargets": (_add_targets, ("variationId", "values", "contextKind")),
    "removeTargets": (_remove_targets, ("variationId", "values", "contextKind")),
    "replaceRules": (_replace_rules, ("rules",)),
}
