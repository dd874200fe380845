"""The admin HTTP API (DESIGN.md §4), a quart-trio app.

Reads go straight to :class:`~store.db.FlagDB` (WAL readers never wait for the writer);
every change goes through the :class:`~store.writer.Writer`, which answers only after the
commit. The guard authenticates every request (store/auth.py: the bootstrap token, an API
token or a user's session) and checks the right its route needs in the permission table
(store/permissions.py), routes added by ``extra_routes`` included: 401 without a valid
credential, 403 with a message naming the missing right. ``/healthz``, ``/readyz``,
``/metrics``, ``/api/v1/openapi.yaml`` and signing in need no credential. The API description
is open because it holds no secret (the same file ships in the package and in the repository)
and a client generator or a new operator should read it before holding a token.

An environment's ``sdkKey``, ``mobileKey`` and rotated ``oldKeys`` are credentials: they are
shown only to a principal that may write in that environment (admin, or an editor whose
scope includes it); anyone else sees ``null`` (the client-side ID is public).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, cast

from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from bus.envelope import EnvironmentInfo, ItemKind
from store.account_routes import RIGHTS as ACCOUNT_RIGHTS
from store.account_routes import register_account_routes
from store.accounts_db import AccountsDB
from store.admin_audit import log_auth_failure, log_write
from store.admin_http import (
    ApiError,
    actor,
    check_key,
    current_principal,
    error_response,
    json_response,
    read_json,
    write_error_to_api,
)
from store.approvals import direct_write_refusal
from store.auth import Authenticator
from store.containment import Failures, install_http_boundary
from store.db import ROTATABLE, FlagDB
from store.http_guard import finish_unread_bodies
from store.importer import ImportRejectedError, plan_import
from store.patch_request import read_patch
from store.permissions import (
    CORE_RIGHTS,
    ENV_RULE,
    ITEM_RULE,
    OPENAPI_PATH,
    Route,
    build_table,
    refusal,
    right_of,
)
from store.writer import WriteError, Writer

_ITEM = ITEM_RULE
MAX_GRACE_S = 30 * 86400  # a rotated key lives at most 30 days
# An environment's PATCH is a JSON merge patch of its two changeable fields.
ENV_PATCH_TYPES = frozenset({"application/json", "application/merge-patch+json"})


def _env_json(env: EnvironmentInfo) -> dict[str, Any]:
    """The environment as the caller may see it: credentials only with write rights there."""
    reveal = current_principal().may_write(env.key)
    out: dict[str, Any] = {"key": env.key, "name": env.name,
                           "sdkKey": env.sdk_key if reveal else None,
                           "mobileKey": env.mobile_key if reveal else None,
                           "clientSideId": env.client_side_id, "secureMode": env.secure_mode,
                           "requireApproval": env.require_approval}
    if env.old_keys and reveal:  # rotated keys still in their grace period
        out["oldKeys"] = [{"key": k, "expiresAt": t} for k, t in env.old_keys]
    return out


def _env_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise ApiError(400, "name: expected a non-empty string of at most 256 characters")
    return name


def _switches(body: dict[str, Any], default: bool | None) -> dict[str, bool | None]:
    """An environment body's ``secureMode`` and ``requireApproval``; ``default`` when absent
    or null, 400 unless boolean."""
    out: dict[str, bool | None] = {}
    for field in ("secureMode", "requireApproval"):
        value = body.get(field)
        if value is not None and not isinstance(value, bool):
            raise ApiError(400, f"{field}: expected boolean")
        out[field] = default if value is None else value
    return out


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
    extra_rights: Sequence[Mapping[Route, str]] = (),
    failures: Failures | None = None,
    accounts: AccountsDB | None = None,
    auth: Authenticator | None = None,
) -> QuartTrio:
    """Build the admin app; ``extra_routes`` registrars add routes that inherit the auth,
    and ``extra_rights`` their entries of the permission table (each module's ``RIGHTS``);
    ``failures`` counts what its handlers' boundary contains (``/metrics`` reads it);
    ``accounts`` (default: the tables in ``db``'s file) or a ready ``auth`` hold the users
    and tokens besides the bootstrap ``token``."""
    app = QuartTrio(__name__)
    table = build_table([CORE_RIGHTS, ACCOUNT_RIGHTS, *extra_rights])
    if auth is None:
        auth = Authenticator(token, accounts or AccountsDB(db.path))
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    finish_unread_bodies(app)

    def require_env(env: str) -> EnvironmentInfo:
        info = db.get_environment(check_key(env, "environment key"))
        if info is None:
            raise ApiError(404, f'environment "{env}" not found')
        return info

    def require_direct_write(env: str, kind: str, key: str | None) -> None:
        """403 for a direct flag write to an environment that requires approval."""
        refusal = direct_write_refusal(require_env(env), kind, key)
        if refusal is not None:
            raise ApiError(403, refusal)

    @app.before_request
    async def _guard() -> Response | None:
        rule = request.url_rule
        right = None if rule is None else right_of(table, request.method, rule.rule)
        if right == "public":
            return None
        principal = await auth.authenticate(request.headers.get("Authorization"))
        if principal is None:
            log_auth_failure()
            return error_response(401, "missing or invalid bearer token")
        g.principal = principal
        if rule is None:  # 404 or 405: routing answers, to authenticated callers only
            return None
        if right is None:  # fail closed: see store/permissions.py
            return error_response(403, f"{request.method} {rule.rule} has no entry in the "
                                  "permission table: refused to everyone")
        args = request.view_args or {}
        env, kind = args.get("env"), args.get("kind")
        why = refusal(principal, right, env if isinstance(env, str) else None,
                      kind if isinstance(kind, str) else None,
                      f"{request.method} {rule.rule}")
        if why is not None:
            return error_response(403, why)
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
        switches = _switches(body, False)
        env = await writer.create_environment(key, name, secure_mode=bool(switches["secureMode"]),
                                              require_approval=bool(switches["requireApproval"]),
                                              actor=actor())
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
        unknown = sorted(set(body) - {"name", "secureMode", "requireApproval"})
        if unknown:
            raise ApiError(400, f"{unknown[0]}: unknown field (name, secureMode and"
                                " requireApproval can change)")
        name = None if body.get("name") is None else _env_name(body["name"])
        switches = _switches(body, None)
        info = await writer.update_environment(
            env, name=name, secure_mode=switches["secureMode"],
            require_approval=switches["requireApproval"], actor=actor())
        return json_response(_env_json(info))

    @app.delete("/api/v1/environments/<env>")
    async def delete_env(env: str) -> Response:
        require_env(env)
        await writer.delete_environment(env, actor=actor())
        return Response(b"", status=204)

    @app.post(f"{ENV_RULE}/rotate")
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
        require_direct_write(env, kind, check_key(key, "key"))
        body = await read_json(max_body_bytes)
        result = await writer.put(env, cast(ItemKind, kind), key, body, actor=actor())
        return json_response(result.item.json, 201 if result.created else 200)

    @app.patch(f"{_ITEM}/<key>")
    async def patch_item(env: str, kind: str, key: str) -> Response:
        require_direct_write(env, kind, check_key(key, "key"))
        patch = await read_patch(kind, env, max_body_bytes)
        result = await writer.patch(env, cast(ItemKind, kind), key, patch, actor=actor(),
                                    comment=patch.comment)
        return json_response(result.item.json)

    @app.delete(f"{_ITEM}/<key>")
    async def delete_item(env: str, kind: str, key: str) -> Response:
        require_direct_write(env, kind, check_key(key, "key"))
        await writer.delete(env, cast(ItemKind, kind), key, actor=actor())
        return Response(b"", status=204)

    @app.post("/api/v1/environments/<env>/import")
    async def import_data(env: str) -> Response:
        require_direct_write(env, "flags", None)
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

    register_account_routes(app, auth=auth, max_body_bytes=max_body_bytes)
    for register in extra_routes:
        register(app)
    return app
