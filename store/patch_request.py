"""Reading a PATCH request of the admin API: its format, its body, its checks.

The format comes from the Content-Type (``store.patch_format``) before the body is read, so
an unsupported type is a 415 naming the supported ones, whatever the body. A body that is
not a valid patch of its format is a 400 naming the fault; nothing is read from the store.
"""

from __future__ import annotations

from typing import Any

from quart import request

from store.admin_http import PATCH_TYPES, ApiError, read_json
from store.patch_errors import PatchError
from store.patch_format import (
    Patch,
    PatchFormat,
    parse_patch,
    patch_format,
    unsupported_message,
)
from store.semantic_patch import SemanticPatch


async def read_patch(kind: str, env: str, max_bytes: int) -> Patch:
    """The request's patch of an item of ``kind`` in environment ``env``, checked."""
    content_type = request.headers.get("Content-Type")
    fmt = patch_format(content_type)
    if fmt is None:
        raise ApiError(415, unsupported_message(content_type))
    body = await read_json(max_bytes, PATCH_TYPES)
    return checked_patch(fmt, body, kind, env)


def checked_patch(fmt: PatchFormat, body: Any, kind: str, env: str) -> Patch:
    """``body`` as a patch of ``fmt`` for an item of ``kind`` in ``env``; ApiError 400 if it is
    not one (the PATCH route and a scheduled change's ``patch`` share this check)."""
    try:
        patch = parse_patch(fmt, body, kind)
    except PatchError as exc:
        raise ApiError(400, exc.message) from None
    if isinstance(patch.body, SemanticPatch) and patch.body.environment_key not in (None, env):
        raise ApiError(400, f'environmentKey "{patch.body.environment_key[:100]}" is not the '
                            f'environment of the path, "{env}"')
    return patch
