"""The operator's commands: ``flagstream flags|envs|history ...`` over the admin HTTP API
(``users|tokens|login``: node/admin_cli_accounts.py; ``webhooks``:
node/admin_cli_webhooks.py; ``requests``: node/admin_cli_requests.py; ``schedule``:
node/admin_cli_schedule.py; registered here).

Output is a plain table for people, or the API's JSON with ``--json`` for scripts. Exit
codes: 0 done; 1 the API refused (its one-line message on stderr); 2 a usage error or no
answer from the API. Errors are one line each, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from node import admin_cli_accounts as accounts_cli
from node.admin_cli_history import HANDLERS as HISTORY_HANDLERS
from node.admin_cli_history import add_history_actions
from node.admin_cli_schedule import HANDLERS as SCHEDULE_HANDLERS
from node.admin_cli_schedule import add_schedule_commands
from node.admin_cli_webhooks import COMMAND as WEBHOOKS
from node.admin_cli_webhooks import HANDLERS as WEBHOOK_HANDLERS
from node.admin_cli_webhooks import add_webhook_commands
from node.admin_client import (
    DEFAULT_ADMIN_URL,
    AdminApiError,
    AdminClient,
    AdminUnreachable,
    TargetError,
    path_of,
    resolve_target,
)

COMMANDS = ("flags", "envs", "history", "requests", "schedule", *accounts_cli.COMMANDS,
            WEBHOOKS)
DEFAULT_DATA_DIR = "./flagstream-data"


class UsageError(Exception):
    """Bad arguments that argparse cannot see (an unreadable file, JSON that is not JSON)."""


def _common(formatter: type[argparse.HelpFormatter], *,
            json_output: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, formatter_class=formatter)
    g = p.add_argument_group("connection")
    g.add_argument("--admin-url", help=f"admin API [FLAGSTREAM_ADMIN_URL] (default: "
                   f"{DEFAULT_ADMIN_URL})")
    g.add_argument("--token", help="admin token [FLAGSTREAM_ADMIN_TOKEN] (default: the data "
                   "dir's admin-token file)")
    g.add_argument("--data-dir", help=f"where the admin-token file is [FLAGSTREAM_DATA_DIR] "
                   f"(default: {DEFAULT_DATA_DIR})")
    if json_output:
        p.add_argument("--json", action="store_true", help="print the API's JSON, for scripts")
    return p


def add_admin_commands(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Register ``flags``, ``envs`` and ``history`` on the top-level subparsers."""
    common, without_json = _common(formatter), _common(formatter, json_output=False)

    def cmd(parent: Any, name: str, help_text: str, env: bool = True) -> Any:
        # `flags set` takes its body in --json (as `curl --json` does): no --json output there.
        p = parent.add_parser(name, help=help_text, description=help_text,
                              parents=[without_json if name == "set" else common],
                              formatter_class=formatter)
        if env:
            p.add_argument("--env", required=True, help="environment key")
        return p

    flags = sub.add_parser("flags", help="list, show and change flags",
                           formatter_class=formatter).add_subparsers(dest="action", required=True)
    cmd(flags, "list", "list an environment's flags")
    cmd(flags, "get", "print one flag").add_argument("key")
    for action in ("on", "off"):
        p = cmd(flags, action, f"turn a flag {action} (targeting {action})")
        p.add_argument("key")
        p.add_argument("--comment", help="why, for the audit log")
    p = cmd(flags, "set", "create or replace a flag (PUT)")
    p.add_argument("key")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--file", type=Path, help="the flag's JSON in a file")
    body.add_argument("--json", dest="data", metavar="JSON",
                      help="the flag's JSON on the command line")
    cmd(flags, "delete", "delete a flag").add_argument("key")

    envs = sub.add_parser("envs", help="list, create and rotate environments",
                          formatter_class=formatter).add_subparsers(dest="action", required=True)
    cmd(envs, "list", "list environments (keys: see --json)", env=False)
    p = cmd(envs, "create", "create an environment and print its keys", env=False)
    p.add_argument("key")
    p.add_argument("--name", help="display name (default: the key)")
    p.add_argument("--secure-mode", action="store_true",
                   help="client-side evaluation needs a hash of the context key")
    p = cmd(envs, "rotate", "give an environment a new key", env=False)
    p.add_argument("key")
    p.add_argument("--which", choices=("sdk", "mobile", "clientSide"), default="sdk",
                   help="which credential")
    p.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                   help="how long the old SDK or mobile key keeps working (default: the "
                   "node's key_grace; client-side IDs have none)")

    p = sub.add_parser("history", help="an environment's change history, newest first; "
                       "diff and revert a flag's versions", parents=[common],
                       formatter_class=formatter)
    p.add_argument("--env", help="environment key (required to list the history)")
    p.add_argument("--flag", metavar="KEY", help="one flag's changes only")
    p.add_argument("--kind", choices=("flags", "segments", "environment", "import", "batch"))
    p.add_argument("--actor", help="changes by this actor only")
    p.add_argument("--since", help="at or after: ISO-8601 (2026-12-02T13:00Z) or Unix ms")
    p.add_argument("--until", help="at or before: ISO-8601 or Unix ms")
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-500)")
    accounts_cli.add_account_commands(sub, formatter, common)
    add_webhook_commands(sub, common, formatter)
    add_history_actions(p, common, formatter)
    # Imported here: that module uses this one's helpers (table, json_input).
    from node.admin_cli_requests import add_requests_commands
    add_requests_commands(sub, common, formatter, _HANDLERS)
    add_schedule_commands(sub, common, formatter)


