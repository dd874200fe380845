"""A long Kinesis outage (60 s by default) while events keep arriving: no accepted event is
lost. Runs only with ``FLAGSTREAM_LONG_FAULTS=1`` (it takes over a minute):

    FLAGSTREAM_LONG_FAULTS=1 python3 -m pytest tests/faults/test_faults_kinesis_outage.py -s

``FLAGSTREAM_OUTAGE_S`` changes the outage length. The ingest actor talks to a real
Kinesis-API server (moto) through the fault proxy of tests/ingest, armed to drop every call;
events are submitted every 0.2 s throughout. After the proxy heals, the stream is read back:
every event of every acknowledged payload is there exactly once. (The short outage, spool
order and the per-fault cases are tests/ingest/test_kinesis_faults.py.)
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3  # type: ignore[import-untyped]
import pytest
import trio
from moto.server import ThreadedMotoServer

from ingest.actor import IngestActor, IngestConfig
from ingest.batching import Backoff
from ingest.records import Payload, PayloadKind, Source, decode_record
from tests.ingest.ingest_faultproxy import FaultProxy

LONG = os.environ.get("FLAGSTREAM_LONG_FAULTS") == "1"
OUTAGE_S = float(os.environ.get("FLAGSTREAM_OUTAGE_S", "60"))
EVERY_S = 0.2
EVENTS = 10

pytestmark = pytest.mark.skipif(not LONG, reason="long fault run: set FLAGSTREAM_LONG_FAULTS=1")


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_CONFIG_FILE", os.devnull),
                       ("AWS_SHARED_CREDENTIALS_FILE", os.devnull)):
        monkeypatch.setenv(var, value)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = _client(endpoint)
    client.create_stream(StreamName="outage", ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName="outage", WaiterConfig={"Delay": 0.1})
    try:
        yield endpoint, "outage"
    finally:
        server.stop()


def _client(endpoint: str) -> Any:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name="us-east-1").client("kinesis", endpoint_url=endpoint)


def _stream_ids(endpoint: str, name: str) -> Counter[str]:
    client = _client(endpoint)
    ids: Counter[str] = Counter()
    for shard in client.list_shards(StreamName=name)["Shards"]:
        it = client.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for _ in range(10_000):
            resp = client.get_records(ShardIterator=it, Limit=10_000)
            for r in resp["Records"]:
                for line in decode_record(r["Data"]):
                    ids[line["id"]] += 1
            it = resp.get("NextShardIterator")
            if not resp["Records"] or it is None:
                break
    return ids


def _payload(i: int) -> Payload:
    return Payload(env="prod", kind=PayloadKind.ANALYTICS, source=Source.SERVER,
                   payload_id=f"o{i:05d}", received_ms=1_700_000_000_000 + i,
                   events=tuple({"kind": "custom", "key": f"k{j}", "creationDate": 1}
                                for j in range(EVENTS)))


async def test_long_kinesis_outage_loses_nothing(tmp_path: Path,
                                                 kinesis: tuple[str, str]) -> None:
    endpoint, stream = kinesis
    url = urlparse(endpoint)
    proxy = FaultProxy(url.hostname or "127.0.0.1", url.port or 0, hold_s=1.0)
    proxy.start()
    cfg = IngestConfig(data_dir=tmp_path, worker_id=0, kinesis_stream=stream,
                       kinesis_endpoint=f"http://127.0.0.1:{proxy.port}",
                       kinesis_read_timeout_s=0.5, backoff=Backoff(base_s=0.05, cap_s=2.0),
                       pacer_min_s=0.01, pacer_max_s=1.0, seed=11)
    accepted: set[str] = set()
    try:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(IngestActor(cfg).run)
            proxy.arm("outage", calls=None)
            started = trio.current_time()
            i = 0
            while trio.current_time() - started < OUTAGE_S:
                await handle.submit(_payload(i))
                accepted.update(f"o{i:05d}:{j}" for j in range(EVENTS))
                i += 1
                await trio.sleep(EVERY_S)
            during = handle.statistics()
            proxy.clear()
            with trio.fail_after(120):
                while True:
                    s = handle.statistics()
                    if s.sent >= s.spooled and s.backlog_bytes == 0:
                        break
                    await trio.sleep(0.1)
            after = handle.statistics()
            handle.close()
    finally:
        proxy.stop()
    ids = await trio.to_thread.run_sync(_stream_ids, endpoint, stream)
    missing = accepted - set(ids)
    dupes = sum(n - 1 for n in ids.values() if n > 1)
    print(f"\nKinesis outage {OUTAGE_S:.0f} s: {i} payloads / {len(accepted)} events accepted, "
          f"during: sent {during.sent}, spooled {during.spooled}, kinesis errors "
          f"{during.kinesis_errors}; after: sent {after.sent}, retried {after.retried}, "
          f"dropped {after.dropped}; in stream {len(ids)} events, missing {len(missing)}, "
          f"duplicates {dupes}")
    assert during.kinesis_errors > 0 and during.sent == 0  # the outage was real
    assert after.dropped == 0
    assert not missing
