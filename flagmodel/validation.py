"""Strict validation of flags and segments against the SDK data model (PROTOCOL.md §4).

Pure code. ``check_item(kind, key, data)`` returns a list of error strings, each starting with
the JSON path of the offending value (``rules[0].clauses[1].op: unknown operator "foo"``); an
empty list means the item is valid.

The rules are deliberately stricter than the SDKs: anything an SDK would evaluate to
``MALFORMED_FLAG`` is refused, and so is anything that can only be a mistake (an unknown
operator, a clause value the evaluator cannot use, rollout weights not summing to 100 %).
Clause values are judged by ``flagmodel.clause_values``, the same code the evaluator compiles
clauses with.
The conformance suites' deliberately broken flags go in through the lenient import instead.
Unknown top-level properties are allowed, because newer SDK models add fields.
"""

from __future__ import annotations

import re
from typing import Any

from flagmodel.attrref import literal_ref, parse_ref
from flagmodel.clause_values import OPERANDS, Unusable
from flagmodel.context import kind_error

KEY_RE = re.compile(r"[A-Za-z0-9._-]+")
TOTAL_WEIGHT = 100_000

Errors = list[str]


def check_item(kind: str, key: str, data: Any) -> Errors:
    """Validate one item of ``kind`` ("flags" or "segments") stored under ``key``."""
    if not isinstance(data, dict):
        return [f"(root): expected an object, got {_tname(data)}"]
    errs: Errors = []
    _check_common(errs, key, data)
    if kind == "flags":
        _check_flag(errs, key, data)
    elif kind == "segments":
        _check_segment(errs, key, data)
    else:
        errs.append(f"(root): unknown item kind {kind!r}")
    return errs


def is_valid_key(key: str) -> bool:
    return len(key) <= 256 and KEY_RE.fullmatch(key) is not None


