"""Runs a store in this process for the durability test: ``python3 store_proc.py DATA_DIR``.

Prints the admin port on stdout once it listens, then serves until killed.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from store.service import StoreConfig, run_store


@asynccontextmanager
async def open_store(tmp_path: Path, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A store on 127.0.0.1 port 0 with its data in ``tmp_path/data``, and a client of its
    admin API that authenticates with ``token`` (the bootstrap token)."""
    cfg = StoreConfig(data_dir=tmp_path / "data", admin_bind=("127.0.0.1", 0), admin_token=token,
                      bus_address=f"ipc://{tmp_path}/bus",
                      snapshot_address=f"ipc://{tmp_path}/snap")
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(run_store, cfg)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as c:
            yield c
        nursery.cancel_scope.cancel()


async def main(data_dir: Path) -> None:
    cfg = StoreConfig(
        data_dir=data_dir,
        admin_bind=("127.0.0.1", 0),
        admin_token="t",
        bus_address=f"ipc://{data_dir}/bus",
        snapshot_address=f"ipc://{data_dir}/snap",
    )
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(run_store, cfg)
        print(port, flush=True)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
