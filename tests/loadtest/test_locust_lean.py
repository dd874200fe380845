"""The lean Locust user's engine (`StreamSet`) against a scripted server on loopback."""

from __future__ import annotations

import socket
import threading
import time

import gevent

from loadtest.lean_wire import mark_value
from loadtest.locust_lean import StreamSet
from streamer.fastpath import sse

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def patch(seq: int, t0_ns: int) -> bytes:
    value = mark_value(seq, t0_ns, "a")
    return sse.event_chunk("patch", b'{"path":"/flags/f","data":{"variations":["%s"]}}'
                           % value.encode())


def serve_once(listener: socket.socket, frames: list[bytes], sent: threading.Event,
               done: threading.Event) -> None:
    """Accept one stream, read its request, send ``frames`` one by one, hold it until done."""
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        for frame in frames:
            conn.sendall(frame)
            time.sleep(0.02)  # one frame per recv on the other side, mostly
        sent.set()
        done.wait(10)


def test_each_change_is_delivered_once_whichever_path_reads_it() -> None:
    t0 = time.monotonic_ns()
    second = patch(2, t0)
    frames = [
        HEAD + sse.event_chunk("put", b'{"path":"/","data":{}}'),
        patch(1, t0),  # the one-pass path
        patch(1, t0),  # the same change again: not a second delivery
        second[:40],  # a change cut in two: the decoder's path
        second[40:],
        second[:40],  # and again, cut the same way: not a second delivery
        second[40:],
        sse.HEARTBEAT_CHUNK,
        patch(1, t0),  # an older change after a newer one: not delivered either
    ]
    sent, done = threading.Event(), threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = threading.Thread(target=serve_once, args=(listener, frames, sent, done),
                                  daemon=True)
        server.start()
        got: list[tuple[int, int]] = []
        streams = StreamSet(n=1, addresses=["127.0.0.1"], port=listener.getsockname()[1],
                            path="/all", headers={"Authorization": "sdk-x"},
                            on_deliveries=got.extend)  # fmt: skip
        loop = gevent.spawn(streams.run)
        deadline = time.monotonic() + 10
        while (not sent.is_set() or len(got) < 2) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        gevent.sleep(0.3)  # time for a wrong extra delivery to show (the loop naps ≤ 10 ms)
        live = streams.live
        streams.stop()
        loop.join(5)
        done.set()
        server.join(5)
    assert [seq for seq, _ in got] == [1, 2]
    assert all(0 <= us < 10_000_000 for _, us in got)  # µs since t0, on the same clock
    assert live == 1
    assert streams.errors == {}
