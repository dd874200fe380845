"""Wiring of the store: FlagDB, bus publisher, snapshot server, writer and the admin API.

``run_store`` owns one nursery for all of them and reports the admin API's real (host, port)
through ``task_status.started`` once every part is listening. Start-up problems (a taken
port, an unusable data dir, a bus address that cannot be listened on) are raised as
:class:`StoreStartError` with a message the CLI prints as is.
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from prometheus_client.registry import Collector
from quart_trio import QuartTrio

from bus.publisher import BusPublisher
from bus.snapshot_server import serve_snapshots
from insights.consumer import InsightsConfig, run_insights
from insights.metrics import InsightsCollector
from insights.routes import RIGHTS as INSIGHTS_RIGHTS
from insights.routes import register_insights_routes
from store.accounts_db import AccountsDB
from store.admin_app import create_admin_app
from store.approval_routes import RIGHTS as APPROVAL_RIGHTS
from store.approval_routes import register_approval_routes
from store.approvals import ApprovalDB
from store.containment import Failures
from store.db import FlagDB
from store.history_routes import RIGHTS as HISTORY_RIGHTS
from store.history_routes import register_history_routes
from store.http_guard import RequestGuard
from store.hypercorn_setup import base_config
from store.metrics import RIGHTS as METRICS_RIGHTS
from store.metrics import FailuresCollector, StoreCollector, register_metrics_route
from store.schedule_routes import RIGHTS as SCHEDULE_RIGHTS
from store.schedule_routes import register_schedule_routes
from store.scheduler import Scheduler, SchedulerCollector
from store.webhooks.db import WebhookDB
from store.webhooks.policy import WebhookPolicy
from store.webhooks.routes import RIGHTS as WEBHOOK_RIGHTS
from store.webhooks.routes import register_webhook_routes
from store.webhooks.service import WebhookService
from store.webhooks.signal import CommitSignal
from store.writer import Writer

# The permission-table entries of the routes run_store adds to the admin app beside its own
# (store/permissions.py): one module's RIGHTS per registrar in ``extra`` below.
EXTRA_RIGHTS = (METRICS_RIGHTS, INSIGHTS_RIGHTS, WEBHOOK_RIGHTS, HISTORY_RIGHTS,
                APPROVAL_RIGHTS, SCHEDULE_RIGHTS)


class StoreStartError(Exception):
    """The store cannot start; the message says why, for the operator."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    data_dir: Path
    admin_bind: tuple[str, int]
    admin_token: str
    bus_address: str
    snapshot_address: str
    coalesce_window_s: float = 0.005
    max_body_bytes: int = 1_048_576
    # Pre-bound listening sockets from the supervisor; when given, served instead of binding.
    admin_sockets: list[socket.socket] | None = None
    heartbeat_interval_s: float = 1.0
    graceful_timeout_s: float = 5.0
    # Flag insights: the consumer reads Kinesis when a stream is named, else the local spools.
    insights: bool = True
    kinesis_stream: str | None = None
    kinesis_endpoint: str | None = None
    key_grace_s: float = 86400.0  # default grace period of a rotated SDK or mobile key
    body_timeout_s: float = 10.0  # a request body must arrive within this (store/http_guard.py)
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)  # store/webhooks/policy.py


class DBCatalog:
    """``ingest.ports.FlagCatalog`` over the flag store: which flags an environment has."""

    def __init__(self, db: FlagDB) -> None:
        self._db = db

    def flag_keys(self, env: str) -> list[str] | None:
        if self._db.get_environment(env) is None:
            return None
        return [item.key for item in self._db.list_items(env, "flags")]


def _open_db(data_dir: Path) -> FlagDB:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        return FlagDB(data_dir)
    except (OSError, sqlite3.Error) as exc:
        raise StoreStartError(f"data dir {data_dir} is unusable: {exc}") from None