def _tname(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object" if isinstance(v, dict) else type(v).__name__


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _typed(errs: Errors, obj: dict[str, Any], path: str, name: str, want: str,
           *, required: bool = False, nullable: bool = False) -> Any:
    """Return ``obj[name]`` if it has JSON type ``want`` (or is absent/allowed null), else None."""
    p = _join(path, name)
    if name not in obj or (nullable and obj[name] is None):
        if required:
            errs.append(f"{p}: required")
        return None
    v = obj[name]
    ok = {
        "string": isinstance(v, str), "boolean": isinstance(v, bool), "integer": _is_int(v),
        "number": _is_int(v) or isinstance(v, float), "array": isinstance(v, list),
        "object": isinstance(v, dict),
    }[want]
    if not ok:
        errs.append(f"{p}: expected {want}, got {_tname(v)}")
        return None
    return v


def _objects(errs: Errors, obj: dict[str, Any], path: str, name: str,
             *, required: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """The elements of array ``obj[name]`` that are objects, with their paths."""
    arr = _typed(errs, obj, path, name, "array", required=required)
    out = []
    for i, el in enumerate(arr or ()):
        p = _join(_join(path, name), i)
        if isinstance(el, dict):
            out.append((p, el))
        else:
            errs.append(f"{p}: expected object, got {_tname(el)}")
    return out


def _strings(errs: Errors, obj: dict[str, Any], path: str, name: str,
             *, required: bool = False) -> None:
    arr = _typed(errs, obj, path, name, "array", required=required)
    for i, el in enumerate(arr or ()):
        if not isinstance(el, str):
            errs.append(f"{_join(_join(path, name), i)}: expected string, got {_tname(el)}")


def _check_common(errs: Errors, key: str, data: dict[str, Any]) -> None:
    k = _typed(errs, data, "", "key", "string")
    if k is not None and k != key:
        errs.append(f'key: "{k}" does not match the key in the path "{key}"')
    v = _typed(errs, data, "", "version", "integer")
    if v is not None and v < 0:
        errs.append("version: must not be negative")
    if _typed(errs, data, "", "deleted", "boolean"):
        errs.append("deleted: must be false (use DELETE to delete an item)")
    _typed(errs, data, "", "salt", "string")


def _check_context_kind(errs: Errors, obj: dict[str, Any], path: str, name: str,
                        *, required: bool = False) -> str | None:
    kind = _typed(errs, obj, path, name, "string", required=required)
    if not kind:  # absent or "": the SDKs read it as the default kind "user"
        if required and kind == "":
            errs.append(f"{_join(path, name)}: must not be empty")
        return None
    if kind_error(kind) is not None:
        errs.append(f'{_join(path, name)}: invalid context kind "{kind}"')
        return None
    return str(kind)


def attr_ref_error(ref: str, *, literal: bool) -> str | None:
    """Why an attribute reference is malformed, or None: the evaluator's own reading of it."""
    return (literal_ref(ref) if literal else parse_ref(ref)).error


def _check_variation(errs: Errors, obj: dict[str, Any], path: str, name: str,
                     n_variations: int, *, required: bool = False, nullable: bool = False) -> None:
    v = _typed(errs, obj, path, name, "integer", required=required, nullable=nullable)
    if v is not None and not 0 <= v < n_variations:
        errs.append(f"{_join(path, name)}: variation index {v} is out of range "
                    f"(the flag has {n_variations} variations)")


def _check_clause(
    errs: Errors, path: str, clause: dict[str, Any], self_segment: str | None
) -> None:
    kind = _check_context_kind(errs, clause, path, "contextKind")
    op = _typed(errs, clause, path, "op", "string", required=True)
    attr = _typed(errs, clause, path, "attribute", "string", required=op != "segmentMatch")
    if attr is not None and op != "segmentMatch":
        err = attr_ref_error(attr, literal=kind is None)
        if err:
            errs.append(f"{_join(path, 'attribute')}: {err}")
    _typed(errs, clause, path, "negate", "boolean")
    values = _typed(errs, clause, path, "values", "array", required=True)
    if op is None:
        return
    parse = OPERANDS.get(op)
    if parse is None:
        errs.append(f'{_join(path, "op")}: unknown operator "{op}"')
        return
    for i, val in enumerate(values or ()):
        operand = parse(val)
        err = operand.reason if isinstance(operand, Unusable) else None
        if err is None and op == "segmentMatch" and val == self_segment:
            err = f'segment "{val}" cannot match itself'
        if err:
            errs.append(f"{_join(_join(path, 'values'), i)}: {err}")


def _check_clauses(errs: Errors, path: str, rule: dict[str, Any], self_segment: str | None) -> None:
    for p, clause in _objects(errs, rule, path, "clauses", required=True):
        _check_clause(errs, p, clause, self_segment)


def _check_rollout(errs: Errors, path: str, ro: dict[str, Any], n_variations: int) -> None:
    kind = _typed(errs, ro, path, "kind", "string")
    if kind is not None and kind not in ("rollout", "experiment"):
        errs.append(f'{_join(path, "kind")}: must be "rollout" or "experiment", not "{kind}"')
    ckind = _check_context_kind(errs, ro, path, "contextKind")
    bucket_by = _typed(errs, ro, path, "bucketBy", "string")
    if bucket_by:
        err = attr_ref_error(bucket_by, literal=ckind is None)
        if err:
            errs.append(f"{_join(path, 'bucketBy')}: {err}")
    _typed(errs, ro, path, "seed", "integer", nullable=True)
    wvs = _objects(errs, ro, path, "variations", required=True)
    if "variations" in ro and isinstance(ro["variations"], list) and not ro["variations"]:
        errs.append(f"{_join(path, 'variations')}: a rollout needs at least one variation")
    total = 0
    for p, wv in wvs:
        _check_variation(errs, wv, p, "variation", n_variations, required=True)
        weight = _typed(errs, wv, p, "weight", "integer", required=True)
        if weight is not None:
            if weight < 0:
                errs.append(f"{_join(p, 'weight')}: must not be negative")
            total += weight
        _typed(errs, wv, p, "untracked", "boolean")
    if wvs and total != TOTAL_WEIGHT:
        errs.append(f"{_join(path, 'variations')}: weights sum to {total}, not {TOTAL_WEIGHT}")


def _check_var_or_rollout(errs: Errors, path: str, obj: dict[str, Any], n_variations: int) -> None:
    has_var = obj.get("variation") is not None
    has_ro = obj.get("rollout") is not None
    where = path or "(root)"
    if has_var == has_ro:
        which = "both" if has_var else "neither"
        errs.append(f'{where}: needs exactly one of "variation" and "rollout", has {which}')
    if has_var:
        _check_variation(errs, obj, path, "variation", n_variations)
    if has_ro:
        ro = _typed(errs, obj, path, "rollout", "object")
        if ro is not None:
            _check_rollout(errs, _join(path, "rollout"), ro, n_variations)


def _check_flag(errs: Errors, key: str, f: dict[str, Any]) -> None:
    variations = _typed(errs, f, "", "variations", "array")
    n = len(variations) if variations is not None else 0
    on = _typed(errs, f, "", "on", "boolean")
    _check_variation(errs, f, "", "offVariation", n, nullable=True)
    ft = _typed(errs, f, "", "fallthrough", "object")
    if ft is not None:
        _check_var_or_rollout(errs, "fallthrough", ft, n)
    elif on and "fallthrough" not in f:
        errs.append("fallthrough: required when the flag is on")
    for p, pre in _objects(errs, f, "", "prerequisites"):
        pkey = _typed(errs, pre, p, "key", "string", required=True)
        if pkey == "":
            errs.append(f"{p}.key: must not be empty")
        elif pkey == key:
            errs.append(f'{p}.key: flag "{key}" cannot be its own prerequisite')
        var = _typed(errs, pre, p, "variation", "integer", required=True)
        if var is not None and var < 0:
            errs.append(f"{p}.variation: must not be negative")
    for name in ("targets", "contextTargets"):
        for p, t in _objects(errs, f, "", name):
            _check_context_kind(errs, t, p, "contextKind")
            _check_variation(errs, t, p, "variation", n, required=True)
            # A "user" contextTargets entry without values means "use the targets entry".
            _strings(errs, t, p, "values", required=name == "targets")
    for p, rule in _objects(errs, f, "", "rules"):
        _typed(errs, rule, p, "id", "string")
        _typed(errs, rule, p, "trackEvents", "boolean")
        _check_clauses(errs, p, rule, None)
        _check_var_or_rollout(errs, p, rule, n)
    for name in ("trackEvents", "trackEventsFallthrough", "clientSide", "excludeFromSummaries"):
        _typed(errs, f, "", name, "boolean")
    _typed(errs, f, "", "debugEventsUntilDate", "number", nullable=True)
    ratio = _typed(errs, f, "", "samplingRatio", "integer", nullable=True)
    if ratio is not None and ratio < 0:
        errs.append("samplingRatio: must not be negative")
    csa = _typed(errs, f, "", "clientSideAvailability", "object", nullable=True)
    if csa is not None:
        for name in ("usingMobileKey", "usingEnvironmentId"):
            _typed(errs, csa, "clientSideAvailability", name, "boolean")
    mig = _typed(errs, f, "", "migration", "object", nullable=True)
    if mig is not None:
        _typed(errs, mig, "migration", "checkRatio", "integer", nullable=True)


def _check_segment(errs: Errors, key: str, s: dict[str, Any]) -> None:
    _strings(errs, s, "", "included")
    _strings(errs, s, "", "excluded")
    for name in ("includedContexts", "excludedContexts"):
        for p, t in _objects(errs, s, "", name):
            _check_context_kind(errs, t, p, "contextKind", required=True)
            _strings(errs, t, p, "values", required=True)
    for p, rule in _objects(errs, s, "", "rules"):
        _typed(errs, rule, p, "id", "string")
        _check_clauses(errs, p, rule, key)
        weight = _typed(errs, rule, p, "weight", "integer", nullable=True)
        if weight is not None and not 0 <= weight <= TOTAL_WEIGHT:
            errs.append(f"{p}.weight: must be between 0 and {TOTAL_WEIGHT}")
        ckind = _check_context_kind(errs, rule, p, "rolloutContextKind")
        bucket_by = _typed(errs, rule, p, "bucketBy", "string")
        if bucket_by:
            err = attr_ref_error(bucket_by, literal=ckind is None)
            if err:
                errs.append(f"{p}.bucketBy: {err}")
    _typed(errs, s, "", "unbounded", "boolean")
    _check_context_kind(errs, s, "", "unboundedContextKind")
    _typed(errs, s, "", "generation", "integer", nullable=True)

