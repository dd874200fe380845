"""A real node serves its admin API's OpenAPI file, without a token."""

from __future__ import annotations

import httpx
import pytest
import yaml

from tests.e2e.node_proc import REPO, NodeProcess

pytestmark = pytest.mark.e2e


def test_the_admin_listener_serves_the_openapi_file_without_a_token(node: NodeProcess) -> None:
    r = httpx.get(node.urls["admin"] + "/api/v1/openapi.yaml", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/yaml"
    assert r.content == (REPO / "store" / "openapi.yaml").read_bytes()
    doc = yaml.safe_load(r.content)
    assert "/api/v1/openapi.yaml" in doc["paths"]
    # the rest of the API still wants the token
    assert httpx.get(node.urls["admin"] + "/api/v1/environments", timeout=10).status_code == 401
