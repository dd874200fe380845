"""Accounts, pure core: roles, the authenticated principal, names, passwords and secrets.

No IO and no trio here: the SQLite tables are :mod:`store.accounts_db`, the request-side
checks :mod:`store.auth`, the routes :mod:`store.account_routes`.

Three roles, ordered: ``viewer`` reads everything but credentials; ``editor`` also writes
flags and segments, in every environment or only in its ``environments`` list; ``admin`` also
manages environments, keys, users, tokens and settings. A principal is whoever a request
authenticated as: a user (through a session), an API token, or the bootstrap token.

Secrets: API tokens (``fst_``) and session tokens (``fss_``) are 32 random bytes, so they are
stored as their SHA-256: a slow hash protects low-entropy secrets (passwords) from guessing,
and nobody can guess 256 random bits, so argon2 would only add tens of milliseconds to every
API request. Passwords are hashed with argon2id (store/auth.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flagmodel.validation import is_valid_key

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
_RANK = {"viewer": 0, "editor": 1, "admin": 2}
PrincipalKind = Literal["bootstrap", "token", "session"]

TOKEN_PREFIX = "fst_"  # an API token
SESSION_PREFIX = "fss_"  # a user's session
SECRET_BYTES = 32
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 reads all of it: a bound on the work one request can ask for
MAX_ENVIRONMENTS = 100  # environment keys in one account's list
MAX_NAME = 64
BOOTSTRAP = "token:bootstrap"
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")


class AccountInputError(ValueError):
    """Bad input for an account or a token; the message names the field."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request authenticated as. ``name`` is what the history records as the actor:
    the username, ``token:<name>`` or ``token:bootstrap``. ``environments`` None: all."""

    name: str
    role: Role
    environments: tuple[str, ...] | None
    kind: PrincipalKind
    ref: str = ""  # the username, the token id or the session digest behind it

    def may_write(self, env: str | None) -> bool:
        """May write flags and segments in ``env`` (None: in every environment)."""
        if self.role == "admin":
            return True
        if self.role != "editor":
            return False
        return self.environments is None or (env is not None and env in self.environments)

    def scope(self) -> str:
        """``editor of [dev, test]``, ``role viewer``: how messages name this principal."""
        if self.role == "editor" and self.environments is not None:
            return f"editor of [{', '.join(self.environments)}]"
        return f"role {self.role}"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "role": self.role, "kind": self.kind}
        if self.environments is not None:
            out["environments"] = list(self.environments)
        return out


def check_username(value: object) -> str:
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        raise AccountInputError("username: 1-64 of a-z 0-9 . _ @ -, starting with a letter or "
                                "digit")
    return value


def check_token_name(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or not is_valid_key(value):
        raise AccountInputError(f"name: 1-{MAX_NAME} of A-Z a-z 0-9 . _ -")
    if value == "bootstrap":
        raise AccountInputError('name: "bootstrap" is the bootstrap token\'s')
    return value


def check_password(value: object, field: str = "password") -> str:
    if not isinstance(value, str) or not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise AccountInputError(
            f"{field}: a string of {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return value


def check_role(value: object) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise AccountInputError('role: one of "viewer", "editor", "admin"')


def check_environments(value: object) -> tuple[str, ...] | None:
    """An ``environments`` list: absent/None means all; a list of environment keys."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_ENVIRONMENTS \
            or not all(isinstance(v, str) and is_valid_key(v) for v in value):
        raise AccountInputError(
            f"environments: a list of at most {MAX_ENVIRONMENTS} environment keys")
    return tuple(sorted(set(value)))


def exceeds(creator: Principal, role: Role, environments: Sequence[str] | None) -> str | None:
    """Why a token of ``role`` and ``environments`` would have more rights than ``creator``
    (None: it would not)."""
    if _RANK[role] > _RANK[creator.role]:
        return f"{creator.scope()} may not create a token of role {role}"
    if role == "editor" and creator.role == "editor" and creator.environments is not None:
        outside = sorted(set(environments or ["(all)"]) - set(creator.environments))
        if environments is None or outside:
            return (f"{creator.scope()} may not create an editor token for "
                    f"{'every environment' if environments is None else ', '.join(outside)}")
    return None


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    """The stored form of a token or session secret (see the module docstring)."""
    return hashlib.sha256(secret.encode()).hexdigest()
