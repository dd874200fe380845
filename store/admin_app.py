"""The admin HTTP API (DESIGN.md §4), a quart-trio app.

Reads go straight to :class:`~store.db.FlagDB` (WAL readers never wait for the writer);
every change goes through the :class:`~store.writer.Writer`, which answers only after the
commit. Bearer-token auth guards every route, including routes added by ``extra_routes``,
except ``/healthz``, ``/readyz``, ``/metrics`` and ``/api/v1/openapi.yaml``. The API
description is open because it holds no secret (the same file ships in the package and in
the repository) and a client generator or a new operator should read it before holding a
token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, cast

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from bus.envelope import EnvironmentInfo, ItemKind
from insights.timefmt import ms_from_text
from store.admin_audit import log_auth_failure, log_write
from store.admin_http import (
    ApiError,
    actor,
    check_key,
    error_response,
    json_response,
    read_json,
    token_matches,
    write_error_to_api,
)
from store.containment import Failures, install_http_boundary
from store.db import ROTATABLE, FlagDB
from store.http_guard import finish_unread_bodies
from store.importer import ImportRejectedError, plan_import
from store.patch_request import read_patch
from store.records import HistoryFilter
from store.writer import WriteError, Writer

OPENAPI_PATH = "/api/v1/openapi.yaml"
_OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", OPENAPI_PATH})
_ITEM = "/api/v1/environments/<env>/<any(flags, segments):kind>"
DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_GRACE_S = 30 * 86400  # a rotated key lives at most 30 days
# An environment's PATCH is a JSON merge patch of its two changeable fields.
ENV_PATCH_TYPES = frozenset({"application/json", "application/merge-patch+json"})
# The kinds of change the history records (see FlagDB.commit and the environment writes).
HISTORY_KINDS = ("flags", "segments", "environment", "import", "batch")


def _env_json(env: EnvironmentInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"key": env.key, "name": env.name, "sdkKey": env.sdk_key,
                           "mobileKey": env.mobile_key, "clientSideId": env.client_side_id,
                           "secureMode": env.secure_mode}
    if env.old_keys:  # rotated keys still in their grace period
        out["oldKeys"] = [{"key": k, "expiresAt": t} for k, t in env.old_keys]
    return out


def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, f"query parameter {name} must be an integer from {lo} to {hi}")
    return int(raw)


def _env_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise ApiError(400, "name: expected a non-empty string of at most 256 characters")
    return name


def history_filter() -> HistoryFilter:
    """The ``kind``, ``key``, ``actor`` and ``since`` query parameters of ``.../changes``."""
    kind = request.args.get("kind") or None
    if kind is not None and kind not in HISTORY_KINDS:
        raise ApiError(400, f"query parameter kind must be one of {', '.join(HISTORY_KINDS)}")
    key = request.args.get("key") or None
    if key is not None:
        check_key(key, "query parameter key")
    who = request.args.get("actor") or None
    if who is not None and (len(who) > 200 or not who.isprintable()):
        raise ApiError(400, "query parameter actor must be at most 200 printable characters")
    since_raw = request.args.get("since") or None
    try:
        since = None if since_raw is None else ms_from_text(since_raw)
    except ValueError as exc:
        raise ApiError(400, f"query parameter since: {exc}") from None
    return HistoryFilter(kind, key, who, since)


def openapi_document() -> bytes:
    """The admin API's OpenAPI file, package data of ``store`` (found in an installed copy too)."""
    return resources.files("store").joinpath("openapi.yaml").read_bytes()


