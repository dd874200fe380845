"""``flagstream history diff|revert``: a flag's versions compared, and a revert, over the
admin API (``GET .../flags/{key}/diff``, ``POST .../flags/{key}/revert``).

``flagstream history --env ENV`` (the change list) stays in node/admin_cli.py; this
module adds its two actions and their handlers, registered there by one call each.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from node.admin_client import AdminClient, path_of

_Handler = Callable[[AdminClient, argparse.Namespace], tuple[Any, str]]


def add_history_actions(history: argparse.ArgumentParser, common: argparse.ArgumentParser,
                        formatter: type[argparse.HelpFormatter]) -> None:
    """``diff`` and ``revert`` under ``flagstream history`` (the list needs no action)."""
    actions = history.add_subparsers(dest="action", metavar="{diff,revert}")
    text = "what changed in a flag between two versions, one line per change"
    p = actions.add_parser("diff", help=text, description=text, parents=[common],
                           formatter_class=formatter)
    p.add_argument("env", help="environment key")
    p.add_argument("flag", help="flag key")
    p.add_argument("from_version", metavar="FROM", type=int, help="version to compare from")
    p.add_argument("to_version", metavar="TO", type=int, help="version to compare to")
    text = "give a flag the content of an earlier version, as a new version"
    p = actions.add_parser("revert", help=text, description=text, parents=[common],
                           formatter_class=formatter)
    p.add_argument("env", help="environment key")
    p.add_argument("flag", help="flag key")
    p.add_argument("version", type=int, help="the version whose content comes back")
    p.add_argument("--comment", help="why, kept with the change in the history")


def _value(v: Any) -> str:
    return json.dumps(v, separators=(", ", ": "), sort_keys=True)


def render_operation(op: dict[str, Any]) -> str:
    """``~ rules[1].clauses[0].values: ["a"] -> ["a", "b"]`` (``+`` added, ``-`` removed)."""
    where = op.get("field") or "(the whole item)"
    if op.get("op") == "add":
        return f"+ {where}: {_value(op.get('value'))}"
    if op.get("op") == "remove":
        return f"- {where}: {_value(op.get('old'))}"
    return f"~ {where}: {_value(op.get('old'))} -> {_value(op.get('value'))}"


def _diff(c: AdminClient, a: argparse.Namespace) -> tuple[Any, str]:
    doc = c.call("GET", path_of("environments", a.env, "flags", a.flag, "diff"),
                 query={"from": str(a.from_version), "to": str(a.to_version)})
    head = f"flag {a.flag} in {a.env}, version {doc['from']} -> {doc['to']}"
    lines = [render_operation(op) for op in doc["operations"]] or ["(no difference)"]
    return doc, "\n".join([head, *lines])


def _revert(c: AdminClient, a: argparse.Namespace) -> tuple[Any, str]:
    # The comment goes in the body (kept with the change in the history) and in the header
    # (the audit log line), as `flags on --comment` does.
    body: dict[str, Any] = {"version": a.version}
    headers: dict[str, str] = {}
    if a.comment:
        body["comment"] = headers["X-Flagstream-Comment"] = " ".join(a.comment.split())[:500]
    doc = c.call("POST", path_of("environments", a.env, "flags", a.flag, "revert"), body,
                 headers=headers)
    return doc, (f"flag {a.flag} in {a.env} now has the content of version {a.version} "
                 f"(new version {doc.get('version')})")


HANDLERS: dict[tuple[str, str | None], _Handler] = {
    ("history", "diff"): _diff, ("history", "revert"): _revert,
}
