"""Start and stop a flagstream node for a benchmark, and talk to its admin API.

The node is started exactly as an operator would (`flagstream serve`, DESIGN.md §4) in a fresh
temporary data dir, with every listener on port 0; the real ports come from its readiness
lines. Its stdout and stderr go to files in the data dir, so a chatty node can never block on a
full pipe, and the files stay for a post-mortem when a run goes wrong. The node gets its own
session (process group), so a node that ignores SIGTERM is ended with SIGKILL to that group:
only processes this module started.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LISTENING = re.compile(
    r"^flagstream: (admin|stream|sdk) listening on http://(\[[^\]]+\]|[^:/]+):(\d+)$"
)
READY = re.compile(r"^flagstream: ready \((\d+) workers?\)$")


class NodeError(RuntimeError):
    """The node did not start, or the admin API refused a request."""


@dataclass(frozen=True, slots=True)
class Listeners:
    admin: tuple[str, int]
    stream: tuple[str, int]
    sdk: tuple[str, int]
    workers: int


def serve_command() -> list[str]:
    """`flagstream` if installed as a console script, else `python3 -m node.cli`."""
    exe = shutil.which("flagstream")
    return [exe] if exe else [sys.executable, "-m", "node.cli"]


def parse_ready(lines: list[str]) -> Listeners | None:
    """The listeners once all three lines and the ready line have been printed, else None."""
    found: dict[str, tuple[str, int]] = {}
    workers = None
    for line in lines:
        line = line.strip()
        if m := LISTENING.match(line):
            found[m[1]] = (m[2].strip("[]"), int(m[3]))
        elif m := READY.match(line):
            workers = int(m[1])
    if workers is None or len(found) < 3:
        return None
    return Listeners(found["admin"], found["stream"], found["sdk"], workers)


class Node:
    """One `flagstream serve` process tree. Use as a context manager, or start() / stop()."""

    def __init__(
        self,
        *,
        workers: int,
        stream_host: str = "127.0.0.1",
        admin_token: str = "bench-admin-token",
        extra_args: tuple[str, ...] = (),
        data_dir: Path | None = None,
        repo: Path | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.command = command or serve_command()
        self.workers = workers
        self.stream_host = stream_host
        self.admin_token = admin_token
        self.extra_args = extra_args
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="flagstream-bench-"))
        self.repo = repo or Path(__file__).resolve().parents[1]
        self.proc: subprocess.Popen[bytes] | None = None
        self.listeners: Listeners | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        parts = []
        for name in ("stdout.log", "stderr.log"):
            path = self.data_dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def start(self, timeout_s: float = 60.0) -> Listeners:
        argv = [
            *self.command, "serve",
            "--data-dir", str(self.data_dir / "data"),
            "--stream-bind", f"{self.stream_host}:0",
            "--sdk-bind", "127.0.0.1:0",
            "--admin-bind", "127.0.0.1:0",
            "--workers", str(self.workers),
            "--admin-token", self.admin_token,
            *self.extra_args,
        ]  # fmt: skip
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        out = (self.data_dir / "stdout.log").open("wb")
        err = (self.data_dir / "stderr.log").open("wb")
        with out, err:
            self.proc = subprocess.Popen(
                argv, cwd=self.repo, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            listeners = parse_ready((self.data_dir / "stdout.log").read_text().splitlines())
            if listeners is not None:
                self.listeners = listeners
                return listeners
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        code = self.proc.poll()
        self.stop()
        why = f"exited with code {code}" if code is not None else f"not ready after {timeout_s} s"
        raise NodeError(f"node {why}:\n{self.output()[-4000:]}")

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL the node's own process group."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            # workers that outlived their supervisor: same group, started by us
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def remove_data_dir(self) -> None:
        """Delete the temporary data dir (and its logs), if this object created it."""
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def admin(self) -> AdminClient:
        assert self.listeners is not None
        host, port = self.listeners.admin
        return AdminClient(host, port, self.admin_token)

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AdminClient:
    """A small keep-alive client for the admin API (stdlib http.client, JSON via orjson)."""

    def __init__(self, host: str, port: int, token: str, *, timeout_s: float = 10.0) -> None:
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else orjson.dumps(body)
        for attempt in (1, 2):  # the server may have closed an idle keep-alive connection
            try:
                self._conn.request(method, path, body=payload, headers=self._headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self._conn.close()
                if attempt == 2:
                    raise
        return resp.status, (orjson.loads(raw) if raw else None)

    def _expect(self, method: str, path: str, body: Any, ok: tuple[int, ...]) -> Any:
        status, answer = self.request(method, path, body)
        if status not in ok:
            raise NodeError(f"{method} {path} -> {status}: {answer!r}")
        return answer

    def create_environment(self, key: str, name: str) -> dict[str, Any]:
        env: dict[str, Any] = self._expect(
            "POST", "/api/v1/environments", {"key": key, "name": name}, (201,)
        )
        return env

    def put_flag(self, env: str, key: str, flag: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self._expect(
            "PUT", f"/api/v1/environments/{env}/flags/{key}", flag, (200, 201)
        )
        return out

    def patch_flag(self, env: str, key: str, patch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self._expect(
            "PATCH", f"/api/v1/environments/{env}/flags/{key}", patch, (200,)
        )
        return out

    def close(self) -> None:
        self._conn.close()
