"""Domain errors of the ingest package. botocore and OS errors are translated into these once,
at the IO boundary (``ingest.kinesis``, ``ingest.actor``), and nowhere else."""

from __future__ import annotations


class IngestError(Exception):
    """Base class."""


class PayloadRejected(IngestError):
    """The request body is not an acceptable events payload (HTTP 400 or 413)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class IngestUnavailable(IngestError):
    """The payload could not be queued safely: shutting down, spool full or unwritable,
    or the queue stayed full past the admission timeout. Mapped to HTTP 503; the SDK retries
    once. The payload was not acknowledged, so nothing acknowledged is lost."""


class SinkThrottled(IngestError):
    """The whole PutRecords call was throttled (ProvisionedThroughputExceededException)."""


class SinkUnavailable(IngestError):
    """The PutRecords call failed as a whole (unreachable, timeout, 5xx, unexpected reply).
    Some of its records may have been stored: the retry may duplicate them (at-least-once)."""
