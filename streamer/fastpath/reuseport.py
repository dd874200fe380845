"""Listening sockets that several worker processes share through ``SO_REUSEPORT``.

Every worker opens its own socket on the same address; the kernel hashes each new connection's
4-tuple onto one of the listening sockets, which spread connections evenly (measured within
±2 %, docs/research/fanout.md §5) and keeps each process under its file-descriptor limit.
"""

from __future__ import annotations

import errno
import socket

DEFAULT_BACKLOG = 4096


class BindError(OSError):
    """The address cannot be listened on (taken, not local, not permitted)."""


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets) to a (host, port) pair; raises ValueError."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host.strip("[]"), port


def open_reuseport_listener(
    host: str, port: int, *, backlog: int = DEFAULT_BACKLOG
) -> socket.socket:
    """A non-blocking, listening TCP socket with ``SO_REUSEPORT`` (and ``SO_REUSEADDR``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = "address in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BindError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None
    return sock
