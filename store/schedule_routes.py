"""Admin API routes of scheduled flag changes (the admin app applies its auth to them).

- ``POST /api/v1/environments/{env}/flags/{key}/scheduled-changes``
  ``{"at": RFC 3339 text or epoch ms, "patch": ..., "format"?: "merge" | "json-patch" |
  "semantic", "comment"?}`` -> 201, the scheduled change (``status: "pending"``). The patch is
  checked as the PATCH route checks it (store.patch_request) and applied to the flag as it
  is now: a change that would not validate is refused with the writer's errors (400; 404 for
  a missing flag, 409 for a failed JSON Patch ``test``). ``at`` in the past: 400. More than
  ``schedule_db.MAX_PENDING_PER_ENV`` pending in the environment: 409.
- ``GET .../flags/{key}/scheduled-changes`` and ``GET /api/v1/environments/{env}/scheduled-changes``
  (``?status=pending|applied|failed|cancelled``, ``?limit=``): soonest first.
- ``GET`` / ``DELETE /api/v1/environments/{env}/scheduled-changes/{id}``: one change; DELETE
  cancels a pending one (200, the cancelled change), 409 if it was applied, failed or
  cancelled already.

The scheduler (store.scheduler) applies them; this module only records and reads them.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Final

import orjson
import trio
from quart import Response, request
from quart_trio import QuartTrio

from insights.timefmt import ms_from_text
from store import schedule_db
from store.admin_http import (
    ApiError,
    actor,
    check_key,
    json_response,
    read_json,
    write_error_to_api,
)
from store.coalescer import OpKind, Rejected, WriteOp, next_state
from store.db import FlagDB
from store.normalize import new_salt
from store.patch_format import PatchFormat
from store.patch_request import checked_patch
from store.records import ItemId
from store.schedule_db import NotPendingError, TooManyPendingError
from store.scheduler import Scheduler
from store.writer import rejection_error

_ENV = "/api/v1/environments/<env>"
_FLAG = f"{_ENV}/flags/<key>/scheduled-changes"
_ONE = f"{_ENV}/scheduled-changes/<int:change_id>"
RIGHTS: Final[dict[tuple[str, str], str]] = {
    ("POST", _FLAG): "write",
    ("GET", _FLAG): "read",
    ("GET", f"{_ENV}/scheduled-changes"): "read",
    ("GET", _ONE): "read",
    ("DELETE", _ONE): "write",
}
MAX_AHEAD_MS: Final = 3650 * 86_400_000  # a change is scheduled at most ten years ahead
MAX_COMMENT: Final = 1000
MAX_LIST: Final = schedule_db.MAX_PENDING_PER_ENV + schedule_db.KEEP_DONE_PER_ENV
_FIELDS: Final = frozenset({"at", "patch", "format", "comment"})
_MAX_ID: Final = 2**62


def parse_at(value: object, now_ms: int) -> int:
    """``at`` of a request: epoch milliseconds or RFC 3339 text, not in the past."""
    if isinstance(value, int) and not isinstance(value, bool):
        at_ms = value
    elif isinstance(value, str):
        try:
            at_ms = ms_from_text(value)
        except ValueError as exc:
            raise ApiError(400, f"at: {exc}") from None
    else:
        raise ApiError(400, "at: required, an RFC 3339 time or milliseconds since the epoch")
    if at_ms < now_ms:
        raise ApiError(400, f"at: {value!s:.64} is in the past")
    if at_ms > now_ms + MAX_AHEAD_MS:
        raise ApiError(400, "at: more than ten years ahead")
    return at_ms


def _body(doc: Any) -> tuple[object, Any, PatchFormat, str | None]:
    if not isinstance(doc, dict):
        raise ApiError(400, "(root): expected an object")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise ApiError(400, f"{unknown[0][:100]}: unknown field (at, patch, format, comment)")
    if "patch" not in doc:
        raise ApiError(400, "patch: required")
    fmt_name = doc.get("format", PatchFormat.MERGE.value)
    formats = [f.value for f in PatchFormat]
    if fmt_name not in formats:
        raise ApiError(400, f"format: must be one of {', '.join(formats)}")
    comment = doc.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
        raise ApiError(400, f"comment: expected a string of at most {MAX_COMMENT} characters")
    return doc.get("at"), doc["patch"], PatchFormat(fmt_name), comment


def _status_filter() -> str | None:
    status = request.args.get("status") or None
    if status is not None and status not in schedule_db.STATUSES:
        raise ApiError(400, f"query parameter status must be one of "
                            f"{', '.join(schedule_db.STATUSES)}")
    return status


def _limit() -> int:
    raw = request.args.get("limit") or str(MAX_LIST)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise ApiError(400, f"query parameter limit must be an integer from 1 to {MAX_LIST}")
    return int(raw)


def _items(changes: list[schedule_db.ScheduledChange]) -> Response:
    return json_response({"items": [c.as_dict() for c in changes]})


def register_schedule_routes(app: QuartTrio, *, db: FlagDB, scheduler: Scheduler,
                             max_body_bytes: int = 1_048_576) -> None:
    limiter = trio.CapacityLimiter(1)

    def require_env(env: str) -> None:
        if db.get_environment(check_key(env, "environment key")) is None:
            raise ApiError(404, f'environment "{env}" not found')

    def one(env: str, change_id: int) -> schedule_db.ScheduledChange:
        require_env(env)
        found = None if change_id > _MAX_ID else db.run_read(
            partial(schedule_db.get, env=env, change_id=change_id))
        if found is None:
            raise ApiError(404, f'scheduled change {change_id} not found in environment "{env}"')
        return found

    @app.post(_FLAG)
    async def schedule_change(env: str, key: str) -> Response:
        require_env(env)
        check_key(key, "key")
        at_raw, raw_patch, fmt, comment = _body(await read_json(max_body_bytes))
        now_ms = scheduler.now_ms()
        at_ms = parse_at(at_raw, now_ms)
        patch = checked_patch(fmt, raw_patch, "flags", env)
        # Refused now if it would not apply to the flag as it is now.
        stored = db.get_item(env, "flags", key)
        current = None if stored is None or stored.deleted else stored.as_dict()
        outcome = next_state(WriteOp(ItemId(env, "flags", key), OpKind.PATCH, patch),
                             current, new_salt)
        if isinstance(outcome, Rejected):
            raise write_error_to_api(rejection_error(outcome))
        try:
            change = await trio.to_thread.run_sync(db.run_write, partial(
                schedule_db.insert, env=env, key=key, at_ms=at_ms, fmt=fmt.value,
                patch=orjson.dumps(raw_patch), comment=comment, created_by=actor(),
                now_ms=now_ms), limiter=limiter)
        except TooManyPendingError:
            raise ApiError(409, f'environment "{env}" has {schedule_db.MAX_PENDING_PER_ENV} '
                                "pending scheduled changes, the most it can have; cancel "
                                "some or wait until they are applied") from None
        scheduler.wake_nowait()
        return json_response(change.as_dict(), 201)

    @app.get(_FLAG)
    async def scheduled_for_flag(env: str, key: str) -> Response:
        require_env(env)
        check_key(key, "key")
        return _items(db.run_read(partial(schedule_db.select, env=env, key=key,
                                          status=_status_filter(), limit=_limit())))

    @app.get(f"{_ENV}/scheduled-changes")
    async def scheduled_for_env(env: str) -> Response:
        require_env(env)
        return _items(db.run_read(partial(schedule_db.select, env=env,
                                          status=_status_filter(), limit=_limit())))

    @app.get(_ONE)
    async def scheduled_one(env: str, change_id: int) -> Response:
        return json_response(one(env, change_id).as_dict())

    @app.delete(_ONE)
    async def cancel_scheduled(env: str, change_id: int) -> Response:
        one(env, change_id)
        try:
            change = await trio.to_thread.run_sync(db.run_write, partial(
                schedule_db.cancel, env=env, change_id=change_id, who=actor(),
                now_ms=scheduler.now_ms()), limiter=limiter)
        except NotPendingError as exc:
            raise ApiError(409, f"scheduled change {change_id} is {exc.status}, not pending: "
                                "only a pending change can be cancelled") from None
        if change is None:
            raise ApiError(404, f'scheduled change {change_id} not found in environment "{env}"')
        scheduler.wake_nowait()
        return json_response(change.as_dict())
