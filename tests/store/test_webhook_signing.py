"""Webhook signatures (store/webhooks/signing.py): what a receiver accepts and refuses."""

from __future__ import annotations

import pytest

from store.webhooks.signing import parse_header, sign, signature, verify_signature

SECRET = "whsec_0123456789abcdef"
BODY = b'{"seq":7,"env":"prod","kind":"flags","key":"f"}'
T = 1_700_000_000


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac
    want = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, T, BODY) == want
    assert sign(SECRET, T, BODY) == f"t={T},v1={want}"


CASES = [
    # (what, secret used to verify, header, body, now, tolerance, accepted)
    ("the signed body, now", SECRET, sign(SECRET, T, BODY), BODY, T, 300, True),
    ("4 min 59 s later", SECRET, sign(SECRET, T, BODY), BODY, T + 299, 300, True),
    ("exactly at the tolerance", SECRET, sign(SECRET, T, BODY), BODY, T + 300, 300, True),
    ("one second too old (replay)", SECRET, sign(SECRET, T, BODY), BODY, T + 301, 300, False),
    ("an hour old", SECRET, sign(SECRET, T, BODY), BODY, T + 3600, 300, False),
    ("from the future beyond tolerance", SECRET, sign(SECRET, T, BODY), BODY, T - 301, 300,
     False),
    ("tampered body", SECRET, sign(SECRET, T, BODY), BODY.replace(b"7", b"8"), T, 300, False),
    ("body with a byte added", SECRET, sign(SECRET, T, BODY), BODY + b" ", T, 300, False),
    ("wrong secret", "whsec_another-secret-xx", sign(SECRET, T, BODY), BODY, T, 300, False),
    ("timestamp changed to look fresh", SECRET,
     sign(SECRET, T, BODY).replace(f"t={T}", f"t={T + 1000}"), BODY, T + 1000, 300, False),
    ("no timestamp", SECRET, f"v1={signature(SECRET, T, BODY)}", BODY, T, 300, False),
    ("no v1", SECRET, f"t={T}", BODY, T, 300, False),
    ("empty header", SECRET, "", BODY, T, 300, False),
    ("garbage", SECRET, "hello", BODY, T, 300, False),
    ("negative timestamp", SECRET, f"t=-5,v1={signature(SECRET, -5, BODY)}", BODY, -5, 300,
     False),
    ("two v1, the second right (secret rotation)", SECRET,
     f"t={T},v1={'0' * 64},v1={signature(SECRET, T, BODY)}", BODY, T, 300, True),
    ("an unknown scheme beside v1 is skipped", SECRET,
     f"t={T},v2=zzz,v1={signature(SECRET, T, BODY)}", BODY, T, 300, True),
    ("upper-case hex is not the signature", SECRET,
     f"t={T},v1={signature(SECRET, T, BODY).upper()}", BODY, T, 300, False),
    ("non-ASCII signature", SECRET, f"t={T},v1=é{signature(SECRET, T, BODY)[1:]}", BODY, T,
     300, False),
    ("an oversized header", SECRET, sign(SECRET, T, BODY) + ",x=" + "a" * 2000, BODY, T, 300,
     False),
]


@pytest.mark.parametrize(("secret", "header", "body", "now", "tolerance", "accepted"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verify_signature(secret: str, header: str, body: bytes, now: float, tolerance: float,
                          accepted: bool) -> None:
    assert verify_signature(secret, header, body, now, tolerance) is accepted


def test_parse_header_reads_the_timestamp_and_every_v1() -> None:
    assert parse_header("t=12, v1=ab ,v1=cd") == (12, ["ab", "cd"])
    assert parse_header("t=1,t=2,v1=ab") is None  # two timestamps: ambiguous
