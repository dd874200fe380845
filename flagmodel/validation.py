"""Validation of flags and segments against the SDK data model (PROTOCOL.md §4), in two levels.

Pure code. Every problem is a string that starts with the JSON path of the offending value
(``rules[0].clauses[1].op: unknown operator "foo"``).

- **Type level** (``flagmodel.schema``): a value of the wrong JSON type, a missing property
  the SDKs require, a property no SDK reads. An SDK cannot parse such an item, and one such
  item stops it from loading the whole environment, so these are refused on every write
  path, the lenient import included.
- **Semantic level** (this module): what the SDKs parse but evaluate as an error or can
  never match: a variation index out of range, an unknown operator, a clause value its
  operator cannot use (judged by ``flagmodel.clause_values``, the code the evaluator
  compiles clauses with), rollout weights not summing to 100 %, an invalid attribute
  reference or context kind. Refused by the admin API; a lenient import stores such items
  (the conformance suites hold such flags on purpose) and the engine, like the SDKs,
  answers them with ``MALFORMED_FLAG``.

The semantic checks read only well-typed values: a wrong type is reported once, by the schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flagmodel.attrref import literal_ref, parse_ref
from flagmodel.clause_values import OPERANDS, Unusable
from flagmodel.context import kind_error
from flagmodel.schema import has_type, join, type_errors

KEY_RE = re.compile(r"[A-Za-z0-9._-]+")
TOTAL_WEIGHT = 100_000

Errors = list[str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What is wrong with one item, by level. Both empty: the item is valid."""

    unparseable: tuple[str, ...]  # type level: always refused
    malformed: tuple[str, ...]  # semantic level: refused unless the import is lenient


def judge_item(kind: str, key: str, data: Any) -> Verdict:
    """Validate one item of ``kind`` ("flags" or "segments") stored under ``key``."""
    unparseable = type_errors(kind, data)
    errs: Errors = []
    if isinstance(data, dict):
        _check_common(errs, key, data)
        if kind == "flags":
            _check_flag(errs, key, data)
        elif kind == "segments":
            _check_segment(errs, key, data)
    return Verdict(tuple(unparseable), tuple(errs))


def check_item(kind: str, key: str, data: Any) -> Errors:
    """Every problem of one item, both levels (the admin API refuses the item if any)."""
    verdict = judge_item(kind, key, data)
    return [*verdict.unparseable, *verdict.malformed]


def is_valid_key(key: str) -> bool:
    return len(key) <= 256 and KEY_RE.fullmatch(key) is not None


def _typed(obj: dict[str, Any], name: str, want: str) -> Any:
    """``obj[name]`` if it has JSON type ``want``, else None (absent, null or mistyped)."""
    v = obj.get(name)
    return v if v is not None and has_type(v, want) else None


