"""RFC 6902 JSON Patch with RFC 6901 JSON Pointers (pure).

Theory of operation
-------------------
``check_json_patch`` checks the shape of a patch document (an array of operation objects,
each with a known ``op``, a well-formed ``path`` and the members its op needs) before any
state is read, so a malformed patch is refused without touching the item. ``apply_json_patch``
then applies the operations in order to a deep copy of the target: if any operation fails,
the copy is dropped and the caller's document is unchanged (RFC 6902 §5: all or nothing).
Every error names the operation's index and path.

Pointers: ``""`` is the whole document, every other pointer starts with ``/``; ``~1`` stands
for ``/`` and ``~0`` for ``~`` (decoded in that order, RFC 6901 §4); an array index is ``0``
or a number without leading zeros, and ``-`` (the element after the last) is accepted only
where ``add`` (or the target of ``move``/``copy``) appends.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from store.patch_errors import PatchConflictError, PatchError

MAX_OPERATIONS = 1000  # a longer patch is refused; the body limit bounds it anyway
# Values that copy operations may add in one patch: copying a document into itself doubles
# it, so without a bound 30 small operations would ask for gigabytes. Overflow: 400.
MAX_COPIED_VALUES = 100_000
_INDEX_RE = re.compile(r"0|[1-9][0-9]*")
_NEEDS_VALUE = frozenset({"add", "replace", "test"})
_NEEDS_FROM = frozenset({"move", "copy"})
_OPS = _NEEDS_VALUE | _NEEDS_FROM | {"remove"}


def parse_pointer(pointer: str) -> list[str]:
    """The reference tokens of an RFC 6901 pointer; ValueError if it is malformed."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f'pointer "{pointer}" must be empty or start with "/"')
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise ValueError(f'pointer "{pointer}" has "~" not followed by 0 or 1')
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def check_json_patch(patch: Any) -> list[dict[str, Any]]:
    """The operations of ``patch`` if its shape is valid; PatchError naming the first fault."""
    if not isinstance(patch, list):
        raise PatchError("a JSON Patch (application/json-patch+json) must be an array of "
                         "operations")
    if len(patch) > MAX_OPERATIONS:
        raise PatchError(f"a JSON Patch may have at most {MAX_OPERATIONS} operations")
    for i, op in enumerate(patch):
        if not isinstance(op, dict):
            raise PatchError(f"operation {i}: expected an object")
        name = op.get("op")
        if not isinstance(name, str) or name not in _OPS:
            raise PatchError(f"operation {i}: op must be one of {', '.join(sorted(_OPS))}, "
                             f"got {name!r}")
        for member in ("path", *(("from",) if name in _NEEDS_FROM else ())):
            if not isinstance(op.get(member), str):
                raise PatchError(f"operation {i} ({name}): {member} must be a string")
            try:
                parse_pointer(op[member])
            except ValueError as exc:
                raise PatchError(f"operation {i} ({name}): {member}: {exc}") from None
        if name in _NEEDS_VALUE and "value" not in op:
            raise PatchError(f"operation {i} ({name} {op['path']}): value is required")
    return patch


def apply_json_patch(doc: Any, patch: Any) -> Any:
    """``doc`` with ``patch`` applied; ``doc`` is not changed. PatchConflictError if a
    ``test`` fails, PatchError for any other failing operation."""
    ops = check_json_patch(patch)
    result = clone(doc)
    budget = [MAX_COPIED_VALUES]  # what copy operations may still add
    for i, op in enumerate(ops):
        try:
            result = _apply_one(result, op, budget)
        except PatchConflictError as exc:
            raise PatchConflictError(f"operation {i} (test {op['path']}): {exc.message}") from None
        except PatchError as exc:
            raise PatchError(f"operation {i} ({op['op']} {op['path']}): {exc.message}") from None
    try:  # ops may nest values below values (a body's 64 levels, again and again)
        orjson.dumps(result)
    except orjson.JSONEncodeError:  # past 254 levels: the commit could not encode it
        raise PatchError("the patched document nests too deeply to be stored") from None
    return result


def _apply_one(doc: Any, op: dict[str, Any], budget: list[int]) -> Any:
    path = parse_pointer(op["path"])
    match op["op"]:
        case "add":
            return _add(doc, path, clone(op["value"]))
        case "remove":
            if not path:
                raise PatchError("the whole document cannot be removed")
            _remove(doc, path)
            return doc
        case "replace":
            if not path:
                return clone(op["value"])
            _get(doc, path)  # the target must exist
            _remove(doc, path)
            return _add(doc, path, clone(op["value"]))
        case "move":
            source = parse_pointer(op["from"])
            if path[:len(source)] == source and len(path) > len(source):
                raise PatchError(f'cannot move "{op["from"]}" into one of its own children')
            if not source:  # then path is "" too (checked above): moving the root to itself
                return doc
            value = _get(doc, source)
            _remove(doc, source)
            return _add(doc, path, value)
        case "copy":
            value = _get(doc, parse_pointer(op["from"]))
            budget[0] -= _count_values(value, budget[0] + 1)
            if budget[0] < 0:
                raise PatchError(f"copies would add more than {MAX_COPIED_VALUES} values")
            return _add(doc, path, clone(value))
        case _:  # "test"; check_json_patch admits no other op
            try:
                found = _get(doc, path)
            except PatchError as exc:  # a missing target is a failed test, not a bad patch
                raise PatchConflictError(f"test failed: {exc.message}") from None
            if not json_equal(found, op["value"]):
                raise PatchConflictError("test failed: the value differs")
            return doc


def clone(value: Any) -> Any:
    """A deep copy of a JSON value. An orjson round trip costs about a tenth of
    ``copy.deepcopy`` on a flag; every value here came from orjson, so it goes back."""
    return orjson.loads(orjson.dumps(value))


def _count_values(value: Any, limit: int) -> int:
    """The number of JSON values in ``value`` (itself included), counting at most to ``limit``."""
    count, stack = 0, [value]
    while stack and count < limit:
        v = stack.pop()
        count += 1
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return count


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality (RFC 6902 §4.6): unlike Python's ``==``, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _index(container: list[Any], token: str, *, append: bool) -> int:
    if append and token == "-":
        return len(container)
    if not _INDEX_RE.fullmatch(token):
        raise PatchError(f'"{token[:40]}" is not an array index')
    if len(token) > 9:  # past any array's length; int() would refuse beyond 4300 digits
        raise PatchError(f"index {token[:40]}... is out of range (the array has {len(container)})")
    index = int(token)
    if index > len(container) or (index == len(container) and not append):
        raise PatchError(f"index {index} is out of range (the array has {len(container)})")
    return index


def _get(doc: Any, path: list[str]) -> Any:
    for token in path:
        if isinstance(doc, dict):
            if token not in doc:
                raise PatchError(f'member "{token}" does not exist')
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token, append=False)]
        else:
            raise PatchError(f'"{token}" is below a value that is not an object or an array')
    return doc


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, append=True), value)
    else:
        raise PatchError("the parent is not an object or an array")
    return doc


def _remove(doc: Any, path: list[str]) -> None:
    parent = _get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'member "{last}" does not exist')
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, append=False)]
    else:
        raise PatchError("the parent is not an object or an array")
