"""Admin API routes of the change history: filtered pages, versions, diffs, revert.

- ``GET /api/v1/environments/{env}/changes``: the history, newest first. Filters ``kind``,
  ``key``, ``actor``, ``since``, ``until`` (milliseconds or ISO-8601, inclusive); paging
  with ``limit`` (1-500) and the ``before`` cursor (the ``next`` of the previous page),
  which stays correct under any filter because it is a ``seq`` bound, not an offset. Each
  flag or segment change carries ``diff``: the operations from its ``before`` to its
  ``after`` (store/item_diff.py).
- ``GET .../{flags|segments}/{key}/versions``: the item's changes and the version each
  made, newest first, the same paging.
- ``GET .../{flags|segments}/{key}/versions/{N}``: the item as it was at version N.
- ``GET .../{flags|segments}/{key}/diff?from=N&to=M``: the operations from N to M.
- ``POST .../{flags|segments}/{key}/revert`` ``{"version": N, "comment"?}``: a new version
  with version N's content (store/history_revert.py), through the writer (committed, then
  published on the bus like any write), recorded with ``revertOf: N``.

Bounds: every read answers at most ``MAX_PAGE`` rows (a list) or two versions (a diff). The
history itself has no retention: it grows by one row per change.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from quart import Response, request
from quart_trio import QuartTrio

from bus.envelope import ItemKind
from insights.timefmt import ms_from_text
from store.admin_http import ApiError, actor, check_key, json_response, read_json
from store.db import FlagDB
from store.history_revert import RevertRefusedError, missing_references, plan_revert
from store.item_diff import change_json, content, diff
from store.item_versions import list_versions, version_json
from store.records import HistoryFilter
from store.semantic_patch import MAX_COMMENT_CHARS
from store.writer import Writer

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_VERSION = 2**62
# The kinds of change the history records (see FlagDB.commit and the environment writes).
HISTORY_KINDS = ("flags", "segments", "environment", "import", "batch")
_CHANGES = "/api/v1/environments/<env>/changes"
_ITEM = "/api/v1/environments/<env>/<any(flags, segments):kind>/<key>"

# The right each route needs (the accounts part builds its permission table from these).
RIGHTS: dict[tuple[str, str], str] = {
    ("GET", _CHANGES): "read",
    ("GET", f"{_ITEM}/versions"): "read",
    ("GET", f"{_ITEM}/versions/<version>"): "read",
    ("GET", f"{_ITEM}/diff"): "read",
    ("POST", f"{_ITEM}/revert"): "write",
}


def int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    """The integer query parameter ``name`` within [lo, hi]; 400 naming it otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    return _bounded_int(raw, f"query parameter {name}", lo, hi)


def _bounded_int(raw: str, what: str, lo: int, hi: int) -> int:
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, f"{what} must be an integer from {lo} to {hi}")
    return int(raw)


def _time_arg(name: str) -> int | None:
    raw = request.args.get(name) or None
    try:
        return None if raw is None else ms_from_text(raw)
    except ValueError as exc:
        raise ApiError(400, f"query parameter {name}: {exc}") from None


def history_filter() -> HistoryFilter:
    """The ``kind``, ``key``, ``actor``, ``since`` and ``until`` query parameters."""
    kind = request.args.get("kind") or None
    if kind is not None and kind not in HISTORY_KINDS:
        raise ApiError(400, f"query parameter kind must be one of {', '.join(HISTORY_KINDS)}")
    key = request.args.get("key") or None
    if key is not None:
        check_key(key, "query parameter key")
    who = request.args.get("actor") or None
    if who is not None and (len(who) > 200 or not who.isprintable()):
        raise ApiError(400, "query parameter actor must be at most 200 printable characters")
    since, until = _time_arg("since"), _time_arg("until")
    if since is not None and until is not None and since > until:
        raise ApiError(400, "query parameter since must not be later than until")
    return HistoryFilter(kind, key, who, since, until)


def _page(items: list[Any], limit: int, cursor: int | None) -> dict[str, Any]:
    """One page of ``limit`` from ``limit + 1`` rows: ``next`` is the cursor of the rest."""
    return {"items": items[:limit], "next": cursor if len(items) > limit else None}