def create_admin_app(
    *,
    writer: Writer,
    db: FlagDB,
    token: str,
    max_body_bytes: int = 1_048_576,
    key_grace_s: float = 86400.0,
    extra_routes: Sequence[Callable[[QuartTrio], None]] = (),
    failures: Failures | None = None,
) -> QuartTrio:
    """Build the admin app; ``extra_routes`` registrars add routes that inherit the auth;
    ``failures`` counts what its handlers' boundary contains (``/metrics`` reads it)."""
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    finish_unread_bodies(app)

    def require_env(env: str) -> EnvironmentInfo:
        info = db.get_environment(check_key(env, "environment key"))
        if info is None:
            raise ApiError(404, f'environment "{env}" not found')
        return info

    @app.before_request
    async def _guard() -> Response | None:
        if request.path in _OPEN_PATHS:
            return None
        if not token_matches(request.headers.get("Authorization"), token):
            log_auth_failure()
            return error_response(401, "missing or invalid bearer token")
        length = request.content_length
        if length is not None and length > max_body_bytes:
            return error_response(413, f"body is larger than {max_body_bytes} bytes")
        return None

    @app.after_request
    async def _audit(response: Response) -> Response:
        await log_write(response, actor())
        return response

    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.details)

    @app.errorhandler(WriteError)
    async def _write_error(exc: WriteError) -> Response:
        api = write_error_to_api(exc)
        return error_response(api.status, api.message, api.details)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        resp = error_response(status, exc.description or exc.name)
        if status == 405:  # RFC 9110: a 405 lists the methods the resource supports
            for name, value in exc.get_headers():
                if name.lower() == "allow":
                    resp.headers["Allow"] = value
        return resp

    # Any other exception: 400 for bad input, else 503 with Retry-After, counted and logged
    # once per episode (store/containment.py).
    failures = app.extensions["flagstream.failures"] = failures or Failures()
    install_http_boundary(app, failures, error_response)

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        try:
            seq = db.latest_seq()
        except Exception:
            return error_response(503, "database not readable")
        return json_response({"status": "ready", "seq": seq})

    openapi = openapi_document()  # read once: a fixed file of about 25 KiB

    @app.get(OPENAPI_PATH)
    async def openapi_yaml() -> Response:
        # application/yaml: RFC 9512
        return Response(openapi, status=200, content_type="application/yaml")

    @app.post("/api/v1/environments")
    async def create_env() -> Response:
        body = await read_json(max_body_bytes)
        if not isinstance(body, dict):
            raise ApiError(400, "(root): expected an object")
        key = body.get("key")
        if not isinstance(key, str):
            raise ApiError(400, "key: required string")
        check_key(key, "environment key")
        name = _env_name(body.get("name", key))
        secure = body.get("secureMode", False)
        if not isinstance(secure, bool):
            raise ApiError(400, "secureMode: expected boolean")
        env = await writer.create_environment(key, name, secure_mode=secure, actor=actor())
        return json_response(_env_json(env), 201)

    @app.get("/api/v1/environments")
    async def list_envs() -> Response:
        return json_response({"items": [_env_json(e) for e in db.list_environments()]})

    @app.get("/api/v1/environments/<env>")
    async def get_env(env: str) -> Response:
        return json_response(_env_json(require_env(env)))

    @app.patch("/api/v1/environments/<env>")
    async def update_env(env: str) -> Response:
        require_env(env)
        body = await read_json(max_body_bytes, ENV_PATCH_TYPES)
        if not isinstance(body, dict):
            raise ApiError(400, "(root): expected an object")
        unknown = sorted(set(body) - {"name", "secureMode"})
        if unknown:
            raise ApiError(400, f"{unknown[0]}: unknown field (name and secureMode can change)")
        name = None if body.get("name") is None else _env_name(body["name"])
        secure = body.get("secureMode")
        if secure is not None and not isinstance(secure, bool):
            raise ApiError(400, "secureMode: expected boolean")
        info = await writer.update_environment(env, name=name, secure_mode=secure,
                                               actor=actor())
        return json_response(_env_json(info))

    @app.delete("/api/v1/environments/<env>")
    async def delete_env(env: str) -> Response:
        require_env(env)
        await writer.delete_environment(env, actor=actor())
        return Response(b"", status=204)

    @app.post("/api/v1/environments/<env>/rotate")
    async def rotate(env: str) -> Response:
        require_env(env)
        body = await read_json(max_body_bytes)
        if not isinstance(body, dict):
            raise ApiError(400, "(root): expected an object")
        which = body.get("key")
        if which not in ROTATABLE:
            raise ApiError(400, 'key: must be "sdk", "mobile" or "clientSide"')
        grace = body.get("graceSeconds", key_grace_s)
        if isinstance(grace, bool) or not isinstance(grace, int | float) \
                or not 0 <= grace <= MAX_GRACE_S:
            raise ApiError(400, f"graceSeconds: expected a number from 0 to {MAX_GRACE_S}")
        info = await writer.rotate_key(env, which, float(grace), actor=actor())
        return json_response(_env_json(info))

    @app.get(_ITEM)
    async def list_items(env: str, kind: str) -> Response:
        require_env(env)
        items = db.list_items(env, cast(ItemKind, kind))
        return json_response(b'{"items":[' + b",".join(i.json for i in items) + b"]}")

    @app.get(f"{_ITEM}/<key>")
    async def get_item(env: str, kind: str, key: str) -> Response:
        require_env(env)
        item = db.get_item(env, cast(ItemKind, kind), check_key(key, "key"))
        if item is None or item.deleted:
            raise ApiError(404, f'{kind[:-1]} "{key}" not found in environment "{env}"')
        return json_response(item.json)

    @app.put(f"{_ITEM}/<key>")
    async def put_item(env: str, kind: str, key: str) -> Response:
        require_env(env)
        check_key(key, "key")
        body = await read_json(max_body_bytes)
        result = await writer.put(env, cast(ItemKind, kind), key, body, actor=actor())
        return json_response(result.item.json, 201 if result.created else 200)

    @app.patch(f"{_ITEM}/<key>")
    async def patch_item(env: str, kind: str, key: str) -> Response:
        require_env(env)
        check_key(key, "key")
        patch = await read_patch(kind, env, max_body_bytes)
        result = await writer.patch(env, cast(ItemKind, kind), key, patch, actor=actor(),
                                    comment=patch.comment)
        return json_response(result.item.json)

    @app.delete(f"{_ITEM}/<key>")
    async def delete_item(env: str, kind: str, key: str) -> Response:
        require_env(env)
        check_key(key, "key")
        await writer.delete(env, cast(ItemKind, kind), key, actor=actor())
        return Response(b"", status=204)

    @app.get("/api/v1/environments/<env>/changes")
    async def changes(env: str) -> Response:
        require_env(env)
        limit = _int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE) or DEFAULT_PAGE
        before = _int_arg("before", None, 1, 2**62)
        rows = db.history(env, limit=limit + 1, before=before, filters=history_filter())
        page = rows[:limit]
        more = len(rows) > limit
        return json_response({"items": [r.as_dict() for r in page],
                              "next": page[-1].seq if more and page else None})

    @app.post("/api/v1/environments/<env>/import")
    async def import_data(env: str) -> Response:
        require_env(env)
        lenient_arg = request.args.get("lenient", "false").lower()
        if lenient_arg not in ("true", "false", "1", "0"):
            raise ApiError(400, "query parameter lenient must be true or false")
        body = await read_json(max_body_bytes)
        try:
            plan = plan_import(body, lenient=lenient_arg in ("true", "1"))
        except ImportRejectedError as exc:
            raise ApiError(400, f"import refused: {len(exc.errors)} problem(s); "
                           + "; ".join(exc.errors[:5]), exc.errors[:200]) from None
        committed = await writer.import_items(env, plan.items, actor=actor())
        counts = {k: sum(1 for i in plan.items if i.kind == k) for k in ("flags", "segments")}
        return json_response({"seq": committed.change.seq, **counts,
                              "invalid": list(plan.accepted_invalid),
                              "malformed": list(plan.malformed)})

    for register in extra_routes:
        register(app)
    return app
