"""Hostile inputs for the adversarial suite, as raw bytes (pure: no sockets, no node).

JSON that a strict encoder cannot produce (``NaN``, ``1e400``, a lone ``\\ud800``, invalid
UTF-8 inside a string) is what an attacker sends, so values are rendered here by hand:
:func:`render` turns a small tree of Python values into JSON text, writing floats that are
not finite as the ``NaN``/``Infinity`` literals, surrogate code points as ``\\uXXXX`` escapes,
``bytes`` as raw bytes inside a string and :class:`Nest` as deep nesting. The canonical tables
(every category the issue names, each at least once) make sure a run covers them whatever
hypothesis draws; the strategies add variety around them.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st


@dataclass(frozen=True, slots=True)
class Nest:
    """``depth`` levels of ``{"a": ...}`` (or ``[...]``) around ``inner``."""

    depth: int
    inner: Any = 1
    array: bool = False


@dataclass(frozen=True, slots=True)
class Raw:
    """JSON text inserted as it is (a number literal no Python value renders to, say)."""

    text: bytes


def render(value: Any) -> bytes:
    """``value`` as JSON text; see the module docstring for what is not standard JSON."""
    match value:
        case Raw(text):
            return text
        case Nest(depth, inner, array):
            open_, close = (b"[", b"]") if array else (b'{"a":', b"}")
            return open_ * depth + render(inner) + close * depth
        case None:
            return b"null"
        case bool():
            return b"true" if value else b"false"
        case int():
            return str(value).encode()
        case float() if math.isnan(value):
            return b"NaN"
        case float() if math.isinf(value):
            return b"Infinity" if value > 0 else b"-Infinity"
        case float():
            return repr(value).encode()
        case str():
            return b'"' + "".join(_char(c) for c in value).encode("utf-8") + b'"'
        case bytes():
            return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        case list() | tuple():
            return b"[" + b",".join(render(v) for v in value) + b"]"
        case dict():
            return b"{" + b",".join(render(k) + b":" + render(v) for k, v in value.items()) + b"}"
    raise TypeError(f"cannot render {type(value).__name__}")


def _char(c: str) -> str:
    o = ord(c)
    if c in '"\\' or o < 0x20 or 0xD800 <= o <= 0xDFFF:
        return f"\\u{o:04x}"
    return c


# Every category of the issue, each as a value to put where JSON is read.
CANON_VALUES: dict[str, Any] = {
    "deep object 300": Nest(300),
    "deep array 300": Nest(300, array=True),
    "deep object 1000": Nest(1000),
    "deep array 5000": Nest(5000, array=True),
    "huge float 1e400": Raw(b"1e400"),
    "huge negative float -1e400": Raw(b"-1e400"),
    "huge int 2**200": 2**200,
    "huge int 4000 digits": Raw(b"9" * 4000),
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
    "lone high surrogate": "\ud800",
    "lone low surrogate": "\udfff",
    "reversed surrogate pair": "\udc00\ud800",
    "invalid UTF-8": b"\xff\xfe\xc3",
    "UTF-8 encoded surrogate": b"\xed\xa0\x80",
    "NUL and controls": "a\x00b\x1f",
    "long string 20k": "x" * 20_000,
    "long string 200k": "y" * 200_000,
    "non-ASCII": "\u00e9\u4e2d\U0001f600",
}

# Whole bodies that are not JSON at all, or JSON of the wrong shape.
CANON_BODIES: dict[str, bytes] = {
    "empty body": b"",
    "truncated JSON": b'{"kind":"user","key":',
    "invalid UTF-8 body": b"\xff\xfe\xfd",
    "JSON null": b"null",
    "JSON array": b"[1,2,3]",
    "JSON string": b'"x"',
    "duplicate keys": b'{"key":"a","key":"b","kind":"user"}',
    "trailing garbage": b'{"key":"a"} xyz',
    "BOM then JSON": b'\xef\xbb\xbf{"key":"a","kind":"user"}',
}


def context_with(value: Any, where: str) -> Any:
    """A context that is valid except for ``value`` at ``where``."""
    match where:
        case "attribute":
            return {"kind": "user", "key": "k", "x": value}
        case "key":
            return {"kind": "user", "key": value}
        case "kind":
            return {"kind": value, "key": "k"}
        case "name":
            return {"kind": "user", "key": "k", "name": value}
        case "multi":
            return {"kind": "multi", "user": {"key": "k", "x": value}, "org": {"key": value}}
        case "meta":
            return {"kind": "user", "key": "k", "_meta": {"privateAttributes": value}}
        case "legacy user":
            return {"key": "k", "custom": {"x": value}}
        case "root":
            return value
    raise ValueError(where)


CONTEXT_SLOTS = ("attribute", "key", "kind", "name", "multi", "meta", "legacy user", "root")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Path segments and query values, as they go on the request line (already percent-encoded
# where an attacker would encode; some raw bytes are left raw on purpose).
CANON_SEGMENTS: dict[str, bytes] = {
    "empty": b"",
    "dot": b".",
    "dot-dot": b"..",
    "encoded slash traversal": b"..%2F..%2Fetc%2Fpasswd",
    "percent NUL": b"%00",
    "percent e-acute": b"%C3%A9",
    "percent invalid UTF-8": b"%FF%FE",
    "percent encoded surrogate": b"%ED%A0%80",
    "percent-u surrogate": b"%uD800",
    "broken percent": b"%",
    "broken percent 2": b"%G1",
    "raw high bytes": b"\xc3\xa9\xff",
    "long 8k": b"a" * 8_000,
    "huge int": str(2**200).encode(),
    "negative": b"-1",
    "float 1e400": b"1e400",
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "base64 of deep nesting": b64url(render(context_with(Nest(300), "attribute"))).encode(),
    "quote and angle": b"%22%3Cscript%3E",
    "semicolon params": b"a;b=c",
}


def _seg(raw: str | bytes) -> bytes:
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return quote(data, safe="").encode()


# Any code point, lone surrogates included (hypothesis leaves category Cs out by default).
any_char = st.one_of(st.characters(), st.characters(categories=["Cs"]))

json_leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(any_char, max_size=40),
    st.binary(max_size=12),
    st.sampled_from(list(CANON_VALUES.values())),
    st.builds(Nest, st.integers(min_value=1, max_value=2000), st.just(1), st.booleans()),
)  # fmt: skip

hostile_values: st.SearchStrategy[Any] = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
        st.builds(Nest, st.integers(min_value=1, max_value=600), inner, st.booleans()),
    ),
    max_leaves=8,
)


@st.composite
def hostile_contexts(draw: st.DrawFn) -> tuple[str, bytes]:
    """(label, JSON text) of a context with something hostile in it, or a hostile body."""
    if draw(st.integers(0, 9)) == 0:
        label = draw(st.sampled_from(sorted(CANON_BODIES)))
        return label, CANON_BODIES[label]
    where = draw(st.sampled_from(CONTEXT_SLOTS))
    if draw(st.booleans()):
        label = draw(st.sampled_from(sorted(CANON_VALUES)))
        value = CANON_VALUES[label]
    else:
        label, value = "generated", draw(hostile_values)
    return f"{label} at {where}", render(context_with(value, where))


hostile_segments: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from(list(CANON_SEGMENTS.values())),
    st.text(any_char, max_size=30).map(_seg),
    st.binary(max_size=30).map(_seg),
    st.binary(min_size=1, max_size=10).filter(lambda b: b"/" not in b and b"?" not in b
                                              and b" " not in b and b"\r" not in b
                                              and b"\n" not in b and b"#" not in b),
)  # fmt: skip


@st.composite
def hostile_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """(label, body) for routes that read a JSON body of another shape than a context."""
    pick = draw(st.integers(0, 3))
    if pick == 0:
        label = draw(st.sampled_from(sorted(CANON_BODIES)))
        return label, CANON_BODIES[label]
    if pick == 1:
        label = draw(st.sampled_from(sorted(CANON_VALUES)))
        return label, render(CANON_VALUES[label])
    if pick == 2:
        label = draw(st.sampled_from(sorted(CANON_VALUES)))
        key = draw(st.sampled_from(["variations", "rules", "key", "on", "items", "flags",
                                    "kind", "creationDate", "contextKeys", "graceSeconds",
                                    "name", "segments", "features"]))
        return f"{label} in {key}", render({key: CANON_VALUES[label]})
    return "generated", render(draw(hostile_values))
