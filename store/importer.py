"""Import of SDK-format data (``{"flags": {...}, "segments": {...}}``) as one change (pure).

The body is what ``/sdk/latest-all`` of a LaunchDarkly-compatible service returns, or a
conformance suite's ``sdkData``. Items are upserted; items not named are left alone. Items
marked ``deleted: true`` become tombstones. The store assigns versions (each item's next
version), so an import never moves an item backwards.

Strict mode refuses the whole import if any item fails validation. Lenient mode stores items
that fail only the semantic validation (the SDKs parse them and evaluate them to
``MALFORMED_FLAG``, as the engine does) and lists them in the answer. It still refuses the
whole import for a problem of the type level (``flagmodel.schema``: a wrong JSON type, a
missing required property, an unknown field) and for an item that is not an object under a
valid key (the key goes into URLs and SSE paths): one such item would stop an SDK from
loading the whole environment, so "lenient" never means "unparseable".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bus.envelope import ITEM_KINDS
from flagmodel.validation import is_valid_key, judge_item
from store.normalize import new_salt, normalize
from store.records import ItemWrite


class ImportRejectedError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ImportPlan:
    items: tuple[ItemWrite, ...]
    accepted_invalid: tuple[str, ...]  # semantic problems let through by lenient mode
    malformed: tuple[str, ...]  # the items they are in ("flags.KEY"), each once


def plan_import(body: Any, *, lenient: bool,
                salt_source: Callable[[], str] = new_salt) -> ImportPlan:
    """Turn an import body into item writes; raise :class:`ImportRejectedError` if refused."""
    if not isinstance(body, dict):
        raise ImportRejectedError(['(root): expected {"flags": {...}, "segments": {...}}'])
    fatal: list[str] = []
    invalid: list[str] = []
    malformed: list[str] = []
    items: list[ItemWrite] = []
    for kind in ITEM_KINDS:
        group = body.get(kind)
        if group is None:
            continue
        if not isinstance(group, dict):
            fatal.append(f"{kind}: expected an object keyed by {kind[:-1]} key")
            continue
        for key, data in group.items():
            path = f"{kind}.{key}"
            if not is_valid_key(key):
                fatal.append(f"{path}: invalid key (allowed: A-Z a-z 0-9 . _ -)")
                continue
            if not isinstance(data, dict):
                fatal.append(f"{path}: expected an object")
                continue
            if data.get("deleted") is True:
                items.append(ItemWrite(kind, key, None))
                continue
            if lenient and "key" in data:
                data = {**data, "key": key}
            verdict = judge_item(kind, key, data)
            fatal.extend(f"{path}.{err}" for err in verdict.unparseable)
            invalid.extend(f"{path}.{err}" for err in verdict.malformed)
            if verdict.malformed:
                malformed.append(path)
            salt = data.get("salt")
            items.append(ItemWrite(kind, key, normalize(
                kind, key, data, salt=salt if isinstance(salt, str) else salt_source())))
    if not items and not fatal:
        fatal.append("(root): nothing to import (no flags or segments)")
    if fatal or (invalid and not lenient):
        raise ImportRejectedError(fatal + invalid)
    return ImportPlan(tuple(items), tuple(invalid), tuple(malformed))
