# mypy: disable-error-code="untyped-decorator,no-untyped-call"
"""Locust scenarios against a flagstream node: SSE streams, flag writers, event senders.

    locust -f loadtest/locustfile.py --headless -u 1001 -r 200 -t 60s \\
        --fs-admin http://127.0.0.1:8070 --fs-admin-token TOKEN --fs-stream http://127.0.0.1:8030 \\
        --fs-sdk http://127.0.0.1:8031 LeanStreamUser FlagWriterUser EventSenderUser

Users (name the classes to run on the command line; Locust runs all of them otherwise):

* ``SSEStreamUser``: one `/all` stream per user over a gevent socket, decoded with the
  streamer's own decoders (`streamer.fastpath.sse.ChunkedDecoder` and `SSEDecoder`); a behavioural
  user, 18-31 µs of CPU per event, so ≤ 5k of them per box.
* ``LeanStreamUser``: one user owns ``--fs-lean-streams`` raw sockets read in one epoll loop
  (`loadtest.locust_lean`, 17 µs of CPU per event on the 2026-12-01 box): 50k
  streams fit in 4 Locust workers here.
* ``FlagWriterUser`` (one in the whole run): every ``--fs-change-interval`` s it PATCHes the
  flag with ``fsmark:<seq>:<t0>`` in its variations; receivers time the change from t0.
* ``EventSenderUser``: `POST /bulk` with the SDK key, a small realistic analytics payload.

Propagation goes into Locust's statistics (request type ``SSE``, name ``propagation``; Locust
merges them across workers) and into per-change HdrHistograms merged on the master through
Locust's worker reports (`loadtest.locust_hdr`). At the end the master prints per-change and
pooled percentiles and writes ``--fs-hgrm``; in the web UI they are at ``/fs/propagation``.

t0 uses CLOCK_MONOTONIC (one clock per host, exact). Across machines use ``--fs-clock realtime``
(wall clocks; only as good as their NTP sync). Without ``--fs-sdk-key`` every process finds (or
creates) environment ``--fs-env`` through the admin API and takes its SDK key.
"""

from __future__ import annotations

import http.client
import itertools
import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, User, between, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtest.lean_wire import HeadParser, build_request, find_mark, mark_value
from loadtest.locust_hdr import NAME, REQUEST_TYPE, Propagation, log_to_stats
from loadtest.locust_lean import StreamSet
from streamer.fastpath import sse

PROPAGATION = Propagation()
_config: dict[str, Any] = {}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    g = parser.add_argument_group("flagstream")
    g.add_argument("--fs-stream", default="http://127.0.0.1:8030", help="stream listener URL")
    g.add_argument("--fs-sdk", default="http://127.0.0.1:8031", help="SDK listener URL (/bulk)")
    g.add_argument("--fs-admin", default="http://127.0.0.1:8070", help="admin API URL")
    g.add_argument("--fs-admin-token", default="", help="admin bearer token")
    g.add_argument("--fs-env", default="loadtest", help="environment key")
    g.add_argument("--fs-flag", default="loadtest-flag", help="flag the writer changes")
    g.add_argument("--fs-sdk-key", default="", help="default: looked up through the admin API")
    g.add_argument("--fs-addresses", default="", help="comma-separated destination addresses")
    g.add_argument("--fs-lean-streams", type=int, default=1000, help="streams per LeanStreamUser")
    g.add_argument("--fs-change-interval", type=float, default=2.0, help="seconds")
    g.add_argument("--fs-clock", choices=("monotonic", "realtime"), default="monotonic")
    g.add_argument("--fs-hgrm", default="", help="write the pooled .hgrm here (master/local)")
    g.add_argument("--fs-json", default="", help="write per-change figures here (master/local)")


def _clock() -> Callable[[], int]:
    """The clock the writer's marks use: `--fs-clock realtime` across machines, else monotonic."""
    return time.time_ns if _config.get("clock") == "realtime" else time.monotonic_ns


def _now_ns() -> int:
    return _clock()()


