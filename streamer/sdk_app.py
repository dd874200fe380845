"""The SDK listener's app (quart-trio on hypercorn): server-side polling and health.

Every payload comes pre-encoded from the environment's current
:class:`~streamer.environments.envstate.EnvView` (built once per revision and shared), so a poll
costs a dictionary lookup plus Quart's own overhead. Whole-environment answers carry an ETag derived
from the items' key:version pairs and answer 304 to a matching ``If-None-Match``; single items
carry ``"fs-v<version>"``. Bodies are gzipped when the client accepts gzip (cached per revision).

Other packages add routes through ``extra_routes`` (each a function that registers routes on
the app); they find the directory in ``app.extensions["flagstream.directory"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from bus.envelope import ItemKind
from store.containment import install_http_boundary
from store.http_guard import finish_unread_bodies
from streamer.environments.directory import Directory
from streamer.environments.envstate import EnvView, Item, etag_matches, item_etag
from streamer.node_readiness import node_waiting

MAX_BODY_BYTES = 5 * 1024 * 1024
JSON = "application/json"


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status=status, content_type="text/plain; charset=utf-8",
                    headers=headers)


def create_sdk_app(
    directory: Directory, *, extra_routes: Sequence[Callable[[QuartTrio], None]] = (),
    node_readiness: Path | None = None,
) -> QuartTrio:
    """``node_readiness``: the supervisor's file saying whether every worker of the node has
    its data (streamer/node_readiness.py); None: this worker answers ``/readyz`` for itself."""
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["RESPONSE_TIMEOUT"] = None  # streaming routes added by other packages need it
    app.config["BODY_TIMEOUT"] = 30
    app.url_map.strict_slashes = False
    app.extensions["flagstream.directory"] = directory

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        headers = dict(exc.get_headers()) if exc.code == 405 else None
        allow = {"Allow": headers["Allow"]} if headers and "Allow" in headers else None
        return _text(exc.code or 500, exc.description or exc.name, allow)

    # Any other exception a handler leaves (polling, client-side, events, metrics): 400 for
    # bad input, else 503 with Retry-After; counted and logged once per episode.
    install_http_boundary(app, directory.counters.failures, _text)

    async def env_view() -> EnvView | Response:
        if not directory.loaded:
            return _text(503, "no flag data yet", {"Retry-After": "5"})
        key = request.headers.get("Authorization", "")

        def find() -> EnvView | None:
            env = directory.env_key_for_sdk_key(key)
            return None if env is None else directory.view(env)

        view = await directory.await_known(find)  # a key created a moment ago: see there
        if view is None:
            return _text(401, "unknown or malformed SDK key")
        return view

    def cacheable(body: bytes, etag: str, gzipped: Callable[[], bytes] | None = None) -> Response:
        headers = {"ETag": etag, "Vary": "Accept-Encoding, Authorization"}
        inm = request.headers.get("If-None-Match")
        if inm is not None and etag_matches(inm, etag):
            return Response(b"", status=304, headers=headers)
        if gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", "").lower():
            headers["Content-Encoding"] = "gzip"
            body = gzipped()
        return Response(body, status=200, content_type=JSON, headers=headers)

    async def whole(which: str) -> Response:
        view = await env_view()
        if isinstance(view, Response):
            return view
        if which == "all_json":
            return cacheable(view.all_json, view.etag_all, lambda: view.gzipped("all_json"))
        if which == "segments_json":
            return cacheable(view.segments_json, view.etag_segments,
                             lambda: view.gzipped("segments_json"))
        return cacheable(view.flags_json, view.etag_flags, lambda: view.gzipped("flags_json"))

    async def single(kind: ItemKind, key: str) -> Response:
        view = await env_view()
        if isinstance(view, Response):
            return view
        item: Item | None = view.item(kind, key)
        if item is None or item.data is None:
            return _text(404, f"unknown {kind[:-1]} {key!r}")
        return cacheable(item.data, item_etag(item))

    @app.after_request
    async def _count(response: Response) -> Response:
        if request.path.startswith("/sdk/"):
            directory.counters.polled(response.status_code)
        return response

    finish_unread_bodies(app)

    @app.get("/sdk/latest-all")
    async def latest_all() -> Response:
        return await whole("all_json")

    @app.get("/sdk/latest-flags")
    @app.get("/sdk/flags")
    async def latest_flags() -> Response:
        return await whole("flags_json")

    @app.get("/sdk/latest-segments")
    async def latest_segments() -> Response:
        return await whole("segments_json")

    @app.get("/sdk/latest-flags/<path:key>")
    @app.get("/sdk/flags/<path:key>")
    async def one_flag(key: str) -> Response:
        return await single("flags", key)

    @app.get("/sdk/latest-segments/<path:key>")
    @app.get("/sdk/segments/<path:key>")
    async def one_segment(key: str) -> Response:
        return await single("segments", key)

    @app.get("/healthz")
    async def healthz() -> Response:
        return _text(200, "ok")

    @app.get("/readyz")
    async def readyz() -> Response:
        # The port is shared by every worker of the node: ready means all of them are.
        if not directory.ready:
            return _text(503, "loading" if not directory.loaded else "bus not synced")
        waiting = None if node_readiness is None else node_waiting(node_readiness)
        if waiting is not None:
            return _text(503, waiting)
        return _text(200, "ready")

    for register in extra_routes:
        register(app)
    return app
