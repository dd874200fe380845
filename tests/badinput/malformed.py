"""A battery of malformed HTTP/1.1 requests, sent raw over TCP, and the verdict on each.

Each case is bytes to send (at once, or dribbled for the slow senders) and the verdict is
what the server did within a deadline: an HTTP status (first line of the answer), "closed"
(EOF or reset without an answer) or "hang" (connection still open, nothing received). A pass
is a 4xx or "closed"; a 5xx or a hang fails.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

HANG_AFTER_S = 8.0


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    data: bytes
    dribble: float = 0.0  # seconds between single bytes (a slow sender); 0: all at once
    then: bytes = b""  # sent after ``data`` unless the server already answered
    then_bytes: int = 0  # or: this many filler bytes, in 64 KiB pieces (huge bodies)
    # Answers RFC 9110/9112 prescribe besides a 4xx: 505 for an unknown HTTP version, 501 for
    # an unknown transfer coding; an obsolete line fold may be unfolded and served (200).
    also: tuple[str, ...] = ()


def _head(method: str, path: str, host: str, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *extra, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def cases(host: str, get_path: str, post_path: str, auth: str) -> list[Case]:
    a = f"Authorization: {auth}"
    ct = "Content-Type: application/json"
    return [
        Case("oversized header", _head("GET", get_path, host, a, "X-Big: " + "a" * 100_000)),
        Case("too many headers", _head("GET", get_path, host, a,
                                       *[f"X-H{i}: v" for i in range(3000)])),
        Case("oversized URL", _head("GET", get_path + "?" + "q" * 100_000, host, a)),
        Case("garbage request line", b"\x00\x01\x02\xff garbage\r\n\r\n"),
        Case("no version", f"GET {get_path}\r\n\r\n".encode()),
        Case("bad version", f"GET {get_path} HTTP/9.9\r\nHost: {host}\r\n\r\n".encode(),
             also=("505",)),
        Case("header without colon", _head("GET", get_path, host, a, "NoColonHere")),
        Case("NUL in header value", _head("GET", get_path, host, a, "X-A: a\x00b")),
        Case("space before colon", _head("GET", get_path, host, a, "X-A : b")),
        Case("obsolete line folding", _head("GET", get_path, host, a, "X-A: b", " folded"),
             also=("200",)),
        Case("non-UTF-8 path", b"GET /\xff\xfe HTTP/1.1\r\nHost: h\r\n\r\n"),
        Case("unknown method", _head("BREW", get_path, host, a)),
        Case("bad chunk size", _head("POST", post_path, host, a, ct,
                                     "Transfer-Encoding: chunked") + b"zz\r\n{}\r\n0\r\n\r\n"),
        Case("chunk size overflow", _head("POST", post_path, host, a, ct,
                                          "Transfer-Encoding: chunked")
             + b"FFFFFFFFFFFFFFFFFFFF\r\n{}\r\n"),
        Case("chunk without CRLF", _head("POST", post_path, host, a, ct,
                                         "Transfer-Encoding: chunked")
             + b"2\r\n{}XX0\r\n\r\n"),
        Case("CL and TE together", _head("POST", post_path, host, a, ct, "Content-Length: 2",
                                         "Transfer-Encoding: chunked") + b"0\r\n\r\n"),
        Case("two different Content-Lengths", _head("POST", post_path, host, a, ct,
                                                    "Content-Length: 2",
                                                    "Content-Length: 3") + b"{}"),
        Case("negative Content-Length", _head("POST", post_path, host, a, ct,
                                              "Content-Length: -5") + b"{}"),
        Case("non-numeric Content-Length", _head("POST", post_path, host, a, ct,
                                                 "Content-Length: lots") + b"{}"),
        Case("unknown Transfer-Encoding", _head("POST", post_path, host, a, ct,
                                                "Transfer-Encoding: rot13") + b"{}",
             also=("501",)),
        Case("huge declared body", _head("POST", post_path, host, a, ct,
                                         "Content-Length: 10000000000"),
             then_bytes=8 * 1024 * 1024),
        Case("huge chunked body", _head("POST", post_path, host, a, ct,
                                        "Transfer-Encoding: chunked"),
             then=b"".join(b"10000\r\n" + b"[" * 0x10000 + b"\r\n" for _ in range(100))),
        Case("slow head (slowloris)", _head("GET", get_path, host, a, "X-Pad: " + "p" * 200),
             dribble=0.05),
        Case("head never finished", f"GET {get_path} HTTP/1.1\r\nHost: {host}\r\n".encode()),
        Case("body never sent", _head("POST", post_path, host, a, ct, "Content-Length: 1000")),
    ]


def run_case(addr: tuple[str, int], case: Case, hang_after: float = HANG_AFTER_S) -> str:
    """Send ``case``; return "4xx"-style status text, "closed" or "hang"."""
    deadline = time.monotonic() + hang_after + (len(case.data) * case.dribble if case.dribble
                                                else 0)
    with socket.create_connection(addr, timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        try:
            if case.dribble:
                for i in range(len(case.data)):
                    sock.sendall(case.data[i:i + 1])
                    got = _poll(sock, case.dribble)
                    if got is not None:
                        return got
            else:
                sock.sendall(case.data)
                if case.then:
                    sock.sendall(case.then)
                sent = 0
                piece = b"x" * 65536
                while sent < case.then_bytes:
                    got = _poll(sock, 0)
                    if got is not None:
                        return got
                    sock.sendall(piece)
                    sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            return _poll(sock, 1.0) or "closed"
        except TimeoutError:
            return _poll(sock, 1.0) or "hang"
        while time.monotonic() < deadline:
            got = _poll(sock, min(0.5, max(0.0, deadline - time.monotonic())))
            if got is not None:
                return got
        return "hang"


def _poll(sock: socket.socket, wait: float) -> str | None:
    """The server's verdict if it has answered or closed within ``wait`` seconds, else None."""
    sock.settimeout(wait if wait > 0 else 0.0001)
    try:
        data = sock.recv(65536)
    except (TimeoutError, BlockingIOError):
        return None
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    finally:
        sock.settimeout(5)
    if not data:
        return "closed"
    first = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = first.split(" ")
    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
        return parts[1]
    return f"junk {first[:40]!r}"


def passed(case: Case, verdict: str) -> bool:
    return verdict == "closed" or verdict in case.also or (
        len(verdict) == 3 and verdict.startswith("4"))
