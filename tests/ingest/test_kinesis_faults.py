"""Every accepted event reaches the stream, through each fault the proxy can inject.

flagstream's ingest actor -> boto3 -> fault proxy -> moto (a real Kinesis-API server on
loopback). After the faults, the stream is read back and its event IDs compared with the IDs
of every payload that ``submit`` acknowledged.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import trio
from conftest import read_stream
from ingest_faultproxy import FaultProxy

from ingest.actor import IngestActor, IngestConfig, IngestHandle
from ingest.batching import Backoff
from ingest.records import Payload, PayloadKind, Source, decode_record
from ingest.spool import Position, read_frames

PTEE = "ProvisionedThroughputExceededException"


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    url = urlparse(moto_endpoint)
    p = FaultProxy(url.hostname or "127.0.0.1", url.port or 0, hold_s=1.0)
    p.start()
    yield p
    p.stop()


def config(tmp_path: Path, stream: str, port: int) -> IngestConfig:
    return IngestConfig(
        data_dir=tmp_path,
        worker_id=0,
        kinesis_stream=stream,
        kinesis_endpoint=f"http://127.0.0.1:{port}",
        kinesis_read_timeout_s=0.5,
        backoff=Backoff(base_s=0.01, cap_s=0.2),
        pacer_min_s=0.01,
        pacer_max_s=0.1,
        seed=7,
    )


def payload(i: int, events: int) -> Payload:
    return Payload(
        env="prod",
        kind=PayloadKind.ANALYTICS,
        source=Source.SERVER,
        payload_id=f"p{i:04d}",
        received_ms=1_700_000_000_000 + i,
        events=tuple(
            {"kind": "custom", "key": f"k{j}", "creationDate": 1, "data": "x" * 200}
            for j in range(events)
        ),
    )


async def submit_all(handle: IngestHandle, count: int, events: int) -> set[str]:
    """Submit concurrently, as many HTTP requests would, so batches hold many records; return
    the event IDs of the acknowledged payloads."""
    ids: set[str] = set()

    async def one(i: int) -> None:
        await handle.submit(payload(i, events))
        ids.update(f"p{i:04d}:{j}" for j in range(events))

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
    return ids


async def wait_drained(handle: IngestHandle) -> None:
    with trio.fail_after(60):
        for _ in range(6000):
            s = handle.statistics()
            if s.spooled > 0 and s.sent >= s.spooled and s.backlog_bytes == 0:
                return
            await trio.sleep(0.01)


def stream_ids(endpoint: str, stream: str) -> tuple[Counter[str], list[tuple[str, str]]]:
    ids: Counter[str] = Counter()
    order: list[tuple[str, str]] = []
    for shard, _key, data in read_stream(endpoint, stream):
        for line in decode_record(data):
            ids[line["id"]] += 1
            order.append((shard, line["payloadId"]))
    return ids, order


FAULTS = [
    ("partial", {"calls": 4, "every": 3, "error_code": PTEE}),
    ("partial", {"calls": 4, "every": 2, "error_code": "InternalFailure"}),
    ("throttle", {"calls": 3}),
    ("5xx", {"calls": 3}),
    ("timeout_before", {"calls": 1}),
    ("timeout_after", {"calls": 1}),
]


@pytest.mark.parametrize(("fault", "options"), FAULTS)
async def test_every_accepted_event_reaches_the_stream(
    tmp_path: Path,
    stream: str,
    moto_endpoint: str,
    proxy: FaultProxy,
    fault: str,
    options: dict[str, object],
) -> None:
    proxy.arm(fault, **options)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(IngestActor(config(tmp_path, stream, proxy.port)).run)
        expected = await submit_all(handle, count=40, events=25)
        await wait_drained(handle)
        stats = handle.statistics()
        handle.close()
    ids, _ = await trio.to_thread.run_sync(stream_ids, moto_endpoint, stream)
    assert set(ids) == expected
    assert proxy.injected[fault] >= 1
    duplicates = sum(ids.values()) - len(ids)
    if fault == "partial":
        assert stats.retried == proxy.failed_records > 0
        assert duplicates == 0  # only the failed records were re-sent
    if options.get("error_code") == PTEE or fault == "throttle":
        assert stats.throttled > 0
    if fault in ("5xx", "timeout_before", "timeout_after"):
        assert stats.kinesis_errors == options["calls"]
    if fault == "timeout_after":
        assert duplicates > 0  # stored, but the answer was lost: at-least-once
    else:
        assert duplicates == 0
    print(f"{fault} {options}: {len(expected)} events, {stats}, duplicates {duplicates}")


async def test_outage_spools_then_drains_in_order(
    tmp_path: Path, stream: str, moto_endpoint: str, proxy: FaultProxy
) -> None:
    proxy.arm("outage", calls=None)
    async with trio.open_nursery() as nursery:
        strict = dataclasses.replace(config(tmp_path, stream, proxy.port), max_inflight_calls=1)
        handle = await nursery.start(IngestActor(strict).run)
        expected = await submit_all(handle, count=60, events=10)
        with trio.fail_after(30):
            for _ in range(3000):
                if handle.statistics().kinesis_errors >= 5:
                    break
                await trio.sleep(0.01)
        during = handle.statistics()
        assert during.sent == 0 and during.spooled == 60 and during.backlog_bytes > 0
        spooled = read_frames(
            tmp_path / "spool" / "worker-0", Position(1, 0), max_records=1000, max_bytes=1 << 30
        )
        spool_order = [record.partition_key for record, _ in spooled]
        assert sorted(spool_order) == sorted(f"p{i:04d}" for i in range(60))
        proxy.clear()
        await wait_drained(handle)
        after = handle.statistics()
        handle.close()
    assert after.backlog_bytes == 0
    ids, order = await trio.to_thread.run_sync(stream_ids, moto_endpoint, stream)
    assert set(ids) == expected and sum(ids.values()) == len(expected)
    for shard in {s for s, _ in order}:
        in_shard = list(dict.fromkeys(pid for s, pid in order if s == shard))
        assert in_shard == [pid for pid in spool_order if pid in in_shard]  # spool order kept
    # Partition keys are payload IDs: both shards got records.
    assert len({s for s, _ in order}) == 2
    # Shipped segments are removed from the spool.
    assert len(list((tmp_path / "spool" / "worker-0").glob("*.seg"))) == 1
