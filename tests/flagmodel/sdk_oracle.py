"""The official Python server SDK's evaluator as an oracle (public API, no network).

``open_oracle()`` yields an ``LDClient`` in daemon mode over an ``InMemoryFeatureStore`` that a
test fills with ``store.init``; ``sdk_result`` evaluates one flag for one context JSON the way
``flagmodel`` answers it: (value, variation index, reason), with ``DEFAULT`` as the value when
the SDK returns the caller's default.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ldclient import Config, LDClient
from ldclient import Context as LDContext
from ldclient.feature_store import InMemoryFeatureStore as _InMemoryFeatureStore
from ldclient.versioned_data_kind import FEATURES, SEGMENTS

from tests.flagmodel.harness_data import legacy_user_to_context

DEFAULT = "DEFAULT"
InMemoryFeatureStore: Any = _InMemoryFeatureStore  # the SDK's store methods are untyped


@contextmanager
def open_oracle() -> Iterator[tuple[Any, Any]]:
    store = InMemoryFeatureStore()
    store.init({FEATURES: {}, SEGMENTS: {}})
    nowhere = "http://127.0.0.1:9"
    config = Config("sdk-differential", feature_store=store, use_ldd=True, send_events=False,
                    diagnostic_opt_out=True, base_uri=nowhere, stream_uri=nowhere,
                    events_uri=nowhere)
    logging.getLogger("ldclient").setLevel(logging.CRITICAL)  # cycles and bad data are logged
    client: Any = LDClient(config, start_wait=0)
    try:
        yield client, store
    finally:
        client.close()


def sdk_result(client: Any, key: str, context: dict[str, Any]) -> tuple[Any, Any, Any]:
    detail = client.variation_detail(key, LDContext.from_dict(legacy_user_to_context(context)),
                                     DEFAULT)
    reason = {k: v for k, v in detail.reason.items() if not (k == "ruleId" and not v)}
    if reason["kind"] == "ERROR":
        reason.pop("bigSegmentsStatus", None)
    return detail.value, detail.variation_index, reason
