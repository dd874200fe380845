"""Bus addresses: where the snapshot server listens relative to the bus, local ipc paths, and
listening with errors a CLI can print.

The snapshot server lives next to the publisher: one TCP port higher for ``tcp://``, the same
socket path with ``.snap`` appended for ``ipc://``. A Unix socket path must fit ``sun_path``
(108 bytes including the NUL), so an all-in-one node whose data dir is deeply nested falls back
to a short path under /tmp keyed by a hash of the data dir; every process of the node derives
the same address from the same data dir.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pynng

SUN_PATH_MAX = 107  # bytes usable in sockaddr_un.sun_path (108 minus the terminating NUL)
_TCP_SCHEMES = ("tcp://", "tcp4://", "tcp6://")
_IPC_SCHEME = "ipc://"
_SNAP_SUFFIX = ".snap"


class BusAddressError(OSError):
    """A bus address that cannot be listened on (in use, unreachable, bad path)."""


def snapshot_address_for(bus_address: str) -> str:
    """The snapshot server's address for a bus address.

    ``tcp://host:P`` -> ``tcp://host:(P+1)``; ``ipc:///path`` -> ``ipc:///path.snap``.
    """
    for scheme in _TCP_SCHEMES:
        if bus_address.startswith(scheme):
            host, sep, port_text = bus_address[len(scheme) :].rpartition(":")
            if not sep or not host:
                raise ValueError(f"bus address {bus_address!r} has no host:port")
            if not port_text.isdigit():
                raise ValueError(f"bus address {bus_address!r} has a bad port {port_text!r}")
            port = int(port_text)
            if not 1 <= port <= 65534:
                raise ValueError(
                    f"bus address {bus_address!r}: port must be 1-65534 "
                    "(the snapshot server takes the next port)"
                )
            return f"{scheme}{host}:{port + 1}"
    if bus_address.startswith(_IPC_SCHEME):
        path = bus_address[len(_IPC_SCHEME) :]
        if not path or path.endswith("/"):
            raise ValueError(f"bus address {bus_address!r} has no socket path")
        return f"{bus_address}{_SNAP_SUFFIX}"
    raise ValueError(
        f"unsupported bus address {bus_address!r}: expected tcp://HOST:PORT or ipc:///PATH"
    )


def local_bus_addresses(data_dir: Path) -> tuple[str, str]:
    """``(bus, snapshot)`` ipc addresses for an all-in-one node keeping its data in ``data_dir``."""
    base = data_dir.resolve()
    bus_path = str(base / "bus.sock")
    if len(os.fsencode(bus_path + _SNAP_SUFFIX)) > SUN_PATH_MAX:
        digest = hashlib.sha256(os.fsencode(str(base))).hexdigest()[:16]
        bus_path = f"/tmp/flagstream-{digest}.sock"
    bus = f"{_IPC_SCHEME}{bus_path}"
    return bus, snapshot_address_for(bus)


def listen(sock: Any, address: str) -> str:
    """Listen ``sock`` (a pynng socket) at ``address``, translating nng errors once.

    Returns the address actually bound (a ``tcp://`` port 0 becomes the port chosen).
    """
    try:
        listener = sock.listen(address)
        return str(listener.url)
    except pynng.AddressInUse:
        raise BusAddressError(f"bus address {address} is already in use") from None
    except pynng.NNGException as exc:
        raise BusAddressError(f"cannot listen on bus address {address}: {exc}") from None


def dial(sock: Any, address: str) -> None:
    """Dial without blocking: nng keeps retrying in the background until the peer is up."""
    try:
        sock.dial(address, block=False)
    except pynng.NNGException as exc:
        raise BusAddressError(f"cannot dial bus address {address}: {exc}") from None
