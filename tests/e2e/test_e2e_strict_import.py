"""Issue 14: a lenient import never stores what an SDK cannot parse, and a typo is refused.

A real node; the official Python and Node server SDKs. Hostile data goes in first (the
issue's file, wrongly typed, and a flag PUT with ``rule`` for ``rules``); then a lenient
import of good flags beside semantically malformed ones. Whatever the node answered, both
SDKs must then initialise and evaluate every flag as they evaluate it from LaunchDarkly:
the good ones correctly, the malformed ones as MALFORMED_FLAG.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ldclient import Config, Context, LDClient

from tests.e2e.node_proc import NodeProcess, create_env

pytestmark = pytest.mark.e2e
JS = Path(__file__).resolve().parents[1] / "js"

ISSUE_FILE = {"flags": {"bad": {"on": "yes", "variations": "x"}}}
CONTEXT = {"kind": "user", "key": "user-1", "email": "a@x.com"}


def _flag(variations: list[Any], **over: Any) -> dict[str, Any]:
    return {"on": True, "variations": variations, "fallthrough": {"variation": 0}, **over}


IMPORT = {
    "flags": {
        "plain": _flag(["a", "b"], fallthrough={"variation": 1}),
        "targeted": _flag(["no", "x"], targets=[{"values": ["user-1"], "variation": 1}]),
        "ruled": _flag(["no", "yes"], rules=[{"id": "r", "variation": 1, "clauses": [
            {"attribute": "email", "op": "endsWith", "values": ["@x.com"]}]}]),
        "rollout": _flag(["r0", "r1"], fallthrough={"rollout": {"variations": [
            {"variation": 0, "weight": 0}, {"variation": 1, "weight": 100000}]}}),
        # a segmentMatch clause without "attribute": stored with "attribute": ""
        "segmented": _flag(["out", "in"], rules=[{"id": "s", "variation": 1, "clauses": [
            {"op": "segmentMatch", "values": ["seg"]}]}]),
        # semantically malformed: every SDK parses them and answers MALFORMED_FLAG
        "range": _flag(["a", "b"], fallthrough={"variation": 7}),
        "badref": _flag(["a", "b"], rules=[{"variation": 1, "clauses": [
            {"contextKind": "user", "attribute": "//", "op": "in", "values": ["x"]}]}]),
    },
    "segments": {"seg": {"included": ["user-1"]}},
}
# flag key → (value, variation index, reason) for CONTEXT, as the SDKs compute them
EXPECTED: dict[str, tuple[Any, int | None, dict[str, Any]]] = {
    "plain": ("b", 1, {"kind": "FALLTHROUGH"}),
    "targeted": ("x", 1, {"kind": "TARGET_MATCH"}),
    "ruled": ("yes", 1, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r"}),
    "rollout": ("r1", 1, {"kind": "FALLTHROUGH"}),
    "segmented": ("in", 1, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "s"}),
    "range": ("DEFAULT", None, {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}),
    "badref": ("DEFAULT", None, {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}),
}


def _python_sdk_details(node: NodeProcess, sdk_key: str) -> dict[str, Any]:
    config = Config(sdk_key, stream_uri=node.urls["stream"], base_uri=node.urls["sdk"],
                    events_uri=node.urls["sdk"], send_events=False, diagnostic_opt_out=True,
                    initial_reconnect_delay=0.2)
    client = LDClient(config, start_wait=10)
    try:
        assert client.is_initialized(), "the Python SDK did not initialise"
        ctx = Context.from_dict(CONTEXT)
        out = {}
        for key in EXPECTED:
            d = client.variation_detail(key, ctx, "DEFAULT")
            out[key] = (d.value, d.variation_index, d.reason)
        return out
    finally:
        client.close()


def _node_sdk_details(node: NodeProcess, sdk_key: str) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(JS / "drive_server_sdk_details.js"), sdk_key, node.urls["stream"],
         node.urls["sdk"], json.dumps(CONTEXT), *EXPECTED],
        capture_output=True, text=True, timeout=30, check=False)
    msg = json.loads(done.stdout.splitlines()[-1]) if done.stdout else {"stderr": done.stderr}
    assert msg.get("event") == "details", f"the Node SDK did not initialise: {msg}"
    return {k: (d["value"], d.get("variationIndex"), d["reason"])
            for k, d in msg["details"].items()}


@pytest.mark.skipif(not (JS / "node_modules/@launchdarkly/node-server-sdk").exists()
                    or shutil.which("node") is None,
                    reason="npm SDKs not installed (tests/run.sh installs them)")
def test_hostile_lenient_import_leaves_both_sdks_working(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin:
        hostile = admin.post("/api/v1/environments/test/import?lenient=true", json=ISSUE_FILE)
        typo = admin.put("/api/v1/environments/test/flags/typo",
                         json=_flag([1, 2], rule=[{"variation": 1, "clauses": []}]))
        r = admin.post("/api/v1/environments/test/import?lenient=true", json=IMPORT)
        assert r.status_code == 200, r.text
        assert r.json()["malformed"] == ["flags.range", "flags.badref"]
        stored = admin.get("/api/v1/environments/test/flags").json()["items"]

    assert _python_sdk_details(node, env["sdkKey"]) == EXPECTED
    assert _node_sdk_details(node, env["sdkKey"]) == EXPECTED

    assert hostile.status_code == 400, hostile.text
    message = hostile.json()["error"]["message"]
    assert "flags.bad.on: expected boolean, got string" in message
    assert "flags.bad.variations: expected array, got string" in message
    assert typo.status_code == 400, typo.text
    assert "rule: unknown field `rule`; did you mean `rules`?" in typo.json()["error"]["message"]
    assert sorted(i["key"] for i in stored) == sorted(IMPORT["flags"])
