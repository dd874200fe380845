"""Runs a store in this process for the durability test: ``python3 store_proc.py DATA_DIR``.

Prints the admin port on stdout once it listens, then serves until killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from store.service import StoreConfig, run_store


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
