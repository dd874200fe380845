"""run_store wiring: real port 0, real nng bus and snapshot server, start-up failures."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pynng
import pytest
import trio

from bus.envelope import (
    Change,
    EnvChange,
    Heartbeat,
    Snapshot,
    SnapshotRequest,
    decode,
    encode,
)
from store.service import StoreConfig, StoreStartError, run_store


def config(tmp_path: Path, **kw: object) -> StoreConfig:
    base: dict[str, object] = dict(
        data_dir=tmp_path / "data",
        admin_bind=("127.0.0.1", 0),
        admin_token="t",
        bus_address=f"ipc://{tmp_path}/bus",
        snapshot_address=f"ipc://{tmp_path}/snap",
        heartbeat_interval_s=0.05,
    )
    base.update(kw)
    return StoreConfig(**base)  # type: ignore[arg-type]


async def test_changes_reach_the_bus_and_snapshots_agree(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(run_store, cfg)
        assert host == "127.0.0.1" and port > 0
        with pynng.Sub0(dial=cfg.bus_address, topics=b"") as sub:
            # wait for a heartbeat, so the subscription is live before writing
            with trio.fail_after(10):
                while not isinstance(decode(await sub.arecv()), Heartbeat):
                    pass
            async with httpx.AsyncClient(
                base_url=f"http://{host}:{port}", headers={"Authorization": "Bearer t"}
            ) as c:
                assert (
                    await c.post("/api/v1/environments", json={"key": "prod"})
                ).status_code == 201
                r = await c.put(
                    "/api/v1/environments/prod/flags/f",
                    json={"variations": [1], "on": True, "fallthrough": {"variation": 0}},
                )
                assert r.status_code == 201
            got: list[Change | EnvChange] = []
            with trio.fail_after(10):
                while len(got) < 2:
                    msg = decode(await sub.arecv())
                    if isinstance(msg, Change | EnvChange):
                        got.append(msg)
        env_msg, change = got
        assert isinstance(env_msg, EnvChange) and env_msg.seq == 1 and env_msg.env.key == "prod"
        assert isinstance(change, Change) and change.seq == 2
        assert change.items[0].data == r.content  # the same bytes the admin API answered
        with pynng.Req0(dial=cfg.snapshot_address) as req:
            await req.asend(encode(SnapshotRequest("prod")))
            with trio.fail_after(10):
                snap = decode(await req.arecv())
        assert isinstance(snap, Snapshot) and snap.seq == 2
        assert snap.envs[0].items[0].data == r.content
        nursery.cancel_scope.cancel()


async def test_taken_port_is_a_clear_start_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        async with trio.open_nursery() as nursery:
            with pytest.raises(StoreStartError, match=f"127.0.0.1:{port}: port is already in use"):
                await nursery.start(run_store, config(tmp_path, admin_bind=("127.0.0.1", port)))


async def test_unusable_data_dir_is_a_clear_start_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    async with trio.open_nursery() as nursery:
        with pytest.raises(StoreStartError, match="is unusable"):
            await nursery.start(run_store, config(tmp_path, data_dir=tmp_path / "file"))


async def test_bad_bus_address_is_a_clear_start_error(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(StoreStartError, match="bus address"):
            await nursery.start(run_store, config(tmp_path, bus_address="bogus://x"))


async def test_serves_on_pre_bound_sockets(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    async with trio.open_nursery() as nursery:
        got = await nursery.start(run_store, config(tmp_path, admin_sockets=[sock]))
        assert got == ("127.0.0.1", port)
        async with httpx.AsyncClient() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        nursery.cancel_scope.cancel()
    sock.close()
