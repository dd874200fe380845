"""`flagstream store` and `flagstream streamer --bus tcp://...` as separate processes (the
multi-host layout, on loopback), with a store restart under a connected SDK."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from ldclient import Config, Context, LDClient

from tests.e2e.node_proc import NodeProcess, bool_flag, create_env, wait_until

pytestmark = pytest.mark.e2e
CTX = Context.builder("user-1").build()


def free_port_pair() -> int:
    """A port P below the ephemeral range with P and P+1 free (bus and snapshot)."""
    for port in range(21000, 30000, 2):
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def store_argv(data: Path, bus: str, admin_port: int = 0) -> list[str]:
    return [sys.executable, "-m", "node.cli", "store", "--data-dir", str(data),
            "--admin-bind", f"127.0.0.1:{admin_port}", "--admin-token", "test-admin-token",
            "--bus", bus]


def test_split_store_and_streamer_with_store_restart(tmp_path: Path) -> None:
    bus = f"tcp://127.0.0.1:{free_port_pair()}"
    store = NodeProcess(store_argv(tmp_path / "store", bus), tmp_path / "store").start()
    streamer = NodeProcess([
        sys.executable, "-m", "node.cli", "streamer", "--bus", bus,
        "--data-dir", str(tmp_path / "streamer"), "--workers", "1",
        "--stream-bind", "127.0.0.1:0", "--sdk-bind", "127.0.0.1:0",
    ], tmp_path / "streamer").start()
    client = None
    try:
        assert "admin" not in streamer.urls and "stream" not in store.urls
        streamer.urls["admin"] = store.urls["admin"]
        env = create_env(store)
        with store.admin as admin:
            admin.put("/api/v1/environments/test/flags/f1", json=bool_flag())
        client = LDClient(Config(env["sdkKey"], stream_uri=streamer.urls["stream"],
                                 base_uri=streamer.urls["sdk"], events_uri=streamer.urls["sdk"],
                                 send_events=False, diagnostic_opt_out=True), start_wait=10)
        assert client.is_initialized()
        wait_until(lambda: client.variation("f1", CTX, None) is False, 5, "initial value")

        admin_port = int(store.urls["admin"].rsplit(":", 1)[1])
        store.kill9()
        store = NodeProcess(store_argv(tmp_path / "store", bus, admin_port),
                            tmp_path / "store").start()
        with store.admin as admin:
            r = admin.patch("/api/v1/environments/test/flags/f1",
                            json={"fallthrough": {"variation": 1}})
            assert r.status_code == 200 and r.json()["version"] == 2
        wait_until(lambda: client.variation("f1", CTX, None) is True, 10, "patch after restart")
    finally:
        if client is not None:
            client.close()
        streamer.stop()
        store.stop()
