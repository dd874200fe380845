"""``flagstream schedule add|list|cancel``: scheduled flag changes over the admin API.

- ``schedule add --env E KEY --at TIME (--on | --off | --patch JSON [--format F])
  [--comment C]``: schedule a change (TIME: RFC 3339 or epoch ms);
- ``schedule list --env E [--flag KEY] [--status S]``: soonest first;
- ``schedule cancel --env E ID``.

Registered by node.admin_cli (``add_schedule_commands``, ``HANDLERS``); the output and
exit codes are that module's.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from node.admin_client import AdminClient, path_of

_Result = tuple[Any, str]
_HEAD = ["ID", "AT", "FLAG", "STATUS", "BY", "NOTE"]


def add_schedule_commands(sub: Any, common: argparse.ArgumentParser,
                          formatter: type[argparse.HelpFormatter]) -> None:
    schedule = sub.add_parser("schedule", help="schedule flag changes for a time",
                              formatter_class=formatter).add_subparsers(dest="action",
                                                                        required=True)

    def cmd(name: str, help_text: str) -> Any:
        p = schedule.add_parser(name, help=help_text, description=help_text,
                                parents=[common], formatter_class=formatter)
        p.add_argument("--env", required=True, help="environment key")
        return p

    p = cmd("add", "schedule a change of a flag")
    p.add_argument("key", help="the flag's key")
    p.add_argument("--at", required=True,
                   help="when: RFC 3339 (2026-12-24T18:00:00Z) or Unix milliseconds")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--on", action="store_const", dest="turn", const="on",
                      help="turn the flag on then")
    what.add_argument("--off", action="store_const", dest="turn", const="off",
                      help="turn the flag off then")
    what.add_argument("--patch", metavar="JSON", help="any patch, in --format")
    p.add_argument("--format", choices=("merge", "json-patch", "semantic"), default="merge",
                   help="the format of --patch (default: merge)")
    p.add_argument("--comment", help="why, kept with the change")
    p = cmd("list", "list scheduled changes, soonest first")
    p.add_argument("--flag", metavar="KEY", help="one flag's only")
    p.add_argument("--status", choices=("pending", "applied", "failed", "cancelled"))
    cmd("cancel", "cancel a pending change").add_argument("id", type=int)


def _row(c: dict[str, Any]) -> list[str]:
    note = c.get("reason") or (f"late {c['lateByMs']} ms" if c.get("lateByMs") else "")
    return [str(c.get("id")), str(c.get("at")), str(c.get("key")), str(c.get("status")),
            str(c.get("createdBy")), str(note)]


def _table(rows: list[list[str]]) -> str:
    from node.admin_cli import table  # admin_cli imports this module
    return table(_HEAD, rows)


def _add(c: AdminClient, a: argparse.Namespace) -> _Result:
    from node.admin_cli import UsageError
    body: dict[str, Any] = {"at": int(a.at) if a.at.isdigit() else a.at}
    if a.turn is not None:
        body["format"] = "semantic"
        body["patch"] = {"instructions": [
            {"kind": "turnFlagOn" if a.turn == "on" else "turnFlagOff"}]}
    else:
        try:
            body["patch"] = json.loads(a.patch)
        except ValueError as exc:
            raise UsageError(f"--patch is not JSON: {exc}") from None
        body["format"] = a.format
    if a.comment:
        body["comment"] = a.comment
    doc = c.call("POST", path_of("environments", a.env, "flags", a.key, "scheduled-changes"),
                 body)
    return doc, _table([_row(doc)])


def _list(c: AdminClient, a: argparse.Namespace) -> _Result:
    where = ("flags", a.flag, "scheduled-changes") if a.flag else ("scheduled-changes",)
    doc = c.call("GET", path_of("environments", a.env, *where), query={"status": a.status})
    return doc, _table([_row(i) for i in doc["items"]])


def _cancel(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("DELETE", path_of("environments", a.env, "scheduled-changes", str(a.id)))
    return doc, _table([_row(doc)])


HANDLERS: dict[tuple[str, str | None], Callable[[AdminClient, argparse.Namespace], _Result]] = {
    ("schedule", "add"): _add, ("schedule", "list"): _list, ("schedule", "cancel"): _cancel,
}
