"""The permission table: every route of the admin app and the right it needs.

A literal table, one entry per (method, route rule as registered), enforced by the admin
app's guard before the handler runs:

- ``public``: no credential (health, readiness, metrics, the OpenAPI file, signing in);
- ``authenticated``: any valid credential (the handler may narrow it, e.g. a non-admin sees
  and revokes only the tokens it created);
- ``read``: any role;
- ``write``: write flags and segments in the path's ``<env>``: an editor whose environments
  include it (or an unscoped editor), or an admin; without ``<env>`` in the path, an unscoped
  editor or an admin;
- ``admin``: the admin role.

Fail closed: a route with no entry is refused to everyone, the bootstrap token included
(403), and tests/store/test_store_permissions.py compares this table with the app's
``url_map``, so a new route without an entry fails CI. Route modules declare their own
entries as ``RIGHTS`` (e.g. store/account_routes.py, store/metrics.py,
insights/routes.py); ``create_admin_app(extra_rights=...)`` merges them.

Pure: no trio, no IO, no request objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from store.accounts import Principal

Right = Literal["public", "authenticated", "read", "write", "admin"]
RIGHTS_VALUES: tuple[Right, ...] = ("public", "authenticated", "read", "write", "admin")
Route = tuple[str, str]  # (method, rule)

OPENAPI_PATH = "/api/v1/openapi.yaml"
ENV_RULE = "/api/v1/environments/<env>"
ITEM_RULE = f"{ENV_RULE}/<any(flags, segments):kind>"

# The routes of store/admin_app.py.
CORE_RIGHTS: dict[Route, Right] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", OPENAPI_PATH): "public",
    ("POST", "/api/v1/environments"): "admin",
    ("GET", "/api/v1/environments"): "read",
    ("GET", ENV_RULE): "read",
    ("PATCH", ENV_RULE): "admin",
    ("DELETE", ENV_RULE): "admin",
    ("POST", f"{ENV_RULE}/rotate"): "admin",
    ("GET", ITEM_RULE): "read",
    ("GET", f"{ITEM_RULE}/<key>"): "read",
    ("PUT", f"{ITEM_RULE}/<key>"): "write",
    ("PATCH", f"{ITEM_RULE}/<key>"): "write",
    ("DELETE", f"{ITEM_RULE}/<key>"): "write",
    ("POST", f"{ENV_RULE}/import"): "write",
}


def build_table(parts: Iterable[Mapping[Route, str]]) -> dict[Route, Right]:
    """One table from the modules' ``RIGHTS``; a route listed twice or an unknown right is a
    programming error (ValueError at start-up, never a silent override)."""
    table: dict[Route, Right] = {}
    for part in parts:
        for route, right in part.items():
            if route in table:
                raise ValueError(f"{route[0]} {route[1]} has two permission entries")
            table[route] = _right(route, right)
    return table


def _right(route: Route, value: str) -> Right:
    for right in RIGHTS_VALUES:
        if value == right:
            return right
    raise ValueError(f"{route[0]} {route[1]}: unknown right {value!r}")


def right_of(table: Mapping[Route, Right], method: str, rule: str) -> Right | None:
    """The right ``method`` on ``rule`` needs; None if the table has no entry (refused).
    HEAD is GET's; OPTIONS (answered by the framework) is public where some method of the
    rule is public, else needs a credential."""
    if method == "HEAD":
        method = "GET"
    if method == "OPTIONS":
        rights = [r for (_, rl), r in table.items() if rl == rule]
        if not rights:
            return None
        return "public" if "public" in rights else "authenticated"
    return table.get((method, rule))


def refusal(principal: Principal, right: Right, env: str | None,
            kind: str | None, what: str) -> str | None:
    """Why ``principal`` may not use a route needing ``right`` (None: it may). ``env`` and
    ``kind`` come from the path; ``what`` names the route for the message."""
    if right in ("public", "authenticated", "read"):
        return None
    if right == "write":
        if principal.may_write(env):
            return None
        items = kind or "flags and segments"
        where = f"in environment {env}" if env is not None else "in every environment"
        if principal.role == "editor":
            return f"{principal.scope()} may not write {where}"
        return f"{principal.scope()} may not write {items} {where}"
    if principal.role == "admin":
        return None
    return f"{principal.scope()} may not {what}: it needs the admin role"
