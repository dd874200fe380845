"""Schemathesis against the admin API's OpenAPI document (store/openapi.yaml), on a real store.

Every operation gets generated requests, valid and invalid (negative mode): the checks are
that no answer is a 500, that every status and body is one the document declares, that
invalid input is refused with a 4xx and that auth is enforced. The number of examples per
operation is ``FLAGSTREAM_SCHEMATHESIS_EXAMPLES`` (default 30; ``tests/badinput`` documents
the longer run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case

from tests.badinput.admin_server import TOKEN, StoreThread

OPENAPI = Path(__file__).resolve().parents[2] / "store" / "openapi.yaml"
EXAMPLES = int(os.environ.get("FLAGSTREAM_SCHEMATHESIS_EXAMPLES", "30"))
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SENT = [0]  # requests made, printed at the end (run with -s)

schema = schemathesis.openapi.from_path(OPENAPI)
# A schema-valid flag can still be refused by the store's validation (400): that is correct,
# so the check "valid data must be accepted" does not apply to this API.
EXCLUDED: list[Any] = [CHECKS.get_by_names(["positive_data_acceptance"])[0]]


@pytest.fixture(scope="module")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = StoreThread(tmp_path_factory.mktemp("schemathesis")).start()
    with httpx.Client(base_url=store.url, headers=AUTH, timeout=10) as c:
        assert c.post("/api/v1/environments", json={"key": "prod"}).status_code == 201
        flag = {"on": True, "variations": [True, False], "fallthrough": {"variation": 0}}
        assert c.put("/api/v1/environments/prod/flags/f1", json=flag).status_code == 201
    try:
        yield store.url
    finally:
        store.stop()
        print(f"\nschemathesis: {SENT[0]} requests, {EXAMPLES} examples per operation")


def _negative(case: Case[Any], where: ParameterLocation | None = None) -> bool:
    meta = case._meta
    if meta is None:
        return False
    if where is None:
        return meta.generation.mode == GenerationMode.NEGATIVE
    info = meta.components.get(where)
    return info is not None and info.mode == GenerationMode.NEGATIVE


def _aim(case: Case[Any]) -> None:
    # Random environment keys are almost never "prod"; half the valid cases aim at the real
    # one so the handlers behind the 404 get exercised too.
    if _negative(case, ParameterLocation.PATH):
        return
    params = case.path_parameters or {}
    if "env" in params and isinstance(params["env"], str) and len(params["env"]) % 2 == 0:
        params["env"] = "prod"
    if "key" in params and isinstance(params["key"], str) and len(params["key"]) % 3 == 0:
        params["key"] = "f1"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_admin_api_conforms(case: Case[Any], admin_url: str) -> None:
    _aim(case)
    # A case generated without (or with a broken) Authorization header is sent as generated.
    headers = None if _negative(case, ParameterLocation.HEADER) else AUTH
    SENT[0] += 1
    case.call_and_validate(base_url=admin_url, headers=headers, excluded_checks=EXCLUDED,
                           timeout=10)
