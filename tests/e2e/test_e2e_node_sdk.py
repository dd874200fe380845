"""The official Node server SDK (@launchdarkly/node-server-sdk) against a real running node."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.node_proc import NodeProcess, bool_flag, create_env

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


def test_node_sdk_streams_patch_and_delete(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin:
        admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
        d = Driver(env["sdkKey"], node.urls["stream"], node.urls["sdk"], "f1")
        try:
            d.expect(10, event="ready")
            d.expect(2, event="value", value=False)
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
