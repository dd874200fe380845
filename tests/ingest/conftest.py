"""Shared fixtures for the ingest tests: AWS environment, a moto Kinesis server on loopback,
fresh streams, and a reader that returns every record of a stream."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from moto.server import ThreadedMotoServer

_names = itertools.count()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def kinesis_client(endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("kinesis", endpoint_url=endpoint)


@pytest.fixture
def stream(moto_endpoint: str) -> str:
    """A fresh two-shard stream on the moto server."""
    # unique across processes and across the copies of this module (tests/insights/conftest.py
    # imports it as tests.ingest.conftest: a second counter) on one moto server
    name = f"events-{os.getpid()}-{uuid.uuid4().hex[:8]}-{next(_names)}"
    client = kinesis_client(moto_endpoint)
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    return name


def read_stream(endpoint: str, name: str) -> list[tuple[str, str, bytes]]:
    """Every record of every shard: (shard id, partition key, data)."""
    client = kinesis_client(endpoint)
    out: list[tuple[str, str, bytes]] = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        it = client.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for _ in range(10_000):
            resp = client.get_records(ShardIterator=it, Limit=10_000)
            out.extend((shard["ShardId"], r["PartitionKey"], r["Data"]) for r in resp["Records"])
            it = resp.get("NextShardIterator")
            if not resp["Records"] or it is None:
                break
    return out
