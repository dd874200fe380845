"""Every route of a node's three listeners, and which credential each accepts (pure).

Read from ``streamer/fastpath/http_head.py`` and ``streamer/clientside/client_streams.py`` (stream
listener),
``streamer/sdk_app.py``, ``streamer/clientside/clientside_app.py``, ``ingest/http.py`` and
``streamer/metrics.py`` (SDK listener), ``store/admin_app.py``, ``store/metrics.py``,
``store/account_routes.py``, ``store/history_routes.py``, ``store/webhooks/routes.py``,
``store/approval_routes.py`` (its GET routes) and ``insights/routes.py`` (admin listener);
``store/openapi.yaml`` documents the last.
A route's path is a template: ``{cred}`` is the credential when the route takes it in the
path (an environment ID), ``{b64}`` a base64url context, ``{env}`` the environment key the
admin routes write to (a victim environment, so that no probe changes the one the
credentials belong to), ``{key}`` an item key. Hostile probes replace one of these, or add
``query`` parameters, or replace the body.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Cred(enum.Enum):
    """Where a route reads its credential, and so which kind it accepts."""

    SDK = "sdk"  # Authorization: <SDK key>
    MOBILE = "mobile"  # Authorization: <mobile key>
    CLIENT_ID = "client-side ID"  # in the path, {cred}
    ADMIN = "admin"  # Authorization: Bearer <admin token>
    NONE = "none"  # public: health, readiness, metrics


class Body(enum.Enum):
    NONE = "none"
    CONTEXT = "context"  # a REPORT: the context JSON
    EVENTS = "events"  # an events payload: a JSON array
    FLAG = "flag"  # admin PUT: a flag
    SEGMENT = "segment"  # admin PUT: a segment
    MERGE_PATCH = "merge patch"  # admin PATCH of a flag
    SEGMENT_PATCH = "segment merge patch"  # admin PATCH of a segment (no flag fields)
    NEW_ENV = "new environment"
    ROTATE = "rotate"
    IMPORT = "import"
    REVERT = "revert"  # POST .../revert: {"version": N}


@dataclass(frozen=True, slots=True)
class Route:
    listener: str  # "stream", "sdk" or "admin"
    method: str
    path: str
    cred: Cred
    body: Body = Body.NONE
    query: tuple[str, ...] = ()  # the parameters the route reads
    alias: bool = False  # another path to the same handler as a route before it
    default_query: str = ""  # sent when a probe sends no query (a route that needs one)

    @property
    def label(self) -> str:
        return f"{self.listener} {self.method} {self.path}"


def _stream() -> list[Route]:
    s = "stream"
    return [
        Route(s, "GET", "/all", Cred.SDK, query=("filter",)),
        Route(s, "GET", "/flags", Cred.SDK, query=("filter",)),
        Route(s, "GET", "/eval/{cred}/{b64}", Cred.CLIENT_ID, query=("h", "withReasons")),
        Route(s, "REPORT", "/eval/{cred}", Cred.CLIENT_ID, Body.CONTEXT, ("h", "withReasons")),
        Route(s, "GET", "/meval/{b64}", Cred.MOBILE, query=("withReasons",)),
        Route(s, "REPORT", "/meval", Cred.MOBILE, Body.CONTEXT, ("withReasons",)),
        Route(s, "GET", "/ping/{cred}", Cred.CLIENT_ID),
        Route(s, "GET", "/mping", Cred.MOBILE),
    ]


def _sdk() -> list[Route]:
    s = "sdk"
    routes = [
        Route(s, "GET", "/sdk/latest-all", Cred.SDK),
        Route(s, "GET", "/sdk/latest-flags", Cred.SDK),
        Route(s, "GET", "/sdk/flags", Cred.SDK, alias=True),
        Route(s, "GET", "/sdk/latest-flags/{key}", Cred.SDK),
        Route(s, "GET", "/sdk/flags/{key}", Cred.SDK, alias=True),
        Route(s, "GET", "/sdk/latest-segments/{key}", Cred.SDK),
        Route(s, "GET", "/sdk/segments/{key}", Cred.SDK, alias=True),
        Route(s, "GET", "/sdk/goals/{cred}", Cred.CLIENT_ID),
        Route(s, "POST", "/bulk", Cred.SDK, Body.EVENTS),
        Route(s, "POST", "/diagnostic", Cred.SDK, Body.EVENTS),
        Route(s, "POST", "/mobile", Cred.MOBILE, Body.EVENTS, alias=True),
        Route(s, "POST", "/mobile/events", Cred.MOBILE, Body.EVENTS, alias=True),
        Route(s, "POST", "/mobile/events/bulk", Cred.MOBILE, Body.EVENTS),
        Route(s, "POST", "/mobile/events/diagnostic", Cred.MOBILE, Body.EVENTS),
        Route(s, "POST", "/events/bulk/{cred}", Cred.CLIENT_ID, Body.EVENTS),
        Route(s, "POST", "/events/diagnostic/{cred}", Cred.CLIENT_ID, Body.EVENTS),
        Route(s, "GET", "/a/{cred}.gif", Cred.CLIENT_ID, query=("d",)),
        Route(s, "GET", "/healthz", Cred.NONE),
        Route(s, "GET", "/readyz", Cred.NONE),
        Route(s, "GET", "/metrics", Cred.NONE),
    ]
    q = ("h", "withReasons")
    for many, one in (("contexts", "context"), ("users", "user")):
        a = many == "users"
        routes += [
            Route(s, "GET", f"/sdk/evalx/{{cred}}/{many}/{{b64}}", Cred.CLIENT_ID, query=q,
                  alias=a),
            Route(s, "REPORT", f"/sdk/evalx/{{cred}}/{one}", Cred.CLIENT_ID, Body.CONTEXT, q, a),
            Route(s, "GET", f"/msdk/evalx/{many}/{{b64}}", Cred.MOBILE, query=q, alias=a),
            Route(s, "REPORT", f"/msdk/evalx/{one}", Cred.MOBILE, Body.CONTEXT, q, a),
            Route(s, "GET", f"/sdk/evalx/{many}/{{b64}}", Cred.SDK, query=q, alias=a),
            Route(s, "REPORT", f"/sdk/evalx/{one}", Cred.SDK, Body.CONTEXT, q, a),
        ]
    return routes


def _admin() -> list[Route]:
    a, env = "admin", "/api/v1/environments/{env}"
    routes = [
        Route(a, "GET", "/healthz", Cred.NONE),
        Route(a, "GET", "/readyz", Cred.NONE),
        Route(a, "GET", "/metrics", Cred.NONE),
        Route(a, "GET", "/api/v1/openapi.yaml", Cred.NONE),
        Route(a, "POST", "/api/v1/environments", Cred.ADMIN, Body.NEW_ENV),
        Route(a, "GET", "/api/v1/environments", Cred.ADMIN),
        Route(a, "GET", env, Cred.ADMIN),
        Route(a, "POST", env + "/rotate", Cred.ADMIN, Body.ROTATE),
        Route(a, "GET", env + "/changes", Cred.ADMIN,
              query=("limit", "before", "kind", "key", "actor", "since", "until")),
        Route(a, "POST", env + "/import", Cred.ADMIN, Body.IMPORT, ("lenient",)),
        Route(a, "GET", env + "/flags/{key}/insights", Cred.ADMIN),
        Route(a, "GET", env + "/insights/stale", Cred.ADMIN, query=("days",)),
        # store/account_routes.py: no SDK credential may read accounts or tokens.
        Route(a, "GET", "/api/v1/users", Cred.ADMIN),
        Route(a, "GET", "/api/v1/tokens", Cred.ADMIN),
        Route(a, "GET", "/api/v1/account", Cred.ADMIN),
        Route(a, "GET", env + "/change-requests", Cred.ADMIN,
              query=("status", "limit", "before")),
        Route(a, "GET", env + "/flags/{key}/change-requests", Cred.ADMIN,
              query=("status", "limit", "before")),
    ]
    for kind in ("flags", "segments"):
        item = f"{env}/{kind}/{{key}}"
        routes += [
            Route(a, "GET", f"{env}/{kind}", Cred.ADMIN),
            Route(a, "GET", item, Cred.ADMIN),
            Route(a, "PUT", item, Cred.ADMIN, Body.FLAG if kind == "flags" else Body.SEGMENT),
            Route(a, "PATCH", item, Cred.ADMIN,
                  Body.MERGE_PATCH if kind == "flags" else Body.SEGMENT_PATCH),
            Route(a, "DELETE", item, Cred.ADMIN),
            Route(a, "GET", f"{item}/versions", Cred.ADMIN, query=("limit", "before")),
            Route(a, "GET", f"{item}/versions/1", Cred.ADMIN),
            Route(a, "GET", f"{item}/diff", Cred.ADMIN, query=("from", "to"),
                  default_query="from=1&to=1"),
            Route(a, "POST", f"{item}/revert", Cred.ADMIN, Body.REVERT),
        ]
    return routes


ROUTES: tuple[Route, ...] = (*_stream(), *_sdk(), *_admin())


def accepts(route: Route, kind: str) -> bool:
    """Whether credential ``kind`` (a key of ``SecurityNode.credentials``) may be served 2xx
    on ``route``. A rotated-out key stays valid during its grace period, as the kind it was."""
    match route.cred:
        case Cred.NONE:
            return True
        case Cred.SDK:
            return kind in ("sdk", "old sdk", "other env's SDK key")
        case Cred.MOBILE:
            return kind in ("mobile", "old mobile")
        case Cred.CLIENT_ID:
            return kind == "client-side ID"
        case Cred.ADMIN:
            return kind == "admin"
