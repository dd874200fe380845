"""Admin API routes for flag insights (the admin app applies its Bearer auth to them).

- ``GET /api/v1/environments/{env}/flags/{key}/insights`` →
  ``{"key", "lastEvaluated" (ms or null), "lastEvaluatedAt" (ISO-8601 or null),
  "totalEvaluations", "variations": [{"variation", "count"}], "days": [{"day": "YYYY-MM-DD",
  "count"}]}``; ``variation`` is null for evaluations that produced no variation index.
- ``GET /api/v1/environments/{env}/insights/stale?days=N`` (default 30) →
  ``{"days": N, "items": [{"key", "lastEvaluated", "lastEvaluatedAt"}]}``: flags not evaluated
  in the last N days, never-evaluated flags first.

With a ``FlagCatalog`` an unknown environment or flag is a 404 and a flag that exists but was
never evaluated answers zeros; without one, only what the events mentioned is known.
"""

from __future__ import annotations

import time

import orjson
import trio
from quart import Response, request
from quart_trio import QuartTrio

from insights.consumer import InsightsService
from insights.store import FlagInsights
from insights.timefmt import iso_from_ms

# The admin app's permission table entries for these routes (store/permissions.py): reads.
RIGHTS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/environments/<env>/flags/<key>/insights"): "read",
    ("GET", "/api/v1/environments/<env>/insights/stale"): "read",
}
_DAY_MS = 86_400_000
_MAX_DAYS = 36_500


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_from_ms(ms)


def _json(status: int, doc: object) -> Response:
    return Response(orjson.dumps(doc), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


def register_insights_routes(app: QuartTrio, insights: InsightsService) -> None:
    async def run_db(fn: object, *args: object) -> object:
        return await trio.to_thread.run_sync(fn, *args, limiter=insights.limiter)  # type: ignore[arg-type]

    def known_flags(env: str) -> list[str] | None:
        return None if insights.catalog is None else insights.catalog.flag_keys(env)

    async def flag_insights(env: str, key: str) -> Response:
        found = await run_db(insights.store.flag, env, key)
        if insights.catalog is not None:
            flags = known_flags(env)
            if flags is None:
                return _error(404, "not_found", f"unknown environment {env!r}")
            if key not in flags and found is None:
                return _error(404, "not_found", f"unknown flag {key!r} in environment {env!r}")
        elif found is None:
            return _error(404, "not_found", f"no evaluations recorded for flag {key!r} in {env!r}")
        result = found if isinstance(found, FlagInsights) else FlagInsights(key, None, 0, [], [])
        doc = result.to_json()
        doc["lastEvaluatedAt"] = _iso(result.last_evaluated)
        return _json(200, doc)

    async def stale(env: str) -> Response:
        raw = request.args.get("days", "30")
        if not raw.isdigit() or not 1 <= int(raw) <= _MAX_DAYS:
            return _error(400, "invalid", f"'days' must be an integer from 1 to {_MAX_DAYS}")
        days = int(raw)
        last = await run_db(insights.store.last_evaluated, env)
        assert isinstance(last, dict)
        flags = known_flags(env) if insights.catalog is not None else sorted(last)
        if flags is None:
            return _error(404, "not_found", f"unknown environment {env!r}")
        if insights.catalog is None and not last:
            return _error(404, "not_found", f"no evaluations recorded in environment {env!r}")
        cutoff = int(time.time() * 1000) - days * _DAY_MS
        items = [
            {"key": k, "lastEvaluated": last.get(k), "lastEvaluatedAt": _iso(last.get(k))}
            for k in flags
            if last.get(k) is None or last[k] < cutoff
        ]
        items.sort(
            key=lambda i: (i["lastEvaluated"] is not None, i["lastEvaluated"] or 0, i["key"])
        )
        return _json(200, {"days": days, "items": items})

    app.add_url_rule(
        "/api/v1/environments/<env>/flags/<key>/insights",
        "insights_flag",
        flag_insights,
        methods=["GET"],
    )
    app.add_url_rule(
        "/api/v1/environments/<env>/insights/stale", "insights_stale", stale, methods=["GET"]
    )
