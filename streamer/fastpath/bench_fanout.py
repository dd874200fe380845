"""Quick in-process measurement of the stream fan-out cost per client (not a test).

``python3 -m streamer.fastpath.bench_fanout --clients 10000 --rounds 5 [--refused 10000]``

The server side (directory, environment actor, acceptor) runs in this process with no bus:
changes are applied to the directory directly. A child process opens ``--clients`` raw
connections to ``/all`` (non-blocking sockets and epoll, no framework), waits for every ``put``,
then reads and discards. Each round publishes one flag change; the environment actor measures
its own fan-out loop (wall and thread CPU time, user + sys, which on loopback includes the
receiving socket's TCP work) and this script prints them per round and per client.

With ``--refused N``, the worker's connection limit is ``--clients`` (so it is full once they
are connected) and a second child then opens N more streams, each reading its answer to the
end: the server's CPU per refused stream (the 503 with ``Retry-After``), beside the
per-connection figure of the admitted ones.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time

import trio

from bus.envelope import Change, EnvironmentInfo, EnvSnapshot, ItemChange, Snapshot
from streamer.environments.directory import Directory
from streamer.fastpath.acceptor import Acceptor
from streamer.fastpath.gc_policy import GcPolicy
from streamer.fastpath.reuseport import open_reuseport_listener
from streamer.fastpath.stream_gate import GateLimits, StreamGate

ENV = EnvironmentInfo("bench", "Bench", "sdk-bench", "mob-bench", "cid-bench")

CLIENT = r"""
import select, socket, struct, sys
n, host, port, key = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
req = ("GET /all HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % key).encode()
ep = select.epoll()
socks, sent, got = {}, set(), set()
opened = 0
linger = struct.pack("ii", 1, 0)
while len(got) < n:
    while opened < n and opened - len(got) < 256:
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.connect_ex((host, port))
        socks[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN)
        opened += 1
    for fd, ev in ep.poll(1.0):
        s = socks[fd]
        if fd not in sent and ev & select.EPOLLOUT:
            s.send(req)
            sent.add(fd)
            ep.modify(fd, select.EPOLLIN)
        elif ev & select.EPOLLIN:
            if s.recv(1 << 16):
                got.add(fd)
print("ready", flush=True)
ep.register(sys.stdin.fileno(), select.EPOLLIN)
while True:
    for fd, ev in ep.poll():
        if fd == sys.stdin.fileno():
            sys.exit(0)
        try:
            socks[fd].recv(1 << 16)
        except OSError:
            pass
"""


REFUSED_CLIENT = r"""
import select, socket, sys
n, host, port, key = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
req = ("GET /all HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % key).encode()
ep = select.epoll()
socks, got, status = {}, {}, {}
opened = done = 0
while done < n:
    while opened < n and opened - done < 256:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        socks[s.fileno()] = s
        got[s.fileno()] = b""
        ep.register(s.fileno(), select.EPOLLOUT)
        opened += 1
    for fd, ev in ep.poll(1.0):
        s = socks[fd]
        if ev & select.EPOLLOUT:
            s.send(req)
            ep.modify(fd, select.EPOLLIN)
            continue
        try:
            part = s.recv(1 << 16)
        except OSError:
            part = b""
        got[fd] += part
        if not part:
            code = got.pop(fd)[9:12].decode() or "none"
            status[code] = status.get(code, 0) + 1
            ep.unregister(fd)
            del socks[fd]
            s.close()
            done += 1
print("done", " ".join(f"{k}={v}" for k, v in sorted(status.items())), flush=True)
"""


async def refused(n: int, port: int) -> None:
    """Open n more streams while the gate is at its limit: server CPU per refusal."""
    started, cpu_started = time.perf_counter(), time.process_time()
    with trio.fail_after(120):
        done = await trio.run_process(
            [sys.executable, "-c", REFUSED_CLIENT, str(n), "127.0.0.1", str(port), ENV.sdk_key],
            capture_stdout=True)
    elapsed = time.perf_counter() - started
    cpu_us = (time.process_time() - cpu_started) * 1e6 / n
    answers = done.stdout.decode().removeprefix("done").strip()
    print(f"{n} refused streams in {elapsed:.2f} s ({n / elapsed:.0f}/s); answers {answers}; "
          f"server CPU {cpu_us:.0f} us per refusal")


def flag(version: int) -> ItemChange:
    data = (
        b'{"key":"f","version":%d,"on":true,"salt":"s","variations":[false,true],'
        b'"offVariation":0,"fallthrough":{"variation":1},"prerequisites":[],"targets":[],'
        b'"rules":[],"deleted":false}' % version
    )
    return ItemChange("flags", "f", version, data)


async def bench(clients: int, rounds: int, refused_n: int = 0) -> None:
    GcPolicy().install()
    # With --refused, the gate is full once the admitted clients are connected.
    gate = StreamGate(GateLimits(max_connections=clients) if refused_n else None)
    directory = Directory(gate=gate, heartbeat_interval=59.0)
    listener = open_reuseport_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(directory.run)
        await directory.apply_snapshot(Snapshot(1, "e", (EnvSnapshot(ENV, (flag(1),)),)), full=True)
        await nursery.start(Acceptor(listener, directory, directory.counters).run)
        started, cpu_started = time.perf_counter(), time.process_time()
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-c", CLIENT, str(clients), "127.0.0.1", str(port), ENV.sdk_key],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdin is not None
        with trio.fail_after(120):
            line = await proc.stdout.receive_some(64)
        assert line.startswith(b"ready"), line
        elapsed = time.perf_counter() - started
        accept_cpu_us = (time.process_time() - cpu_started) * 1e6 / clients
        print(f"{clients} connections + puts in {elapsed:.2f} s ({clients / elapsed:.0f}/s with "
              f"the client on the same cores); server CPU {accept_cpu_us:.0f} us per connection "
              f"(accept, head, put): {1e6 / accept_cpu_us:.0f} connections/s per busy core")
        gc.collect()
        gc.freeze()
        counters = directory.counters
        per_client: list[float] = []
        for r in range(rounds + 1):
            await trio.sleep(0.5)
            before = (counters.fanouts, counters.fanout_wall_ns, counters.fanout_cpu_ns)
            await directory.apply_change(Change(r + 2, ENV.key, (flag(r + 2),)))
            for _ in range(10_000):  # the env actor runs the fan-out at its next turn
                if counters.fanouts != before[0]:
                    break
                await trio.sleep(0.001)
            wall = (counters.fanout_wall_ns - before[1]) / 1e6
            cpu = (counters.fanout_cpu_ns - before[2]) / 1e6
            us = cpu * 1000 / clients
            tag = "warm-up" if r == 0 else f"round {r}"
            print(f"{tag}: {clients} clients, fan-out wall {wall:.1f} ms, cpu {cpu:.1f} ms, "
                  f"{us:.2f} us/client")
            if r:
                per_client.append(us)
        stats = directory.statistics().counters
        print(f"median {statistics.median(per_client):.2f} us/client over {rounds} rounds; "
              f"slow-path entries {stats.slow_entries}")
        if refused_n:
            await refused(refused_n, port)
        await proc.stdin.aclose()
        with trio.move_on_after(10):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        nursery.cancel_scope.cancel()
    listener.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--refused", type=int, default=0,
                   help="then this many more streams at the connection limit (503s)")
    a = p.parse_args()
    trio.run(bench, a.clients, a.rounds, a.refused)


if __name__ == "__main__":
    main()
