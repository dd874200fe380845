"""Admin API routes of webhooks (all of them need the ``admin`` right: the node calls the
URL an admin registers, from inside the network it runs in).

- ``POST /api/v1/webhooks`` ``{"url", "secret"?, "environments"?, "kinds"?, "enabled"?}`` ->
  201 the webhook with its ``secret`` (generated when absent; shown only here).
- ``GET /api/v1/webhooks`` -> ``{"items": [...]}``; ``GET /api/v1/webhooks/{id}``.
- ``PATCH /api/v1/webhooks/{id}`` (JSON merge patch of the same fields) -> 200;
  ``{"enabled": true}`` also clears a webhook that gave up.
- ``DELETE /api/v1/webhooks/{id}`` -> 204.
- ``GET /api/v1/webhooks/{id}/deliveries?limit=N`` -> the newest delivery records.
"""

from __future__ import annotations

import secrets
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from store.admin_app import ENV_PATCH_TYPES
from store.admin_http import ApiError, actor, check_key, json_response, read_json
from store.history_routes import HISTORY_KINDS
from store.webhooks.db import TooManyWebhooksError, Webhook
from store.webhooks.policy import MAX_FILTER_ITEMS, secret_problem, url_problem
from store.webhooks.service import WebhookService

RIGHTS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/webhooks"): "admin",
    ("GET", "/api/v1/webhooks"): "admin",
    ("GET", "/api/v1/webhooks/<hook_id>"): "admin",
    ("PATCH", "/api/v1/webhooks/<hook_id>"): "admin",
    ("DELETE", "/api/v1/webhooks/<hook_id>"): "admin",
    ("GET", "/api/v1/webhooks/<hook_id>/deliveries"): "admin",
}
FIELDS = ("url", "secret", "environments", "kinds", "enabled")
DEFAULT_DELIVERIES = 50
_MAX_BODY = 16 * 1024  # a webhook's settings are small


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _fields(body: Any, *, creating: bool) -> dict[str, Any]:
    """The checked fields of a POST or PATCH body (400 naming the first bad one)."""
    if not isinstance(body, dict):
        raise ApiError(400, "(root): expected an object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown field (known: {', '.join(FIELDS)})")
    if creating and "url" not in body:
        raise ApiError(400, "url: required string")
    out: dict[str, Any] = {}
    for name, value in body.items():
        problem: str | None = None
        if name == "url":
            problem = url_problem(value)
        elif name == "secret":
            problem = secret_problem(value)
        elif name == "enabled":
            problem = None if isinstance(value, bool) else "enabled: expected boolean"
        else:
            value = _names(name, value)
        if problem is not None:
            raise ApiError(400, problem)
        out[name] = value
    return out


def _names(name: str, value: Any) -> list[str] | None:
    """``environments`` (environment keys) or ``kinds`` (history kinds); null: all."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_FILTER_ITEMS \
            or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{name}: expected null (all) or a list of 1 to "
                       f"{MAX_FILTER_ITEMS} strings")
    for v in value:
        if name == "kinds" and v not in HISTORY_KINDS:
            raise ApiError(400, f"kinds: {v[:50]!r} is not one of {', '.join(HISTORY_KINDS)}")
        if name == "environments":
            check_key(v, "environment key in environments")
    return sorted(set(value))


def register_webhook_routes(app: QuartTrio, service: WebhookService) -> None:
    """Add the routes; nothing of ``service`` is used until a request comes."""

    def find(hook_id: str) -> Webhook:
        hook = service.db.get(hook_id) if len(hook_id) <= 64 else None
        if hook is None:
            raise ApiError(404, f'webhook "{hook_id[:64]}" not found')
        return hook

    async def create() -> Response:
        fields = _fields(await read_json(_MAX_BODY), creating=True)
        db, policy = service.db, service.policy
        secret = fields.get("secret") or new_secret()
        try:
            hook = await trio.to_thread.run_sync(lambda: db.create(
                url=fields["url"], secret=secret, environments=fields.get("environments"),
                kinds=fields.get("kinds"), enabled=fields.get("enabled", True), actor=actor(),
                max_webhooks=policy.max_webhooks))
        except TooManyWebhooksError:
            raise ApiError(409, f"at most {policy.max_webhooks} webhooks; delete one "
                           "first") from None
        service.reload()
        return json_response({**hook.as_json(), "secret": hook.secret}, 201)

    async def list_all() -> Response:
        return json_response({"items": [h.as_json() for h in service.db.all()]})

    async def get_one(hook_id: str) -> Response:
        return json_response(find(hook_id).as_json())

    async def update(hook_id: str) -> Response:
        find(hook_id)
        fields = _fields(await read_json(_MAX_BODY, ENV_PATCH_TYPES), creating=False)
        hook = await trio.to_thread.run_sync(service.db.update, hook_id, fields)
        if hook is None:
            raise ApiError(404, f'webhook "{hook_id}" not found')
        service.reload()
        return json_response(hook.as_json())

    async def delete(hook_id: str) -> Response:
        find(hook_id)
        await trio.to_thread.run_sync(service.db.delete, hook_id)
        service.reload()
        return Response(b"", status=204)

    async def deliveries(hook_id: str) -> Response:
        hook = find(hook_id)
        kept = service.policy.deliveries_kept
        raw = request.args.get("limit") or str(min(DEFAULT_DELIVERIES, kept))
        if not raw.isdigit() or not 1 <= int(raw) <= kept:
            raise ApiError(400, f"query parameter limit must be an integer from 1 to {kept}")
        items = service.db.deliveries(hook.id, int(raw))
        return json_response({"webhook": hook.as_json(),
                              "items": [d.as_json() for d in items]})

    base, one = "/api/v1/webhooks", "/api/v1/webhooks/<hook_id>"
    app.add_url_rule(base, "webhooks_create", create, methods=["POST"])
    app.add_url_rule(base, "webhooks_list", list_all, methods=["GET"])
    app.add_url_rule(one, "webhooks_get", get_one, methods=["GET"])
    app.add_url_rule(one, "webhooks_update", update, methods=["PATCH"])
    app.add_url_rule(one, "webhooks_delete", delete, methods=["DELETE"])
    app.add_url_rule(f"{one}/deliveries", "webhooks_deliveries", deliveries, methods=["GET"])
