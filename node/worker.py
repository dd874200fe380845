"""One streamer worker process: bus subscriber, directory, stream acceptor, SDK app and the
co-located ingest actor (analytics events to Kinesis or the local spool).

``python3 -m node.worker --worker-id N --stream-bind HOST:PORT --sdk-bind HOST:PORT
--bus ADDR --bus-snapshot ADDR --data-dir DIR [--heartbeat-interval S]``

When both listeners are up it prints exactly one JSON line on stdout (the supervisor waits for
it): ``{"event": "ready", "worker": N, "pid": P, "stream": "HOST:PORT", "sdk": "HOST:PORT"}``.
Logs go to stderr. SIGTERM or SIGINT: stop accepting, close every stream, exit 0. A taken port
or a bad argument: a message on stderr and exit code 2.

``--stream-fd N --sdk-fd M``: serve listening sockets inherited from the supervisor (which
keeps them open across a restart, see `node.supervisor.HeldListeners`) instead of opening
them; the ``--*-bind`` addresses are then only what the readiness line reports.

``--node-readiness FILE``: the supervisor's node readiness file; ``/readyz`` is then 200 only
when this worker and the node are ready, and the worker reports its own readiness on stdout
(see `streamer.node_readiness`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import socket
import stat
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio
from hypercorn.trio import serve as hypercorn_serve

from ingest.actor import IngestActor, IngestConfig, IngestHandle
from ingest.http import register_event_routes
from node.stop_signal import StopSignal
from store.http_guard import RequestGuard
from store.hypercorn_setup import base_config
from streamer.clientside.client_groups import MAX_WARM_GROUPS
from streamer.clientside.clientside_app import register_clientside_routes
from streamer.environments.directory import Directory
from streamer.environments.propagation import PropagationProbe
from streamer.fastpath.acceptor import Acceptor
from streamer.fastpath.gc_policy import GcPolicy
from streamer.fastpath.load_monitor import (
    DEFAULT_WORKER_MEMORY_BUDGET_MIB,
    LoadBudget,
    LoadMonitor,
    run_load_probe,
)
from streamer.fastpath.reuseport import (
    DEFAULT_BACKLOG,
    BindError,
    open_reuseport_listener,
    parse_bind,
)
from streamer.fastpath.stream_gate import GateLimits, StreamGate, fd_capped
from streamer.fastpath.stream_limits import StreamLimits
from streamer.logging_setup import setup_logging
from streamer.metrics import WorkerMetrics, register_metrics_route
from streamer.node_readiness import report_readiness
from streamer.sdk_app import create_sdk_app

log = logging.getLogger("node.worker")


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
    limits: StreamLimits = field(default_factory=StreamLimits)
    backlog: int = DEFAULT_BACKLOG
    stream_fd: int | None = None  # inherited listening sockets (from the supervisor)
    sdk_fd: int | None = None
    kinesis_stream: str | None = None
    kinesis_endpoint: str | None = None
    gate: GateLimits = field(default_factory=GateLimits)
    load: LoadBudget = field(default_factory=LoadBudget)  # saturation: loop lag, memory
    max_context_groups: int = MAX_WARM_GROUPS  # client-side groups kept warm per environment
    drain_window: float = 5.0  # SIGTERM: streams are closed spread over this many seconds
    drain_timeout: float = 10.0  # ... and the worker exits within this
    metrics_dir: Path | None = None  # per-worker /metrics snapshots (default DATA_DIR/metrics)
    node_readiness: Path | None = None  # the supervisor's file (streamer/node_readiness.py)
    log_format: str = "json"


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """What ``run_worker`` reports through ``task_status.started``."""

    stream: tuple[str, int]
    sdk: tuple[str, int]
    directory: Directory
    ingest: IngestHandle | None = None
    ingest_done: trio.Event | None = None  # set when the ingest actor has flushed and ended


def _hostport(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def run_worker(
    config: WorkerConfig, *, task_status: trio.TaskStatus[WorkerReady] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a worker until cancelled. Raises :class:`BindError` if a listener cannot be opened."""
    from bus.subscriber import BusSubscriber  # another engineer's module

    if not 0 < config.heartbeat_interval < 60:
        raise ValueError("heartbeat interval must be between 0 and 60 seconds")
    stream_sock = _listener(config.stream_fd, config.stream_bind, config.backlog)
    try:
        sdk_sock = _listener(config.sdk_fd, config.sdk_bind, config.backlog)
    except BaseException:
        stream_sock.close()
        raise
    gc_policy = GcPolicy()
    gc_policy.install()
    # Wiring: every part gets its collaborators at construction, in dependency order.
    metrics = WorkerMetrics(config.worker_id,
                            metrics_dir=config.metrics_dir or config.data_dir / "metrics")
    load = LoadMonitor(config.load)
    gate = StreamGate(fd_capped(config.gate, resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
                      load=load, observe_duration=metrics.observe_duration)
    directory = Directory(gate=gate, probe=PropagationProbe(metrics.propagation.observe),
                          heartbeat_interval=config.heartbeat_interval,
                          max_context_groups=config.max_context_groups)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(directory.run)
            await nursery.start(partial(run_load_probe, load))
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
            ingest_actor = IngestActor(IngestConfig(
                config.data_dir, config.worker_id, config.kinesis_stream,
                config.kinesis_endpoint))
            ingest_done = trio.Event()

            async def run_ingest(task_status: trio.TaskStatus[IngestHandle]) -> None:
                try:
                    await ingest_actor.run(task_status=task_status)
                finally:
                    ingest_done.set()

            ingest = await nursery.start(run_ingest)
            hconfig = base_config(graceful_timeout_s=1.0)
            hconfig.bind = [f"fd://{os.dup(sdk_sock.fileno())}"]
            hconfig.backlog = config.backlog
            app = create_sdk_app(directory, node_readiness=config.node_readiness, extra_routes=[
                partial(register_event_routes, resolver=directory, ingest=ingest),
                register_clientside_routes,
                partial(register_metrics_route, metrics=metrics)])
            guarded = RequestGuard(app, body_timeout=config.limits.header_timeout)
            metrics.register(directory, subscriber=subscriber.statistics,
                             ingest=ingest.statistics, guard=guarded, gate=gate,
                             acceptor=acceptor)
            await nursery.start(metrics.run_snapshots)
            await nursery.start(partial(hypercorn_serve, guarded, hconfig))  # type: ignore[arg-type]
            await nursery.start(gc_policy.run)
            task_status.started(
                WorkerReady(stream_addr, sdk_sock.getsockname()[:2], directory, ingest,
                            ingest_done)
            )
            await trio.sleep_forever()
    finally:
        trio.lowlevel.notify_closing(stream_sock)
        stream_sock.close()
        sdk_sock.close()


def _listener(fd: int | None, bind: tuple[str, int], backlog: int) -> socket.socket:
    """The inherited listening socket ``fd``, or a new one on ``bind``."""
    if fd is None:
        return open_reuseport_listener(*bind, backlog=backlog)
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(exc.errno, f"inherited listener fd {fd}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def parse_args(argv: list[str] | None = None) -> WorkerConfig:
    p = argparse.ArgumentParser(prog="python3 -m node.worker", description=__doc__)
    p.add_argument("--worker-id", type=int, required=True)
    p.add_argument("--stream-bind", type=parse_bind, required=True, metavar="HOST:PORT")
    p.add_argument("--sdk-bind", type=parse_bind, required=True, metavar="HOST:PORT")
    p.add_argument("--bus", required=True, metavar="ADDR")
    p.add_argument("--bus-snapshot", required=True, metavar="ADDR")
    p.add_argument("--data-dir", type=Path, required=True, metavar="DIR")
    p.add_argument("--node-readiness", type=Path, default=None, metavar="FILE",
                   help="the supervisor's node readiness file (streamer/node_readiness.py)")
    p.add_argument("--stream-fd", type=int, default=None, metavar="N",
                   help="an inherited listening socket for --stream-bind")
    p.add_argument("--sdk-fd", type=int, default=None, metavar="N",
                   help="an inherited listening socket for --sdk-bind")
    p.add_argument("--heartbeat-interval", type=float, default=20.0, metavar="S")
    p.add_argument("--max-connection-age", type=float, default=None, metavar="S")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--kinesis-stream", default=None)
    p.add_argument("--kinesis-endpoint", default=None)
    p.add_argument("--max-connections", type=int, default=0, metavar="N")
    p.add_argument("--max-connections-per-key", type=int, default=0, metavar="N")
    p.add_argument("--max-connections-per-address", type=int, default=0, metavar="N")
    p.add_argument("--max-loop-lag", type=float, default=0.0, metavar="S")
    p.add_argument("--worker-memory-budget", type=int, default=DEFAULT_WORKER_MEMORY_BUDGET_MIB,
                   metavar="MIB")
    p.add_argument("--max-context-groups", type=int, default=MAX_WARM_GROUPS, metavar="N")
    p.add_argument("--drain-window", type=float, default=5.0, metavar="S")
    p.add_argument("--drain-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--log-format", choices=["json", "text"], default="text")
    a = p.parse_args(argv)
    if min(a.max_connections, a.max_connections_per_key, a.max_connections_per_address) < 0:
        p.error("connection limits must be 0 (none) or more")
    if a.max_context_groups < 1:
        p.error("--max-context-groups must be 1 or more")
    if a.max_loop_lag < 0 or a.worker_memory_budget < 0:
        p.error("--max-loop-lag and --worker-memory-budget must be 0 (none) or more")
    if not 0 <= a.drain_window < a.drain_timeout:
        p.error("--drain-window must be 0 or more and shorter than --drain-timeout")
    if not 0 < a.heartbeat_interval < 60:
        p.error("--heartbeat-interval must be greater than 0 and less than 60 seconds")
    if a.max_connection_age is not None and a.max_connection_age < 0:
        p.error("--max-connection-age must be 0 (never) or more")
    if not a.header_timeout > 0:
        p.error("--header-timeout must be greater than 0")
    return WorkerConfig(
        worker_id=a.worker_id, stream_bind=a.stream_bind, sdk_bind=a.sdk_bind, bus=a.bus,
        bus_snapshot=a.bus_snapshot, data_dir=a.data_dir, node_readiness=a.node_readiness,
        stream_fd=a.stream_fd, sdk_fd=a.sdk_fd,
        heartbeat_interval=a.heartbeat_interval,
        limits=StreamLimits(max_age=a.max_connection_age or None,
                            header_timeout=a.header_timeout),
        kinesis_stream=a.kinesis_stream, kinesis_endpoint=a.kinesis_endpoint,
        gate=GateLimits(max_connections=a.max_connections, max_per_key=a.max_connections_per_key,
                        max_per_address=a.max_connections_per_address),
        load=LoadBudget(max_loop_lag_s=a.max_loop_lag,
                        max_rss_bytes=a.worker_memory_budget * 1024 * 1024),
        drain_window=a.drain_window, drain_timeout=a.drain_timeout, log_format=a.log_format,
        max_context_groups=a.max_context_groups,
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
    stop = StopSignal()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_parent, nursery.cancel_scope)
            nursery.start_soon(stop.watch, signals)
            ready: WorkerReady | None = None
            with stop.startup:  # a stop during start-up ends it; nothing is up to drain
                ready = await nursery.start(run_worker, config)
                line = {"event": "ready", "worker": config.worker_id, "pid": os.getpid(),
                        "stream": _hostport(ready.stream), "sdk": _hostport(ready.sdk)}
                sys.stdout.write(json.dumps(line) + "\n")
                sys.stdout.flush()
                if config.node_readiness is not None:
                    directory = ready.directory
                    nursery.start_soon(report_readiness, lambda: directory.ready, _stdout_line)
            await stop.stopped.wait()
            log.info("worker %d: %s, draining", config.worker_id, stop.name)
            if ready is not None and not stop.startup.cancelled_caught:
                await drain(ready, config)
            nursery.cancel_scope.cancel()


def _stdout_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def drain(ready: WorkerReady, config: WorkerConfig) -> None:
    """Graceful drain: refuse new streams (503 + Retry-After), close the open ones spread over
    ``drain_window`` so clients come back as a trickle, then flush the ingest actor; all within
    ``drain_timeout`` (the supervisor kills at that deadline, systemd later still)."""
    started = trio.current_time()
    with trio.move_on_after(max(0.0, config.drain_timeout - 0.5)) as scope:
        closed = await ready.directory.gate.drain(config.drain_window)
        if ready.ingest is not None and ready.ingest_done is not None:
            ready.ingest.close()
            await ready.ingest_done.wait()
    log.info("worker %d: drained %d streams in %.1f s%s", config.worker_id, closed if not
             scope.cancelled_caught else -1, trio.current_time() - started,
             " (deadline reached)" if scope.cancelled_caught else "")


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    setup_logging(f"worker{config.worker_id}", config.log_format)
    try:
        trio.run(_main, config)
    except (BindError, BaseExceptionGroup) as exc:
        bind_error = _find_bind_error(exc)
        if bind_error is None:
            raise
        print(f"node.worker: {bind_error.strerror}", file=sys.stderr)
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

