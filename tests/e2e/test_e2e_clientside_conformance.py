"""Every server-side evaluation of LaunchDarkly's sdk-test-harness, over HTTP, against a running
node: each suite instance's ``sdkData`` is imported (leniently: some flags are malformed on
purpose) into its own environment, and each evaluation is one ``REPORT /sdk/evalx/context``
with the SDK key and ``withReasons=true``. Value, variation and reason must equal ``expect``; a
flag missing from the answer is FLAG_NOT_FOUND, i.e. the default. The only skips are suites that
require a capability flagstream does not claim, each reported with its reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.node_proc import NodeProcess, serve_argv, wait_until
from tests.flagmodel.harness_data import conformance_dir, load_suites, typed

pytestmark = pytest.mark.e2e

CLAIMED_CAPABILITIES: frozenset[str] = frozenset()  # the engine is untyped: no strongly-typed
EXPECTED_EVALUATIONS = 728


def _outcome(answer: dict[str, Any], flag_key: str, default: Any) -> tuple[Any, Any, Any]:
    entry = answer.get(flag_key)
    if entry is None:
        return default, None, {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}
    variation = entry.get("variation")
    value = default if variation is None else entry.get("value")  # as an SDK hands it back
    return value, variation, entry.get("reason")


def test_every_harness_evaluation_over_http(tmp_path: Path) -> None:
    if not (conformance_dir() / "server-side-eval").is_dir():
        pytest.fail(f"conformance data not found in {conformance_dir()}", pytrace=False)
    suites = load_suites()
    node = NodeProcess(serve_argv(tmp_path / "data", workers=1), tmp_path / "data").start()
    try:
        keys: list[str] = []
        with node.admin as admin:
            for i, suite in enumerate(suites):
                r = admin.post("/api/v1/environments", json={"key": f"h{i}", "name": suite.name})
                assert r.status_code == 201, r.text
                keys.append(r.json()["sdkKey"])
                r = admin.post(f"/api/v1/environments/h{i}/import?lenient=true",
                               json=suite.sdk_data)
                assert r.status_code == 200, (suite.file, r.text)
        last_flag = next(iter(suites[-1].flags))
        with httpx.Client(base_url=node.urls["sdk"], timeout=10.0) as sdk:
            def post(key: str, context: Any) -> httpx.Response:
                return sdk.request("REPORT", "/sdk/evalx/context?withReasons=true",
                                   content=json.dumps(context),
                                   headers={"Authorization": key,
                                            "Content-Type": "application/json"})

            def last_loaded() -> bool:
                r = post(keys[-1], {"key": "probe"})
                return r.status_code == 200 and last_flag in r.json()

            wait_until(last_loaded, 30, "the last import to reach the worker")
            checked, skipped, failures = 0, {}, []
            for i, suite in enumerate(suites):
                if suite.require_capability and (
                        suite.require_capability not in CLAIMED_CAPABILITIES):
                    skipped[f"{suite.file}[{suite.index}]"] = (
                        f"requires capability {suite.require_capability!r}, which flagstream "
                        f"does not claim ({len(suite.evaluations)} evaluations)")
                    continue
                for ev in suite.evaluations:
                    r = post(keys[i], ev.context)
                    assert r.status_code == 200, (suite.file, ev.name, r.text)
                    got = _outcome(r.json(), ev.flag_key, ev.default)
                    want = (ev.expect_value, ev.expect_variation, ev.expect_reason)
                    if typed(got) != typed(want):
                        failures.append(f"{suite.file}[{suite.index}] {ev.name}: "
                                        f"got {got}, want {want}")
                    checked += 1
    finally:
        node.stop()
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    skipped_evals = sum(len(s.evaluations) for s in suites if s.require_capability)
    print(f"checked {checked} evaluations over HTTP, {len(failures)} failed, "
          f"{skipped_evals} skipped in {len(skipped)} suites")
    assert checked + skipped_evals == EXPECTED_EVALUATIONS
    assert not failures, "\n".join(failures[:30])