def run_admin(args: argparse.Namespace) -> int:
    try:
        data_dir = args.data_dir or os.environ.get("FLAGSTREAM_DATA_DIR") or DEFAULT_DATA_DIR
        token = args.token or ("-" if args.command in accounts_cli.NO_TOKEN_COMMANDS else None)
        target = resolve_target(args.admin_url, token, Path(data_dir), os.environ)
        client = AdminClient(target)
        handler = _HANDLERS[(args.command, getattr(args, "action", None))]
        doc, table = handler(client, args)
    except AdminApiError as exc:
        print(f"flagstream: {exc}", file=sys.stderr)
        return 1
    except (AdminUnreachable, TargetError, UsageError) as exc:
        print(f"flagstream: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False) is True:
        if doc is not None:
            print(json.dumps(doc, indent=2, sort_keys=True))
    elif table:
        print(table)
    return 0


# -- the commands: each returns (the API's JSON, the human rendering) ------------------------

_Result = tuple[Any, str]


def _flag_row(f: dict[str, Any]) -> list[str]:
    return [str(f.get("key")), "on" if f.get("on") else "off", str(f.get("version")),
            str(len(f.get("variations") or [])), str(f.get("offVariation", "-"))]


_FLAG_HEAD = ["KEY", "STATE", "VERSION", "VARIATIONS", "OFF-VARIATION"]


def _flags_list(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("GET", path_of("environments", a.env, "flags"))
    return doc, table(_FLAG_HEAD, [_flag_row(f) for f in doc["items"]])


def _flags_get(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("GET", path_of("environments", a.env, "flags", a.key))
    return doc, json.dumps(doc, indent=2, sort_keys=True)


SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"


def _flags_toggle(c: AdminClient, a: argparse.Namespace) -> _Result:
    # A semantic patch, so the comment is stored with the change in the history; the header
    # puts it in the audit log line too.
    body: dict[str, Any] = {"instructions": [
        {"kind": "turnFlagOn" if a.action == "on" else "turnFlagOff"}]}
    headers = {"Content-Type": SEMANTIC_PATCH}
    if a.comment:
        body["comment"] = headers["X-Flagstream-Comment"] = _one_line(a.comment)
    doc = c.call("PATCH", path_of("environments", a.env, "flags", a.key), body,
                 headers=headers)
    return doc, table(_FLAG_HEAD, [_flag_row(doc)])


def json_input(file: Path | None, text: str | None, option: str = "--json") -> Any:
    """The JSON in ``file``, else in ``text`` (given as ``option``); UsageError if it is not."""
    if file is not None:
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") \
                from None
    try:
        return json.loads(text or "")
    except ValueError as exc:
        raise UsageError(f"{file if file is not None else option} is not JSON: {exc}") from None


def _flags_set(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("PUT", path_of("environments", a.env, "flags", a.key),
                 json_input(a.file, a.data))
    return doc, table(_FLAG_HEAD, [_flag_row(doc)])


def _flags_delete(c: AdminClient, a: argparse.Namespace) -> _Result:
    c.call("DELETE", path_of("environments", a.env, "flags", a.key))
    return {"deleted": a.key}, f"deleted flag {a.key} in {a.env}"


_ENV_HEAD = ["KEY", "NAME", "SECURE-MODE", "CLIENT-SIDE-ID"]


def _env_row(e: dict[str, Any]) -> list[str]:
    return [str(e.get("key")), str(e.get("name")), "yes" if e.get("secureMode") else "no",
            str(e.get("clientSideId"))]


def _env_keys(e: dict[str, Any]) -> str:
    rows = [["key", str(e.get("key"))], ["name", str(e.get("name"))],
            ["sdkKey", str(e.get("sdkKey"))], ["mobileKey", str(e.get("mobileKey"))],
            ["clientSideId", str(e.get("clientSideId"))]]
    rows += [["oldKey", f"{k['key']} until {k['expiresAt']}"] for k in e.get("oldKeys", [])]
    return table(["FIELD", "VALUE"], rows)


def _envs_list(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("GET", path_of("environments"))
    return doc, table(_ENV_HEAD, [_env_row(e) for e in doc["items"]])


def _envs_create(c: AdminClient, a: argparse.Namespace) -> _Result:
    body = {"key": a.key, "name": a.name or a.key, "secureMode": a.secure_mode}
    doc = c.call("POST", path_of("environments"), body)
    return doc, _env_keys(doc)


def _envs_rotate(c: AdminClient, a: argparse.Namespace) -> _Result:
    body: dict[str, Any] = {"key": a.which}
    if a.grace is not None:
        body["graceSeconds"] = a.grace
    doc = c.call("POST", path_of("environments", a.key, "rotate"), body)
    return doc, _env_keys(doc)


def _history(c: AdminClient, a: argparse.Namespace) -> _Result:
    if a.env is None:
        raise UsageError("history: --env is required to list the history")
    if a.flag is not None and a.kind not in (None, "flags"):
        raise UsageError("--flag shows a flag's history: it cannot go with --kind " + a.kind)
    kind = "flags" if a.flag is not None else a.kind
    query = {"kind": kind, "key": a.flag, "actor": a.actor, "since": a.since,
             "until": a.until, "limit": str(a.limit)}
    doc = c.call("GET", path_of("environments", a.env, "changes"), query=query)
    rows = [[str(h["seq"]), str(h["at"]), str(h["actor"]), str(h["kind"]), str(h["key"]),
             _version(h)] for h in doc["items"]]
    return doc, table(["SEQ", "AT", "ACTOR", "KIND", "KEY", "VERSION"], rows)


def _version(h: dict[str, Any]) -> str:
    after, before = h.get("after"), h.get("before")
    if isinstance(after, dict) and "version" in after:
        return str(after["version"])
    return "deleted" if isinstance(before, dict) else "-"


_HANDLERS: dict[tuple[str, str | None], Callable[[AdminClient, argparse.Namespace], _Result]] = {
    ("flags", "list"): _flags_list, ("flags", "get"): _flags_get,
    ("flags", "on"): _flags_toggle, ("flags", "off"): _flags_toggle,
    ("flags", "set"): _flags_set, ("flags", "delete"): _flags_delete,
    ("envs", "list"): _envs_list, ("envs", "create"): _envs_create,
    ("envs", "rotate"): _envs_rotate, ("history", None): _history, **HISTORY_HANDLERS,
    **accounts_cli.HANDLERS, **WEBHOOK_HANDLERS,
    **SCHEDULE_HANDLERS,
}


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; "(none)" under the head when there are no rows."""
    if not rows:
        return "  ".join(head) + "\n(none)"
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in [head, *rows]]
    return "\n".join(lines)
