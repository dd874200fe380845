"""What client-side and mobile SDKs receive: payload fields and availability."""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel import (
    Evaluator,
    Flag,
    client_side_flag,
    client_side_payload,
    is_client_side_available,
    parse_context,
    secure_mode_hash,
)

# -- client-side payload ---------------------------------------------------------------------

def _cs(flag_extra: dict[str, Any], with_reasons: bool) -> dict[str, Any]:
    flag = Flag.from_json({"key": "f", "version": 7, "on": True, "variations": ["a", "b"],
                           "fallthrough": {"variation": 1}, **flag_extra})
    detail = Evaluator(lambda k: None, lambda k: None).evaluate(
        flag, parse_context({"kind": "user", "key": "u"}))
    return client_side_flag(flag, detail, with_reasons=with_reasons)


CLIENT_SIDE = [
    ({}, False, {"value": "b", "variation": 1, "version": 7, "flagVersion": 7}),
    ({}, True, {"value": "b", "variation": 1, "version": 7, "flagVersion": 7,
                "reason": {"kind": "FALLTHROUGH"}}),
    ({"trackEvents": True, "debugEventsUntilDate": 1700000000000}, False,
     {"value": "b", "variation": 1, "version": 7, "flagVersion": 7, "trackEvents": True,
      "debugEventsUntilDate": 1700000000000}),
    ({"trackEventsFallthrough": True}, False,
     {"value": "b", "variation": 1, "version": 7, "flagVersion": 7, "trackEvents": True,
      "trackReason": True, "reason": {"kind": "FALLTHROUGH"}}),
    ({"on": False}, False, {"value": None, "version": 7, "flagVersion": 7}),
]


@pytest.mark.parametrize(("extra", "with_reasons", "expected"), CLIENT_SIDE)
def test_client_side_flag_fields(extra: dict[str, Any], with_reasons: bool,
                                 expected: dict[str, Any]) -> None:
    assert _cs(extra, with_reasons) == expected


AVAILABILITY = [  # flag JSON extra → (mobile, environment id)
    ({}, (True, False)), ({"clientSide": True}, (True, True)),
    ({"clientSideAvailability": {"usingMobileKey": False, "usingEnvironmentId": True},
      "clientSide": False}, (False, True)),
    ({"clientSideAvailability": {}}, (False, False)),
]


@pytest.mark.parametrize(("extra", "expected"), AVAILABILITY)
def test_client_side_availability(extra: dict[str, Any], expected: tuple[bool, bool]) -> None:
    flag = Flag.from_json({"key": "f", "version": 1, **extra})
    got = (is_client_side_available(flag, mobile=True),
           is_client_side_available(flag, mobile=False))
    assert got == expected


def test_client_side_payload_filters_by_availability_and_tombstones() -> None:
    base = {"version": 2, "on": True, "variations": [1, 2], "fallthrough": {"variation": 0}}
    flags = [Flag.from_json({**base, "key": "js", "clientSide": True}),
             Flag.from_json({**base, "key": "server-only", "clientSideAvailability": {}}),
             Flag.from_json({**base, "key": "mobile-only"}),
             Flag.from_json({**base, "key": "gone", "clientSide": True, "deleted": True})]
    evaluator = Evaluator({f.key: f for f in flags}.get, lambda k: None)
    ctx = parse_context({"key": "u"})
    one = {"value": 1, "variation": 0, "version": 2, "flagVersion": 2}
    assert client_side_payload(evaluator, flags, ctx, mobile=False, with_reasons=False) == {
        "js": one}
    assert client_side_payload(evaluator, flags, ctx, mobile=True, with_reasons=False) == {
        "js": one, "mobile-only": one}


def test_client_side_flag_lists_the_prerequisites_it_evaluated() -> None:
    flags = {f.key: f for f in [
        Flag.from_json({"key": "p1", "version": 1, "on": True, "variations": [True, False],
                        "fallthrough": {"variation": 0}}),
        Flag.from_json({"key": "p2", "version": 1, "on": True, "variations": [True, False],
                        "fallthrough": {"variation": 0}}),
        Flag.from_json({"key": "f", "version": 4, "on": True, "variations": ["a", "b"],
                        "fallthrough": {"variation": 1},
                        "prerequisites": [{"key": "p2", "variation": 0},
                                          {"key": "p1", "variation": 0}]}),
    ]}
    evaluator = Evaluator(flags.get, lambda k: None)
    payload = client_side_payload(evaluator, [flags["f"]], parse_context({"key": "u"}),
                                  mobile=True, with_reasons=True)
    assert payload == {"f": {"value": "b", "variation": 1, "version": 4, "flagVersion": 4,
                             "reason": {"kind": "FALLTHROUGH"},
                             "prerequisites": ["p2", "p1"]}}


SECURE_MODE = [  # (SDK key, context) → hex HMAC-SHA256 of the fully-qualified key
    ("sdk-key-123", "u", "ca0aa14092cdabcf64614f82f995aeb86be562cc6e56ae597754cc2a6e23928f"),
    ("sdk-key-123", {"kind": "multi", "user": {"key": "u"}, "org": {"key": "o:1"}},
     "5d48f834f9b720c194e1692aff5fbc173f3122a3b140f0766ef42d8098231663"),
]


@pytest.mark.parametrize(("sdk_key", "context", "expected"), SECURE_MODE)
def test_secure_mode_hash(sdk_key: str, context: Any, expected: str) -> None:
    assert secure_mode_hash(sdk_key, context if isinstance(context, str)
                            else parse_context(context)) == expected
