"""The node supervisor: the process ``flagstream serve`` runs.

Theory of operation
-------------------
The supervisor sets the umask to 0077 (every file the node creates is its user's only), then
checks the data dir (created 0700) and the listen addresses, so a taken port or an
unusable directory is one clear message and a non-zero exit, before anything starts. It then
runs the store in its own process (SQLite, admin API, bus publisher, snapshot server) and
starts N streamer workers as child processes (``python -m node.worker``). Each worker has
its own ``SO_REUSEPORT`` listeners on the stream and SDK ports, so the kernel spreads
connections over them and no process needs more than its share of the 20,000 file descriptors.
The supervisor opens each worker slot's pair and the worker inherits them (:class:`HeldListeners`),
so they outlive a worker that is restarted at once: connections made in between wait in the
kernel's queue for the new worker instead of being refused.

The supervisor keeps one bound but not listening ``SO_REUSEPORT`` socket per SDK-facing port.
It reserves the port (port 0 is resolved once, then every worker and every restarted worker
binds the same number) while taking no connections itself: the kernel only hands connections
to listening sockets.

A worker announces that it is up with one JSON line on stdout, and then, on further lines,
whether it has its data; the supervisor turns those into the node's readiness, which every
worker's ``/readyz`` reads (:mod:`streamer.node_readiness`). A worker that dies after a healthy
run is restarted at once; one that keeps dying soon after start backs off 1 s doubling to 30 s,
with its listeners closed meanwhile (see :func:`restart_delay`); its clients reconnect to the
other workers. A worker that dies before its first readiness line
ends the node: that is a configuration problem, not a crash to retry.

SIGTERM or SIGINT drains: workers get SIGTERM (they stop accepting and close their streams),
then ``drain_timeout`` later anything left is killed, and the store stops last. The signal is
watched from the start: one that arrives while the store or the workers are still starting
cancels the start-up (a worker being spawned is stopped, the ones already up are drained) and
the node exits 0 without printing ``ready``, as it would after a stop once ready: the operator
asked for a stop and got one, with no process left behind.

A ``--workers`` count above what the machine can hold (:mod:`node.worker_limit`) is refused
before anything starts, with the bound and the resource that sets it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from node.stop_signal import StopSignal
from node.worker_limit import WorkerLimit, check_workers, memtotal_bytes, worker_limit
from streamer.clientside.client_groups import MAX_WARM_GROUPS
from streamer.fastpath.load_monitor import DEFAULT_WORKER_MEMORY_BUDGET_MIB
from streamer.fastpath.reuseport import open_reuseport_listener
from streamer.node_readiness import MAX_REPORT_LINE, READINESS_FILE, NodeReadiness, parse_report

log = logging.getLogger("flagstream.supervisor")

READY_TIMEOUT_S = 60.0
RESTART_BACKOFF_MAX_S = 30.0
HEALTHY_RESET_S = 60.0


class StartError(Exception):
    """The node cannot start; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    role: str  # "serve" | "store" | "streamer"
    data_dir: Path
    stream_bind: tuple[str, int]
    sdk_bind: tuple[str, int]
    admin_bind: tuple[str, int]
    workers: int
    admin_token: str | None
    bus: str | None
    bus_snapshot: str | None
    kinesis_stream: str | None
    kinesis_endpoint: str | None
    heartbeat_interval: float
    coalesce_window: float
    drain_timeout: float
    drain_window: float = 5.0
    max_connection_age: float = 0.0
    max_connections: int = 0
    max_connections_per_key: int = 0
    max_connections_per_address: int = 0
    max_loop_lag: float = 0.0
    worker_memory_budget: int = DEFAULT_WORKER_MEMORY_BUDGET_MIB  # MiB
    max_context_groups: int = MAX_WARM_GROUPS
    header_timeout: float = 10.0
    key_grace: float = 86400.0
    log_format: str = "json"

    @classmethod
    def from_settings(cls, role: str, s: dict[str, Any]) -> NodeConfig:
        from node.config import OPTIONS

        def get(attr: str) -> Any:
            if attr in s:
                return s[attr]
            return OPTIONS[attr.replace("_", "-")].default

        workers = get("workers") or max(1, os.cpu_count() or 1)
        return cls(
            role=role,
            data_dir=Path(get("data_dir")),
            stream_bind=get("stream_bind"),
            sdk_bind=get("sdk_bind"),
            admin_bind=get("admin_bind"),
            workers=int(workers),
            admin_token=get("admin_token"),
            bus=get("bus"),
            bus_snapshot=get("bus_snapshot"),
            kinesis_stream=get("kinesis_stream"),
            kinesis_endpoint=get("kinesis_endpoint"),
            heartbeat_interval=float(get("heartbeat_interval")),
            coalesce_window=float(get("coalesce_window")),
            drain_timeout=float(get("drain_timeout")),
            drain_window=float(get("drain_window")),
            max_connection_age=float(get("max_connection_age")),
            max_connections=int(get("max_connections")),
            max_connections_per_key=int(get("max_connections_per_key")),
            max_connections_per_address=int(get("max_connections_per_address")),
            max_loop_lag=float(get("max_loop_lag")),
            worker_memory_budget=int(get("worker_memory_budget")),
            max_context_groups=int(get("max_context_groups")),
            header_timeout=float(get("header_timeout")),
            key_grace=float(get("key_grace")),
            log_format=str(get("log_format")),
        )


