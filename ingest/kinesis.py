"""The one place boto3 is called (STYLE.md principle 15): blocking calls run in worker threads
behind a ``trio.CapacityLimiter``; botocore errors become ``ingest.errors`` here and nowhere else.

Region and credentials come from the standard AWS environment and config files
(``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``…, ``~/.aws``). ``endpoint_url``
(``--kinesis-endpoint``) points at an emulator; ``AWS_ENDPOINT_URL_KINESIS`` works as well.
botocore's own retries are off: the ingest actor owns retrying, so it can retry only the
failed records of a partial failure and slow down on throttling.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3  # type: ignore[import-untyped]
import trio
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoRegionError,
)

from ingest.batching import THROTTLED
from ingest.errors import IngestError, SinkThrottled, SinkUnavailable
from ingest.ports import Record, RecordOutcome

_THROTTLE_CODES = {THROTTLED, "ThrottlingException", "LimitExceededException"}


class IteratorExpired(IngestError):
    """A shard iterator is older than five minutes (or otherwise invalid); get a new one."""


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    parent_shard_id: str | None


@dataclass(frozen=True, slots=True)
class ReadBatch:
    records: list[tuple[str, bytes]]  # (sequence number, data)
    next_iterator: str | None  # None: the shard is closed and fully read
    behind_ms: int


class KinesisClient:
    """A Kinesis stream, seen through boto3. Thread-safe: one lazily-built client is shared by
    the worker threads (boto3 clients are thread-safe; building one is not, hence the lock)."""

    def __init__(
        self,
        stream: str,
        *,
        endpoint_url: str | None = None,
        limiter: trio.CapacityLimiter | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        self.stream = stream
        self.endpoint_url = endpoint_url
        self.limiter = limiter or trio.CapacityLimiter(4)
        self._config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=8,
        )
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                session = boto3.session.Session()
                region = session.region_name
                if region is None and self.endpoint_url is not None:
                    region = "us-east-1"  # emulators need some region; AWS needs a real one
                try:
                    self._client = session.client(
                        "kinesis",
                        endpoint_url=self.endpoint_url,
                        region_name=region,
                        config=self._config,
                    )
                except NoRegionError:
                    raise SinkUnavailable(
                        "no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION)"
                    ) from None
            return self._client

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await trio.to_thread.run_sync(self._call_sync, method, kwargs, limiter=self.limiter)

    def _call_sync(self, method: str, kwargs: dict[str, Any]) -> Any:
        try:
            return getattr(self._get_client(), method)(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _THROTTLE_CODES:
                raise SinkThrottled(code) from None
            if code in ("ExpiredIteratorException",) or (
                method == "get_records" and code == "InvalidArgumentException"
            ):
                raise IteratorExpired(code) from None
            raise SinkUnavailable(f"{method}: {code}: {exc}") from None
        except BotoCoreError as exc:  # connection refused/reset, timeouts, bad responses
            raise SinkUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None

    # -- RecordSink --------------------------------------------------------------------------

    async def put_records(self, records: Sequence[Record]) -> list[RecordOutcome]:
        resp = await self._call(
            "put_records",
            StreamName=self.stream,
            Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in records],
        )
        entries = resp.get("Records", [])
        if len(entries) != len(records):
            raise SinkUnavailable(f"PutRecords answered {len(entries)} of {len(records)} records")
        return [
            RecordOutcome(
                error_code=e.get("ErrorCode"),
                sequence_number=e.get("SequenceNumber"),
                shard_id=e.get("ShardId"),
            )
            for e in entries
        ]

    # -- reading, for the insights consumer ------------------------------------------------

    async def list_shards(self) -> list[Shard]:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        for _page in range(1000):
            resp = await self._call("list_shards", **kwargs)
            shards.extend(
                Shard(s["ShardId"], s.get("ParentShardId")) for s in resp.get("Shards", [])
            )
            token = resp.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token}
        return shards

    async def shard_iterator(
        self, shard_id: str, *, after_sequence: str | None = None, at_ms: int | None = None
    ) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard_id}
        if after_sequence is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER")
            kwargs["StartingSequenceNumber"] = after_sequence
        elif at_ms is not None:
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=at_ms / 1000)
        else:
            kwargs.update(ShardIteratorType="TRIM_HORIZON")
        resp = await self._call("get_shard_iterator", **kwargs)
        return str(resp["ShardIterator"])

    async def get_records(self, iterator: str, *, limit: int = 1000) -> ReadBatch:
        resp = await self._call("get_records", ShardIterator=iterator, Limit=limit)
        return ReadBatch(
            records=[(r["SequenceNumber"], bytes(r["Data"])) for r in resp.get("Records", [])],
            next_iterator=resp.get("NextShardIterator"),
            behind_ms=int(resp.get("MillisBehindLatest", 0) or 0),
        )

    async def create_stream_if_missing(self, shards: int = 2) -> None:
        """For tests and the benchmark against emulators; production streams are provisioned
        by the operator."""
        try:
            await self._call("create_stream", StreamName=self.stream, ShardCount=shards)
        except SinkUnavailable as exc:
            if "ResourceInUseException" not in str(exc):
                raise
        for _ in range(200):
            resp = await self._call("describe_stream_summary", StreamName=self.stream)
            if resp["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                return
            await trio.sleep(0.05)
        raise SinkUnavailable(f"stream {self.stream} did not become ACTIVE")