def register_history_routes(app: QuartTrio, *, db: FlagDB, writer: Writer,
                            max_body_bytes: int = 1_048_576) -> None:
    def require_item_path(env: str, key: str) -> None:
        if db.get_environment(check_key(env, "environment key")) is None:
            raise ApiError(404, f'environment "{env}" not found')
        check_key(key, "key")

    def version_of(env: str, kind: str, key: str, raw: str, what: str) -> dict[str, Any]:
        version = _bounded_int(raw, what, 1, MAX_VERSION)
        found = db.read(partial(version_json, env=env, kind=kind, key=key, version=version))
        if found is None:
            raise ApiError(404, f'version {version} of {kind[:-1]} "{key}" is not in the '
                           f'history of environment "{env}"')
        return found

    async def changes(env: str) -> Response:
        if db.get_environment(check_key(env, "environment key")) is None:
            raise ApiError(404, f'environment "{env}" not found')
        limit = int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE) or DEFAULT_PAGE
        before = int_arg("before", None, 1, MAX_VERSION)
        rows = db.history(env, limit=limit + 1, before=before, filters=history_filter())
        cursor = rows[limit - 1].seq if len(rows) > limit else None
        return json_response(_page([change_json(r) for r in rows], limit, cursor))

    async def versions(env: str, kind: str, key: str) -> Response:
        require_item_path(env, key)
        limit = int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE) or DEFAULT_PAGE
        before = int_arg("before", None, 1, MAX_VERSION)
        rows = db.read(partial(list_versions, env=env, kind=kind, key=key, limit=limit + 1,
                               before=before))
        if not rows and before is None and db.get_item(env, cast(ItemKind, kind), key) is None:
            raise ApiError(404, f'{kind[:-1]} "{key}" not found in environment "{env}"')
        cursor = rows[limit - 1].seq if len(rows) > limit else None
        return json_response(_page([r.as_dict() for r in rows], limit, cursor))

    async def one_version(env: str, kind: str, key: str, version: str) -> Response:
        require_item_path(env, key)
        return json_response(version_of(env, kind, key, version, "version"))

    async def diff_versions(env: str, kind: str, key: str) -> Response:
        require_item_path(env, key)
        raw_from, raw_to = request.args.get("from"), request.args.get("to")
        if raw_from is None or raw_to is None:
            raise ApiError(400, "query parameters from and to are required (version numbers)")
        old = version_of(env, kind, key, raw_from, "query parameter from")
        new = version_of(env, kind, key, raw_to, "query parameter to")
        return json_response({"kind": kind, "key": key, "from": old["version"],
                              "to": new["version"],
                              "operations": diff(content(old), content(new))})

    async def revert(env: str, kind: str, key: str) -> Response:
        require_item_path(env, key)
        body = await read_json(max_body_bytes)
        if not isinstance(body, dict):
            raise ApiError(400, "(root): expected an object")
        unknown = sorted(set(body) - {"version", "comment"})
        if unknown:
            raise ApiError(400, f"{unknown[0]}: unknown field (expected version, comment)")
        version = body.get("version")
        if isinstance(version, bool) or not isinstance(version, int) \
                or not 1 <= version <= MAX_VERSION:
            raise ApiError(400, f"version: expected an integer from 1 to {MAX_VERSION}")
        comment = body.get("comment")
        if comment is not None and (not isinstance(comment, str)
                                    or len(comment) > MAX_COMMENT_CHARS):
            raise ApiError(400, f"comment: expected a string of at most {MAX_COMMENT_CHARS} "
                           "characters")
        old = db.read(partial(version_json, env=env, kind=kind, key=key, version=version))
        try:
            data = plan_revert(kind, key, version, old)
        except RevertRefusedError as exc:
            raise ApiError(exc.status, exc.message, exc.details) from None

        def exists(item_kind: str, item_key: str) -> bool:
            item = db.get_item(env, cast(ItemKind, item_kind), item_key)
            return item is not None and not item.deleted

        # Checked by the writer after the writes before it are committed: a delete of a
        # named segment that is still pending cannot slip between the check and the commit.
        result = await writer.revert(
            env, cast(ItemKind, kind), key, data, revert_of=version, actor=actor(),
            comment=comment or None,
            precondition=partial(missing_references, kind, key, version, data, exists))
        return json_response(result.item.json)

    app.add_url_rule(_CHANGES, "history_changes", changes, methods=["GET"])
    app.add_url_rule(f"{_ITEM}/versions", "history_versions", versions, methods=["GET"])
    app.add_url_rule(f"{_ITEM}/versions/<version>", "history_version", one_version,
                     methods=["GET"])
    app.add_url_rule(f"{_ITEM}/diff", "history_diff", diff_versions, methods=["GET"])
    app.add_url_rule(f"{_ITEM}/revert", "history_revert", revert, methods=["POST"])