def prepare_data_dir(path: Path) -> None:
    """Create the data dir 0700 (it holds the keys, the admin token and the event spool);
    warn about an existing one that others can read (its mode is the operator's)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("data dir %s is accessible to other users (mode %o); it holds the "
                        "SDK keys and the admin token: chmod 700 it", path, mode)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise StartError(
            f"data dir {path} is unusable: {exc.strerror or exc} "
            "(choose another with --data-dir or FLAGSTREAM_DATA_DIR)"
        ) from None


def ensure_admin_token(data_dir: Path, given: str | None) -> tuple[str, bool]:
    """Return (token, generated_now). A generated token is stored 0600 in the data dir."""
    if given:
        return given, False
    path = data_dir / "admin-token"
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token, False
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token, True


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_admin_exposure(bind: tuple[str, int], given: str | None, data_dir: Path) -> None:
    """The admin API listens beyond loopback only with a token the operator configured.

    A generated token is fine on 127.0.0.1 (the operator reads it from the data dir), but on
    a reachable address the node refuses to invent one and print it to a log.
    """
    if is_loopback(bind[0]):
        return
    stored = data_dir / "admin-token"
    if given or (stored.exists() and stored.read_text().strip()):
        if given is not None and len(given) < 16:
            raise StartError(f"admin_token: at least 16 characters are required when the "
                             f"admin API listens on {bind[0]} (not loopback)")
        return
    raise StartError(
        f"admin_bind {bind[0]}:{bind[1]} is not a loopback address and no admin token is "
        "configured: set --admin-token / FLAGSTREAM_ADMIN_TOKEN, or bind 127.0.0.1")


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)


def reserve_port(host: str, port: int, label: str) -> socket.socket:
    """Bind (not listen) a SO_REUSEPORT socket: checks the address and fixes port 0."""
    if port != 0:
        try:
            with socket.create_connection((_probe_host(host), port), timeout=0.5):
                pass
        except OSError:
            pass
        else:
            raise StartError(f"cannot listen on {host}:{port} ({label}): port is taken")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartError(f"cannot listen on {host}:{port} ({label}): {exc.strerror}") from None
    return sock


def _url(hostport: tuple[str, int]) -> str:
    host, port = hostport
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def restart_delay(previous: float | None, ran_for: float) -> float:
    """Seconds to wait before restarting a worker that ran ``ran_for`` seconds; ``previous``
    is the delay before its last restart (None: never restarted).

    A worker that crashes after a healthy run is restarted at once: its streams are
    reconnecting right now and every second the port refuses them pushes their SDK backoff
    up. A worker that keeps crashing soon after start backs off 1, 2, 4, ... 30 s.
    """
    if previous is None or ran_for > HEALTHY_RESET_S:
        return 0.0
    return min(max(1.0, previous * 2), RESTART_BACKOFF_MAX_S)


class HeldListeners:
    """One worker slot's two listening sockets (stream, SDK), opened and kept by the supervisor.

    The worker inherits them (``--stream-fd``/``--sdk-fd``). While a worker that died after a
    healthy run is restarted, they stay open: the kernel keeps queueing the slot's new
    connections (up to the backlog) for the next worker instead of refusing them, so a
    reconnect herd does not build up SDK backoff against a closed port while the new process
    starts (about 1.3 s here). They are closed while a crashing worker backs off (nobody would
    serve the queue) and at shutdown before the worker drains, so the port refuses as before.
    """

    def __init__(self, stream: tuple[str, int], sdk: tuple[str, int]) -> None:
        self.stream = stream
        self.sdk = sdk
        self._socks: tuple[socket.socket, socket.socket] | None = None

    def open(self) -> tuple[int, int]:
        """The two file descriptors, opening the sockets if they are not open."""
        if self._socks is None:
            first = open_reuseport_listener(*self.stream)
            try:
                self._socks = (first, open_reuseport_listener(*self.sdk))
            except BaseException:
                first.close()
                raise
        return self._socks[0].fileno(), self._socks[1].fileno()

    @property
    def is_open(self) -> bool:
        return self._socks is not None

    def close(self) -> None:
        if self._socks is not None:
            for sock in self._socks:
                sock.close()
            self._socks = None


class WorkerSupervisor:
    """Starts one worker process, waits for its readiness line and restarts it on failure."""

    def __init__(self, worker_id: int, argv: list[str],
                 listeners: HeldListeners | None = None,
                 readiness: NodeReadiness | None = None) -> None:
        self.worker_id = worker_id
        self.argv = argv
        self.listeners = listeners
        self.readiness = readiness
        self.process: trio.Process | None = None
        self.restarts = 0
        self.stopping = False
        self.started = False  # its first start line came

    async def _spawn(self) -> tuple[trio.Process, dict[str, Any], bytes]:
        """The started worker, its start line, and what it wrote after that line."""
        # The worker's stdin is a pipe we never write to: when this process dies, even by
        # kill -9, the worker reads EOF and exits, so no orphan keeps the ports.
        # (PR_SET_PDEATHSIG would not do: trio spawns from a cached thread, and the signal
        # fires when that thread exits.)
        argv, fds = self.argv, tuple[int, ...]()
        if self.listeners is not None:
            try:
                fds = self.listeners.open()
            except OSError as exc:
                raise StartError(f"worker {self.worker_id}: {exc}") from None
            argv = [*argv, "--stream-fd", str(fds[0]), "--sdk-fd", str(fds[1])]
        proc = await trio.lowlevel.open_process(argv, stdout=sys_pipe(), stdin=sys_pipe(),
                                                pass_fds=fds)
        self.process = proc
        assert proc.stdout is not None
        buf = b""
        with trio.move_on_after(READY_TIMEOUT_S):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(4096)
                if not chunk:
                    break
                buf += chunk
        line, _, rest = buf.partition(b"\n")
        try:
            ready = json.loads(line)
            if ready.get("event") != "ready":
                raise ValueError(line)
        except ValueError:
            await self._stop(proc, grace=1.0)
            raise StartError(
                f"worker {self.worker_id} did not start (exit code {proc.returncode}); "
                "see its messages above"
            ) from None
        return proc, ready, rest

    async def run(self, *, task_status: trio.TaskStatus[dict[str, Any]]) -> None:
        proc, ready, rest = await self._spawn()
        self.started = True
        task_status.started(ready)
        backoff: float | None = None
        while True:
            started_at = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_reports, proc, rest)
                await proc.wait()
            # Not ready from the moment it is gone; marked before the log line and before
            # its listeners close, so whoever sees either already sees a node that waits.
            self._reported(False)
            await _close_pipes(proc)  # each restart would otherwise leak two fds
            if self.stopping:
                return
            backoff = restart_delay(backoff, trio.current_time() - started_at)
            if backoff > 0 and self.listeners is not None:
                self.listeners.close()  # refuse rather than queue for nobody while it waits
            log.warning("worker %d exited with code %s; restarting in %.0f s",
                        self.worker_id, proc.returncode, backoff)
            await trio.sleep(backoff)
            self.restarts += 1
            try:
                proc, _, rest = await self._spawn()
            except StartError as exc:
                log.error("%s", exc)
                proc, rest = self.process, b""  # type: ignore[assignment]

    def _reported(self, ready: bool) -> None:
        if self.readiness is not None:
            self.readiness.set(self.worker_id, ready)

    async def _read_reports(self, proc: trio.Process, rest: bytes) -> None:
        """Read the worker's stdout to its end (so it never blocks on a full pipe) and pass
        its readiness reports on; ``rest`` is what came with its start line."""
        assert proc.stdout is not None
        buf = rest
        while True:
            *lines, buf = buf.split(b"\n")
            for line in lines:
                report = parse_report(line)
                if report is not None:
                    self._reported(report)
            if len(buf) > MAX_REPORT_LINE:
                buf = b""  # not a report: a bounded buffer drops it
            chunk = await proc.stdout.receive_some(65536)
            if not chunk:
                return
            buf += chunk

    async def terminate(self, grace: float) -> None:
        self.stopping = True
        if self.listeners is not None:
            self.listeners.close()  # once the worker has drained, the port refuses as before
        if self.process is not None:
            await self._stop(self.process, grace)

    @staticmethod
    async def _stop(proc: trio.Process, grace: float) -> None:
        if proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()


def sys_pipe() -> int:
    import subprocess

    return subprocess.PIPE


async def _close_pipes(proc: trio.Process) -> None:
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            await stream.aclose()


def worker_argv(cfg: NodeConfig, worker_id: int, stream: tuple[str, int],
                sdk: tuple[str, int], bus: str, snap: str) -> list[str]:
    argv = [
        sys.executable, "-m", "node.worker",
        "--worker-id", str(worker_id),
        "--stream-bind", f"{stream[0]}:{stream[1]}",
        "--sdk-bind", f"{sdk[0]}:{sdk[1]}",
        "--bus", bus, "--bus-snapshot", snap,
        "--data-dir", str(cfg.data_dir),
        "--node-readiness", str(cfg.data_dir / READINESS_FILE),
        "--heartbeat-interval", str(cfg.heartbeat_interval),
        "--header-timeout", str(cfg.header_timeout),
    ]  # fmt: skip
    if cfg.max_connection_age > 0:
        argv += ["--max-connection-age", str(cfg.max_connection_age)]
    argv += [
        "--max-connections", str(cfg.max_connections),
        "--max-connections-per-key", str(cfg.max_connections_per_key),
        "--max-connections-per-address", str(cfg.max_connections_per_address),
        "--max-loop-lag", str(cfg.max_loop_lag),
        "--worker-memory-budget", str(cfg.worker_memory_budget),
        "--max-context-groups", str(cfg.max_context_groups),
        "--drain-window", str(cfg.drain_window),
        "--drain-timeout", str(cfg.drain_timeout),
        "--log-format", cfg.log_format,
    ]  # fmt: skip
    if cfg.kinesis_stream:
        argv += ["--kinesis-stream", cfg.kinesis_stream]
    if cfg.kinesis_endpoint:
        argv += ["--kinesis-endpoint", cfg.kinesis_endpoint]
    return argv


def machine_worker_limit() -> WorkerLimit:
    """The ``--workers`` bound of this machine (CPUs and /proc/meminfo's MemTotal)."""
    try:
        memory = memtotal_bytes(Path("/proc/meminfo").read_text())
    except OSError:
        memory = None
    return worker_limit(os.cpu_count() or 1, memory)


async def run_node(cfg: NodeConfig, out: Callable[[str], None]) -> None:
    """Run the node until SIGTERM/SIGINT. Raises StartError for configuration problems."""
    if cfg.role in ("serve", "streamer"):
        refused = check_workers(cfg.workers, machine_worker_limit())
        if refused is not None:
            raise StartError(refused)
    prepare_data_dir(cfg.data_dir)
    from bus.addresses import local_bus_addresses, snapshot_address_for

    if cfg.role == "serve":
        bus, snap = local_bus_addresses(cfg.data_dir)
    else:
        bus = cfg.bus or "tcp://127.0.0.1:7100"
        try:
            snap = cfg.bus_snapshot or snapshot_address_for(bus)
        except ValueError as exc:
            raise StartError(f"--bus: {exc}") from None

    reserved: list[socket.socket] = []
    stream = sdk = None
    if cfg.role in ("serve", "streamer"):
        r1 = reserve_port(*cfg.stream_bind, "stream")
        reserved.append(r1)
        r2 = reserve_port(*cfg.sdk_bind, "sdk")
        reserved.append(r2)
        stream = (cfg.stream_bind[0], r1.getsockname()[1])
        sdk = (cfg.sdk_bind[0], r2.getsockname()[1])

    supervisors: list[WorkerSupervisor] = []
    stop = StopSignal()
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stop.watch, signals)
                readiness = None
                with stop.startup:
                    readiness = await _start_parts(cfg, nursery, supervisors, out,
                                                   stream, sdk, bus, snap)
                await stop.stopped.wait()
                log.info("received %s; draining", stop.name)
                if stop.startup.cancelled_caught:
                    up = sum(1 for sup in supervisors if sup.started)
                    out(f"flagstream: {stop.name} during start-up ({up} of {cfg.workers} "
                        "workers were up); stopping")
                if readiness is not None:
                    readiness.drain()  # load balancers stop sending before streams close
                async with trio.open_nursery() as stopper:
                    for sup in supervisors:
                        stopper.start_soon(sup.terminate, cfg.drain_timeout)
                nursery.cancel_scope.cancel()
    finally:
        for sup in supervisors:
            if sup.listeners is not None:
                sup.listeners.close()
        for s in reserved:
            s.close()


