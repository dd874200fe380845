"""The JSON shape of flags and segments as the official SDKs parse them: the one table.

Theory of operation
-------------------
A server SDK parses a whole environment at once. The Python SDK
(``ldclient/impl/model/*.py``: ``req_*``/``opt_*``) refuses the entire ``put`` when one value
of one item has the wrong JSON type or a required property is missing, and then serves
defaults for every flag; the Node SDK reads the same properties without checking them. So a
wrong type is never "one malformed flag": it is refused on every write path, the lenient
import included. ``SHAPES`` lists, per object of the model, every property the SDKs read,
its JSON type, and whether the Python SDK requires it. :func:`type_errors` walks an item
against it and reports

- a property of the wrong JSON type (``null`` counts as absent only where ``nullable``),
- a missing required property,
- a property no SDK reads (``unknown field `rule`; did you mean `rules`?``), because such a
  property is a typo that would silently change what a flag does.

Everything the SDKs parse but then evaluate as an error (an index out of range, an operator
value that does not parse, an invalid attribute reference) is semantic and is judged by
``flagmodel.validation``: refused by the admin API, accepted by a lenient import.

Type names: ``boolean``, ``integer`` (no fraction, not a boolean), ``number``, ``string``,
``any``, a shape name (an object of that shape), ``[T]`` (an array of T).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Final

_SCALARS: Final = ("boolean", "integer", "number", "string", "any")


@dataclass(frozen=True, slots=True)
class Field:
    type: str
    required: bool = False  # the Python SDK refuses the environment without it
    nullable: bool = False  # null reads as absent (the SDKs' own reading)
    default: str | None = None  # JSON the store writes when the field is absent
    note: str = ""


F = Field
_VAR_OR_ROLLOUT: Final = {
    "variation": F("integer", nullable=True, note="exactly one of variation and rollout"),
    "rollout": F("Rollout", nullable=True),
}
_CLAUSE_LIST: Final = F("[Clause]", required=True)
_ITEM: Final = {
    "key": F("string", note="set by the store from the path"),
    "version": F("integer", note="set by the store"),
    "deleted": F("boolean", note="true only in an import (a tombstone)"),
}

SHAPES: Final[dict[str, dict[str, Field]]] = {
    "Flag": {
        **_ITEM,
        "on": F("boolean", default="false"),
        "variations": F("[any]", default="[]"),
        "offVariation": F("integer", nullable=True),
        "fallthrough": F("Fallthrough", note="required when the flag is on"),
        "prerequisites": F("[Prerequisite]", default="[]"),
        "targets": F("[Target]", default="[]"),
        "contextTargets": F("[ContextTarget]", default="[]"),
        "rules": F("[Rule]", default="[]"),
        "salt": F("string", nullable=True),
        "trackEvents": F("boolean", default="false"),
        "trackEventsFallthrough": F("boolean", default="false"),
        "debugEventsUntilDate": F("number", nullable=True),
        "clientSide": F("boolean"),
        "clientSideAvailability": F("ClientSideAvailability", nullable=True),
        "samplingRatio": F("integer", nullable=True),
        "excludeFromSummaries": F("boolean"),
        "migration": F("Migration", nullable=True),
    },
    "Fallthrough": dict(_VAR_OR_ROLLOUT),
    "Rule": {
        "id": F("string"),
        "clauses": _CLAUSE_LIST,
        **_VAR_OR_ROLLOUT,
        "trackEvents": F("boolean"),
    },
    "Clause": {
        "contextKind": F("string"),
        # Go and Node read a missing attribute as "" (for segmentMatch: ignored; otherwise an
        # empty reference, MALFORMED_FLAG); the Python SDK requires the property.
        "attribute": F("string", default='""', note="required unless op is segmentMatch"),
        "op": F("string", required=True),
        "values": F("[any]", required=True),
        "negate": F("boolean"),
    },
    "Rollout": {
        "kind": F("string", note='"rollout" or "experiment"'),
        "contextKind": F("string"),
        "bucketBy": F("string"),
        "seed": F("integer", nullable=True),
        "variations": F("[WeightedVariation]", required=True),
    },
    "WeightedVariation": {
        "variation": F("integer", required=True),
        "weight": F("integer", required=True, note="in 1/100000"),
        "untracked": F("boolean"),
    },
    "Prerequisite": {
        "key": F("string", required=True),
        "variation": F("integer", required=True),
    },
    "Target": {
        "contextKind": F("string"),
        "values": F("[string]", required=True),
        "variation": F("integer", required=True),
    },
    # A "user" entry without values stands for the targets entry of its variation (Go reads
    # a missing values as empty; the Python SDK requires the property).
    "ContextTarget": {
        "contextKind": F("string"),
        "values": F("[string]", default="[]"),
        "variation": F("integer", required=True),
    },
    "ClientSideAvailability": {
        "usingMobileKey": F("boolean"),
        "usingEnvironmentId": F("boolean"),
    },
    "Migration": {
        "checkRatio": F("integer", nullable=True),
    },
    "Segment": {
        **_ITEM,
        "included": F("[string]", default="[]"),
        "excluded": F("[string]", default="[]"),
        "includedContexts": F("[SegmentTarget]", default="[]"),
        "excludedContexts": F("[SegmentTarget]", default="[]"),
        "rules": F("[SegmentRule]", default="[]"),
        "salt": F("string", nullable=True),
        "unbounded": F("boolean"),
        "unboundedContextKind": F("string"),
        "generation": F("integer", nullable=True),
    },
    "SegmentTarget": {
        "contextKind": F("string"),
        "values": F("[string]", required=True),
    },
    "SegmentRule": {
        "id": F("string"),
        "clauses": _CLAUSE_LIST,
        "weight": F("integer", nullable=True, note="in 1/100000"),
        "bucketBy": F("string"),
        "rolloutContextKind": F("string"),
    },
}
ROOT_SHAPES: Final = {"flags": "Flag", "segments": "Segment"}


def json_type_name(v: Any) -> str:
    """The JSON type of ``v``, as error messages name it."""
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


def join(path: str, name: str | int) -> str:
    """``rules`` + 0 is ``rules[0]``; ``rules[0]`` + ``op`` is ``rules[0].op``."""
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def has_type(v: Any, type_: str) -> bool:
    """Whether ``v`` has the type ``type_`` at its top level (elements are not looked at).

    Besides the table's type names, ``array`` is any array and ``object`` any object.
    """
    if type_.startswith("[") or type_ == "array":
        return isinstance(v, list)
    match type_:
        case "boolean":
            return isinstance(v, bool)
        case "integer":
            return is_int(v)
        case "number":
            return is_int(v) or isinstance(v, float)
        case "string":
            return isinstance(v, str)
        case "any":
            return True
    return isinstance(v, dict)


def _expected(type_: str) -> str:
    if type_.startswith("["):
        return "array"
    return type_ if type_ in _SCALARS else "object"


def unknown_field(path: str, name: str, known: dict[str, Field]) -> str:
    near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean `{near[0]}`?" if near else ""
    return f"{join(path, name)}: unknown field `{name}`{hint}"


def type_errors(kind: str, data: Any) -> list[str]:
    """Every type-level problem of an item of ``kind`` ("flags"/"segments"), path first."""
    errs: list[str] = []
    shape = ROOT_SHAPES.get(kind)
    if shape is None:
        return [f"(root): unknown item kind {kind!r}"]
    _value(errs, "", data, shape, root=True)
    return errs


def _value(errs: list[str], path: str, v: Any, type_: str, *, root: bool = False) -> None:
    if not has_type(v, type_):
        where = path or "(root)"
        article = "an " if root else ""
        errs.append(f"{where}: expected {article}{_expected(type_)}, got {json_type_name(v)}")
        return
    if type_.startswith("["):
        element = type_[1:-1]
        for i, el in enumerate(v):
            _value(errs, join(path, i), el, element)
    elif type_ not in _SCALARS:
        _object(errs, path, v, SHAPES[type_])


def _object(errs: list[str], path: str, obj: dict[str, Any], shape: dict[str, Field]) -> None:
    for name, value in obj.items():
        field = shape.get(name)
        if field is None:
            errs.append(unknown_field(path, name, shape))
        elif value is not None or not field.nullable:
            if value is None and field.required:
                continue  # reported below as missing
            _value(errs, join(path, name), value, field.type)
    for name, field in shape.items():
        if field.required and obj.get(name) is None:
            errs.append(f"{join(path, name)}: required")


def fill_defaults(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with every absent field that has a ``default`` written, at every
    level, so the stored JSON is what the strictest SDK parser needs (PROTOCOL.md §4.1:
    "arrays are always written, even when empty"). Mistyped values are kept as they are."""
    return _filled(data, SHAPES[ROOT_SHAPES[kind]])


