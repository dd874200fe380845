"""The credentials of a new environment (the admin token file is the supervisor's)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnvCredentials:
    sdk_key: str
    mobile_key: str
    client_side_id: str


def new_env_credentials() -> EnvCredentials:
    return EnvCredentials(
        sdk_key=f"sdk-{uuid.uuid4()}",
        mobile_key=f"mob-{uuid.uuid4()}",
        client_side_id=secrets.token_hex(12),  # 24 hex characters, like LaunchDarkly's IDs
    )
