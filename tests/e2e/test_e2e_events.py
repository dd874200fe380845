"""Analytics events from the official SDKs reach the spool or a real Kinesis-API server
(moto in server mode) through a real node, and flag insights count them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from ldclient import Config, Context, LDClient
from moto.server import ThreadedMotoServer

from tests.e2e.node_proc import NodeProcess, bool_flag, create_env, serve_argv, wait_until
from tests.e2e.test_e2e_node_sdk import JS, Driver

pytestmark = pytest.mark.e2e
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
       "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def evaluate_with_python_sdk(node: NodeProcess, sdk_key: str, flag: str, n: int) -> None:
    client = LDClient(Config(sdk_key, stream_uri=node.urls["stream"], base_uri=node.urls["sdk"],
                             events_uri=node.urls["sdk"], flush_interval=0.5,
                             diagnostic_opt_out=True), start_wait=10)
    try:
        assert client.is_initialized()
        ctx = Context.builder("user-ev").build()
        for _ in range(n):
            assert client.variation(flag, ctx, None) is True
        client.flush()
    finally:
        client.close()  # flushes what is left


def insights(node: NodeProcess, flag: str) -> dict[str, Any]:
    with node.admin as admin:
        r = admin.get(f"/api/v1/environments/test/flags/{flag}/insights")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def test_sdk_events_reach_spool_and_insights(node: NodeProcess) -> None:
    env = create_env(node)
    with node.admin as admin:
        admin.put("/api/v1/environments/test/flags/f1", json=bool_flag(
            fallthrough={"variation": 1}))
    assert insights(node, "f1")["totalEvaluations"] == 0
    evaluate_with_python_sdk(node, env["sdkKey"], "f1", 7)
    wait_until(lambda: insights(node, "f1")["totalEvaluations"] == 7, 15, "7 evaluations")
    got = insights(node, "f1")
    assert got["variations"] == [{"variation": 1, "count": 7}]
    assert got["lastEvaluated"] is not None and sum(d["count"] for d in got["days"]) == 7

    if (JS / "node_modules/@launchdarkly/node-server-sdk").exists():
        d = Driver(env["sdkKey"], node.urls["stream"], node.urls["sdk"], "f1", "--evaluate", "5")
        try:
            d.expect(10, event="flushed")
        finally:
            d.close()
        wait_until(lambda: insights(node, "f1")["totalEvaluations"] == 12, 15, "12 evaluations")
    spool = list((node.data_dir / "spool").rglob("*"))
    assert any(p.is_file() and p.stat().st_size > 0 for p in spool)


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, Any]]:
    for k, v in AWS.items():
        monkeypatch.setenv(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")
    client.create_stream(StreamName="events", ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName="events", WaiterConfig={"Delay": 0.1})
    try:
        yield endpoint, "events", client
    finally:
        server.stop()


def read_all(client: Any, stream: str) -> list[bytes]:
    out: list[bytes] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        it = client.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for _ in range(100):
            resp = client.get_records(ShardIterator=it, Limit=10_000)
            out.extend(r["Data"] for r in resp["Records"])
            it = resp.get("NextShardIterator")
            if not resp["Records"] or it is None:
                break
    return out


def test_sdk_events_reach_kinesis_and_insights(tmp_path: Path,
                                               kinesis: tuple[str, str, Any]) -> None:
    endpoint, stream, client = kinesis
    data = tmp_path / "data"
    node = NodeProcess(serve_argv(data, extra=["--kinesis-stream", stream,
                                               "--kinesis-endpoint", endpoint]), data).start()
    try:
        env = create_env(node)
        with node.admin as admin:
            admin.put("/api/v1/environments/test/flags/f1", json=bool_flag(
                fallthrough={"variation": 1}))
        evaluate_with_python_sdk(node, env["sdkKey"], "f1", 4)

        def summary_counts() -> int:
            total = 0
            for record in read_all(client, stream):
                lines = record.split(b"\n")
                header = json.loads(lines[0])
                assert header["env"] == "test"
                for line in lines[1:]:
                    if line:
                        event = json.loads(line)
                        if event["kind"] == "summary" and "f1" in event["features"]:
                            total += sum(c["count"] for c in event["features"]["f1"]["counters"])
            return total

        expected = 4
        if (JS / "node_modules/@launchdarkly/node-server-sdk").exists():
            d = Driver(env["sdkKey"], node.urls["stream"], node.urls["sdk"], "f1",
                       "--evaluate", "3")
            try:
                d.expect(10, event="flushed")
            finally:
                d.close()
            expected += 3
        wait_until(lambda: summary_counts() == expected, 15, "evaluations in Kinesis",
                   interval=0.3)
        wait_until(lambda: insights(node, "f1")["totalEvaluations"] == expected, 15,
                   "insights from Kinesis", interval=0.3)
    finally:
        node.stop()
