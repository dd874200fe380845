"""The pure cores, table-driven: batch planning, backoff, pacing, payload dedup, the record
format round trip, and the spool's framing and torn-tail recovery (real files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ingest import spool
from ingest.batching import (
    MAX_BYTES_PER_CALL,
    MAX_BYTES_PER_RECORD,
    MAX_RECORDS_PER_CALL,
    Backoff,
    Episode,
    Pacer,
    classify,
    plan_batch,
)
from ingest.dedup import PayloadDedup
from ingest.errors import PayloadRejected
from ingest.ports import Record, RecordOutcome
from ingest.records import (
    Payload,
    PayloadKind,
    Source,
    decode_body,
    decode_record,
    encode_records,
    parse_events,
)

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([], 0),
        ([10] * 600, 500),  # record-count limit
        ([1_000_000] * 6, 5),  # 5 MiB limit: 5 records of ~1 MB fit, the 6th does not
        ([MiB - 1], 1),  # a record at the limit (its 1-byte key included) goes alone
        ([MiB - 1] * 6, 5),  # 5 MiB - 5 bytes in five records; the sixth would exceed
        ([MiB] * 6, 5),  # exactly 5 MiB in five records of 1 MiB; the sixth waits
        ([MiB] * 4 + [MiB - 1, 1], 6),  # exactly 5 MiB in six records: all fit
        ([MiB] * 4 + [MiB - 1, 2], 5),  # one byte over: the last one waits
    ],
)
def test_plan_batch(sizes: list[int], expected: int) -> None:
    # sizes count the data and the 1-byte partition key, as Kinesis does
    records = [Record("k", b"x" * (n - 1)) for n in sizes]
    assert plan_batch(records) == expected


def test_plan_batch_limits_are_the_kinesis_ones() -> None:
    assert MAX_RECORDS_PER_CALL == 500
    assert MAX_BYTES_PER_CALL == 5_242_880
    assert MAX_BYTES_PER_RECORD == 1_048_576


def test_plan_batch_refuses_an_oversized_record() -> None:
    assert plan_batch([Record("k", b"x" * (MiB - 1))]) == 1  # 1 MiB with its key: allowed
    with pytest.raises(ValueError, match=r"^record of 1048577 bytes exceeds the Kinesis "
                       r"per-record limit$"):
        plan_batch([Record("k", b"x" * MiB)])


def test_classify() -> None:
    result = classify(
        [
            RecordOutcome(sequence_number="1"),
            RecordOutcome("ProvisionedThroughputExceededException"),
            RecordOutcome("InternalFailure"),
        ]
    )
    assert (result.stored, result.failed, result.throttled) == (1, (1, 2), 1)
    throttled = RecordOutcome("ProvisionedThroughputExceededException")
    result = classify([throttled, RecordOutcome("InternalFailure"), throttled, throttled])
    assert (result.stored, result.failed, result.throttled) == (0, (0, 1, 2, 3), 3)


@pytest.mark.parametrize(
    ("attempt", "rand", "delay"),
    [(0, 0.0, 0.05), (0, 1.0, 0.1), (3, 0.5, 0.6), (10, 0.0, 5.0), (10, 1.0, 10.0)],
)
def test_backoff_equal_jitter(attempt: int, rand: float, delay: float) -> None:
    assert Backoff(base_s=0.1, cap_s=10.0).delay(attempt, rand) == pytest.approx(delay)


def test_backoff_defaults_and_exponent_cap() -> None:
    # default base 0.1 s, cap 10 s: attempt 0 waits 50-100 ms, attempt 7 on waits 5-10 s
    assert Backoff().delay(0, 0.0) == pytest.approx(0.05)
    assert Backoff().delay(0, 1.0) == pytest.approx(0.1)
    assert Backoff().delay(7, 1.0) == pytest.approx(10.0)
    # the exponent stops at 30, so a long outage never computes an unbounded power
    assert Backoff(base_s=1.0, cap_s=1e12).delay(40, 1.0) == 2.0**30


def test_pacer_defaults_and_clean_boundary() -> None:
    pacer = Pacer()
    assert (pacer.min_s, pacer.max_s, pacer.delay_s) == (0.05, 5.0, 0.0)
    for _ in range(10):
        pacer.on_throttled()
    assert pacer.delay_s == 5.0
    pacer = Pacer(min_s=0.25, max_s=1.0)
    pacer.on_throttled()
    pacer.on_throttled()
    assert pacer.delay_s == 0.5
    pacer.on_clean()
    assert pacer.delay_s == 0.25  # half is exactly min_s: kept
    pacer.on_clean()
    assert pacer.delay_s == 0.0  # below min_s: no pacing


def test_episode_logs_start_and_end_once() -> None:
    episode = Episode()
    assert (episode.active, episode.count) == (False, 0)
    assert episode.resolved() is False  # nothing to end
    assert [episode.occurred() for _ in range(3)] == [True, False, False]
    assert (episode.active, episode.count) == (True, 3)
    assert episode.resolved() is True
    assert (episode.active, episode.count) == (False, 3)
    assert episode.resolved() is False
    assert episode.occurred() is True  # a new outage is a new episode
    assert episode.count == 4


def test_pacer_doubles_on_throttle_and_halves_back_to_zero() -> None:
    pacer = Pacer(min_s=0.05, max_s=0.3)
    seen = []
    for event in ["t", "t", "t", "t", "c", "c", "c", "c"]:
        pacer.on_throttled() if event == "t" else pacer.on_clean()
        seen.append(pacer.delay_s)
    assert seen == pytest.approx([0.05, 0.1, 0.2, 0.3, 0.15, 0.075, 0.0, 0.0])


def test_dedup_window() -> None:
    dedup = PayloadDedup(capacity=2, ttl_s=10)
    dedup.remember("prod", "a", now=0)
    assert dedup.seen("prod", "a", now=9.9) and not dedup.seen("qa", "a", now=9.9)
    assert not dedup.seen("prod", "a", now=10.0)
    for pid in "bcd":
        dedup.remember("prod", pid, now=20)
    assert len(dedup) == 2 and not dedup.seen("prod", "b", now=20)


def test_records_round_trip_and_split() -> None:
    events = tuple({"kind": "custom", "key": f"k{i}", "data": "x" * 100} for i in range(50))
    payload = Payload("prod", PayloadKind.ANALYTICS, Source.MOBILE, "pid", 123, events)
    records = encode_records(payload, max_record_bytes=1000)
    assert len(records) > 5 and all(len(r.data) <= 1000 for r in records)
    assert {r.partition_key for r in records} == {"pid"}
    lines = [line for r in records for line in decode_record(r.data)]
    assert [line["id"] for line in lines] == [f"pid:{i}" for i in range(50)]
    assert [line["event"] for line in lines] == list(events)
    assert {(x["env"], x["src"], x["kind"], x["received"]) for x in lines} == {
        ("prod", "mobile", "analytics", 123)
    }


def test_an_event_over_the_record_limit_is_413() -> None:
    payload = Payload(
        "prod", PayloadKind.ANALYTICS, Source.SERVER, "p", 1, ({"kind": "c", "d": "x" * 5000},)
    )
    with pytest.raises(PayloadRejected) as info:
        encode_records(payload, max_record_bytes=1000)
    assert info.value.status == 413


@pytest.mark.parametrize("kind", [PayloadKind.ANALYTICS, PayloadKind.DIAGNOSTIC])
def test_an_event_nested_deeper_than_orjson_writes_is_400(kind: PayloadKind) -> None:
    deep = b'{"kind":"custom","key":"k","data":' + b"[" * 300 + b"]" * 300 + b"}"
    events = parse_events(deep if kind is PayloadKind.DIAGNOSTIC else b"[" + deep + b"]", kind)
    with pytest.raises(PayloadRejected) as info:
        encode_records(Payload("prod", kind, Source.SERVER, "p", 1, events))
    assert info.value.status == 400 and "nested too deeply" in info.value.message


def test_gzip_bomb_is_bounded() -> None:
    bomb = gzip.compress(b"[" + b" " * 10_000_000 + b"]")
    with pytest.raises(PayloadRejected) as info:
        decode_body(bomb, "gzip", max_bytes=1_000_000)
    assert info.value.status == 413
    assert decode_body(gzip.compress(b"[]"), "gzip", max_bytes=10) == b"[]"


def test_spool_rotates_reads_in_order_and_truncates_a_torn_tail(tmp_path: Path) -> None:
    writer = spool.SpoolWriter(tmp_path, segment_bytes=300)
    assert writer.open() == spool.Position(1, 0)
    for i in range(10):
        writer.append(spool.encode_frame(Record(f"k{i}", b"d" * 50)))
    writer.close()
    assert len(spool.list_segments(tmp_path)) > 2
    frames = spool.read_frames(tmp_path, spool.Position(0, 0), max_records=100, max_bytes=MiB)
    assert [r.partition_key for r, _ in frames] == [f"k{i}" for i in range(10)]
    # Resume from a position in the middle.
    rest = spool.read_frames(tmp_path, frames[3][1], max_records=100, max_bytes=MiB)
    assert [r.partition_key for r, _ in rest] == [f"k{i}" for i in range(4, 10)]
    # A crash mid-append leaves half a frame: readers stop before it, open() truncates it.
    last = spool.segment_path(tmp_path, spool.list_segments(tmp_path)[-1])
    good_size = last.stat().st_size
    with open(last, "ab") as f:
        f.write(spool.encode_frame(Record("torn", b"t" * 50))[:30])
    frames = spool.read_frames(tmp_path, spool.Position(0, 0), max_records=100, max_bytes=MiB)
    assert len(frames) == 10
    writer = spool.SpoolWriter(tmp_path, segment_bytes=300)
    assert writer.open().offset == good_size == last.stat().st_size
    writer.append(spool.encode_frame(Record("k10", b"d")))
    writer.close()
    frames = spool.read_frames(tmp_path, spool.Position(0, 0), max_records=100, max_bytes=MiB)
    assert [r.partition_key for r, _ in frames][-2:] == ["k9", "k10"]
    # Checkpoints and segment deletion.
    spool.write_checkpoint(tmp_path / "cp", frames[5][1])
    assert spool.read_checkpoint(tmp_path / "cp") == frames[5][1]
    assert spool.delete_segments_before(tmp_path, frames[5][1].segment) > 0
    after = spool.read_frames(tmp_path, frames[5][1], max_records=100, max_bytes=MiB)
    assert [r.partition_key for r, _ in after] == [f"k{i}" for i in range(6, 11)]
