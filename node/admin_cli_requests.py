"""``flagstream requests list|propose|approve|decline|withdraw``: change requests (approvals).

The commands speak the admin API's change-request routes (store/approval_routes.py); the
identity that proposes or decides is the one the admin API sees for the token used.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.admin_cli import json_input, table
from node.admin_client import AdminClient, path_of

_Handler = Callable[[AdminClient, argparse.Namespace], tuple[Any, str]]
_HEAD = ["ID", "STATUS", "FLAG", "BASE-VERSION", "BY", "COMMENT"]


def add_requests_commands(sub: Any, common: argparse.ArgumentParser,
                          formatter: type[argparse.HelpFormatter],
                          handlers: dict[tuple[str, str | None], _Handler]) -> None:
    """Register ``requests ...`` on the top-level subparsers and its handlers."""
    actions = sub.add_parser("requests", help="change requests: propose, approve, decline",
                             formatter_class=formatter).add_subparsers(dest="action",
                                                                       required=True)

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(
            name, help=help_text, description=help_text, parents=[common],
            formatter_class=formatter)
        p.add_argument("--env", required=True, help="environment key")
        return p

    p = cmd("list", "list change requests, newest first")
    p.add_argument("--flag", metavar="KEY", help="one flag's requests only")
    p.add_argument("--status", choices=("pending", "approved", "declined", "withdrawn", "stale"))
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-500)")
    p = cmd("propose", "propose a change of a flag (a patch), for someone else to approve")
    p.add_argument("key", help="the flag")
    p.add_argument("--comment", required=True, help="why")
    p.add_argument("--format", choices=("merge", "json-patch", "semantic"), default="merge",
                   help="the patch's format (default: merge)")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--file", type=Path, help="the patch's JSON in a file")
    body.add_argument("--patch", dest="data", metavar="JSON", help="the patch's JSON")
    for action, what in (("approve", "apply a pending change request"),
                         ("decline", "decline a pending change request")):
        p = cmd(action, what)
        p.add_argument("id", help="the change request's id")
        p.add_argument("--comment", help="why, kept with the decision")
    cmd("withdraw", "withdraw your own pending change request").add_argument("id")
    handlers.update({("requests", "list"): _list, ("requests", "propose"): _propose,
                     ("requests", "approve"): _decide, ("requests", "decline"): _decide,
                     ("requests", "withdraw"): _withdraw})


def _rows(*requests: dict[str, Any]) -> str:
    return table(_HEAD, [[str(r["id"]), str(r["status"]), str(r["key"]), str(r["baseVersion"]),
                          str(r.get("decidedBy") or r["createdBy"]), str(r["comment"])[:60]]
                         for r in requests])


def _list(c: AdminClient, a: argparse.Namespace) -> tuple[Any, str]:
    where = ("flags", a.flag) if a.flag is not None else ()
    doc = c.call("GET", path_of("environments", a.env, *where, "change-requests"),
                 query={"status": a.status, "limit": str(a.limit)})
    return doc, _rows(*doc["items"])


def _propose(c: AdminClient, a: argparse.Namespace) -> tuple[Any, str]:
    body = {"patch": json_input(a.file, a.data, "--patch"), "format": a.format,
            "comment": a.comment}
    doc = c.call("POST", path_of("environments", a.env, "flags", a.key, "change-requests"),
                 body)
    return doc, _rows(doc)


def _decide(c: AdminClient, a: argparse.Namespace) -> tuple[Any, str]:
    body = {"comment": a.comment} if a.comment else {}
    doc = c.call("POST", path_of("environments", a.env, "change-requests", a.id, a.action),
                 body)
    return doc, _rows(doc)


def _withdraw(c: AdminClient, a: argparse.Namespace) -> tuple[Any, str]:
    doc = c.call("DELETE", path_of("environments", a.env, "change-requests", a.id))
    return doc, _rows(doc)
