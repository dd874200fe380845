"""``flagstream insights ...``: run the consumer, rebuild a window, print insights.

    flagstream insights run    [--data-dir D] [--kinesis-stream S] [--kinesis-endpoint URL]
    flagstream insights replay --since YYYY-MM-DD [same options]
    flagstream insights show   ENV FLAG [--data-dir D]
    flagstream insights stale  ENV [--days N] [--data-dir D]

``replay`` forgets the counts from ``--since`` on, re-reads the log from that time (Kinesis:
``AT_TIMESTAMP`` one day earlier, as summaries are dated by their end; spool: from the oldest
retained segment), counts only events not yet counted, and exits when it has caught up. Events
older than the stream's retention (or the spool's budget) cannot be rebuilt. Options also read
``FLAGSTREAM_DATA_DIR``, ``FLAGSTREAM_KINESIS_STREAM`` and ``FLAGSTREAM_KINESIS_ENDPOINT``.

``run`` and ``replay`` count only flags that exist, read from the flag store in the same data
dir (``flagstream.db``); a data dir without one (a consumer on a host of its own with a copy
of nothing) counts every flag key, and says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import trio

from insights.consumer import InsightsConfig, InsightsConsumer, InsightsService
from insights.store import InsightsStore

_COMMANDS = {
    "run": "follow the event log and keep the insights up to date",
    "replay": "forget the counts from a day on and re-read the log from there",
    "show": "print one flag's insights (JSON)",
    "stale": "list flags not evaluated for some days",
}
_READ_ONLY = ("show", "stale")


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="flagstream insights", formatter_class=fmt,
                                     description="flag insights: evaluation counts per flag")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=fmt)
        p.add_argument("--data-dir", help="[FLAGSTREAM_DATA_DIR]",
                       default=os.environ.get("FLAGSTREAM_DATA_DIR", "./flagstream-data"))
        if name not in _READ_ONLY:
            p.add_argument("--kinesis-stream", help="[FLAGSTREAM_KINESIS_STREAM]",
                           default=os.environ.get("FLAGSTREAM_KINESIS_STREAM"))
            p.add_argument("--kinesis-endpoint", help="[FLAGSTREAM_KINESIS_ENDPOINT]",
                           default=os.environ.get("FLAGSTREAM_KINESIS_ENDPOINT"))
        if name == "replay":
            p.add_argument("--since", required=True, help="first UTC day to rebuild, YYYY-MM-DD")
        if name in _READ_ONLY:
            p.add_argument("env", help="environment key")
        if name == "show":
            p.add_argument("flag", help="flag key")
        if name == "stale":
            p.add_argument("--days", type=int, default=30, help="not evaluated for this long")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    data_dir = Path(args.data_dir)
    if args.command in _READ_ONLY:
        # Reading creates nothing: a mistyped --data-dir is an error, not a new empty store.
        if not data_dir.is_dir():
            what = "is not a directory" if data_dir.exists() else "does not exist"
            print(f"flagstream insights: data dir {data_dir} {what}", file=sys.stderr)
            return 2
        db_path = InsightsConfig(data_dir=data_dir).db_path
        if not db_path.is_file():
            print(f"flagstream insights: no insights in {data_dir} yet ({db_path.name} "
                  "does not exist)", file=sys.stderr)
            return 1
        store = InsightsStore(db_path)
        try:
            if args.command == "show":
                found = store.flag(args.env, args.flag)
                if found is None:
                    print(
                        f"no evaluations recorded for {args.flag!r} in {args.env!r}",
                        file=sys.stderr,
                    )
                    return 1
                print(orjson.dumps(found.to_json()).decode())
            else:
                cutoff = int(time.time() * 1000) - args.days * 86_400_000
                last = store.last_evaluated(args.env)
                for key, ms in sorted(last.items(), key=lambda kv: kv[1]):
                    if ms < cutoff:
                        print(f"{key}\t{ms}")
        finally:
            store.close()
        return 0
    config = InsightsConfig(
        data_dir=data_dir,
        kinesis_stream=args.kinesis_stream,
        kinesis_endpoint=args.kinesis_endpoint,
    )
    if args.command == "replay":
        try:
            since = dt.datetime.strptime(args.since, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        except ValueError:
            print("--since must be a date, YYYY-MM-DD", file=sys.stderr)
            return 2
        store = InsightsStore(config.db_path)
        store.reset_since(args.since)
        store.close()
        replay_ms = int(since.timestamp() * 1000) - 86_400_000
        config = InsightsConfig(
            data_dir=data_dir,
            kinesis_stream=args.kinesis_stream,
            kinesis_endpoint=args.kinesis_endpoint,
            replay_from_ms=replay_ms,
            count_from_day=args.since,  # the days before were not forgotten: not again
        )
        folded = trio.run(catch_up, config)
        print(f"replayed {folded} records since {args.since}")
        return 0
    trio.run(run_forever, config)
    return 0


@asynccontextmanager
async def open_service(config: InsightsConfig) -> AsyncIterator[InsightsService]:
    """The insights store with the catalog of the flag store beside it, when there is one."""
    from store.db import DB_FILE, FlagDB
    from store.service import DBCatalog

    store = await trio.to_thread.run_sync(InsightsStore, config.db_path)
    flags = None
    if (config.data_dir / DB_FILE).exists():
        flags = await trio.to_thread.run_sync(FlagDB, config.data_dir)
    else:
        print(f"no flag store in {config.data_dir}: counting every flag key", file=sys.stderr)
    try:
        yield InsightsService(store, None if flags is None else DBCatalog(flags))
    finally:
        store.close()
        if flags is not None:
            flags.close()


async def catch_up(config: InsightsConfig) -> int:
    """Poll until a pass reads nothing; returns the records folded."""
    async with open_service(config) as service:
        consumer = InsightsConsumer(config, service)
        total = 0
        for _ in range(1_000_000):
            folded = await consumer.poll_once()
            total += folded
            if folded == 0:
                break
        return total


async def run_forever(config: InsightsConfig) -> None:
    async with open_service(config) as service:
        await InsightsConsumer(config, service).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
