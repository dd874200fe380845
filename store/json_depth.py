"""How deep a decoded JSON value nests (pure).

orjson decodes up to 1024 levels but encodes at most 254, and every recursive walk of a value
costs a Python frame per level: input from the network is refused past a small bound instead,
before anything re-encodes or walks it.
"""

from __future__ import annotations

from typing import Any


def within_depth(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests at most ``max_depth`` objects/arrays deep (iterative, so a
    deep value cannot exhaust the stack here)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > max_depth:
            return False
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return True
