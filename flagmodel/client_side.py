"""What client-side and mobile SDKs receive: evaluated flags (PROTOCOL.md §2.1, §2.4)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from flagmodel.context import Context
from flagmodel.evaluator import EvalDetail, Evaluator
from flagmodel.model import Flag


def client_side_flag(flag: Flag, detail: EvalDetail, *, with_reasons: bool) -> dict[str, Any]:
    """One entry of the evaluated-flags payload, with the field rules of §2.4 (ld-relay
    ``evaluateAllShared``): optional fields appear only when they carry information."""
    out: dict[str, Any] = {"value": detail.value}
    if detail.variation_index is not None:
        out["variation"] = detail.variation_index
    out["version"] = flag.version
    out["flagVersion"] = flag.version
    if detail.track_events:
        out["trackEvents"] = True
    if detail.in_experiment:
        out["trackReason"] = True
    if with_reasons or detail.in_experiment:
        out["reason"] = detail.reason
    if flag.debug_events_until_date:
        out["debugEventsUntilDate"] = flag.debug_events_until_date
    if detail.prerequisites:
        out["prerequisites"] = list(detail.prerequisites)
    return out


def is_client_side_available(flag: Flag, *, mobile: bool) -> bool:
    """Whether the flag belongs in mobile-key (``mobile=True``) or environment-ID payloads.

    ``clientSideAvailability`` decides when present; in the legacy schema mobile SDKs see every
    flag and JS SDKs only flags with ``clientSide: true``."""
    return flag.using_mobile_key if mobile else flag.using_environment_id


def secure_mode_hash(sdk_key: str, context: Context | str) -> str:
    """Hex HMAC-SHA256 of the context's fully-qualified key, keyed with the SDK key (§2.1)."""
    message = context if isinstance(context, str) else context.fully_qualified_key
    return hmac.new(sdk_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def client_side_payload(evaluator: Evaluator, flags: Iterable[Flag], context: Context, *,
                        mobile: bool, with_reasons: bool) -> dict[str, dict[str, Any]]:
    """The whole evaluated-flags payload (poll body, client stream ``put``) for one context:
    every live flag available to this kind of client, evaluated."""
    out: dict[str, dict[str, Any]] = {}
    for flag in flags:
        if flag.deleted or not is_client_side_available(flag, mobile=mobile):
            continue
        out[flag.key] = client_side_flag(flag, evaluator.evaluate(flag, context),
                                         with_reasons=with_reasons)
    return out
