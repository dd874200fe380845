"""The official Node server SDK (@launchdarkly/node-server-sdk) against a real running node."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from ldclient import Config, Context, LDClient
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.node_proc import (
    NodeProcess,
    bool_flag,
    create_env,
    restart_on_same_ports,
    serve_argv,
    wait_until,
)

JS = Path(__file__).resolve().parents[1] / "js"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (JS / "node_modules/@launchdarkly/node-server-sdk").exists()
                       or shutil.which("node") is None,
                       reason="npm SDKs not installed (tests/run.sh installs them)"),
]


class Driver:
    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen(["node", str(JS / "drive_server_sdk.js"), *argv],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def expect(self, timeout: float, **fields: Any) -> dict[str, Any]:
        while True:
            msg = self.lines.get(timeout=timeout)
            if all(msg.get(k) == v for k, v in fields.items()):
                return msg
            if msg.get("event") == "init-failed":
                raise AssertionError(msg)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def ready_driver(node: NodeProcess, sdk_key: str, value: Any, *argv: str) -> Driver:
    """The Node SDK streaming flag ``f1`` from ``node``, initialised and showing ``value``."""
    d = Driver(sdk_key, node.urls["stream"], node.urls["sdk"], "f1", *argv)
    try:
        d.expect(10, event="ready")
        d.expect(2, event="value", value=value)
    except BaseException:
        d.close()
        raise
    return d


def test_node_sdk_streams_patch_and_delete(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin:
        admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
        d = ready_driver(node, env["sdkKey"], False)
        try:
            admin.patch("/api/v1/environments/test/flags/f1",
                        json={"fallthrough": {"variation": 1}})
            d.expect(1, event="value", value=True)
            admin.delete("/api/v1/environments/test/flags/f1")
            d.expect(1, event="value", value="DEFAULT")
        finally:
            d.close()


def test_node_sdk_polling_mode(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin:
        admin.put("/api/v1/environments/test/flags/f1", json=bool_flag(on=False))
    d = Driver(env["sdkKey"], node.urls["stream"], node.urls["sdk"], "f1", "--polling")
    try:
        d.expect(10, event="ready")
        d.expect(2, event="value", value=False)
    finally:
        d.close()


def test_node_sdk_bad_key_fails_init(node: NodeProcess) -> None:
    create_env(node)
    d = Driver("sdk-not-a-key", node.urls["stream"], node.urls["sdk"], "f1")
    try:
        d.expect(10, event="init-failed")
    finally:
        d.close()


def test_node_sdk_survives_worker_restart(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin:
        admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
        d = ready_driver(node, env["sdkKey"], False)
        try:
            workers = node.children()
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            # changed while every worker is down: the SDK must get it from its fresh put
            admin.patch("/api/v1/environments/test/flags/f1",
                        json={"fallthrough": {"variation": 1}})
            d.expect(15, event="value", value=True)
            wait_until(lambda: len(node.children()) == 2, 5.0, "workers restarted")
            assert set(node.children()).isdisjoint(workers)
            admin.patch("/api/v1/environments/test/flags/f1", json={"on": False})
            d.expect(1, event="value", value=False)
        finally:
            d.close()


def test_node_sdk_survives_node_restart_without_stale_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = NodeProcess(serve_argv(data), data).start()
    d: Driver | None = None
    try:
        env = create_env(node)
        with node.admin as admin:
            admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
        d = ready_driver(node, env["sdkKey"], False)
        node = restart_on_same_ports(node, data)  # the SDK keeps its last data and reconnects
        with node.admin as admin:
            r = admin.patch("/api/v1/environments/test/flags/f1",
                            json={"fallthrough": {"variation": 1}})
            assert r.status_code == 200 and r.json()["version"] == 2
        d.expect(15, event="value", value=True)
        with node.admin as admin:
            admin.patch("/api/v1/environments/test/flags/f1", json={"on": False})
        d.expect(1, event="value", value=False)
    finally:
        if d is not None:
            d.close()
        node.stop()


def _polls(node: NodeProcess, status: str) -> float:
    text = httpx.get(node.urls["sdk"] + "/metrics", timeout=10).text
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == "flagstream_polls_total" and s.labels.get("status") == status)


def test_polling_sdks_get_304_when_nothing_changed(node: NodeProcess) -> None:
    # Both official server SDKs in polling mode, side by side: each polls once to start, and
    # again after its 30 s minimum interval with the ETag it was given; nothing changed in
    # between, so the node must answer each second poll 304 (and no other client polls it).
    env = create_env(node)
    with node.admin as admin:
        admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
    d = ready_driver(node, env["sdkKey"], False, "--polling")
    py = LDClient(Config(env["sdkKey"], base_uri=node.urls["sdk"], stream=False,
                         poll_interval=30, send_events=False, diagnostic_opt_out=True),
                  start_wait=10)
    try:
        assert py.is_initialized()
        assert py.variation("f1", Context.builder("user-1").build(), None) is False
        started = time.monotonic()
        assert _polls(node, "304") == 0
        # second polls at ~30 s; the other worker's figures reach /metrics within 5 s
        wait_until(lambda: _polls(node, "304") >= 2, 45.0, "both SDKs' second poll", 1.0)
        assert time.monotonic() - started >= 20
        # The sum is exact once every worker's /metrics snapshot (rewritten every 5 s) was
        # written after the second polls were seen: wait for those writes, not a fixed time.
        seen_at = time.time()
        snapshots = list((node.data_dir / "metrics").glob("worker-*.prom"))
        assert snapshots
        wait_until(lambda: all(p.stat().st_mtime > seen_at for p in snapshots), 15.0,
                   "every worker's metrics snapshot to be rewritten", 0.1)
        assert _polls(node, "304") == 2
    finally:
        py.close()
        d.close()
