"""Admin API routes for users, API tokens and sessions (the rights each needs: ``RIGHTS``).

- ``POST /api/v1/users`` ``{"username","password","role","environments"?}`` → 201 the user;
  ``GET /api/v1/users``; ``GET|PATCH|DELETE /api/v1/users/{username}`` (PATCH: ``role``,
  ``environments``, ``password``; a new password ends the user's sessions). Admin only.
- ``POST /api/v1/tokens`` ``{"name","role","environments"?,"expiresAt"?}`` → 201 with
  ``"token"``, the secret, shown in this answer only; ``GET /api/v1/tokens``;
  ``DELETE /api/v1/tokens/{id}`` revokes at once. Any principal may create a token with at
  most its own rights; a non-admin sees and revokes only the tokens it created.
- ``POST /api/v1/sessions`` ``{"username","password"}`` → 201 ``{"token","expiresAt",...}``:
  a user's short-lived bearer (12 h), rate-limited per account and per address (429 with
  ``Retry-After``); ``DELETE /api/v1/sessions/current`` signs out.
- ``GET /api/v1/account``: who the caller is; ``POST /api/v1/account/password``
  ``{"currentPassword","newPassword"}``: a user changes their own password (ends every
  session of theirs, this one too).

Answers never hold a password hash, a token's digest or a secret other than the new one.
"""

from __future__ import annotations

import secrets
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from insights.timefmt import iso_from_ms, ms_from_text
from store.accounts import (
    TOKEN_PREFIX,
    AccountInputError,
    Principal,
    check_environments,
    check_password,
    check_role,
    check_token_name,
    check_username,
    digest,
    exceeds,
    new_secret,
)
from store.accounts_db import AccountExistsError, LimitReachedError, UserRecord
from store.admin_http import ApiError, current_principal, error_response, json_response, read_json
from store.auth import Authenticator, LoginRefusedError
from store.permissions import Right, Route

USERS = "/api/v1/users"
TOKENS = "/api/v1/tokens"
RIGHTS: dict[Route, Right] = {
    ("POST", "/api/v1/sessions"): "public",
    ("DELETE", "/api/v1/sessions/current"): "authenticated",
    ("GET", "/api/v1/account"): "authenticated",
    ("POST", "/api/v1/account/password"): "authenticated",
    ("GET", USERS): "admin",
    ("POST", USERS): "admin",
    ("GET", f"{USERS}/<username>"): "admin",
    ("PATCH", f"{USERS}/<username>"): "admin",
    ("DELETE", f"{USERS}/<username>"): "admin",
    ("GET", TOKENS): "authenticated",
    ("POST", TOKENS): "authenticated",
    ("DELETE", f"{TOKENS}/<token_id>"): "authenticated",
}


def _object(body: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "(root): expected an object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown field")
    missing = sorted(required - set(body))
    if missing:
        raise ApiError(400, f"{missing[0]}: required")
    return body


def _scope(role: str, environments: tuple[str, ...] | None) -> None:
    if environments is not None and role != "editor":
        raise ApiError(400, "environments: only an editor is limited to environments")