async def _start_parts(cfg: NodeConfig, nursery: trio.Nursery,
                       supervisors: list[WorkerSupervisor], out: Callable[[str], None],
                       stream: tuple[str, int] | None, sdk: tuple[str, int] | None,
                       bus: str, snap: str) -> NodeReadiness | None:
    """Start the store and the workers in ``nursery`` and print the listening lines and
    ``ready``. Each worker's supervisor is in ``supervisors`` before its process starts, so
    a start-up cancelled half-way still stops it."""
    if cfg.role in ("serve", "store"):
        check_admin_exposure(cfg.admin_bind, cfg.admin_token, cfg.data_dir)
        token, generated = ensure_admin_token(cfg.data_dir, cfg.admin_token)
        if generated:
            out(f"flagstream: generated admin token (stored in "
                f"{cfg.data_dir / 'admin-token'}): {token}")
        from store.service import StoreConfig, StoreStartError, run_store

        store_cfg = StoreConfig(
            data_dir=cfg.data_dir, admin_bind=cfg.admin_bind, admin_token=token,
            bus_address=bus, snapshot_address=snap,
            coalesce_window_s=cfg.coalesce_window,
            kinesis_stream=cfg.kinesis_stream, kinesis_endpoint=cfg.kinesis_endpoint,
            key_grace_s=cfg.key_grace, graceful_timeout_s=min(5.0, cfg.drain_timeout),
            body_timeout_s=cfg.header_timeout,
        )  # fmt: skip
        try:
            admin = await nursery.start(run_store, store_cfg)
        except StoreStartError as exc:
            raise StartError(str(exc)) from None
        out(f"flagstream: admin listening on {_url(admin)}")
        if cfg.role == "store":
            out(f"flagstream: bus publishing on {bus} (snapshots on {snap})")
    readiness = None
    if stream is not None and sdk is not None:
        readiness = NodeReadiness(cfg.data_dir / READINESS_FILE, cfg.workers)
        for i in range(cfg.workers):
            sup = WorkerSupervisor(i, worker_argv(cfg, i, stream, sdk, bus, snap),
                                   HeldListeners(stream, sdk), readiness)
            supervisors.append(sup)
            await nursery.start(sup.run)
        out(f"flagstream: stream listening on {_url(stream)}")
        out(f"flagstream: sdk listening on {_url(sdk)}")
    out(f"flagstream: ready ({cfg.workers if stream else 0} workers)")
    return readiness


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def run_node_main(cfg: NodeConfig) -> int:
    from streamer.logging_setup import setup_logging

    setup_logging(cfg.role if cfg.role != "serve" else "supervisor", cfg.log_format)
    # Every file and directory the node creates (database, admin token, spool, metrics, the
    # bus sockets) is its own user's only; the children inherit the mask. The systemd units
    # set the same (UMask=0077) for the processes they start.
    os.umask(0o077)

    def out(line: str) -> None:
        # One write per line: under PYTHONUNBUFFERED, print() writes the newline separately,
        # and a worker's log line (stderr, often the same pipe) could land in between.
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        trio.run(run_node, cfg, out)
    except StartError as exc:
        print(f"flagstream: {exc}", file=sys.stderr, flush=True)
        return 2
    except BaseExceptionGroup as group:
        starts, _ = group.split(StartError)
        if starts is None:
            raise
        print(f"flagstream: {_first_leaf(starts)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