def _admin(opts: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = urllib.parse.urlsplit(opts.fs_admin)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=10)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Authorization": f"Bearer {opts.fs_admin_token}",
                              "Content-Type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def _sdk_key(opts: Any) -> str:
    if opts.fs_sdk_key:
        return str(opts.fs_sdk_key)
    status, env = _admin(opts, "GET", f"/api/v1/environments/{opts.fs_env}")
    if status == 404:
        status, env = _admin(opts, "POST", "/api/v1/environments",
                             {"key": opts.fs_env, "name": opts.fs_env})  # fmt: skip
        if status == 409:  # another process created it in between
            status, env = _admin(opts, "GET", f"/api/v1/environments/{opts.fs_env}")
    if status not in (200, 201):
        raise RuntimeError(f"environment {opts.fs_env}: admin API answered {status}: {env}")
    return str(env["sdkKey"])


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kw: Any) -> None:
    opts = environment.parsed_options
    if opts is None or isinstance(environment.runner, MasterRunner):
        return
    EventSenderUser.host = opts.fs_sdk.rstrip("/")
    stream = urllib.parse.urlsplit(opts.fs_stream)
    _config.update(
        sdk_key=_sdk_key(opts), clock=opts.fs_clock, stream_port=stream.port or 80,
        addresses=[a for a in opts.fs_addresses.split(",") if a] or [stream.hostname],
    )


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any]) -> None:
    data["fs_propagation"] = PROPAGATION.export()


@events.worker_report.add_listener
def _merge(client_id: str, data: dict[str, Any]) -> None:
    PROPAGATION.merge(data.get("fs_propagation", {}))


@events.init.add_listener
def _web_route(environment: Environment, **_kw: Any) -> None:
    app = environment.web_ui.app if environment.web_ui is not None else None
    if app is not None:
        @app.route("/fs/propagation")
        def _page() -> tuple[str, int, dict[str, str]]:
            PROPAGATION.flush()
            return PROPAGATION.render(), 200, {"Content-Type": "text/plain; charset=utf-8"}


