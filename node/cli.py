"""The ``flagstream`` command.

``serve`` runs a complete node (store, admin API, N streamer workers); ``store`` and
``streamer`` run the two halves on separate hosts; ``import`` loads SDK-format data into a
running node; ``insights`` reads and rebuilds flag insights; ``flags``, ``envs`` and
``history`` are the operator's commands over the admin API (node/admin_cli.py).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from pathlib import Path

from node.admin_cli import COMMANDS as ADMIN_COMMANDS
from node.admin_cli import add_admin_commands, run_admin
from node.config import OPTIONS, ConfigError, load_toml, resolve

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


DESCRIPTION = (
    "flagstream: a self-hosted feature-flag server for the LaunchDarkly SDKs. "
    "Every option also reads FLAGSTREAM_<NAME> from the environment.")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or isinstance(action.default, list):
            return action.help
        return super()._get_help_string(action)


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ":".join(str(v) for v in value)
    if isinstance(value, Path) and not value.is_absolute():
        return f"./{value}"  # Path drops the "./" that says "relative to where you are"
    return str(value)


def _add_options(parser: argparse.ArgumentParser, names: list[str]) -> None:
    parser.add_argument("--config", help="TOML file [FLAGSTREAM_CONFIG]")
    for name in names:
        opt = OPTIONS[name]
        # The argparse default stays None: the environment and the TOML file come in between.
        default = "" if opt.default is None else f" (default: {_shown(opt.default)})"
        parser.add_argument(f"--{name}", dest=name, help=f"{opt.help} [{opt.env_var}]{default}")


def _version() -> str:
    try:
        return importlib.metadata.version("flagstream")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    fmt = HelpFormatter
    parser = argparse.ArgumentParser(prog="flagstream", description=DESCRIPTION,
                                     formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"flagstream {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text,
                                                    formatter_class=fmt)
        return p

    _add_options(command("serve", "run a complete node"), SERVE_OPTIONS)
    _add_options(command("store", "run the store and admin API only"), STORE_OPTIONS)
    _add_options(command("streamer", "run streamer workers fed by a remote store"),
                 STREAMER_OPTIONS)
    imp = command("import", "load SDK-format data into a running node")
    imp.add_argument("--env", required=True, help="environment key")
    imp.add_argument("file", help='JSON file: {"flags": {...}, "segments": {...}}')
    imp.add_argument("--lenient", action="store_true", help="accept items failing validation")
    imp.add_argument("--admin-url", default=None, help="default http://<admin-bind>")
    _add_options(imp, ["data-dir", "admin-bind", "admin-token"])
    ins = command("insights", "flag insights: run, replay, show, stale "
                              "(flagstream insights --help)")
    ins.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    add_admin_commands(sub, fmt)
    return parser


def _settings(args: argparse.Namespace, names: list[str]) -> dict[str, object]:
    config_path = args.config or os.environ.get("FLAGSTREAM_CONFIG")
    toml = load_toml(Path(config_path)) if config_path else {}
    cli = {name: getattr(args, name) for name in names}
    return resolve(names, cli, os.environ, toml)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["insights"]:
        # Its own parser: the top-level one would answer `insights --help` itself.
        from node.insights_cli import main as insights_main

        return insights_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command in ADMIN_COMMANDS:
        return run_admin(args)
    try:
        if args.command == "import":
            from node.import_cmd import run_import

            settings = _settings(args, ["data-dir", "admin-bind", "admin-token"])
            return run_import(settings, env=args.env, file=Path(args.file),
                              lenient=args.lenient, admin_url=args.admin_url)
        names = {"serve": SERVE_OPTIONS, "store": STORE_OPTIONS, "streamer": STREAMER_OPTIONS}
        settings = _settings(args, names[args.command])
    except ConfigError as exc:
        print(f"flagstream: {exc}", file=sys.stderr)
        return 2

    from node.supervisor import NodeConfig, run_node_main

    return run_node_main(NodeConfig.from_settings(args.command, settings))


if __name__ == "__main__":
    sys.exit(main())
