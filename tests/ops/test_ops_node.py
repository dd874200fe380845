"""Operations on real nodes: /metrics on both ports (merged across workers), admission
control, key rotation closing old-key streams after the grace period, and graceful drain."""

from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.node_proc import (
    NodeProcess,
    addr,
    bool_flag,
    create_env,
    open_stream,
    serve_argv,
    wait_until,
)


def closed_within(sock: socket.socket, timeout: float, since: float | None = None
                  ) -> float | None:
    """Seconds from ``since`` (default: now) until the server closed the stream, or None if
    it stayed open for ``timeout`` seconds."""
    start = time.monotonic() if since is None else since
    sock.settimeout(0.2)
    while time.monotonic() - start < timeout:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
        if not data or data.endswith(b"0\r\n\r\n"):
            return time.monotonic() - start
    return None


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == name]


def test_metrics_on_both_ports(node: NodeProcess) -> None:
    env = create_env(node, "ops")
    streams = [open_stream(node, env["sdkKey"])[0] for _ in range(4)]
    try:
        with node.admin as admin:
            for i in range(3):
                r = admin.put(f"/api/v1/environments/ops/flags/f{i}", json=bool_flag())
                assert r.status_code == 201
        sdk = node.urls["sdk"]
        text = ""

        def merged() -> bool:
            nonlocal text
            text = httpx.get(sdk + "/metrics", timeout=10).text
            workers = {lab["worker"] for lab, _ in samples(text, "flagstream_environments")}
            conns = sum(v for lab, v in samples(text, "flagstream_connections")
                        if lab["env"] == "ops")
            prop = sum(v for _, v in samples(text, "flagstream_propagation_seconds_count"))
            return workers == {"0", "1"} and conns == 4 and prop >= 3

        try:
            wait_until(merged, 20.0, "both workers' figures in one scrape", interval=0.5)
        except AssertionError:
            print(text)
            raise
        for name in ("flagstream_bus_seq", "flagstream_events_total",
                     "flagstream_new_connections_total", "flagstream_kinesis_errors_total",
                     "flagstream_stream_duration_seconds_count",
                     "flagstream_admission_rejections_total", "flagstream_bus_resyncs_total"):
            assert name in text or samples(text, name) is not None
        admin_text = httpx.get(node.urls["admin"] + "/metrics", timeout=10).text  # no token
        (rev,) = [v for lab, v in samples(admin_text, "flagstream_env_revision")
                  if lab["env"] == "ops"]
        assert rev >= 4
        store_sum = [v for lab, v in samples(admin_text, "flagstream_env_version_sum")
                     if lab["env"] == "ops"]
        worker_sums = {lab["worker"]: v for lab, v in samples(text, "flagstream_env_version_sum")
                       if lab["env"] == "ops"}
        assert store_sum == [3.0] and set(worker_sums.values()) == {3.0}  # in sync: no drift
        # the admin listener's contained failures are exported too (none here)
        assert "# TYPE flagstream_actor_failures_total counter" in admin_text
    finally:
        for s in streams:
            s.close()


def test_rotation_closes_old_key_streams_after_grace(node: NodeProcess) -> None:
    env = create_env(node, "rot")
    old_stream, _ = open_stream(node, env["sdkKey"])
    with node.admin as admin:
        r = admin.post("/api/v1/environments/rot/rotate", json={"key": "sdk", "graceSeconds": 2})
        assert r.status_code == 200
        new_key = r.json()["sdkKey"]
    new_stream, head = open_stream(node, new_key)
    still_old, head_old = open_stream(node, env["sdkKey"])  # in the grace period: accepted
    try:
        assert b" 200 " in head.split(b"\r\n", 1)[0] and b" 200 " in head_old.split(b"\r\n")[0]
        took = closed_within(old_stream, 10.0)
        assert took is not None and 1.0 <= took <= 6.0, took
        assert closed_within(still_old, 3.0) is not None
        assert closed_within(new_stream, 1.0) is None  # the new key's stream stays
        late, refused = open_stream(node, env["sdkKey"])
        late.close()
        assert b" 401 " in refused.split(b"\r\n", 1)[0]
    finally:
        for s in (old_stream, new_stream, still_old):
            s.close()

    def counted() -> bool:
        text = httpx.get(node.urls["sdk"] + "/metrics", timeout=10).text
        return sum(v for lab, v in samples(text, "flagstream_disconnects_total")
                   if lab["reason"] == "key_rotated") >= 2

    wait_until(counted, 15.0, "key_rotated disconnects in /metrics", interval=0.5)