def _objects(obj: dict[str, Any], path: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    """The elements of array ``obj[name]`` that are objects, with their paths."""
    arr = _typed(obj, name, "array")
    return [(join(join(path, name), i), el) for i, el in enumerate(arr or ())
            if isinstance(el, dict)]


def _check_common(errs: Errors, key: str, data: dict[str, Any]) -> None:
    k = _typed(data, "key", "string")
    if k is not None and k != key:
        errs.append(f'key: "{k}" does not match the key in the path "{key}"')
    v = _typed(data, "version", "integer")
    if v is not None and v < 0:
        errs.append("version: must not be negative")
    if _typed(data, "deleted", "boolean"):
        errs.append("deleted: must be false (use DELETE to delete an item)")


def _check_context_kind(errs: Errors, obj: dict[str, Any], path: str, name: str,
                        *, required: bool = False) -> str | None:
    kind = _typed(obj, name, "string")
    p = join(path, name)
    if not kind:  # absent or "": the SDKs read it as the default kind "user"
        if required and kind == "":
            errs.append(f"{p}: must not be empty")
        elif required and name not in obj:
            errs.append(f"{p}: required")
        return None
    if kind_error(kind) is not None:
        errs.append(f'{p}: invalid context kind "{kind}"')
        return None
    return str(kind)


def attr_ref_error(ref: str, *, literal: bool) -> str | None:
    """Why an attribute reference is malformed, or None: the evaluator's own reading of it."""
    return (literal_ref(ref) if literal else parse_ref(ref)).error


def _check_ref(errs: Errors, obj: dict[str, Any], path: str, name: str,
               context_kind: str | None) -> None:
    ref = _typed(obj, name, "string")
    err = attr_ref_error(ref, literal=context_kind is None) if ref else None
    if err:
        errs.append(f"{join(path, name)}: {err}")


def _check_variation(errs: Errors, obj: dict[str, Any], path: str, name: str,
                     n_variations: int) -> None:
    v = _typed(obj, name, "integer")
    if v is not None and not 0 <= v < n_variations:
        errs.append(f"{join(path, name)}: variation index {v} is out of range "
                    f"(the flag has {n_variations} variations)")


def _check_clause(
    errs: Errors, path: str, clause: dict[str, Any], self_segment: str | None
) -> None:
    kind = _check_context_kind(errs, clause, path, "contextKind")
    op = _typed(clause, "op", "string")
    attr = _typed(clause, "attribute", "string")
    if op != "segmentMatch":
        # Absent, the store writes "" (the schema's default): an empty reference to every SDK.
        err = "required" if attr is None else attr_ref_error(attr, literal=kind is None)
        if err and not (attr is None and "attribute" in clause):  # mistyped: the schema's
            errs.append(f"{join(path, 'attribute')}: {err}")
    if op is None:
        return
    parse = OPERANDS.get(op)
    if parse is None:
        errs.append(f'{join(path, "op")}: unknown operator "{op}"')
        return
    for i, val in enumerate(_typed(clause, "values", "array") or ()):
        operand = parse(val)
        err = operand.reason if isinstance(operand, Unusable) else None
        if err is None and op == "segmentMatch" and val == self_segment:
            err = f'segment "{val}" cannot match itself'
        if err:
            errs.append(f"{join(join(path, 'values'), i)}: {err}")


def _check_clauses(errs: Errors, path: str, rule: dict[str, Any], self_segment: str | None) -> None:
    for p, clause in _objects(rule, path, "clauses"):
        _check_clause(errs, p, clause, self_segment)


def _check_rollout(errs: Errors, path: str, ro: dict[str, Any], n_variations: int) -> None:
    kind = _typed(ro, "kind", "string")
    if kind is not None and kind not in ("rollout", "experiment"):
        errs.append(f'{join(path, "kind")}: must be "rollout" or "experiment", not "{kind}"')
    ckind = _check_context_kind(errs, ro, path, "contextKind")
    _check_ref(errs, ro, path, "bucketBy", ckind)
    if _typed(ro, "variations", "array") == []:
        errs.append(f"{join(path, 'variations')}: a rollout needs at least one variation")
    wvs = _objects(ro, path, "variations")
    total = 0
    for p, wv in wvs:
        _check_variation(errs, wv, p, "variation", n_variations)
        weight = _typed(wv, "weight", "integer")
        if weight is not None:
            if weight < 0:
                errs.append(f"{join(p, 'weight')}: must not be negative")
            total += weight
    if wvs and total != TOTAL_WEIGHT:
        errs.append(f"{join(path, 'variations')}: weights sum to {total}, not {TOTAL_WEIGHT}")


def _check_var_or_rollout(errs: Errors, path: str, obj: dict[str, Any], n_variations: int) -> None:
    has_var = obj.get("variation") is not None
    has_ro = obj.get("rollout") is not None
    if has_var == has_ro:
        which = "both" if has_var else "neither"
        errs.append(f'{path}: needs exactly one of "variation" and "rollout", '
                    f"has {which}")
    _check_variation(errs, obj, path, "variation", n_variations)
    ro = _typed(obj, "rollout", "object")
    if ro is not None:
        _check_rollout(errs, join(path, "rollout"), ro, n_variations)


def _check_flag(errs: Errors, key: str, f: dict[str, Any]) -> None:
    n = len(_typed(f, "variations", "array") or ())
    _check_variation(errs, f, "", "offVariation", n)
    ft = _typed(f, "fallthrough", "object")
    if ft is not None:
        _check_var_or_rollout(errs, "fallthrough", ft, n)
    elif _typed(f, "on", "boolean") and "fallthrough" not in f:
        errs.append("fallthrough: required when the flag is on")
    for p, pre in _objects(f, "", "prerequisites"):
        pkey = _typed(pre, "key", "string")
        if pkey == "":
            errs.append(f"{p}.key: must not be empty")
        elif pkey == key:
            errs.append(f'{p}.key: flag "{key}" cannot be its own prerequisite')
        var = _typed(pre, "variation", "integer")
        if var is not None and var < 0:
            errs.append(f"{p}.variation: must not be negative")
    for name in ("targets", "contextTargets"):
        for p, t in _objects(f, "", name):
            _check_context_kind(errs, t, p, "contextKind")
            _check_variation(errs, t, p, "variation", n)
    for p, rule in _objects(f, "", "rules"):
        _check_clauses(errs, p, rule, None)
        _check_var_or_rollout(errs, p, rule, n)
    ratio = _typed(f, "samplingRatio", "integer")
    if ratio is not None and ratio < 0:
        errs.append("samplingRatio: must not be negative")


def _check_segment(errs: Errors, key: str, s: dict[str, Any]) -> None:
    for name in ("includedContexts", "excludedContexts"):
        for p, t in _objects(s, "", name):
            _check_context_kind(errs, t, p, "contextKind", required=True)
    for p, rule in _objects(s, "", "rules"):
        _check_clauses(errs, p, rule, key)
        weight = _typed(rule, "weight", "integer")
        if weight is not None and not 0 <= weight <= TOTAL_WEIGHT:
            errs.append(f"{p}.weight: must be between 0 and {TOTAL_WEIGHT}")
        ckind = _check_context_kind(errs, rule, p, "rolloutContextKind")
        _check_ref(errs, rule, p, "bucketBy", ckind)
    _check_context_kind(errs, s, "", "unboundedContextKind")
