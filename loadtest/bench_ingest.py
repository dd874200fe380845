"""Benchmark: analytics events per second through one events node, from ``POST /bulk`` to
``PutRecords`` stored in kinesalite, compared in the same run with a naive sink that calls
``PutRecord`` once per event.

    python3 -m loadtest.bench_ingest [--payloads 400] [--events 250] [--concurrency 8]
                                     [--naive-events 5000] [--naive-threads 8]

Starts kinesalite (tests/js/node_modules, loopback, in-memory) and a node
(``python3 -m ingest.devserver``, which durably spools every payload before its 202 and ships
from the spool), posts the payloads from ``--concurrency`` HTTP clients, and waits until the
node reports every record stored by Kinesis. Prints events/s for both paths. All processes
share this machine's cores, the load generator included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import orjson
import trio

ROOT = Path(__file__).resolve().parents[1]
KINESALITE = ROOT / "tests" / "js" / "node_modules" / "kinesalite"


def start_kinesalite() -> tuple[subprocess.Popen[str], str]:
    script = (
        f"const k=require({str(KINESALITE)!r})({{createStreamMs:0,deleteStreamMs:0}});"
        "k.listen(0,'127.0.0.1',()=>console.log(k.address().port));"
    )
    proc = subprocess.Popen(["node", "-e", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def client(endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"
    ).client("kinesis", endpoint_url=endpoint)


def create_stream(endpoint: str, name: str, shards: int) -> None:
    c = client(endpoint)
    c.create_stream(StreamName=name, ShardCount=shards)
    c.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})


def make_payload(i: int, events: int) -> bytes:
    now = int(time.time() * 1000)
    body = [
        {
            "kind": "feature",
            "creationDate": now,
            "key": f"flag-{j % 50}",
            "version": 3,
            "context": {"kind": "user", "key": f"user-{i}-{j}"},
            "variation": j % 2,
            "value": j % 2 == 0,
            "default": False,
        }
        for j in range(events - 1)
    ]
    body.append(
        {
            "kind": "summary",
            "startDate": now - 5000,
            "endDate": now,
            "features": {
                f"flag-{k}": {"default": False, "counters": [{"variation": 0, "count": 5}]}
                for k in range(20)
            },
        }
    )
    return orjson.dumps(body)


async def run_flagstream(base: str, payloads: list[bytes], concurrency: int) -> float:
    queue = list(enumerate(payloads))
    statuses: dict[int, int] = {}

    async def worker(http: httpx.AsyncClient) -> None:
        while queue:
            i, body = queue.pop()
            headers = {"Authorization": "sdk-bench", "X-LaunchDarkly-Payload-ID": f"b{i}"}
            resp = await http.post(f"{base}/bulk", content=body, headers=headers)
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as http:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker, http)
        accepted = time.perf_counter()
        for _ in range(6000):
            stats = (await http.get(f"{base}/ingest/stats")).json()
            if stats["sent"] >= stats["spooled"] > 0:
                break
            await trio.sleep(0.02)
        done = time.perf_counter()
    print(f"  HTTP statuses {statuses}; all 202 after {accepted - start:.2f} s; stats {stats}")
    return done - start


def run_naive(endpoint: str, stream: str, events: list[bytes], threads: int) -> float:
    """PutRecord once per event, from ``threads`` threads (one boto3 client each)."""
    chunks = [events[i::threads] for i in range(threads)]

    def put(chunk: list[bytes], n: int) -> None:
        c = client(endpoint)
        for k, data in enumerate(chunk):
            c.put_record(StreamName=stream, Data=data, PartitionKey=f"{n}-{k}")

    workers = [threading.Thread(target=put, args=(chunk, n)) for n, chunk in enumerate(chunks)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m loadtest.bench_ingest")
    parser.add_argument("--payloads", type=int, default=400)
    parser.add_argument("--events", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--naive-events", type=int, default=5000)
    parser.add_argument("--naive-threads", type=int, default=8)
    args = parser.parse_args(argv)
    os.environ.update(
        AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_DEFAULT_REGION="us-east-1"
    )

    kinesalite, endpoint = start_kinesalite()
    node: subprocess.Popen[str] | None = None
    try:
        create_stream(endpoint, "bench-flagstream", args.shards)
        create_stream(endpoint, "bench-naive", args.shards)
        payloads = [make_payload(i, args.events) for i in range(args.payloads)]
        total = args.payloads * args.events
        with tempfile.TemporaryDirectory() as data_dir:
            node = subprocess.Popen(
                [sys.executable, "-m", "ingest.devserver", "--data-dir", data_dir,
                 "--sdk-key", "sdk-bench=bench", "--kinesis-stream", "bench-flagstream",
                 "--kinesis-endpoint", endpoint],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert node.stdout is not None
            base = node.stdout.readline().split()[1]
            print(f"flagstream: {args.payloads} payloads x {args.events} events, "
                  f"{args.concurrency} clients, {args.shards} shards")  # fmt: skip
            elapsed = trio.run(run_flagstream, base, payloads, args.concurrency)
            fs_rate = total / elapsed
            print(f"  {total} events stored in Kinesis in {elapsed:.2f} s: {fs_rate:,.0f} events/s")
            node.terminate()
            node.wait()
        events = [orjson.dumps(e) for p in payloads for e in orjson.loads(p)[: args.events]][
            : args.naive_events
        ]
        print(f"naive PutRecord per event: {len(events)} events, {args.naive_threads} threads")
        naive_elapsed = run_naive(endpoint, "bench-naive", events, args.naive_threads)
        naive_rate = len(events) / naive_elapsed
        print(f"  {len(events)} events in {naive_elapsed:.2f} s: {naive_rate:,.0f} events/s")
        print(f"RESULT flagstream {fs_rate:,.0f} events/s vs naive {naive_rate:,.0f} events/s "
              f"({fs_rate / naive_rate:.1f}x)")  # fmt: skip
    finally:
        if node is not None and node.poll() is None:
            node.kill()
        kinesalite.terminate()
        kinesalite.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
