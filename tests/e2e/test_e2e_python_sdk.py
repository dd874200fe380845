"""The official Python server SDK against a real running node over loopback."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from ldclient import Config, Context, LDClient
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.node_proc import (
    NodeProcess,
    bool_flag,
    create_env,
    open_stream,
    restart_on_same_ports,
    serve_argv,
    wait_until,
)

pytestmark = pytest.mark.e2e
CTX = Context.builder("user-1").build()


@contextmanager
def sdk_client(node: NodeProcess, sdk_key: str, *, stream: bool = True) -> Iterator[LDClient]:
    config = Config(
        sdk_key,
        stream_uri=node.urls["stream"],
        base_uri=node.urls["sdk"],
        events_uri=node.urls["sdk"],
        stream=stream,
        send_events=False,
        diagnostic_opt_out=True,
        initial_reconnect_delay=0.2,
    )
    client = LDClient(config, start_wait=10)
    try:
        yield client
    finally:
        client.close()


def test_initialises_evaluates_and_sees_patch_and_delete(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin:
        assert admin.put("/api/v1/environments/test/flags/f1", json=bool_flag()).status_code == 201
        with sdk_client(node, env["sdkKey"]) as client:
            assert client.is_initialized()
            assert client.variation("f1", CTX, None) is False
            detail = client.variation_detail("f1", CTX, None)
            assert detail.reason == {"kind": "FALLTHROUGH"}

            r = admin.patch("/api/v1/environments/test/flags/f1",
                            json={"fallthrough": {"variation": 1}})
            assert r.status_code == 200, r.text
            wait_until(lambda: client.variation("f1", CTX, None) is True, 1.0, "patch")

            assert admin.delete("/api/v1/environments/test/flags/f1").status_code == 204
            wait_until(lambda: client.variation("f1", CTX, "gone") == "gone", 1.0, "delete")

            # re-created after delete: the version must still increase, or the SDK ignores it
            r = admin.put("/api/v1/environments/test/flags/f1", json=bool_flag(on=False))
            assert r.status_code == 201, r.text
            wait_until(lambda: client.variation("f1", CTX, "gone") is False, 1.0, "re-create")


def test_bad_sdk_key_gets_401(node: NodeProcess) -> None:
    create_env(node)
    r = httpx.get(node.urls["sdk"] + "/sdk/latest-all", headers={"Authorization": "sdk-nope"})
    assert r.status_code == 401
    with httpx.stream("GET", node.urls["stream"] + "/all",
                      headers={"Authorization": "sdk-nope"}, timeout=5) as s:
        assert s.status_code == 401


def test_polling_client_and_etag(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin:
        admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
    with sdk_client(node, env["sdkKey"], stream=False) as client:
        assert client.is_initialized()
        assert client.variation("f1", CTX, None) is False
    auth = {"Authorization": env["sdkKey"]}
    first = httpx.get(node.urls["sdk"] + "/sdk/latest-all", headers=auth)
    assert first.status_code == 200 and "f1" in first.json()["flags"]
    etag = first.headers["etag"]
    again = httpx.get(node.urls["sdk"] + "/sdk/latest-all",
                      headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304
    with node.admin as admin:
        admin.patch("/api/v1/environments/test/flags/f1", json={"on": False})

    def changed() -> bool:
        r = httpx.get(node.urls["sdk"] + "/sdk/latest-all",
                      headers={**auth, "If-None-Match": etag})
        return r.status_code == 200 and r.headers["etag"] != etag

    wait_until(changed, 2.0, "a new ETag after a change")


def test_survives_worker_restart(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin, sdk_client(node, env["sdkKey"]) as client:
        admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
        wait_until(lambda: client.variation("f1", CTX, None) is False, 2.0, "flag")
        workers = node.children()
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        # a change made while every worker is down must reach the client after it reconnects
        admin.patch("/api/v1/environments/test/flags/f1", json={"fallthrough": {"variation": 1}})
        wait_until(lambda: client.variation("f1", CTX, None) is True, 15.0, "reconnect + put")
        wait_until(lambda: len(node.children()) == 2, 5.0, "workers restarted")
        assert set(node.children()).isdisjoint(workers)
        admin.patch("/api/v1/environments/test/flags/f1", json={"on": False})
        wait_until(lambda: client.variation("f1", CTX, None) is False, 1.0, "patch after restart")


def test_survives_node_restart_without_stale_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = NodeProcess(serve_argv(data), data).start()
    try:
        env = create_env(node)
        with node.admin as admin:
            admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
        with sdk_client(node, env["sdkKey"]) as client:
            assert client.variation("f1", CTX, None) is False
            # same ports, same data dir: the SDK reconnects to the restarted store and workers
            node = restart_on_same_ports(node, data)
            with node.admin as admin:
                r = admin.patch("/api/v1/environments/test/flags/f1",
                                json={"fallthrough": {"variation": 1}})
                assert r.status_code == 200 and r.json()["version"] == 2
            wait_until(lambda: client.variation("f1", CTX, None) is True, 15.0, "fresh data")
            time.sleep(0.2)
            assert client.variation("f1", CTX, None) is True
    finally:
        node.stop()


def test_stream_starts_with_a_jittered_retry_field(node: NodeProcess) -> None:
    from streamer.fastpath.sse import RETRY_BASE_MS, RETRY_JITTER_MS, SSEDecoder, SSEEvent

    env = create_env(node)
    delays = set()
    for _ in range(5):
        with httpx.stream("GET", node.urls["stream"] + "/all", timeout=10,
                          headers={"Authorization": env["sdkKey"]}) as s:
            assert s.status_code == 200
            sse = SSEDecoder()  # httpx has already removed the chunked framing
            events: list[SSEEvent] = []
            deadline = time.monotonic() + 5
            for raw in s.iter_raw():
                events += [e for e in sse.feed(raw) if isinstance(e, SSEEvent)]
                if events or time.monotonic() > deadline:
                    break
            assert events and events[0].event == "put"
            assert sse.retry is not None
            assert RETRY_BASE_MS <= sse.retry < RETRY_BASE_MS + RETRY_JITTER_MS
            delays.add(sse.retry)
    assert len(delays) > 1  # drawn per connection


def test_sdk_refused_at_capacity_gets_in_once_a_slot_frees(tmp_path: Path) -> None:
    # One worker, one stream allowed, held by a raw client: the SDK's stream gets the 503 the
    # accept loop writes itself (no actor, no head parse) and retries, as it does on any 5xx;
    # when the held stream goes, the SDK's next attempt is admitted and it initialises.
    data = tmp_path / "data"
    node = NodeProcess(serve_argv(data, workers=1, extra=["--max-connections", "1"]),
                       data).start()
    try:
        env = create_env(node)
        with node.admin as admin:
            admin.put("/api/v1/environments/test/flags/f1", json=bool_flag(on=False))
        holder, head = open_stream(node, env["sdkKey"])
        assert b" 200 " in head.split(b"\r\n", 1)[0]
        config = Config(env["sdkKey"], stream_uri=node.urls["stream"], base_uri=node.urls["sdk"],
                        events_uri=node.urls["sdk"], send_events=False,
                        diagnostic_opt_out=True, initial_reconnect_delay=0.2)
        client = LDClient(config, start_wait=1.5)
        try:
            assert not client.is_initialized()
            text = httpx.get(node.urls["sdk"] + "/metrics", timeout=10).text
            refused = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                       if s.name == "flagstream_admission_rejections_total"
                       and s.labels["status"] == "503"]
            assert refused and refused[0] >= 1
            holder.close()
            wait_until(client.is_initialized, 20.0, "the SDK admitted after the slot freed")
            assert client.variation("f1", CTX, None) is False
        finally:
            client.close()
    finally:
        node.stop()
