"""A standalone events node: a quart-trio app with only the event routes, one ingest actor,
credentials from the command line. Used by the crash test (kill -9), the benchmark and for
trying ingest without a store; the real worker mounts the same routes on its SDK app.

    python3 -m ingest.devserver --data-dir D --bind 127.0.0.1:0 --sdk-key sdk-1=prod \\
        [--mobile-key mob-1=prod] [--env-id abc=prod] [--kinesis-stream S --kinesis-endpoint URL]

Prints ``listening http://HOST:PORT`` when ready; SIGTERM/SIGINT shut it down gracefully.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from ingest.actor import IngestActor, IngestConfig
from ingest.http import register_event_routes


@dataclass
class StaticResolver:
    """A dict-backed ``CredentialResolver``."""

    sdk_keys: dict[str, str] = field(default_factory=dict)
    mobile_keys: dict[str, str] = field(default_factory=dict)
    env_ids: dict[str, str] = field(default_factory=dict)

    def env_key_for_sdk_key(self, credential: str) -> str | None:
        return self.sdk_keys.get(credential)

    def env_key_for_mobile_key(self, credential: str) -> str | None:
        return self.mobile_keys.get(credential)

    def env_key_for_client_side_id(self, env_id: str) -> str | None:
        return self.env_ids.get(env_id)

    async def await_known(self, find: Callable[[], str | None]) -> str | None:
        return find()  # static: nothing is on its way


def _pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, _, env = v.partition("=")
        out[key] = env
    return out


async def serve_node(args: argparse.Namespace) -> None:
    resolver = StaticResolver(_pairs(args.sdk_key), _pairs(args.mobile_key), _pairs(args.env_id))
    config = IngestConfig(
        data_dir=Path(args.data_dir),
        worker_id=args.worker_id,
        kinesis_stream=args.kinesis_stream,
        kinesis_endpoint=args.kinesis_endpoint,
        flush_deadline_s=args.flush_deadline,
    )
    app = QuartTrio("flagstream-ingest")
    hyper = HyperConfig()
    hyper.bind = [args.bind]
    hyper.accesslog = None
    hyper.errorlog = None
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(IngestActor(config).run)
        register_event_routes(app, resolver, handle)

        @app.get("/ingest/stats")
        async def stats() -> dict[str, int]:
            return dataclasses.asdict(handle.statistics())

        stop = trio.Event()

        async def watch_signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    stop.set()
                    return

        nursery.start_soon(watch_signals)
        binds = await nursery.start(partial(serve, app, hyper, shutdown_trigger=stop.wait))
        for b in binds:
            print(f"listening {b}", flush=True)
        await stop.wait()
        handle.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m ingest.devserver")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--bind", default="127.0.0.1:0")
    parser.add_argument("--worker-id", type=int, default=0)
    parser.add_argument("--sdk-key", action="append", default=[], metavar="KEY=ENV")
    parser.add_argument("--mobile-key", action="append", default=[], metavar="KEY=ENV")
    parser.add_argument("--env-id", action="append", default=[], metavar="ID=ENV")
    parser.add_argument("--kinesis-stream")
    parser.add_argument("--kinesis-endpoint")
    parser.add_argument("--flush-deadline", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    trio.run(serve_node, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
