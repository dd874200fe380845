"""One streamer worker process: bus subscriber, directory, stream acceptor, SDK app and the
co-located ingest actor (analytics events to Kinesis or the local spool).

``python3 -m streamer.worker --worker-id N --stream-bind HOST:PORT --sdk-bind HOST:PORT
--bus ADDR --bus-snapshot ADDR --data-dir DIR [--heartbeat-interval S]``

When both listeners are up it prints exactly one JSON line on stdout (the supervisor waits for
it): ``{"event": "ready", "worker": N, "pid": P, "stream": "HOST:PORT", "sdk": "HOST:PORT"}``.
Logs go to stderr. SIGTERM or SIGINT: stop accepting, close every stream, exit 0. A taken port
or a bad argument: a message on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import stat
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from ingest.actor import IngestActor, IngestConfig
from ingest.http import register_event_routes
from store.http_guard import RequestGuard
from streamer.acceptor import Acceptor, GcPolicy
from streamer.client_actor import ClientLimits
from streamer.clientside_app import register_clientside_routes
from streamer.directory import Directory
from streamer.reuseport import DEFAULT_BACKLOG, BindError, open_reuseport_listener, parse_bind
from streamer.sdk_app import create_sdk_app

log = logging.getLogger("streamer.worker")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker_id: int
    stream_bind: tuple[str, int]
    sdk_bind: tuple[str, int]
    bus: str
    bus_snapshot: str
    data_dir: Path
    heartbeat_interval: float = 20.0
    bus_heartbeat_timeout: float = 3.0
    limits: ClientLimits = field(default_factory=ClientLimits)
    backlog: int = DEFAULT_BACKLOG
    kinesis_stream: str | None = None
    kinesis_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """What ``run_worker`` reports through ``task_status.started``."""

    stream: tuple[str, int]
    sdk: tuple[str, int]
    directory: Directory


def _hostport(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def run_worker(
    config: WorkerConfig, *, task_status: trio.TaskStatus[WorkerReady] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a worker until cancelled. Raises :class:`BindError` if a listener cannot be opened."""
    from streamer.bus_subscriber import BusSubscriber  # another engineer's module

    if not 0 < config.heartbeat_interval < 60:
        raise ValueError("heartbeat interval must be between 0 and 60 seconds")
    stream_sock = open_reuseport_listener(*config.stream_bind, backlog=config.backlog)
    try:
        sdk_sock = open_reuseport_listener(*config.sdk_bind, backlog=config.backlog)
    except BaseException:
        stream_sock.close()
        raise
    gc_policy = GcPolicy()
    gc_policy.install()
    directory = Directory(heartbeat_interval=config.heartbeat_interval)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(directory.run)
            subscriber = BusSubscriber(config.bus, config.bus_snapshot, directory,
                                       heartbeat_timeout=config.bus_heartbeat_timeout)
            await nursery.start(subscriber.run)

            def bus_synced() -> bool:
                stats = subscriber.statistics()
                return stats.last_seq is not None and stats.connected

            directory.set_readiness_probe(bus_synced)
            acceptor = Acceptor(stream_sock, directory, directory.counters, config.limits,
                                gc_policy=gc_policy)
            stream_addr = await nursery.start(acceptor.run)
            ingest = await nursery.start(IngestActor(IngestConfig(
                config.data_dir, config.worker_id, config.kinesis_stream,
                config.kinesis_endpoint)).run)
            hconfig = HypercornConfig()
            hconfig.bind = [f"fd://{os.dup(sdk_sock.fileno())}"]
            hconfig.backlog = config.backlog
            hconfig.accesslog = None
            hconfig.graceful_timeout = 1.0
            app = create_sdk_app(directory, extra_routes=[
                partial(register_event_routes, resolver=directory, ingest=ingest),
                register_clientside_routes])
            guarded = RequestGuard(app, body_timeout=config.limits.header_timeout)
            await nursery.start(partial(hypercorn_serve, guarded, hconfig))
            await nursery.start(gc_policy.run)
            task_status.started(
                WorkerReady(stream_addr, sdk_sock.getsockname()[:2], directory)
            )
            await trio.sleep_forever()
    finally:
        trio.lowlevel.notify_closing(stream_sock)
        stream_sock.close()
        sdk_sock.close()


def parse_args(argv: list[str] | None = None) -> WorkerConfig:
    p = argparse.ArgumentParser(prog="python3 -m streamer.worker", description=__doc__)
    p.add_argument("--worker-id", type=int, required=True)
    p.add_argument("--stream-bind", type=parse_bind, required=True, metavar="HOST:PORT")
    p.add_argument("--sdk-bind", type=parse_bind, required=True, metavar="HOST:PORT")
    p.add_argument("--bus", required=True, metavar="ADDR")
    p.add_argument("--bus-snapshot", required=True, metavar="ADDR")
    p.add_argument("--data-dir", type=Path, required=True, metavar="DIR")
    p.add_argument("--heartbeat-interval", type=float, default=20.0, metavar="S")
    p.add_argument("--max-connection-age", type=float, default=None, metavar="S")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--kinesis-stream", default=None)
    p.add_argument("--kinesis-endpoint", default=None)
    a = p.parse_args(argv)
    if not 0 < a.heartbeat_interval < 60:
        p.error("--heartbeat-interval must be greater than 0 and less than 60 seconds")
    if a.max_connection_age is not None and a.max_connection_age < 0:
        p.error("--max-connection-age must be 0 (never) or more")
    if not a.header_timeout > 0:
        p.error("--header-timeout must be greater than 0")
    return WorkerConfig(
        worker_id=a.worker_id, stream_bind=a.stream_bind, sdk_bind=a.sdk_bind, bus=a.bus,
        bus_snapshot=a.bus_snapshot, data_dir=a.data_dir,
        heartbeat_interval=a.heartbeat_interval,
        limits=ClientLimits(max_age=a.max_connection_age or None,
                            header_timeout=a.header_timeout),
        kinesis_stream=a.kinesis_stream, kinesis_endpoint=a.kinesis_endpoint,
    )


async def _watch_parent(cancel_scope: trio.CancelScope) -> None:
    """Exit when the supervisor goes away: it holds the write end of our stdin pipe."""
    if not stat.S_ISFIFO(os.fstat(0).st_mode):
        return
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with stdin:
        while await stdin.receive_some(4096):
            pass
    log.warning("supervisor is gone (stdin closed); exiting")
    cancel_scope.cancel()


async def _main(config: WorkerConfig) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_parent, nursery.cancel_scope)
            ready: WorkerReady = await nursery.start(run_worker, config)
            line = {"event": "ready", "worker": config.worker_id, "pid": os.getpid(),
                    "stream": _hostport(ready.stream), "sdk": _hostport(ready.sdk)}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            async for signum in signals:
                log.info("worker %d: %s, closing", config.worker_id, signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"%(asctime)s worker{config.worker_id} %(name)s %(message)s")
    try:
        trio.run(_main, config)
    except (BindError, BaseExceptionGroup) as exc:
        bind_error = _find_bind_error(exc)
        if bind_error is None:
            raise
        print(f"streamer.worker: {bind_error.strerror}", file=sys.stderr)
        return 2
    return 0


def _find_bind_error(exc: BaseException) -> BindError | None:
    if isinstance(exc, BindError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_bind_error(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())