def _bind_admin(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise StoreStartError(f"admin address {host}:{port} is unusable: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        why = "port is already in use" if exc.errno == errno.EADDRINUSE else str(exc)
        raise StoreStartError(f"admin address {host}:{port}: {why}") from None
    return sock


async def _start(nursery: trio.Nursery, what: str, fn: Any) -> Any:
    """``nursery.start(fn)``, with a start-up failure turned into a StoreStartError."""
    try:
        return await nursery.start(fn)
    except (OSError, ValueError) as exc:
        raise StoreStartError(f"{what}: {exc}") from None
    except Exception as exc:  # pynng raises its own exception types
        if type(exc).__module__.startswith("pynng"):
            raise StoreStartError(f"{what}: {exc}") from None
        raise


async def run_store(
    config: StoreConfig, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the store until cancelled; ``task_status.started((host, port))`` of the admin API."""
    db = _open_db(config.data_dir)
    accounts = AccountsDB(db.path)  # users, tokens, sessions: tables in the same file
    try:
        hooks_db = WebhookDB(db.path)
    except sqlite3.Error as exc:
        db.close()
        raise StoreStartError(f"data dir {config.data_dir} is unusable: {exc}") from None
    approvals = ApprovalDB(db.path)
    sockets = config.admin_sockets
    owned: list[socket.socket] = []
    try:
        if sockets is None:
            sockets = owned = [_bind_admin(*config.admin_bind)]
        try:
            async with trio.open_nursery() as nursery:
                publisher = BusPublisher(config.bus_address, epoch=db.epoch,
                                         initial_seq=db.latest_seq(),
                                         heartbeat_interval=config.heartbeat_interval_s)
                await _start(nursery, f"bus address {config.bus_address}", publisher.run)
                await _start(nursery, f"snapshot address {config.snapshot_address}",
                             partial(serve_snapshots, config.snapshot_address, db, epoch=db.epoch))
                failures = Failures()  # the admin handlers' and the writer's boundaries count here
                # The writer announces each commit to the webhooks on its way to the bus.
                signal = CommitSignal(publisher, db.latest_seq())
                writer = Writer(db, signal, window_s=config.coalesce_window_s,
                                shutdown_grace_s=config.graceful_timeout_s, failures=failures)
                await nursery.start(writer.run)
                webhooks = await nursery.start(WebhookService(
                    hooks_db, signal, policy=config.webhooks, failures=failures).run)
                # Applies scheduled changes, those missed while the store was down first.
                scheduler = Scheduler(db, writer, failures=failures)
                await nursery.start(scheduler.run)
                collectors: list[Collector] = [StoreCollector(db, writer, publisher),
                                               FailuresCollector(failures),
                                               SchedulerCollector(db, scheduler)]
                extra: list[Callable[[QuartTrio], None]] = [partial(
                    register_metrics_route, collectors=collectors),
                    partial(register_webhook_routes, service=webhooks),
                    partial(register_history_routes, db=db, writer=writer,
                            max_body_bytes=config.max_body_bytes),
                    partial(register_approval_routes, writer=writer, db=db, approvals=approvals,
                            max_body_bytes=config.max_body_bytes),
                    partial(register_schedule_routes, db=db, scheduler=scheduler,
                            max_body_bytes=config.max_body_bytes)]
                if config.insights:
                    service = await nursery.start(
                        run_insights,
                        InsightsConfig(config.data_dir, config.kinesis_stream,
                                       config.kinesis_endpoint),
                        DBCatalog(db),
                    )
                    extra.append(partial(register_insights_routes, insights=service))
                    collectors.append(InsightsCollector(service))
                app = create_admin_app(writer=writer, db=db, token=config.admin_token,
                                       max_body_bytes=config.max_body_bytes, extra_routes=extra,
                                       extra_rights=EXTRA_RIGHTS,
                                       key_grace_s=config.key_grace_s, failures=failures,
                                       accounts=accounts)
                hc = base_config(graceful_timeout_s=config.graceful_timeout_s)
                await nursery.start(partial(
                    worker_serve,
                    wrap_app(RequestGuard(app, body_timeout=config.body_timeout_s),  # type: ignore[arg-type]
                             hc.wsgi_max_body_size, None), hc,
                    sockets=Sockets(secure_sockets=[], insecure_sockets=list(sockets),
                                    quic_sockets=[])))
                host, port = sockets[0].getsockname()[:2]
                task_status.started((host, port))
        except BaseExceptionGroup as group:
            start_errors = group.subgroup(StoreStartError)
            if start_errors is not None:
                raise _first(start_errors) from None
            raise
    finally:
        for sock in owned:
            sock.close()
        accounts.close()
        hooks_db.close()
        approvals.close()
        db.close()


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
