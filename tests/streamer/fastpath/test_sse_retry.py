"""The per-connection SSE ``retry:`` field that spreads reconnects."""

from __future__ import annotations

import pytest

from streamer.fastpath.sse import (
    RETRY_BASE_MS,
    RETRY_JITTER_MS,
    ChunkedDecoder,
    SSEDecoder,
    retry_chunk,
)


@pytest.mark.parametrize(("unit", "ms"), [(0.0, RETRY_BASE_MS), (0.5, RETRY_BASE_MS + 500),
                                          (0.999999, RETRY_BASE_MS + RETRY_JITTER_MS - 1)])
def test_retry_chunk_decodes_to_the_drawn_delay(unit: float, ms: int) -> None:
    body = ChunkedDecoder().feed(retry_chunk(unit))
    decoder = SSEDecoder()
    assert list(decoder.feed(body)) == []  # a retry-only block dispatches no event
    assert decoder.retry == ms