def _filled(obj: dict[str, Any], shape: dict[str, Field]) -> dict[str, Any]:
    out = dict(obj)
    for name, field in shape.items():
        if name not in out and field.default is not None:
            out[name] = json.loads(field.default)
        element = field.type[1:-1] if field.type.startswith("[") else field.type
        if element not in SHAPES:
            continue
        sub = SHAPES[element]
        value = out.get(name)
        if isinstance(value, dict) and element == field.type:
            out[name] = _filled(value, sub)
        elif isinstance(value, list) and element != field.type:
            out[name] = [_filled(v, sub) if isinstance(v, dict) else v for v in value]
    return out


def markdown() -> str:
    """The known fields as Markdown tables (docs/FLAG_MODEL.md holds this text)."""
    out: list[str] = []
    for shape_name, shape in SHAPES.items():
        out += [f"### {shape_name}", "",
                "| field | type | required | null allowed | stored when absent | note |",
                "| --- | --- | --- | --- | --- | --- |"]
        out += [f"| `{name}` | `{f.type}` | {'yes' if f.required else ''} | "
                f"{'yes' if f.nullable else ''} | {f'`{f.default}`' if f.default else ''} | "
                f"{f.note} |" for name, f in shape.items()]
        out.append("")
    return "\n".join(out)
