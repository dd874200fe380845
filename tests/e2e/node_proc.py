"""Run real flagstream processes for end-to-end tests and talk to their admin API.

Every node binds port 0 on 127.0.0.1 and reports its real ports through the readiness lines
(the CLI contract of DESIGN.md §4), so tests never collide with each other or with the
ephemeral port range.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

LINE = re.compile(r"^flagstream: (admin|stream|sdk) listening on (http://\S+)$")
READY = re.compile(r"^flagstream: ready \((\d+) workers\)$")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class NodeProcess:
    argv: list[str]
    data_dir: Path
    token: str = "test-admin-token"
    urls: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> NodeProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.output.append(line)
                if m := LINE.match(line):
                    self.urls[m.group(1)] = m.group(2)
                if READY.match(line):
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()
        ready.wait(max(0.0, deadline - time.monotonic()))
        if self.proc.poll() is not None or not any(READY.match(x) for x in self.output):
            self.stop()
            raise RuntimeError("node did not become ready:\n" + "\n".join(self.output[-60:]))
        return self

    @property
    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.urls["admin"], timeout=10.0,
                            headers={"Authorization": f"Bearer {self.token}"})

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._close_pipe()
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        self._close_pipe()

    def _close_pipe(self) -> None:
        assert self.proc is not None
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()


def serve_argv(data_dir: Path, *, workers: int = 2, token: str = "test-admin-token",
               extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable, "-m", "node.cli", "serve",
        "--data-dir", str(data_dir),
        "--stream-bind", "127.0.0.1:0", "--sdk-bind", "127.0.0.1:0",
        "--admin-bind", "127.0.0.1:0",
        "--workers", str(workers), "--admin-token", token,
        "--heartbeat-interval", "5",
        *(extra or []),
    ]  # fmt: skip


def restart_on_same_ports(node: NodeProcess, data_dir: Path) -> NodeProcess:
    """Stop ``node`` (store and workers) and start a new one on the same data dir and ports,
    so connected SDKs reconnect to it as they would to a restarted server."""
    ports = {opt: node.urls[name].rsplit(":", 1)[1] for opt, name in (
        ("--stream-bind", "stream"), ("--sdk-bind", "sdk"), ("--admin-bind", "admin"))}
    node.stop()
    argv = serve_argv(data_dir)
    for opt, port in ports.items():
        argv[argv.index(opt) + 1] = f"127.0.0.1:{port}"
    return NodeProcess(argv, data_dir).start()


def create_env(node: NodeProcess, key: str = "test", **fields: Any) -> dict[str, Any]:
    """Create environment ``key`` (``fields``: more of its JSON, e.g. ``secureMode=True``)."""
    with node.admin as c:
        r = c.post("/api/v1/environments", json={"key": key, "name": key.title(), **fields})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


def bool_flag(**over: Any) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "on": True, "variations": [False, True], "offVariation": 0,
        "fallthrough": {"variation": 0}, "targets": [], "rules": [], "prerequisites": [],
        "salt": "salt",
    }  # fmt: skip
    flag.update(over)
    return flag


def wait_until(pred: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def addr(url: str) -> tuple[str, int]:
    """(host, port) of a listener URL such as ``node.urls["stream"]``."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def open_stream(node: NodeProcess, key: str) -> tuple[socket.socket, bytes]:
    """A raw `/all` stream and what came within 10 s: the head, and the `put` after a 200."""
    sock = socket.create_connection(addr(node.urls["stream"]), timeout=10)
    sock.sendall(f"GET /all HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n\r\n".encode())
    buf = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    if b" 200 " in buf.split(b"\r\n", 1)[0]:
        while b"event: put" not in buf and time.monotonic() < deadline:
            buf += sock.recv(65536)
    return sock, buf


def wait_for_bytes(sock: socket.socket, needle: bytes, timeout: float) -> bool:
    """Whether ``needle`` arrives on ``sock`` (a stream, say) within ``timeout`` seconds."""
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return False
        if not chunk:
            return False
        buf += chunk
        if needle in buf:
            return True
    return False
