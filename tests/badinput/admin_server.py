"""A real store (SQLite, bus, admin API) on 127.0.0.1 port 0, run by trio in a background
thread, for tests written as plain functions (schemathesis, raw sockets)."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import trio

from store.service import StoreConfig, run_store

TOKEN = "badinput-admin-token-0123456789"


@dataclass
class StoreThread:
    data_dir: Path
    max_body_bytes: int = 64 * 1024
    url: str = ""
    _token: trio.lowlevel.TrioToken | None = None
    _scope: trio.CancelScope | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def start(self) -> StoreThread:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self.error is not None:
            raise RuntimeError(f"store did not start: {self.error!r}")
        return self

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the test thread
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        cfg = StoreConfig(data_dir=self.data_dir, admin_bind=("127.0.0.1", 0), admin_token=TOKEN,
                          bus_address=f"ipc://{self.data_dir}/bus",
                          snapshot_address=f"ipc://{self.data_dir}/snap",
                          max_body_bytes=self.max_body_bytes, graceful_timeout_s=1.0)
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            host, port = await nursery.start(run_store, cfg)
            self.url = f"http://{host}:{port}"
            self._ready.set()

    def stop(self) -> None:
        if self._scope is not None and self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        if self._thread is not None:
            self._thread.join(15)
