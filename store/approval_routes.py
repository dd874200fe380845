"""Admin API routes of change requests (store/approvals.py holds the table and the rules).

- ``POST /api/v1/environments/{env}/flags/{key}/change-requests``
  ``{"patch", "format"?, "comment"}`` → 201, a pending request made against the flag's
  current version; 400 if the patch would not validate against the flag now.
- ``GET /api/v1/environments/{env}/change-requests`` and ``.../flags/{key}/change-requests``
  (``status``, ``limit``, ``before``) → ``{"items", "next"}``, newest first.
- ``GET /api/v1/environments/{env}/change-requests/{id}`` → the request.
- ``POST .../change-requests/{id}/approve`` ``{"comment"?}`` → 200, applied through the
  writer actor; 409 with ``details: {"baseVersion", "currentVersion"}`` if the flag moved
  (the request becomes ``stale``).
- ``POST .../change-requests/{id}/decline`` ``{"comment"?}`` → 200.
- ``DELETE .../change-requests/{id}`` → 200, withdrawn (only by its proposer).

Identity: who proposes, approves, declines or withdraws is ``store.admin_http.actor()``.
Nobody approves or declines their own request. The applied change's history row has the
approver as ``actor`` (the identity whose decision wrote the flag) and names the request and
its proposer in its ``comment``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from flagmodel.validation import check_item
from store.admin_http import (
    ApiError,
    actor,
    check_key,
    current_principal,
    json_response,
    read_json,
)
from store.approvals import (
    MAX_COMMENT_CHARS,
    MAX_PENDING_PER_ENV,
    ApprovalDB,
    ChangeProposal,
    Status,
    TooManyPendingError,
)
from store.db import FlagDB
from store.patch_errors import PatchConflictError, PatchError
from store.patch_format import PatchFormat, apply_patch
from store.patch_request import checked_patch
from store.records import StoredItem
from store.writer import ConflictError, NotFoundError, Writer

_FLAG_REQUESTS = "/api/v1/environments/<env>/flags/<key>/change-requests"
_ENV_REQUESTS = "/api/v1/environments/<env>/change-requests"
_ONE = f"{_ENV_REQUESTS}/<request_id>"
# The right each route needs (issue 15 accounts builds the permission table from these).
RIGHTS: dict[tuple[str, str], str] = {
    ("POST", _FLAG_REQUESTS): "write",
    ("GET", _FLAG_REQUESTS): "read",
    ("GET", _ENV_REQUESTS): "read",
    ("GET", _ONE): "read",
    ("POST", f"{_ONE}/approve"): "write",
    ("POST", f"{_ONE}/decline"): "write",
    ("DELETE", _ONE): "write",
}
_FORMATS = {f.value: f for f in PatchFormat}
_MAX_PAGE = 500


def _may_write(env: str) -> bool:
    """Whether the caller may write flags in ``env`` (propose, approve, decline, withdraw).
    The admin app's guard already refuses these routes without the write right there
    (store/permissions.py); this keeps the rule with the decision it protects."""
    return current_principal().may_write(env)


def _require_write(env: str, what: str) -> None:
    if not _may_write(env):
        raise ApiError(403, f"{what} needs the write right on environment {env}")


def _comment(value: object, field: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_COMMENT_CHARS:
        raise ApiError(400, f"{field}: expected a non-empty string of at most "
                            f"{MAX_COMMENT_CHARS} characters")
    return value


def _fields(body: object, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "(root): expected an object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"{unknown[0][:100]}: unknown field (expected "
                            f"{', '.join(sorted(allowed))})")
    return body


def _query_int(name: str, lo: int, hi: int) -> int | None:
    raw = request.args.get(name) or None
    if raw is not None and (not raw.isdigit() or not lo <= int(raw) <= hi):
        raise ApiError(400, f"query parameter {name} must be an integer from {lo} to {hi}")
    return None if raw is None else int(raw)


def _history_comment(cr: ChangeProposal, approver: str, note: str | None) -> str:
    text = f"change request {cr.id} proposed by {cr.created_by}: {cr.comment}"
    return f"{text} | approved by {approver}" + (f": {note}" if note else "")


def register_approval_routes(app: QuartTrio, *, writer: Writer, db: FlagDB,
                             approvals: ApprovalDB, max_body_bytes: int = 1_048_576) -> None:
    """Add the change-request routes to the admin app (they inherit its auth and errors)."""
    limiter = trio.CapacityLimiter(1)  # one table write at a time, off the event loop
    # One decision at a time (decisions come at human rates): a request cannot be withdrawn
    # or declined while its approval is being applied, nor approved twice at once.
    deciding = trio.Lock()

    def require_env(env: str) -> None:
        if db.get_environment(check_key(env, "environment key")) is None:
            raise ApiError(404, f'environment "{env}" not found')

    def live_flag(env: str, key: str) -> StoredItem | None:
        item = db.get_item(env, "flags", key)
        return None if item is None or item.deleted else item

    def find(env: str, request_id: str) -> ChangeProposal:
        require_env(env)
        found = None
        if request_id.isdigit() and len(request_id) < 19:  # an SQLite integer
            found = approvals.get(env, int(request_id))
        if found is None:
            raise ApiError(404, f"change request {request_id[:40]!r} not found in "
                                f'environment "{env}"')
        return found

    def find_pending(env: str, request_id: str) -> ChangeProposal:
        cr = find(env, request_id)
        if cr.status is not Status.PENDING:
            raise ApiError(409, f"change request {cr.id} is {cr.status.value}, not pending")
        return cr

    async def decision_comment() -> str | None:
        if not request.content_length and not request.mimetype:
            return None  # no body at all: no comment
        body = _fields(await read_json(max_body_bytes), frozenset({"comment"}))
        return _comment(body.get("comment"), "comment", required=False)

    async def close(cr: ChangeProposal, status: Status, by: str, note: str | None,
                    **versions: int) -> ChangeProposal:
        closed = await trio.to_thread.run_sync(
            lambda: approvals.close_request(cr.env, cr.id, status, by, note, **versions),
            limiter=limiter)
        if closed is None:  # another decision came first
            raise ApiError(409, f"change request {cr.id} is no longer pending")
        return closed

    def listing(env: str, key: str | None) -> Response:
        raw_status = request.args.get("status") or None
        if raw_status is not None and raw_status not in {s.value for s in Status}:
            raise ApiError(400, "query parameter status must be one of "
                                + ", ".join(s.value for s in Status))
        limit = _query_int("limit", 1, _MAX_PAGE) or 50
        rows = approvals.list(env, key=key, status=None if raw_status is None
                              else Status(raw_status), limit=limit + 1,
                              before=_query_int("before", 1, 2**62))
        page = rows[:limit]
        return json_response({"items": [r.as_dict() for r in page],
                              "next": page[-1].id if len(rows) > limit else None})

    @app.post(_FLAG_REQUESTS)
    async def propose(env: str, key: str) -> Response:
        require_env(env)
        check_key(key, "key")
        body = _fields(await read_json(max_body_bytes),
                       frozenset({"patch", "format", "comment"}))
        fmt_name = body.get("format", "merge")
        fmt = _FORMATS.get(fmt_name) if isinstance(fmt_name, str) else None
        if fmt is None:
            raise ApiError(400, f"format: expected one of {', '.join(_FORMATS)}")
        if "patch" not in body:
            raise ApiError(400, "patch: required")
        patch = checked_patch(fmt, body["patch"], "flags", env)
        comment = _comment(body.get("comment"), "comment", required=True)
        assert comment is not None
        _require_write(env, "proposing a change")
        flag = live_flag(env, key)
        if flag is None:
            raise ApiError(404, f'flag "{key}" not found in environment "{env}"')
        try:
            errors = check_item("flags", key, apply_patch(flag.as_dict(), patch))
        except PatchConflictError as exc:
            raise ApiError(409, exc.message) from None
        except PatchError as exc:
            raise ApiError(400, exc.message) from None
        if errors:
            raise ApiError(400, "the change would not validate: " + "; ".join(errors[:5]),
                           errors[:200])
        who = actor()
        try:
            cr = await trio.to_thread.run_sync(
                lambda: approvals.add(env, key, flag.version, fmt.value, body["patch"],
                                      comment, who), limiter=limiter)
        except TooManyPendingError:
            raise ApiError(409, f"environment {env} has {MAX_PENDING_PER_ENV} pending change "
                                "requests (the limit): approve, decline or withdraw some "
                                "first") from None
        return json_response(cr.as_dict(), 201)

    @app.get(_FLAG_REQUESTS)
    async def change_requests_for_flag(env: str, key: str) -> Response:
        require_env(env)
        return listing(env, check_key(key, "key"))

    @app.get(_ENV_REQUESTS)
    async def change_requests_for_env(env: str) -> Response:
        require_env(env)
        return listing(env, None)

    @app.get(_ONE)
    async def change_request(env: str, request_id: str) -> Response:
        return json_response(find(env, request_id).as_dict())

    @app.post(f"{_ONE}/approve")
    async def approve(env: str, request_id: str) -> Response:
        cr = find_pending(env, request_id)
        who = actor()
        if who == cr.created_by:
            raise ApiError(403, "you cannot approve your own change request")
        _require_write(env, "approving a change request")
        note = await decision_comment()
        async with deciding:
            cr = find_pending(env, request_id)
            patch = checked_patch(PatchFormat(cr.format), cr.patch, "flags", env)
            # The version is checked here for a clear answer, and again by the writer actor
            # (``expect_version``) where no other write can come between check and apply.
            guarded = replace(patch, expect_version=cr.base_version)
            flag = live_flag(env, cr.key)
            if flag is not None and flag.version == cr.base_version:
                try:
                    result = await writer.patch(env, "flags", cr.key, guarded, actor=who,
                                                comment=_history_comment(cr, who, note))
                except (ConflictError, NotFoundError):
                    pass
                else:
                    closed = await close(cr, Status.APPROVED, who, note,
                                         applied_version=result.item.version)
                    return json_response(closed.as_dict())
            raise await moved(cr, who, note)

    async def moved(cr: ChangeProposal, who: str, note: str | None) -> ApiError:
        """The 409 of an approval that found the flag at another version; the request
        becomes stale (it can never apply), unless the flag is only being written now."""
        flag = db.get_item(cr.env, "flags", cr.key)
        current = 0 if flag is None else flag.version  # a tombstone has a version too
        if current != cr.base_version:
            await close(cr, Status.STALE, who, note, current_version=current)
        gone = " (deleted)" if flag is not None and flag.deleted else ""
        return ApiError(409, f"flag {cr.key} is at version {current}{gone}; the change request"
                             f" was made against version {cr.base_version}",
                        {"baseVersion": cr.base_version, "currentVersion": current})

    @app.post(f"{_ONE}/decline")
    async def decline(env: str, request_id: str) -> Response:
        cr = find_pending(env, request_id)
        who = actor()
        if who == cr.created_by:
            raise ApiError(403, "you cannot decline your own change request; withdraw it with"
                                f" DELETE /api/v1/environments/{env}/change-requests/{cr.id}")
        _require_write(env, "declining a change request")
        note = await decision_comment()
        async with deciding:
            return json_response((await close(cr, Status.DECLINED, who, note)).as_dict())

    @app.delete(_ONE)
    async def withdraw(env: str, request_id: str) -> Response:
        cr = find_pending(env, request_id)
        who = actor()
        if who != cr.created_by:
            raise ApiError(403, f"only the proposer ({cr.created_by}) can withdraw change "
                                f"request {cr.id}")
        _require_write(env, "withdrawing a change request")
        async with deciding:
            return json_response((await close(cr, Status.WITHDRAWN, who, None)).as_dict())
