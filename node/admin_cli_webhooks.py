"""``flagstream webhooks add|list|deliveries|delete``: webhooks over the admin API.

Registered by node/admin_cli.py (:func:`add_webhook_commands`, :data:`HANDLERS`); the
same connection options, output rules and exit codes as the other operator commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from node.admin_client import AdminClient, path_of

COMMAND = "webhooks"

_Result = tuple[Any, str]


def add_webhook_commands(sub: Any, common: argparse.ArgumentParser,
                         formatter: type[argparse.HelpFormatter]) -> None:
    """Add ``webhooks`` and its actions to the top-level subparsers."""
    hooks = sub.add_parser(COMMAND, help="webhooks: URLs that receive every change (admin)",
                           formatter_class=formatter).add_subparsers(dest="action",
                                                                     required=True)

    def cmd(name: str, help_text: str) -> Any:
        return hooks.add_parser(name, help=help_text, description=help_text, parents=[common],
                                formatter_class=formatter)

    p = cmd("add", "register a URL; prints its signing secret (shown only once)")
    p.add_argument("url", help="http:// or https:// URL the node will POST changes to")
    p.add_argument("--env", action="append", dest="envs", metavar="KEY",
                   help="only changes of this environment (repeat for more; default: all)")
    p.add_argument("--kind", action="append", dest="kinds", metavar="KIND",
                   help="only changes of this kind: flags, segments, environment, import, "
                   "batch (repeat for more; default: all)")
    p.add_argument("--secret", help="the signing secret, 16-256 characters (default: "
                   "generated)")
    p.add_argument("--disabled", action="store_true", help="register it switched off")
    cmd("list", "list webhooks and their state")
    p = cmd("deliveries", "a webhook's latest deliveries, newest change first")
    p.add_argument("id", help="the webhook's id (wh_...)")
    p.add_argument("--limit", type=int, default=20, help="at most this many (1-100)")
    cmd("delete", "delete a webhook and its delivery records").add_argument("id")


def _table(head: list[str], rows: list[list[str]]) -> str:
    from node.admin_cli import table  # late: admin_cli imports this module

    return table(head, rows)


def _hook_rows(hooks: list[dict[str, Any]]) -> str:
    rows = [[str(h["id"]), str(h["url"]), "yes" if h["enabled"] else "no", str(h["state"]),
             ",".join(h["environments"] or ["*"]), ",".join(h["kinds"] or ["*"]),
             str(h["cursor"]), str(h.get("lastError") or "-")] for h in hooks]
    return _table(["ID", "URL", "ENABLED", "STATE", "ENVS", "KINDS", "CURSOR", "LAST-ERROR"],
                  rows)


def _add(c: AdminClient, a: argparse.Namespace) -> _Result:
    body: dict[str, Any] = {"url": a.url, "enabled": not a.disabled}
    if a.envs:
        body["environments"] = a.envs
    if a.kinds:
        body["kinds"] = a.kinds
    if a.secret:
        body["secret"] = a.secret
    doc = c.call("POST", path_of(COMMAND), body)
    return doc, (_hook_rows([doc]) + f"\nsecret: {doc['secret']}\n(shown only now: keep it "
                 "with the receiver, which verifies X-Flagstream-Signature with it)")


def _list(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("GET", path_of(COMMAND))
    return doc, _hook_rows(doc["items"])


def _deliveries(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("GET", path_of(COMMAND, a.id, "deliveries"), query={"limit": str(a.limit)})
    rows = [[str(d["seq"]), str(d["status"]), str(d["attempts"]),
             "-" if d["httpStatus"] is None else str(d["httpStatus"]),
             str(d["error"] or "-"), str(d["lastAttemptAt"]), str(d["nextRetryAt"] or "-")]
            for d in doc["items"]]
    return doc, _table(["SEQ", "STATUS", "ATTEMPTS", "HTTP", "ERROR", "LAST-ATTEMPT",
                        "NEXT-RETRY"], rows)


def _delete(c: AdminClient, a: argparse.Namespace) -> _Result:
    c.call("DELETE", path_of(COMMAND, a.id))
    return {"deleted": a.id}, f"deleted webhook {a.id}"


HANDLERS: dict[tuple[str, str | None], Callable[[AdminClient, argparse.Namespace], _Result]] = {
    (COMMAND, "add"): _add, (COMMAND, "list"): _list, (COMMAND, "deliveries"): _deliveries,
    (COMMAND, "delete"): _delete,
}
