"""The official client-side SDKs against a real running node: the browser SDK
(launchdarkly-js-client-sdk) in real headless Chromium from another origin, and the Node
client-side SDK (launchdarkly-node-client-sdk). Both initialise from the evalx poll, then follow
the ``/eval`` stream; values are asserted from what the drivers report."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.node_proc import NodeProcess, bool_flag, create_env

JS = Path(__file__).resolve().parents[1] / "js"
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("node") is None
                       or not (JS / "node_modules/launchdarkly-node-client-sdk").exists(),
                       reason="npm SDKs not installed (tests/run.sh installs them)"),
]
needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists() or not (JS / "node_modules/playwright-core").exists()
    or not (JS / "node_modules/launchdarkly-js-client-sdk").exists(),
    reason="chromium (Debian package) or playwright-core not installed")

CS = {"clientSideAvailability": {"usingEnvironmentId": True, "usingMobileKey": True}}


class Driver:
    def __init__(self, script: str, *argv: str) -> None:
        self.proc = subprocess.Popen(["node", str(JS / script), *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self._err = threading.Thread(target=self._pump_err, daemon=True)
        self._err.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def expect(self, timeout: float, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                msg = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                raise AssertionError(f"no {fields} within {timeout} s; saw {self.seen[-20:]}; "
                                     f"stderr {self.stderr[-20:]}") from None
            self.seen.append(msg)
            if all(msg.get(k) == v for k, v in fields.items()):
                return msg
            if msg.get("event") in ("init-failed", "error") and fields.get("event") not in (
                    "init-failed", "error"):
                raise AssertionError(msg)

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        self._err.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                break


def _setup(node: NodeProcess) -> dict[str, Any]:
    env = create_env(node)
    with node.admin as admin:
        r = admin.put("/api/v1/environments/test/flags/f1", json=bool_flag(
            targets=[{"values": ["vip"], "variation": 1}], **CS))
        assert r.status_code in (200, 201), r.text
        r = admin.put("/api/v1/environments/test/flags/server-only", json=bool_flag())
        assert r.status_code in (200, 201), r.text
    return env


def test_node_client_sdk_values_change_and_identify(node: NodeProcess) -> None:
    env = _setup(node)
    d = Driver("drive_node_client_sdk.js", env["clientSideId"], node.urls["stream"],
               node.urls["sdk"], "f1", "plain-user")
    try:
        assert d.expect(15, event="ready")["value"] is False
        with node.admin as admin:
            r = admin.patch("/api/v1/environments/test/flags/f1",
                            json={"fallthrough": {"variation": 1}})
            assert r.status_code == 200, r.text
        d.expect(10, event="value", value=True)
        with node.admin as admin:
            admin.patch("/api/v1/environments/test/flags/f1",
                        json={"fallthrough": {"variation": 0}})
        d.expect(10, event="value", value=False)
        d.send({"identify": {"kind": "user", "key": "vip"}})
        assert d.expect(15, event="identified")["value"] is True
        d.send({"identify": {"kind": "user", "key": "plain-user"}})
        assert d.expect(15, event="identified")["value"] is False
    finally:
        d.close()


def test_node_client_sdk_unknown_environment_id_fails_init(node: NodeProcess) -> None:
    _setup(node)
    d = Driver("drive_node_client_sdk.js", "no-such-env-id", node.urls["stream"],
               node.urls["sdk"], "f1", "plain-user")
    try:
        d.expect(15, event="init-failed")
    finally:
        d.close()


@needs_browser
def test_browser_sdk_in_chromium_from_another_origin(node: NodeProcess) -> None:
    env = _setup(node)
    d = Driver("drive_browser_sdk.js", env["clientSideId"], node.urls["stream"],
               node.urls["sdk"], "f1", "vip")
    try:
        origin = d.expect(15, event="page")["origin"]
        assert d.expect(30, event="ready")["value"] is True
        with node.admin as admin:
            r = admin.patch("/api/v1/environments/test/flags/f1", json={"targets": []})
            assert r.status_code == 200, r.text
        d.expect(10, event="value", value=False)
    finally:
        d.close()
    sdk, stream = node.urls["sdk"], node.urls["stream"]
    assert not origin.startswith((sdk, stream))
    responses = [m for m in d.seen if m.get("event") == "response"]
    polls = [m for m in responses if m["url"].startswith(f"{sdk}/sdk/evalx/{env['clientSideId']}")]
    assert polls and all(m["status"] == 200 for m in polls), responses
    streams = [m for m in d.seen if m.get("event") == "request"
               and m["url"].startswith(f"{stream}/eval/{env['clientSideId']}/")]
    assert streams, d.seen
    # the SDK sends X-LaunchDarkly-User-Agent on its polls, so Chromium must preflight them
    preflights = [m for m in d.seen if m.get("event", "").startswith("preflight")]
    assert any(m["url"].startswith(f"{sdk}/sdk/evalx/") for m in preflights), d.seen
    assert all(m["event"] == "preflight" and m["status"] == 200 for m in preflights), preflights
    failed = [m for m in d.seen if m.get("event") == "requestfailed"
              and not m["url"].startswith(f"{sdk}/events/")]
    assert not failed, failed
