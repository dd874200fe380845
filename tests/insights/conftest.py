"""The insights consumer reads the same Kinesis stream the ingest tests use: their AWS
environment and moto server fixtures (tests/ingest/conftest.py) apply here too."""

from tests.ingest.conftest import aws_env, moto_endpoint, stream

__all__ = ["aws_env", "moto_endpoint", "stream"]
