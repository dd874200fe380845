"""Attribute references (PROTOCOL.md §4.5) and attribute lookup in a single context.

A reference with a leading ``/`` is a path into nested JSON objects (``~1`` is ``/``, ``~0`` is
``~``); anything else names a top-level attribute literally. Clauses and rollouts that carry no
``contextKind`` are legacy data: their attribute string is always a literal name, even when it
starts with ``/``. An invalid reference is not an exception at parse time: it is kept with its
error so that evaluating it yields ``MALFORMED_FLAG``, as the SDKs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AttrRef:
    raw: str
    components: tuple[str, ...]
    error: str | None = None


def _unescape(part: str) -> str | None:
    if "~" not in part:
        return part
    out: list[str] = []
    i, n = 0, len(part)
    while i < n:
        ch = part[i]
        if ch != "~":
            out.append(ch)
        else:
            i += 1
            if i >= n or part[i] not in "01":
                return None
            out.append("~" if part[i] == "0" else "/")
        i += 1
    return "".join(out)


def parse_ref(text: str) -> AttrRef:
    """A reference in the path syntax (go-sdk-common ``ldattr.NewRef``)."""
    if text in ("", "/"):
        return AttrRef(text, (), "attribute reference must not be empty")
    if text[0] != "/":
        return AttrRef(text, (text,))
    parts = text[1:].split("/")
    comps: list[str] = []
    for part in parts:
        if part == "":
            return AttrRef(text, (), f'attribute reference "{text}" has an empty path component')
        unescaped = _unescape(part)
        if unescaped is None:
            return AttrRef(text, (),
                           f'attribute reference "{text}" has a "~" not followed by 0 or 1')
        comps.append(unescaped)
    return AttrRef(text, tuple(comps))


def literal_ref(name: str) -> AttrRef:
    """A reference to a top-level attribute named literally (``ldattr.NewLiteralRef``)."""
    if name == "":
        return AttrRef(name, (), "attribute reference must not be empty")
    return AttrRef(name, (name,))


def ref_for(text: str | None, context_kind: str) -> AttrRef | None:
    """The model's rule: no/empty string is "undefined"; no contextKind means a literal name."""
    if not text:
        return None
    return literal_ref(text) if context_kind == "" else parse_ref(text)


def lookup(values: Mapping[str, object], ref: AttrRef) -> object | None:
    """The value a reference points to in a context's top-level attributes, or None."""
    comps = ref.components
    value = values.get(comps[0])
    for name in comps[1:]:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value
