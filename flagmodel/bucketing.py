"""Percentage-rollout bucketing, bit-exact with the Go evaluator (PROTOCOL.md §4.6).

The Go SDK computes in float32: ``float32(int(sha1hex[:15], 16)) / float32(0xFFFFFFFFFFFFFFF)``
and accumulates rollout weights as ``sum += float32(weight) / 100000``. Python floats are
float64, so each float32 step is reproduced explicitly: an integer is rounded to 24 significant
bits (round half to even, as a CPU converts uint64 to float32), and a float64 result of one
float32 operation is rounded with ``struct`` (a single float32 division or addition computed in
float64 and then rounded gives the float32 result, because 53 >= 2*24+2). The scale
``float32(2**60 - 1)`` is exactly ``2**60``, so the final division is exact in float64.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

from flagmodel.attrref import AttrRef
from flagmodel.context import Context

_SCALE: Final = float(2**60)
_F32 = struct.Struct("<f")
KEY_REF: Final = AttrRef("key", ("key",))


def f32(x: float) -> float:
    """Round a float64 to the nearest float32 (returned as a Python float)."""
    return float(_F32.unpack(_F32.pack(x))[0])


def _int_to_f32(n: int) -> float:
    bits = n.bit_length()
    if bits <= 24:
        return float(n)
    shift = bits - 24
    q, r = divmod(n, 1 << shift)
    half = 1 << (shift - 1)
    if r > half or (r == half and q & 1):
        q += 1
    return float(q << shift)


def bucket_for_input(hash_input: str) -> float:
    """The bucket in [0, 1] for a complete hash input such as ``"hashKey.saltyA.userKeyA"``."""
    digest = hashlib.sha1(hash_input.encode("utf-8")).hexdigest()  # a bucket hash, not security
    return _int_to_f32(int(digest[:15], 16)) / _SCALE


def weight_fraction(weight: int) -> float:
    """``float32(weight) / 100000.0`` in float32."""
    return f32(f32(float(weight)) / 100000.0)


def cumulative_thresholds(weights: list[int]) -> tuple[float, ...]:
    """The running float32 sums a rollout compares a bucket against, in order."""
    total = 0.0
    out = []
    for w in weights:
        total = f32(total + weight_fraction(w))
        out.append(total)
    return tuple(out)


def _bucketable(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return str(int(value))  # Go's ldvalue treats 3.0 as the int 3
    return None


def bucket_context(context: Context, kind: str, ref: AttrRef, prefix: str) -> float | None:
    """The context's bucket for a rollout whose hash prefix is ``prefix``.

    ``prefix`` is ``str(seed)`` or ``key + "." + salt``. Returns None when the context has no
    part of ``kind`` (the caller decides what that means), and 0.0 when the attribute is
    missing or not bucketable (a string or an integer).
    """
    ctx = context._by_kind.get(kind)
    if ctx is None:
        return None
    comps = ref.components
    value = ctx.values.get(comps[0])
    for name in comps[1:]:
        value = value.get(name) if isinstance(value, dict) else None
    text = _bucketable(value)
    if text is None:
        return 0.0
    return bucket_for_input(prefix + "." + text)