@events.quitting.add_listener
def _at_end(environment: Environment, **_kw: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    PROPAGATION.flush()  # a local run's own deliveries (a master has merged the workers')
    print("flagstream propagation (all workers, from t0 to the stream having the patch):")
    print(PROPAGATION.render())
    opts = environment.parsed_options
    if opts is not None and opts.fs_hgrm:
        with open(opts.fs_hgrm, "w") as f:
            f.write(PROPAGATION.hgrm())
    if opts is not None and opts.fs_json:
        with open(opts.fs_json, "w") as f:
            json.dump({"changes": PROPAGATION.rows()}, f)


def _deliver(environment: Environment, deliveries: list[tuple[int, int]], size: int) -> None:
    PROPAGATION.record_batch(deliveries)
    log_to_stats(environment.stats, [us // 1000 for _, us in deliveries], size)


class SSEStreamUser(User):
    """One stream, decoded by the streamer's own SSE decoders (behavioural, not for 50k)."""

    wait_time = constant(1)

    @task
    def stream(self) -> None:
        from gevent import socket as gsocket

        addrs = _config["addresses"]
        addr = addrs[id(self) % len(addrs)]
        headers = {"Authorization": _config["sdk_key"]}
        t_start = time.perf_counter()
        sock = gsocket.create_connection((addr, _config["stream_port"]), timeout=30)
        try:
            sock.settimeout(None)
            sock.sendall(build_request("/all", addr, headers))
            head_parser = HeadParser()
            head = None
            while head is None:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed before the response head")
                head = head_parser.feed(data)
            if head.status != 200:
                raise ConnectionError(f"stream answered {head.status}")
            dechunk = sse.ChunkedDecoder() if head.chunked else None
            decoder = sse.SSEDecoder()
            data = head.rest
            last_seq = 0  # seq 0 marks the flag's initial value, not a change
            while True:
                body = dechunk.feed(data) if dechunk is not None else data
                for item in decoder.feed(body):
                    if not isinstance(item, sse.SSEEvent):
                        continue
                    if item.event == "put" and t_start:
                        events.request.fire(request_type=REQUEST_TYPE, name="connect+put",
                                            response_time=(time.perf_counter() - t_start) * 1000,
                                            response_length=len(item.data), exception=None,
                                            context={})  # fmt: skip
                        t_start = 0.0
                    elif item.event == "patch":
                        mark = find_mark(item.data.encode())
                        if mark is not None and mark[0] > last_seq:
                            last_seq = mark[0]
                            us = (_now_ns() - mark[1]) // 1000
                            PROPAGATION.record(mark[0], us)
                            events.request.fire(request_type=REQUEST_TYPE, name=NAME,
                                                response_time=us / 1000,
                                                response_length=len(item.data), exception=None,
                                                context={})  # fmt: skip
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("stream closed by the server")
        finally:
            sock.close()


class LeanStreamUser(User):
    """`--fs-lean-streams` raw streams read in one epoll loop: how Locust holds 50k here."""

    wait_time = constant(1)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.set = StreamSet(
            n=opts.fs_lean_streams if opts else 1000, addresses=_config["addresses"],
            port=_config["stream_port"], path="/all",
            headers={"Authorization": _config["sdk_key"]},
            on_deliveries=lambda d: _deliver(self.environment, d, 0), clock=_clock(),
        )  # fmt: skip

    @task
    def hold(self) -> None:
        self.set.run()  # returns only when the user stops

    def on_stop(self) -> None:
        self.set.stop()


_seq = itertools.count(1)


class FlagWriterUser(User):
    """Changes the flag every `--fs-change-interval` s, the change time embedded in it."""

    fixed_count = 1

    def wait_time(self) -> float:
        opts = self.environment.parsed_options
        return float(opts.fs_change_interval) if opts else 2.0

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        assert opts is not None
        self.opts = opts
        t0 = _now_ns()
        flag = {"on": True, "variations": [mark_value(0, t0, "a"), mark_value(0, t0, "b")],
                "fallthrough": {"variation": 0}, "offVariation": 1, "salt": "loadtest"}
        status, body = _admin(opts, "PUT", self._path(), flag)
        if status not in (200, 201):
            raise RuntimeError(f"PUT flag -> {status}: {body}")
        self.seq = int(time.time())  # distinct across restarts of the writer

    def _path(self) -> str:
        return f"/api/v1/environments/{self.opts.fs_env}/flags/{self.opts.fs_flag}"

    @task
    def change(self) -> None:
        self.seq += 1
        t0 = _now_ns()
        variations = [mark_value(self.seq, t0, "a"), mark_value(self.seq, t0, "b")]
        status, _body = _admin(self.opts, "PATCH", self._path(), {"variations": variations})
        events.request.fire(request_type="ADMIN", name="PATCH flag",
                            response_time=(_now_ns() - t0) / 1e6, response_length=0,
                            exception=None if status == 200 else RuntimeError(f"{status}"),
                            context={})  # fmt: skip


class EventSenderUser(FastHttpUser):
    """Analytics events the way a server SDK flushes them: `POST /bulk` with the SDK key."""

    wait_time = between(1, 2)
    host = "http://127.0.0.1:8031"  # replaced by --fs-sdk at test start

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.flag = opts.fs_flag if opts else "loadtest-flag"

    @task
    def bulk(self) -> None:
        now = int(time.time() * 1000)
        ctx = {"kind": "user", "key": f"user-{id(self) % 1000}"}
        payload = [
            {"kind": "index", "creationDate": now, "context": ctx},
            {"kind": "summary", "startDate": now - 1000, "endDate": now,
             "features": {self.flag: {"default": False, "contextKinds": ["user"],
                                      "counters": [{"variation": 0, "version": 1,
                                                    "value": "a", "count": 3}]}}},
        ]  # fmt: skip
        self.client.post("/bulk", json=payload, name="POST /bulk", headers={
            "Authorization": _config["sdk_key"], "X-LaunchDarkly-Event-Schema": "4",
            "X-LaunchDarkly-Payload-ID": f"{id(self):x}-{now}"})
