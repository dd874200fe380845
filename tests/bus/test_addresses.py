"""Tables for bus/addresses.py, and listening errors on real nng sockets."""

from __future__ import annotations

import os
from pathlib import Path

import pynng
import pytest

from bus.addresses import (
    SUN_PATH_MAX,
    BusAddressError,
    listen,
    local_bus_addresses,
    snapshot_address_for,
)

SNAPSHOT_ADDRESSES = [
    ("tcp://127.0.0.1:7100", "tcp://127.0.0.1:7101"),
    ("tcp://store.internal:1", "tcp://store.internal:2"),
    ("tcp://[::1]:9000", "tcp://[::1]:9001"),
    ("tcp://0.0.0.0:65534", "tcp://0.0.0.0:65535"),
    ("tcp4://10.0.0.5:7100", "tcp4://10.0.0.5:7101"),
    ("ipc:///run/flagstream/bus.sock", "ipc:///run/flagstream/bus.sock.snap"),
    ("ipc://relative.sock", "ipc://relative.sock.snap"),
]


@pytest.mark.parametrize(("bus", "snap"), SNAPSHOT_ADDRESSES)
def test_snapshot_address_for(bus: str, snap: str) -> None:
    assert snapshot_address_for(bus) == snap


BAD_ADDRESSES = [
    ("", "unsupported"),
    ("127.0.0.1:7100", "unsupported"),
    ("http://127.0.0.1:7100", "unsupported"),
    ("inproc://bus", "unsupported"),
    ("tcp://127.0.0.1", "no host:port"),
    ("tcp://[::1]", "bad port"),
    ("tcp://127.0.0.1:", "bad port"),
    ("tcp://:7100", "no host:port"),
    ("tcp://host:http", "bad port"),
    ("tcp://host:-1", "bad port"),
    ("tcp://host:0", "1-65534"),
    ("tcp://host:65535", "1-65534"),
    ("tcp://host:99999", "1-65534"),
    ("ipc://", "no socket path"),
    ("ipc:///run/dir/", "no socket path"),
]


@pytest.mark.parametrize(("bus", "message"), BAD_ADDRESSES)
def test_snapshot_address_for_rejects(bus: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        snapshot_address_for(bus)


def test_local_addresses_live_in_the_data_dir(tmp_path: Path) -> None:
    bus, snap = local_bus_addresses(tmp_path)
    assert bus == f"ipc://{tmp_path.resolve()}/bus.sock"
    assert snap == bus + ".snap"


def test_local_addresses_fall_back_to_tmp_for_long_paths(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    bus, snap = local_bus_addresses(deep)
    assert bus.startswith("ipc:///tmp/flagstream-") and snap == bus + ".snap"
    assert len(os.fsencode(snap.removeprefix("ipc://"))) <= SUN_PATH_MAX
    # the same data dir always gives the same address; another one a different address
    assert local_bus_addresses(deep) == (bus, snap)
    assert local_bus_addresses(tmp_path / ("d" * 60) / ("f" * 60))[0] != bus


def test_local_addresses_at_the_length_limit(tmp_path: Path) -> None:
    base = len(os.fsencode(str(tmp_path.resolve()))) + len("/") + len("/bus.sock.snap")
    fits = tmp_path / ("x" * (SUN_PATH_MAX - base))
    too_long = tmp_path / ("x" * (SUN_PATH_MAX - base + 1))
    assert local_bus_addresses(fits)[0].startswith(f"ipc://{tmp_path.resolve()}")
    assert local_bus_addresses(too_long)[0].startswith("ipc:///tmp/flagstream-")


def test_local_addresses_can_be_listened_on(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 80)
    deep.mkdir()
    for address in (*local_bus_addresses(tmp_path), *local_bus_addresses(deep)):
        with pynng.Pub0() as sock:
            assert listen(sock, address) == address


def test_listen_translates_errors(tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/taken.sock"
    with pynng.Pub0() as first, pynng.Pub0() as second:
        listen(first, address)
        with pytest.raises(BusAddressError, match="already in use"):
            listen(second, address)
        with pytest.raises(BusAddressError, match="cannot listen"):
            listen(second, f"ipc://{tmp_path}/no/such/dir/x.sock")