def test_admission_and_graceful_drain(tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = NodeProcess(serve_argv(data, workers=1, extra=[
        "--max-connections", "3", "--drain-window", "2", "--drain-timeout", "6"]), data).start()
    socks: list[socket.socket] = []
    try:
        env = create_env(node, "adm")
        for _ in range(3):
            sock, head = open_stream(node, env["sdkKey"])
            socks.append(sock)
            assert b" 200 " in head.split(b"\r\n", 1)[0]
        extra, head = open_stream(node, env["sdkKey"])
        extra.close()
        status, _, rest = head.partition(b"\r\n")
        assert b" 503 " in status, head
        retry = int(rest.lower().split(b"retry-after:")[1].split(b"\r\n")[0])
        assert 5 <= retry <= 10
        # SIGTERM: the streams are closed spread over the 2 s window, the node exits in time
        started = time.monotonic()
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        with ThreadPoolExecutor(max_workers=len(socks)) as pool:  # watch all at once
            ends = list(pool.map(lambda s: closed_within(s, 8.0, started), socks))
        closes = sorted(t for t in ends if t is not None)
        code = node.proc.wait(15)
        took = time.monotonic() - started
        print(f"\ndrain: stream closes at {[round(t, 2) for t in closes]} s, exit {code} "
              f"after {took:.1f} s")
        assert len(closes) == 3 and closes[-1] - closes[0] >= 0.5  # spread, not a burst
        assert code == 0 and took < 6 + 5
    finally:
        for s in socks:
            s.close()
        node.stop()


def _wait_heartbeat(sock: socket.socket) -> None:
    """Read the stream until a heartbeat comment arrives (the socket's timeout is the deadline)."""
    buf = b""
    while b":\n\n" not in buf:
        data = sock.recv(65536)
        assert data, "the worker closed the stream"
        buf += data


def test_worker_at_its_open_file_limit_sheds_instead_of_failing(tmp_path: Path) -> None:
    # 320 open files: the worker keeps 256 for itself and admits 64 streams. More used to
    # make accept() fail with EMFILE (the herd waited in the queue) and the load probe's
    # /proc read end the worker; now the 65th stream on gets a 503 and the worker lives on.
    data = tmp_path / "data"
    argv = ["prlimit", "--nofile=320:320", "--", *serve_argv(data, workers=1)]
    node = NodeProcess(argv, data).start()
    socks: list[socket.socket] = []
    try:
        env = create_env(node, "fds")
        workers = node.children()
        statuses: dict[bytes, int] = {}
        for _ in range(120):
            sock, head = open_stream(node, env["sdkKey"])
            status = head.split(b"\r\n", 1)[0].split(b" ")[1]
            statuses[status] = statuses.get(status, 0) + 1
            if status == b"200":
                socks.append(sock)
            else:
                assert b"connection limit" in head and b"Retry-After: " in head, head
                sock.close()
        assert statuses == {b"200": 64, b"503": 56}
        # Stay at the limit past one load-probe RSS reading (every 1 s), waiting on the worker's
        # own heartbeats on a stream it admitted: each one shows the worker still serving.
        at_limit = time.monotonic()
        for _ in range(3):  # heartbeats come every 5 s: the second one is past the second
            _wait_heartbeat(socks[0])
            if time.monotonic() - at_limit >= 1.0:
                break
        else:
            raise AssertionError("no heartbeat came a second after the limit was reached")
        assert node.children() == workers  # the same worker: it did not fall over
        poll = httpx.get(node.urls["sdk"] + "/sdk/latest-all", timeout=10,
                         headers={"Authorization": env["sdkKey"]})
        assert poll.status_code == 200
    finally:
        for s in socks:
            s.close()
        node.stop()


def test_saturated_worker_sheds_new_streams_with_503(tmp_path: Path) -> None:
    # A 1 MiB memory budget: the worker is over it from its first RSS sample, taken before
    # it reports ready, and stays over it (memory is a level, not a hold that a late sample
    # on a loaded machine can outrun), so it must refuse every new stream cheaply, with a
    # short jittered Retry-After, and keep serving polls; /metrics says why.
    data = tmp_path / "data"
    node = NodeProcess(serve_argv(data, workers=1, extra=["--worker-memory-budget", "1"]),
                       data).start()
    try:
        env = create_env(node, "sat")

        def poll() -> httpx.Response:
            return httpx.get(node.urls["sdk"] + "/sdk/latest-all", timeout=10,
                             headers={"Authorization": env["sdkKey"]})

        # The admin API answers once the environment is committed; the worker learns of it
        # over the bus a moment later (a poll before that is a 401, as on a loaded machine).
        wait_until(lambda: poll().status_code == 200, 20.0, "the worker to know the env",
                   interval=0.05)
        waits = set()
        for _ in range(12):
            sock, head = open_stream(node, env["sdkKey"])
            sock.close()
            status, _, rest = head.partition(b"\r\n")
            assert b" 503 " in status, head
            assert b"saturated (memory is over budget)" in rest
            waits.add(int(rest.lower().split(b"retry-after:")[1].split(b"\r\n")[0]))
        assert waits <= {1, 2, 3} and len(waits) > 1
        assert poll().status_code == 200
        text = httpx.get(node.urls["sdk"] + "/metrics", timeout=10).text
        refused = dict((s[0]["reason"], s[1])
                       for s in samples(text, "flagstream_saturated_refusals_total"))
        assert refused.get("memory", 0) >= 12
        assert [v for _, v in samples(text, "flagstream_saturated")] == [1.0]
        assert [(s[0]["reason"], s[1]) for s in samples(
            text, "flagstream_saturation_episodes_total")] == [("memory", 1.0)]
        assert samples(text, "flagstream_worker_rss_bytes")[0][1] > 1024 * 1024
    finally:
        node.stop()


@pytest.mark.parametrize(("ctype", "token", "status"), [
    ("text/plain", "test-admin-token", 415), ("application/json", "wrong", 401)])
def test_admin_keep_alive_survives_a_body_sent_after_the_answer(
        node: NodeProcess, ctype: str, token: str, status: int) -> None:
    # Regression: a refused request whose body reached hypercorn after the answer left the
    # keep-alive connection's next request unanswered.
    body = b'{"key": "late", "name": "Late"}'
    with socket.create_connection(addr(node.urls["admin"]), timeout=5) as sock:
        sock.sendall(f"POST /api/v1/environments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     f"{token}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode())
        time.sleep(0.05)
        sock.sendall(body)
        buf = b""
        while buf.count(b"HTTP/1.1 ") < 1 or b"}" not in buf:
            buf += sock.recv(65536)
        assert buf.startswith(f"HTTP/1.1 {status} ".encode()), buf
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:  # a socket timeout (5 s) here is the regression
            data = sock.recv(65536)
            assert data, "closed"
            buf += data
        assert buf.startswith(b"HTTP/1.1 200 "), buf