def register_account_routes(app: QuartTrio, *, auth: Authenticator, max_body_bytes: int) -> None:
    accounts = auth.accounts

    def own_user(p: Principal) -> UserRecord:
        user = accounts.get_user(p.name) if p.kind == "session" else None
        if user is None:
            raise ApiError(400, f"{p.name} is not a signed-in user: sign in with "
                           "POST /api/v1/sessions")
        return user

    @app.errorhandler(AccountInputError)
    async def _input_error(exc: AccountInputError) -> Response:
        return error_response(400, str(exc))

    @app.errorhandler(AccountExistsError)
    async def _exists(exc: AccountExistsError) -> Response:
        return error_response(409, str(exc))

    @app.errorhandler(LimitReachedError)
    async def _limit(exc: LimitReachedError) -> Response:
        return error_response(409, str(exc))

    @app.post("/api/v1/sessions")
    async def sign_in() -> Response:
        body = _object(await read_json(max_body_bytes), {"username", "password"},
                       {"username", "password"})
        username, password = body["username"], body["password"]
        if not isinstance(username, str) or not isinstance(password, str) \
                or len(username) > 64 or len(password) > 1024:
            raise ApiError(400, "username and password: strings (at most 64 and 1024 "
                           "characters)")
        try:
            user = await auth.check_password(username, password, request.remote_addr or "-")
        except LoginRefusedError as exc:
            resp = error_response(exc.status, exc.message)
            if exc.retry_after_s:
                resp.headers["Retry-After"] = str(exc.retry_after_s)
            return resp
        secret, expires_ms = await auth.open_session(user.username)
        return json_response({"token": secret, "expiresAt": iso_from_ms(expires_ms),
                              "username": user.username, "role": user.role}, 201)

    @app.delete("/api/v1/sessions/current")
    async def sign_out() -> Response:
        p = current_principal()
        if p.kind != "session":
            raise ApiError(400, f"{p.name} is not a session: revoke a token with "
                           "DELETE /api/v1/tokens/{id}")
        await trio.to_thread.run_sync(accounts.delete_session, p.ref)
        return Response(b"", status=204)

    @app.get("/api/v1/account")
    async def whoami() -> Response:
        return json_response(current_principal().as_dict())

    @app.post("/api/v1/account/password")
    async def change_own_password() -> Response:
        p = current_principal()
        user = own_user(p)
        body = _object(await read_json(max_body_bytes), {"currentPassword", "newPassword"},
                       {"currentPassword", "newPassword"})
        current = body["currentPassword"]
        if not isinstance(current, str) or len(current) > 1024:
            raise ApiError(400, "currentPassword: a string of at most 1024 characters")
        new = check_password(body["newPassword"], "newPassword")
        try:
            await auth.check_password(user.username, current, request.remote_addr or "-")
        except LoginRefusedError as exc:
            status = 403 if exc.status == 401 else exc.status
            resp = error_response(status, "currentPassword is wrong" if status == 403
                                  else exc.message)
            if exc.retry_after_s:
                resp.headers["Retry-After"] = str(exc.retry_after_s)
            return resp
        hashed = await auth.hash_password(new)
        await trio.to_thread.run_sync(lambda: accounts.update_user(user.username,
                                                                   password_hash=hashed))
        return Response(b"", status=204)

    # -- users (admin) --------------------------------------------------------------------

    def user_or_404(username: str) -> UserRecord:
        user = accounts.get_user(username)
        if user is None:
            raise ApiError(404, f'user "{username[:64]}" not found')
        return user

    @app.get(USERS)
    async def list_users() -> Response:
        return json_response({"items": [u.as_dict() for u in accounts.list_users()]})

    @app.post(USERS)
    async def create_user() -> Response:
        body = _object(await read_json(max_body_bytes),
                       {"username", "password", "role", "environments"},
                       {"username", "password", "role"})
        username = check_username(body["username"])
        password = check_password(body["password"])
        role = check_role(body["role"])
        envs = check_environments(body.get("environments"))
        _scope(role, envs)
        hashed = await auth.hash_password(password)
        user = await trio.to_thread.run_sync(accounts.add_user, username, hashed, role, envs)
        return json_response(user.as_dict(), 201)

    @app.get(f"{USERS}/<username>")
    async def get_user(username: str) -> Response:
        return json_response(user_or_404(username).as_dict())

    @app.patch(f"{USERS}/<username>")
    async def update_user(username: str) -> Response:
        old = user_or_404(username)
        body = _object(await read_json(max_body_bytes), {"role", "environments", "password"},
                       set())
        role = check_role(body["role"]) if "role" in body else old.role
        set_envs = "environments" in body or role != "editor"
        envs = check_environments(body.get("environments")) if "environments" in body \
            else old.environments if role == "editor" else None
        _scope(role, envs)
        hashed = None
        if "password" in body:
            hashed = await auth.hash_password(check_password(body["password"]))

        def update() -> UserRecord | None:
            return accounts.update_user(username, role=role, environments=envs,
                                        set_environments=set_envs, password_hash=hashed)

        user = await trio.to_thread.run_sync(update)
        if user is None:
            raise ApiError(404, f'user "{username[:64]}" not found')
        return json_response(user.as_dict())

    @app.delete(f"{USERS}/<username>")
    async def delete_user(username: str) -> Response:
        if not await trio.to_thread.run_sync(accounts.delete_user, username):
            raise ApiError(404, f'user "{username[:64]}" not found')
        return Response(b"", status=204)

    # -- tokens ---------------------------------------------------------------------------

    @app.get(TOKENS)
    async def list_tokens() -> Response:
        p = current_principal()
        mine = None if p.role == "admin" else p.name
        return json_response({"items": [t.as_dict() for t in accounts.list_tokens(mine)]})

    @app.post(TOKENS)
    async def create_token() -> Response:
        p = current_principal()
        body = _object(await read_json(max_body_bytes),
                       {"name", "role", "environments", "expiresAt"}, {"name", "role"})
        name = check_token_name(body["name"])
        role = check_role(body["role"])
        envs = check_environments(body.get("environments"))
        _scope(role, envs)
        expires_ms = _expiry(body.get("expiresAt"), accounts.now_ms())
        why = exceeds(p, role, envs)
        if why is not None:
            raise ApiError(403, f"{why}: a token may not have more rights than its creator")
        secret = new_secret(TOKEN_PREFIX)
        record = await trio.to_thread.run_sync(
            lambda: accounts.add_token(secrets.token_hex(8), name, digest(secret), role, envs,
                                       p.name, expires_ms))
        return json_response({**record.as_dict(), "token": secret}, 201)

    @app.delete(f"{TOKENS}/<token_id>")
    async def revoke_token(token_id: str) -> Response:
        p = current_principal()
        token = accounts.get_token(token_id[:64])
        if token is None or (p.role != "admin" and token.created_by != p.name):
            raise ApiError(404, f'token "{token_id[:64]}" not found')
        await trio.to_thread.run_sync(accounts.delete_token, token.id)
        return Response(b"", status=204)


def _expiry(value: object, now_ms: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "expiresAt: an ISO-8601 time (or Unix milliseconds) as a string")
    try:
        ms = ms_from_text(value)
    except ValueError as exc:
        raise ApiError(400, f"expiresAt: {exc}") from None
    if ms <= now_ms:
        raise ApiError(400, "expiresAt: must be in the future")
    return ms
