"""The admin API's OpenAPI file: it lists every route the admin app has, and it ships with the
package (a node installed from a wheel serves it at ``GET /api/v1/openapi.yaml``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from quart_trio import QuartTrio

from insights.routes import register_insights_routes
from store.admin_app import create_admin_app
from store.approval_routes import register_approval_routes
from store.db import FlagDB
from store.history_routes import register_history_routes
from store.metrics import register_metrics_route
from store.schedule_routes import register_schedule_routes
from store.scheduler import Scheduler
from store.webhooks.routes import register_webhook_routes
from store.writer import Writer

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / "store" / "openapi.yaml"
PACKAGES = ("flagmodel", "bus", "store", "streamer", "ingest", "insights", "node", "loadtest")
# Methods the framework answers by itself on every route (HEAD for GET, OPTIONS for all).
IMPLICIT = {"HEAD", "OPTIONS"}


class NoPublisher:
    async def publish(self, msg: Any) -> None:
        pass


def admin_app(db: FlagDB) -> QuartTrio:
    # The same registrars store/service.py adds; registering a route calls nothing of its
    # service, so none is needed to read the routes.
    writer = Writer(db, NoPublisher())
    extra = [partial(register_metrics_route, collectors=[]),
             partial(register_insights_routes, insights=None),
             partial(register_webhook_routes, service=None),
             partial(register_history_routes, db=db, writer=writer),
             partial(register_approval_routes, writer=None, db=db, approvals=None),
             partial(register_schedule_routes, db=db, scheduler=Scheduler(db, writer))]
    return create_admin_app(writer=writer, db=db, token="t", extra_routes=extra)


def openapi_path(rule: str) -> str:
    """``/api/v1/environments/<env>/<any(flags, segments):kind>`` → ``.../{env}/{kind}``."""
    return re.sub(r"<(?:[^:>]*:)?([A-Za-z_]+)>", r"{\1}", rule)


def test_openapi_path_of_a_rule() -> None:
    assert openapi_path("/api/v1/environments/<env>/<any(flags, segments):kind>/<key>") \
        == "/api/v1/environments/{env}/{kind}/{key}"
    assert openapi_path("/healthz") == "/healthz"


def test_the_openapi_file_lists_every_admin_route(tmp_path: Path) -> None:
    db = FlagDB(tmp_path)
    try:
        app = admin_app(db)
        routes: set[tuple[str, str]] = set()
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static":
                continue
            for method in set(rule.methods or ()) - IMPLICIT:
                routes.add((method.lower(), openapi_path(rule.rule)))
    finally:
        db.close()
    doc = yaml.safe_load(OPENAPI.read_text())
    documented = {(method, path) for path, ops in doc["paths"].items()
                  for method in ops if method != "parameters"}
    assert len(routes) > 15
    assert sorted(routes - documented) == []  # an admin route the file does not describe
    assert sorted(documented - routes) == []  # a described route the admin app does not have


def test_a_wheel_of_the_package_carries_the_openapi_file(tmp_path: Path) -> None:
    # Built from a copy of the sources (a build/ folder left in the checkout could hold the
    # file whatever the packaging says), offline: the venv's setuptools, no index.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", "-w", str(tmp_path), str(src)],
                   check=True, capture_output=True, timeout=120)
    (wheel,) = tmp_path.glob("flagstream-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    # Import the unpacked package (not the checkout) and read the file the way the app does.
    code = ("import store.admin_app as a, sys; "
            "sys.stdout.buffer.write(a.__file__.encode() + b'\\n' + a.openapi_document())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                         capture_output=True, timeout=60, env={"PYTHONPATH": str(site)}).stdout
    where, _, body = out.partition(b"\n")
    assert where.decode().startswith(str(site))
    assert body == OPENAPI.read_bytes()
