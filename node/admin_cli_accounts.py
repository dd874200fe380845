"""The operator's account commands: ``flagstream users|tokens|login`` over the admin API.

- ``users add NAME --role R [--env KEY ...] [--password-stdin]``, ``users list``,
  ``users delete NAME``, ``users set-role NAME --role R [--env KEY ...]``;
- ``tokens create NAME --role R [--env KEY ...] [--expires TIME]`` prints the secret once
  (it cannot be shown again), ``tokens list``, ``tokens revoke ID``;
- ``login --username NAME [--password-stdin]`` signs in and prints the session token on
  stdout, alone on its line, so a shell can keep it:
  ``export FLAGSTREAM_ADMIN_TOKEN=$(flagstream login --username alice)``. Nothing is
  written to disk: a token file would be one more secret to protect, and the session ends
  by itself after 12 hours.

Passwords are read with a prompt that does not echo, or as the first line of stdin with
``--password-stdin`` (scripts), never from an argument (it would show in ``ps``).
Registered by node/admin_cli.py; exit codes and errors as there.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from node.admin_client import AdminClient, path_of

COMMANDS = ("users", "tokens", "login")
NO_TOKEN_COMMANDS = ("login",)  # signing in needs no credential
ROLES = ("viewer", "editor", "admin")
_Result = tuple[Any, str]


def add_account_commands(sub: Any, formatter: type[argparse.HelpFormatter],
                         common: argparse.ArgumentParser) -> None:
    def cmd(parent: Any, name: str, help_text: str) -> Any:
        return parent.add_parser(name, help=help_text, description=help_text,
                                 parents=[common], formatter_class=formatter)

    def scope(p: Any) -> None:
        p.add_argument("--role", required=True, choices=ROLES)
        p.add_argument("--env", action="append", metavar="KEY", dest="envs",
                       help="an editor's environment (repeat; default: every environment)")

    users = sub.add_parser("users", help="list, add, delete users and set their role",
                           formatter_class=formatter).add_subparsers(dest="action", required=True)
    cmd(users, "list", "list users")
    p = cmd(users, "add", "add a user (asks for the password)")
    p.add_argument("username")
    scope(p)
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")
    cmd(users, "delete", "delete a user (ends their sessions)").add_argument("username")
    p = cmd(users, "set-role", "change a user's role and environments")
    p.add_argument("username")
    scope(p)

    tokens = sub.add_parser("tokens", help="create, list and revoke API tokens",
                            formatter_class=formatter).add_subparsers(dest="action",
                                                                      required=True)
    p = cmd(tokens, "create", "create an API token and print its secret (shown once)")
    p.add_argument("name")
    scope(p)
    p.add_argument("--expires", metavar="TIME", help="ISO-8601 time or Unix ms")
    cmd(tokens, "list", "list API tokens (never their secrets)")
    cmd(tokens, "revoke", "revoke an API token at once").add_argument("id")

    p = sub.add_parser("login", help="sign in as a user; print a session token",
                       description="Sign in and print a session token (valid 12 hours) for "
                       "FLAGSTREAM_ADMIN_TOKEN.", parents=[common], formatter_class=formatter)
    p.add_argument("--username", required=True)
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")


def _password(a: argparse.Namespace) -> str:
    if a.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return getpass.getpass("Password: ")


def _scope_body(a: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"role": a.role}
    if a.envs:
        body["environments"] = a.envs
    return body


def _user_row(u: dict[str, Any]) -> list[str]:
    return [str(u.get("username")), str(u.get("role")),
            ",".join(u.get("environments") or ["*"]), str(u.get("updatedAt"))]


_USER_HEAD = ["USERNAME", "ROLE", "ENVIRONMENTS", "UPDATED"]
_TOKEN_HEAD = ["ID", "NAME", "ROLE", "ENVIRONMENTS", "CREATED-BY", "LAST-USED", "EXPIRES"]


def _token_row(t: dict[str, Any]) -> list[str]:
    return [str(t.get("id")), str(t.get("name")), str(t.get("role")),
            ",".join(t.get("environments") or ["*"]), str(t.get("createdBy")),
            str(t.get("lastUsedAt") or "-"), str(t.get("expiresAt") or "-")]


def _table(head: list[str], rows: list[list[str]]) -> str:
    from node.admin_cli import table  # here: admin_cli imports this module

    return table(head, rows)


def _users_list(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("GET", path_of("users"))
    return doc, _table(_USER_HEAD, [_user_row(u) for u in doc["items"]])


def _users_add(c: AdminClient, a: argparse.Namespace) -> _Result:
    body = {"username": a.username, "password": _password(a), **_scope_body(a)}
    doc = c.call("POST", path_of("users"), body)
    return doc, _table(_USER_HEAD, [_user_row(doc)])


def _users_delete(c: AdminClient, a: argparse.Namespace) -> _Result:
    c.call("DELETE", path_of("users", a.username))
    return {"deleted": a.username}, f"deleted user {a.username}"


def _users_set_role(c: AdminClient, a: argparse.Namespace) -> _Result:
    body = _scope_body(a)
    body.setdefault("environments", None)  # no --env: every environment
    doc = c.call("PATCH", path_of("users", a.username), body)
    return doc, _table(_USER_HEAD, [_user_row(doc)])


def _tokens_create(c: AdminClient, a: argparse.Namespace) -> _Result:
    body = {"name": a.name, **_scope_body(a)}
    if a.expires:
        body["expiresAt"] = a.expires
    doc = c.call("POST", path_of("tokens"), body)
    return doc, (f"{doc['token']}\n(token:{doc['name']}, id {doc['id']}: the secret above is "
                 "shown only now; store it in your secret manager)")


def _tokens_list(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("GET", path_of("tokens"))
    return doc, _table(_TOKEN_HEAD, [_token_row(t) for t in doc["items"]])


def _tokens_revoke(c: AdminClient, a: argparse.Namespace) -> _Result:
    c.call("DELETE", path_of("tokens", a.id))
    return {"revoked": a.id}, f"revoked token {a.id}"


def _login(c: AdminClient, a: argparse.Namespace) -> _Result:
    doc = c.call("POST", path_of("sessions"), {"username": a.username,
                                                "password": _password(a)})
    print(f"signed in as {doc['username']} ({doc['role']}) until {doc['expiresAt']}",
          file=sys.stderr)
    return doc, str(doc["token"])


HANDLERS: dict[tuple[str, str | None], Callable[[AdminClient, argparse.Namespace], _Result]] = {
    ("users", "list"): _users_list, ("users", "add"): _users_add,
    ("users", "delete"): _users_delete, ("users", "set-role"): _users_set_role,
    ("tokens", "create"): _tokens_create, ("tokens", "list"): _tokens_list,
    ("tokens", "revoke"): _tokens_revoke, ("login", None): _login,
}
