"""LaunchDarkly's semantic patch (pure).

A semantic patch is ``{"comment"?: str, "environmentKey"?: str, "instructions": [...]}``, each
instruction an object whose ``kind`` names what to do (``turnFlagOn``, ``addRule``, ...).
``parse_semantic_patch`` checks the shape (kinds known for the item's kind, known parameters)
before any state is read; ``apply_semantic_patch`` applies the instructions in order to a copy
of the item, so a failing instruction leaves it as it was. Every error names the
instruction's index. The instructions themselves live in ``store.semantic_flag`` (with how
LaunchDarkly's variation and rule IDs map onto the SDK model) and ``store.semantic_segment``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from store.json_patch import clone
from store.patch_errors import PatchError
from store.semantic_flag import FLAG_INSTRUCTIONS, Instructions, Item, NewId, new_rule_id
from store.semantic_segment import SEGMENT_INSTRUCTIONS

MAX_INSTRUCTIONS = 100
MAX_COMMENT_CHARS = 1000
_BY_KIND: dict[str, Instructions] = {"flags": FLAG_INSTRUCTIONS, "segments": SEGMENT_INSTRUCTIONS}


@dataclass(frozen=True, slots=True)
class SemanticPatch:
    item_kind: str  # "flags" or "segments": which instructions apply
    instructions: tuple[dict[str, Any], ...]
    comment: str | None
    environment_key: str | None


def parse_semantic_patch(body: Any, item_kind: str = "flags") -> SemanticPatch:
    """The checked patch of an item of ``item_kind``; PatchError naming the first fault."""
    table = _BY_KIND[item_kind]
    if not isinstance(body, dict):
        raise PatchError('a semantic patch must be an object with "instructions"')
    unknown = sorted(set(body) - {"comment", "environmentKey", "instructions"})
    if unknown:
        raise PatchError(f'unknown semantic patch field "{unknown[0]}"; expected comment, '
                         "environmentKey, instructions")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise PatchError(f"comment: expected a string of at most {MAX_COMMENT_CHARS} characters")
    env = body.get("environmentKey")
    if env is not None and not isinstance(env, str):
        raise PatchError("environmentKey: expected a string")
    instructions = body.get("instructions")
    if not isinstance(instructions, list) or not instructions:
        raise PatchError("instructions: expected a non-empty array")
    if len(instructions) > MAX_INSTRUCTIONS:
        raise PatchError(f"instructions: at most {MAX_INSTRUCTIONS} are allowed")
    for i, ins in enumerate(instructions):
        if not isinstance(ins, dict) or not isinstance(ins.get("kind"), str):
            raise PatchError(f'instruction {i}: expected an object with a string "kind"')
        entry = table.get(ins["kind"])
        if entry is None:
            raise PatchError(f'instruction {i}: unknown kind "{ins["kind"][:100]}" for '
                             f'{item_kind}; supported: ' + ", ".join(sorted(table)))
        extra = sorted(set(ins) - {"kind", *entry[1]})
        if extra:
            raise PatchError(f'instruction {i} ({ins["kind"]}): unknown parameter "{extra[0]}"'
                             f"; it takes {', '.join(entry[1]) or 'none'}")
    return SemanticPatch(item_kind, tuple(instructions), comment, env)


def apply_semantic_patch(item: Item, patch: SemanticPatch, *,
                         new_id: NewId = new_rule_id) -> Item:
    """``item`` with every instruction applied; ``item`` itself is not changed."""
    out: Item = clone(item)
    table = _BY_KIND[patch.item_kind]
    for i, ins in enumerate(patch.instructions):
        try:
            table[ins["kind"]][0](out, ins, new_id)
        except PatchError as exc:
            raise PatchError(f'instruction {i} ({ins["kind"]}): {exc.message}') from None
    return out
