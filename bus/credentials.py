"""The credentials of a new environment (the admin token file is the supervisor's)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

# Every SDK key and mobile key this store issues starts with its kind's prefix. The bus decoder
# relies on it only for messages from stores older than the per-kind grace lists (see
# bus/envelope.py); every lookup otherwise goes by the kind the store recorded.
SDK_KEY_PREFIX = "sdk-"
MOBILE_KEY_PREFIX = "mob-"


@dataclass(frozen=True, slots=True)
class EnvCredentials:
    sdk_key: str
    mobile_key: str
    client_side_id: str


def new_env_credentials() -> EnvCredentials:
    return EnvCredentials(
        sdk_key=f"{SDK_KEY_PREFIX}{uuid.uuid4()}",
        mobile_key=f"{MOBILE_KEY_PREFIX}{uuid.uuid4()}",
        client_side_id=secrets.token_hex(12),  # 24 hex characters, like LaunchDarkly's IDs
    )
