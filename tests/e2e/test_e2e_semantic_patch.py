"""The official Python server SDK sees a change made by a LaunchDarkly semantic patch."""

from __future__ import annotations

import orjson
import pytest
from ldclient import Context

from tests.e2e.node_proc import NodeProcess, bool_flag, create_env, wait_until
from tests.e2e.test_e2e_python_sdk import sdk_client

pytestmark = pytest.mark.e2e
CTX = Context.builder("user-1").build()
SEMANTIC = {"Content-Type": "application/json; domain-model=launchdarkly.semanticpatch"}


def test_python_sdk_sees_turn_flag_off(node: NodeProcess) -> None:
    env = create_env(node)
    url = "/api/v1/environments/test/flags/f1"
    with node.admin as admin:
        flag = bool_flag(fallthrough={"variation": 1}, offVariation=0)
        assert admin.put(url, json=flag).status_code == 201
        with sdk_client(node, env["sdkKey"]) as client:
            assert client.is_initialized()
            assert client.variation("f1", CTX, None) is True
            body = {"comment": "stop it", "instructions": [{"kind": "turnFlagOff"}]}
            r = admin.patch(url, content=orjson.dumps(body), headers=SEMANTIC)
            assert r.status_code == 200, r.text
            wait_until(lambda: client.variation("f1", CTX, None) is False, 5.0, "turnFlagOff")
            assert client.variation_detail("f1", CTX, None).reason == {"kind": "OFF"}
