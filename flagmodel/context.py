"""Evaluation contexts: parsing the three JSON formats of PROTOCOL.md §4.5.

- single: ``{"kind": "org", "key": "o1", ...attributes, "_meta": {"privateAttributes": [...]}}``
- multi: ``{"kind": "multi", "user": {...}, "org": {...}}`` (one kind only ⇒ that single context)
- legacy user (no ``kind``): built-in top-level properties plus ``custom``; ``key`` may be ``""``.

The rules and error cases follow go-sdk-common's ``ldcontext`` unmarshaller, which the
LaunchDarkly services use. A parsed single context keeps every top-level addressable attribute
(``kind``, ``key``, ``anonymous``, ``name`` when set, custom attributes) in one dict, so a clause
lookup is one dict access.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

DEFAULT_KIND = "user"
MULTI_KIND = "multi"
_KIND_RE = re.compile(r"[A-Za-z0-9._-]+\Z")
_LEGACY_STRING_ATTRS = ("firstName", "lastName", "email", "country", "avatar", "ip")
_LEGACY_CUSTOM_RESERVED = frozenset({"kind", "key", "name", "anonymous", "_meta"})


class ContextError(ValueError):
    """The JSON is not a valid context; the message says why (fit for a 400 answer)."""


def _escape_key(key: str) -> str:
    return key.replace("%", "%25").replace(":", "%3A")


class Context:
    """An immutable evaluation context: one kind, or several (``kind == "multi"``)."""

    __slots__ = ("_by_kind", "anonymous", "contexts", "fully_qualified_key", "key", "kind",
                 "name", "private_attributes", "values")

    kind: str
    key: str
    name: str | None
    anonymous: bool
    values: Mapping[str, object]
    private_attributes: tuple[str, ...]
    contexts: tuple[Context, ...]
    fully_qualified_key: str
    _by_kind: Mapping[str, Context]

    @classmethod
    def single(cls, kind: str, key: str, *, name: str | None = None, anonymous: bool = False,
               attributes: Mapping[str, object] | None = None,
               private_attributes: tuple[str, ...] = ()) -> Context:
        self = cls.__new__(cls)
        self.kind, self.key, self.name, self.anonymous = kind, key, name, anonymous
        values: dict[str, object] = dict(attributes or {})
        values.update(kind=kind, key=key, anonymous=anonymous)
        if name is not None:
            values["name"] = name
        self.values = values
        self.private_attributes = private_attributes
        self.contexts = (self,)
        self._by_kind = {kind: self}
        self.fully_qualified_key = key if kind == DEFAULT_KIND else f"{kind}:{_escape_key(key)}"
        return self

    @classmethod
    def multi(cls, parts: list[Context]) -> Context:
        if not parts:
            raise ContextError("multi-kind context must contain at least one kind")
        if len(parts) == 1:
            return parts[0]
        parts = sorted(parts, key=lambda c: c.kind)
        if len({c.kind for c in parts}) != len(parts):
            raise ContextError("multi-kind context cannot have the same kind more than once")
        self = cls.__new__(cls)
        self.kind, self.key, self.name, self.anonymous = MULTI_KIND, "", None, False
        self.values = {"kind": MULTI_KIND}
        self.private_attributes = ()
        self.contexts = tuple(parts)
        self._by_kind = {c.kind: c for c in parts}
        self.fully_qualified_key = ":".join(f"{c.kind}:{_escape_key(c.key)}" for c in parts)
        return self

    @property
    def multiple(self) -> bool:
        return self.kind == MULTI_KIND

    def individual(self, kind: str) -> Context | None:
        """The single context of ``kind`` ("" means "user"), or None."""
        return self._by_kind.get(kind or DEFAULT_KIND)

    def attributes(self) -> dict[str, object]:
        """Custom attributes only (not kind, key, name, anonymous)."""
        return {k: v for k, v in self.values.items() if k not in ("kind", "key", "name",
                                                                  "anonymous")}

    def to_dict(self) -> dict[str, Any]:
        """The context in the new JSON format (what an SDK sends)."""
        if self.multiple:
            out: dict[str, Any] = {"kind": MULTI_KIND}
            for c in self.contexts:
                part = c.to_dict()
                del part["kind"]
                out[c.kind] = part
            return out
        out = dict(self.values)
        if not self.anonymous:
            del out["anonymous"]
        if self.private_attributes:
            out["_meta"] = {"privateAttributes": list(self.private_attributes)}
        return out

    def __repr__(self) -> str:
        return f"Context({self.fully_qualified_key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fully_qualified_key)


def kind_error(kind: str) -> str | None:
    """Why ``kind`` cannot be the kind of a single context, or None."""
    if kind == "kind":
        return '"kind" is not a valid context kind'
    if kind == MULTI_KIND:
        return 'a single context cannot have kind "multi"'
    if not _KIND_RE.match(kind):
        return f"context kind {kind!r} contains disallowed characters"
    return None


def _validate_kind(kind: str) -> None:
    error = kind_error(kind)
    if error is not None:
        raise ContextError(error)


def _private_list(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ContextError(f"{what} must be an array of strings")
    return tuple(value)


def _parse_single(obj: Mapping[str, object], kind: str) -> Context:
    kind = kind or DEFAULT_KIND
    key: str | None = None
    name: str | None = None
    anonymous = False
    private: tuple[str, ...] = ()
    attrs: dict[str, object] = {}
    for prop, value in obj.items():
        if prop == "kind":
            if not isinstance(value, str):
                raise ContextError("context kind must be a string")
            kind = value or DEFAULT_KIND
        elif prop == "key":
            if not isinstance(value, str):
                raise ContextError("context key must be a string")
            key = value
        elif prop == "name":
            if value is not None and not isinstance(value, str):
                raise ContextError("context name must be a string")
            name = value
        elif prop == "anonymous":
            if not isinstance(value, bool):
                raise ContextError("context anonymous must be a boolean")
            anonymous = value
        elif prop == "_meta":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ContextError("context _meta must be an object")
            private = _private_list(value.get("privateAttributes"), "privateAttributes")
        elif prop != "" and value is not None:
            attrs[prop] = value
    if key is None:
        raise ContextError("context key is missing")
    if key == "":
        raise ContextError("context key must not be empty")
    _validate_kind(kind)
    return Context.single(kind, key, name=name, anonymous=anonymous, attributes=attrs,
                          private_attributes=private)


def _parse_legacy_user(obj: Mapping[str, object]) -> Context:
    key: str | None = None
    name: str | None = None
    anonymous = False
    private: tuple[str, ...] = ()
    attrs: dict[str, object] = {}
    for prop, value in obj.items():
        if prop == "key":
            if not isinstance(value, str):
                raise ContextError("user key must be a string")
            key = value
        elif prop == "name":
            if value is not None and not isinstance(value, str):
                raise ContextError("user name must be a string")
            name = value
        elif prop == "anonymous":
            if value is not None and not isinstance(value, bool):
                raise ContextError("user anonymous must be a boolean")
            anonymous = bool(value)
        elif prop in _LEGACY_STRING_ATTRS:
            if value is not None and not isinstance(value, str):
                raise ContextError(f"user {prop} must be a string")
            if value is not None:
                attrs[prop] = value
        elif prop == "custom":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ContextError("user custom must be an object")
            for cname, cvalue in value.items():
                if cname not in _LEGACY_CUSTOM_RESERVED and cname != "" and cvalue is not None:
                    attrs[cname] = cvalue
        elif prop == "privateAttributeNames":
            # Legacy names are literal attribute names; store them as references.
            names = _private_list(value, "privateAttributeNames")
            private = tuple("/" + n.replace("~", "~0").replace("/", "~1")
                            if n.startswith("/") else n for n in names)
        elif prop == "secondary" and value is not None and not isinstance(value, str):
            raise ContextError("user secondary must be a string")
        # every other top-level property is ignored in the legacy schema
    if key is None:
        raise ContextError("user key is missing")
    return Context.single(DEFAULT_KIND, key, name=name, anonymous=anonymous, attributes=attrs,
                          private_attributes=private)


def parse_context(obj: object) -> Context:
    """Parse context JSON (already decoded); raises ContextError for invalid input."""
    if not isinstance(obj, dict):
        raise ContextError("context must be a JSON object")
    if "kind" not in obj:
        return _parse_legacy_user(obj)
    kind = obj["kind"]
    if not isinstance(kind, str):
        raise ContextError("context kind must be a string")
    if kind == "":
        raise ContextError("context kind must not be empty")
    if kind != MULTI_KIND:
        return _parse_single(obj, kind)
    parts: list[Context] = []
    for prop, value in obj.items():
        if prop == "kind":
            continue
        if not isinstance(value, dict):
            raise ContextError(f"multi-kind context part {prop!r} must be an object")
        parts.append(_parse_single(value, prop))
    return Context.multi(parts)


def fully_qualified_key(context: Context) -> str:
    """The key secure mode signs and events de-duplicate on (PROTOCOL.md §2.1)."""
    return context.fully_qualified_key
