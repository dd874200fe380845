"""Client-side, mobile and server-side evaluation polling on the SDK listener (PROTOCOL.md §2.3).

``register_clientside_routes(app)`` adds, to the app of :func:`streamer.sdk_app.create_sdk_app`:

=================================================  ==============  ==========================
route                                              credential      flags included
=================================================  ==============  ==========================
``GET /sdk/evalx/{envId}/contexts/{b64}``,         env ID (path),  ``usingEnvironmentId``
``REPORT /sdk/evalx/{envId}/context``,             CORS, secure
``users``/``user`` aliases                         mode
``GET /msdk/evalx/contexts/{b64}``,                mobile key      ``usingMobileKey``
``REPORT /msdk/evalx/context`` (+ aliases)
``GET /sdk/evalx/contexts/{b64}``,                 SDK key         every flag (as ld-relay)
``REPORT /sdk/evalx/context`` (+ aliases)
``GET /sdk/goals/{envId}``                         env ID, CORS    ``[]`` (no goals)
=================================================  ==============  ==========================

Every environment-ID route also answers ``OPTIONS`` (a CORS preflight, no lookup), and every
answer on those routes carries the CORS headers of §2.6. Errors are JSON ``{"message": ...}``:
400 (bad base64, JSON or context, a context nested deeper than
:data:`~streamer.clientside.client_request.MAX_CONTEXT_DEPTH`; a secure-mode hash that is missing or
does not match, whatever its characters), 401 (key), 404 (environment ID), 415 (a REPORT
that is not JSON), 503 before the first data. The body is the evaluated-flags payload of §2.4,
evaluated against the environment actor's parsed model (:mod:`streamer.clientside.client_model`).
"""

from __future__ import annotations

import orjson
from quart import Response, request
from quart_trio import QuartTrio

from bus.envelope import EnvironmentInfo
from streamer.clientside.client_groups import evaluate_entries, payload_json
from streamer.clientside.client_request import (
    BadRequest,
    check_secure_mode,
    cors_headers,
    is_json_content_type,
    parse_query,
    request_context,
    strip_credential,
)
from streamer.environments.directory import Directory

JS_METHODS = "GET, REPORT, OPTIONS"
GOALS_METHODS = "GET, OPTIONS"
JSON = "application/json"


class _Answer(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(status: int, body: bytes, cors: str | None) -> Response:
    headers = dict(cors_headers(request.headers.get("Origin"), cors)) if cors else {}
    if status == 503:
        headers["Retry-After"] = "5"
    return Response(body, status=status, content_type=JSON, headers=headers)


def _error(exc: _Answer, cors: str | None) -> Response:
    return _json(exc.status, orjson.dumps({"message": str(exc)}), cors)


def register_clientside_routes(app: QuartTrio) -> None:
    directory: Directory = app.extensions["flagstream.directory"]

    def loaded() -> None:
        if not directory.loaded:
            raise _Answer(503, "no flag data yet")

    async def by_env_id(env_id: str) -> EnvironmentInfo:
        loaded()

        def find() -> EnvironmentInfo | None:
            env = directory.env_key_for_client_side_id(env_id)
            return None if env is None else directory.environment(env)

        info = await directory.await_known(find)  # one created a moment ago: see there
        if info is None:
            raise _Answer(404, "unknown environment ID")
        return info

    async def by_key(mobile: bool) -> EnvironmentInfo:
        loaded()
        key = strip_credential(request.headers.get("Authorization"))
        refusal = _Answer(401, f"unknown or malformed {'mobile' if mobile else 'SDK'} key")
        if key is None:
            raise refusal
        lookup = directory.env_key_for_mobile_key if mobile else directory.env_key_for_sdk_key

        def find() -> EnvironmentInfo | None:
            env = lookup(key)
            return None if env is None else directory.environment(env)

        info = await directory.await_known(find)  # one created a moment ago: see there
        if info is None:
            raise refusal
        return info

    async def evaluate(info: EnvironmentInfo, b64: str | None, *, mobile: bool | None,
                       secure: bool) -> bytes:
        """``mobile``: True (mobile availability), False (environment ID), None (all)."""
        body = None
        if b64 is None:
            if not is_json_content_type(request.headers.get("Content-Type")):
                raise _Answer(415, "REPORT needs Content-Type: application/json")
            raw = await request.get_data(cache=False, as_text=False)
            body = raw if isinstance(raw, bytes) else raw.encode()
        query = parse_query(request.args)
        try:
            _, context = request_context(b64=b64, body=body)
            if secure:
                check_secure_mode(info.secure_mode, info.sdk_key, context, query.secure_hash)
        except BadRequest as exc:
            raise _Answer(400, str(exc)) from None
        actor = directory.actor(info.key)
        if actor is None:
            raise _Answer(503, "environment is not loaded yet")
        model = actor.eval_model()
        if mobile is None:
            entries = evaluate_entries(model, context, mobile=False,
                                       with_reasons=query.with_reasons, every_flag=True)
        else:
            entries = evaluate_entries(model, context, mobile=mobile,
                                       with_reasons=query.with_reasons)
        return payload_json(entries)

    def preflight() -> Response:
        return Response(b"", status=200, headers=dict(
            cors_headers(request.headers.get("Origin"), JS_METHODS)))

    async def js_eval(env_id: str, b64: str | None = None) -> Response:
        if request.method == "OPTIONS":
            return preflight()
        try:
            info = await by_env_id(env_id)
            return _json(200, await evaluate(info, b64, mobile=False, secure=True), JS_METHODS)
        except _Answer as exc:
            return _error(exc, JS_METHODS)

    async def mobile_eval(b64: str | None = None) -> Response:
        try:
            info = await by_key(mobile=True)
            return _json(200, await evaluate(info, b64, mobile=True, secure=False), None)
        except _Answer as exc:
            return _error(exc, None)

    async def server_eval(b64: str | None = None) -> Response:
        try:
            info = await by_key(mobile=False)
            return _json(200, await evaluate(info, b64, mobile=None, secure=False), None)
        except _Answer as exc:
            return _error(exc, None)

    async def goals(env_id: str) -> Response:
        if request.method == "OPTIONS":
            return Response(b"", status=200, headers=dict(
                cors_headers(request.headers.get("Origin"), GOALS_METHODS)))
        try:
            await by_env_id(env_id)
        except _Answer as exc:
            return _error(exc, GOALS_METHODS)
        return _json(200, b"[]", GOALS_METHODS)

    def add(rule: str, endpoint: str, view: object, methods: list[str]) -> None:
        app.add_url_rule(rule, endpoint, view, methods=methods,  # type: ignore[arg-type]
                         provide_automatic_options=False)

    for alias, single in (("contexts", "context"), ("users", "user")):
        add(f"/sdk/evalx/<env_id>/{alias}/<b64>", f"cs_js_get_{alias}", js_eval,
            ["GET", "OPTIONS"])
        add(f"/sdk/evalx/<env_id>/{single}", f"cs_js_report_{single}", js_eval,
            ["REPORT", "OPTIONS"])
        add(f"/msdk/evalx/{alias}/<b64>", f"cs_mobile_get_{alias}", mobile_eval, ["GET"])
        add(f"/msdk/evalx/{single}", f"cs_mobile_report_{single}", mobile_eval, ["REPORT"])
        add(f"/sdk/evalx/{alias}/<b64>", f"cs_server_get_{alias}", server_eval, ["GET"])
        add(f"/sdk/evalx/{single}", f"cs_server_report_{single}", server_eval, ["REPORT"])
    add("/sdk/goals/<env_id>", "cs_goals", goals, ["GET", "OPTIONS"])
