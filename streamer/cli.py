"""The ``flagstream`` command.

``serve`` runs a complete node (store, admin API, N streamer workers); ``store`` and
``streamer`` run the two halves on separate hosts; ``import`` loads SDK-format data into a
running node; ``insights`` reads and rebuilds flag insights.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streamer.config import OPTIONS, ConfigError, load_toml, resolve

STREAM_LIFECYCLE = [
    "drain-window", "max-connection-age", "max-connections",
    "max-connections-per-key", "max-connections-per-address", "header-timeout",
    "max-loop-lag", "worker-memory-budget", "max-context-groups",
]
SERVE_OPTIONS = [
    "data-dir", "stream-bind", "sdk-bind", "admin-bind", "workers", "admin-token",
    "kinesis-stream", "kinesis-endpoint", "heartbeat-interval", "coalesce-window",
    "drain-timeout", *STREAM_LIFECYCLE, "key-grace", "log-format",
]  # fmt: skip
STORE_OPTIONS = [
    "data-dir", "admin-bind", "admin-token", "bus", "coalesce-window", "kinesis-stream",
    "kinesis-endpoint", "drain-timeout", "key-grace", "log-format",
]  # fmt: skip
STREAMER_OPTIONS = [
    "data-dir", "stream-bind", "sdk-bind", "workers", "bus", "bus-snapshot",
    "kinesis-stream", "kinesis-endpoint", "heartbeat-interval", "drain-timeout",
    *STREAM_LIFECYCLE, "log-format",
]  # fmt: skip


def _add_options(parser: argparse.ArgumentParser, names: list[str]) -> None:
    parser.add_argument("--config", help="TOML file (also FLAGSTREAM_CONFIG)")
    for name in names:
        opt = OPTIONS[name]
        parser.add_argument(f"--{name}", dest=name, help=f"{opt.help} [{opt.env_var}]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flagstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_options(sub.add_parser("serve", help="run a complete node"), SERVE_OPTIONS)
    _add_options(sub.add_parser("store", help="run the store and admin API only"), STORE_OPTIONS)
    _add_options(
        sub.add_parser("streamer", help="run streamer workers fed by a remote store"),
        STREAMER_OPTIONS,
    )
    imp = sub.add_parser("import", help="load SDK-format data into a running node")
    imp.add_argument("--env", required=True, help="environment key")
    imp.add_argument("file", help='JSON file: {"flags": {...}, "segments": {...}}')
    imp.add_argument("--lenient", action="store_true", help="accept items failing validation")
    imp.add_argument("--admin-url", default=None, help="default http://<admin-bind>")
    _add_options(imp, ["data-dir", "admin-bind", "admin-token"])
    ins = sub.add_parser("insights", help="flag insights tools (see: flagstream insights -h)")
    ins.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _settings(args: argparse.Namespace, names: list[str]) -> dict[str, object]:
    config_path = args.config or os.environ.get("FLAGSTREAM_CONFIG")
    toml = load_toml(Path(config_path)) if config_path else {}
    cli = {name: getattr(args, name) for name in names}
    return resolve(names, cli, os.environ, toml)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "insights":
            from ingest.insights.cli import main as insights_main

            return insights_main(list(args.rest))
        if args.command == "import":
            from streamer.import_cmd import run_import

            settings = _settings(args, ["data-dir", "admin-bind", "admin-token"])
            return run_import(settings, env=args.env, file=Path(args.file),
                              lenient=args.lenient, admin_url=args.admin_url)
        names = {"serve": SERVE_OPTIONS, "store": STORE_OPTIONS, "streamer": STREAMER_OPTIONS}
        settings = _settings(args, names[args.command])
    except ConfigError as exc:
        print(f"flagstream: {exc}", file=sys.stderr)
        return 2

    from streamer.supervisor import NodeConfig, run_node_main

    return run_node_main(NodeConfig.from_settings(args.command, settings))


if __name__ == "__main__":
    sys.exit(main())
