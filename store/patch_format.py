"""Which patch format a PATCH body is in, and applying it (pure).

Three formats, chosen by the Content-Type alone, never by sniffing the body (an
``{"instructions": [...]}`` body sent as plain JSON is a merge patch and stores an
``instructions`` field, as RFC 7386 says):

- ``application/json`` and ``application/merge-patch+json``: RFC 7386 JSON merge patch;
- ``application/json-patch+json``: RFC 6902 JSON Patch;
- ``application/json; domain-model=launchdarkly.semanticpatch``: LaunchDarkly's semantic
  patch, with the flag or the segment instructions.

The media type and parameter names are case-insensitive (RFC 9110 §8.3.1); the
``domain-model`` value is compared case-insensitively too, with or without quotes and with
any spaces around ``;`` and ``=``. Any other type, or another ``domain-model``, is 415.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from store.json_patch import apply_json_patch, check_json_patch
from store.merge_patch import merge_patch
from store.patch_errors import PatchConflictError
from store.semantic_patch import SemanticPatch, apply_semantic_patch, parse_semantic_patch

SEMANTIC_MODEL = "launchdarkly.semanticpatch"
SUPPORTED_PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json",
    "application/json-patch+json",
    f"application/json; domain-model={SEMANTIC_MODEL}",
)


class PatchFormat(enum.Enum):
    MERGE = "merge"
    JSON_PATCH = "json-patch"
    SEMANTIC = "semantic"


@dataclass(frozen=True, slots=True)
class Patch:
    """A checked patch document, ready to apply to the item's current state."""

    format: PatchFormat
    body: Any  # MERGE: the merge patch; JSON_PATCH: the operations; SEMANTIC: SemanticPatch
    # Apply only to the item at exactly this version (a change request approved against the
    # version it was made for); a pending, not yet committed state has no version and fails.
    expect_version: int | None = None

    @property
    def comment(self) -> str | None:
        return self.body.comment if isinstance(self.body, SemanticPatch) else None


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """``("type/subtype", {param: value})`` of a Content-Type header, names lower-cased."""
    mime, *params = (content_type or "").split(";")
    out: dict[str, str] = {}
    for param in params:
        name, sep, value = param.partition("=")
        if sep:
            out[name.strip().lower()] = value.strip().strip('"').strip()
    return mime.strip().lower(), out


def patch_format(content_type: str | None) -> PatchFormat | None:
    """The format a Content-Type names, or None (answer 415)."""
    mime, params = media_type(content_type)
    model = params.get("domain-model")
    if mime == "application/json" and model is not None:
        return PatchFormat.SEMANTIC if model.lower() == SEMANTIC_MODEL else None
    if mime in ("application/json", "application/merge-patch+json"):
        return PatchFormat.MERGE
    if mime == "application/json-patch+json":
        return PatchFormat.JSON_PATCH
    return None


def unsupported_message(content_type: str | None) -> str:
    return (f"content type {content_type or 'none'} is not a patch format; send one of: "
            + ", ".join(SUPPORTED_PATCH_TYPES))


def parse_patch(fmt: PatchFormat, body: Any, item_kind: str = "flags") -> Patch:
    """Check the shape of ``body`` for ``fmt`` (and a semantic patch's instructions for
    ``item_kind``) before any state is read; raises ``store.patch_errors.PatchError``."""
    match fmt:
        case PatchFormat.JSON_PATCH:
            return Patch(fmt, check_json_patch(body))
        case PatchFormat.SEMANTIC:
            return Patch(fmt, parse_semantic_patch(body, item_kind))
        case _:
            return Patch(fmt, body)


def apply_patch(state: dict[str, Any], patch: Patch | Any) -> Any:
    """``state`` with ``patch`` applied; a bare value (not a :class:`Patch`) is a merge patch.

    Raises PatchError (or PatchConflictError for a failed JSON Patch ``test`` or another
    version than ``expect_version``)."""
    if not isinstance(patch, Patch):
        return merge_patch(state, patch)
    if patch.expect_version is not None and state.get("version") != patch.expect_version:
        raise PatchConflictError(f"the flag is no longer at version {patch.expect_version}")
    match patch.format:
        case PatchFormat.JSON_PATCH:
            return apply_json_patch(state, patch.body)
        case PatchFormat.SEMANTIC:
            return apply_semantic_patch(state, patch.body)
        case _:
            return merge_patch(state, patch.body)

