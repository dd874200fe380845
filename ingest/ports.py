"""The seams ingest meets other parts at (consumer-defined, STYLE.md principle 8).

- ``CredentialResolver``: what the event endpoints need from the worker's environment
  directory. ``ingest.http`` strips an optional ``api_key `` prefix from the Authorization
  header *before* calling it, so implementations see the bare key (``sdk-…``, ``mob-…``).
- ``RecordSink``: what the ingest actor needs from Kinesis (``ingest.kinesis.KinesisSink`` is
  the real one, over boto3; tests also use an in-memory one).
- ``FlagCatalog``: what the insights routes need from the store to list flags that were never
  evaluated and to tell an unknown flag from an idle one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class CredentialResolver(Protocol):
    """Maps an SDK credential to the environment key it belongs to (None: unknown)."""

    def env_key_for_sdk_key(self, credential: str) -> str | None: ...

    def env_key_for_mobile_key(self, credential: str) -> str | None: ...

    def env_key_for_client_side_id(self, env_id: str) -> str | None: ...

    async def await_known(self, find: Callable[[], str | None]) -> str | None:
        """``find()``, looked up again for a moment while it is None: a credential created
        a moment ago may still be on its way to this process. An SDK told 401/404 for its
        events stops sending them for good, so the answer must not be early."""
        ...


@dataclass(frozen=True, slots=True)
class Record:
    """One Kinesis record: a partition key and its data blob (NDJSON, see ``ingest.records``)."""

    partition_key: str
    data: bytes


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """Per-record result of a PutRecords call; ``error_code`` None means stored."""

    error_code: str | None = None
    sequence_number: str | None = None
    shard_id: str | None = None


class RecordSink(Protocol):
    """Puts one planned batch (already within the service limits) and reports per record.

    Raises ``ingest.errors.SinkThrottled`` when the whole call was throttled and
    ``ingest.errors.SinkUnavailable`` for anything that may have failed as a whole
    (unreachable, timeout, 5xx, unexpected rejection). Returns one outcome per record, in order.
    """

    async def put_records(self, records: Sequence[Record]) -> list[RecordOutcome]: ...


class FlagCatalog(Protocol):
    """The flags that exist in an environment, or None when the environment is unknown."""

    def flag_keys(self, env: str) -> list[str] | None: ...
