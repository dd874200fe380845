"""The admin API's access and audit log lines (logger ``flagstream.audit``).

One line per admin write that succeeded: who (the actor), what (method and route), the
environment, the item kind and key, the version it got, and the operator's comment
(``X-Flagstream-Comment``) if one was given. One line per authentication failure: the client
address and the route, never a byte of the token that was sent. Values are ``key=value``
pairs; each value comes from a validated key, the actor (printable, at most 200 characters) or
is quoted with its control characters escaped, so a line cannot be forged by a request.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from quart import Response, request

audit_log = logging.getLogger("flagstream.audit")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_COMMENT = 500


def _quoted(text: str) -> str:
    return orjson.dumps(text[:MAX_COMMENT]).decode()  # JSON string: escapes quotes and controls


def log_auth_failure() -> None:
    audit_log.warning("auth failed: addr=%s method=%s path=%s", request.remote_addr or "-",
                      request.method, _quoted(request.path))


async def log_write(response: Response, actor: str) -> None:
    """Log ``response`` if it answers a successful write (call it from after_request)."""
    if request.method not in WRITE_METHODS or response.status_code >= 400:
        return
    args: dict[str, Any] = request.view_args or {}
    doc: Any = None
    if response.content_type == "application/json":
        try:
            doc = orjson.loads(await response.get_data())
        except orjson.JSONDecodeError:
            doc = None
    if not isinstance(doc, dict):
        doc = {}
    version = str(doc["version"]) if isinstance(doc.get("version"), int) else "-"
    # POST /environments names the new environment in its answer, not in its path.
    env = args.get("env") or (doc["key"] if isinstance(doc.get("key"), str) else "-")
    comment = request.headers.get("X-Flagstream-Comment")
    audit_log.info(
        "admin write: actor=%s method=%s path=%s env=%s kind=%s key=%s version=%s status=%d%s",
        _quoted(actor), request.method, _quoted(request.path), env,
        args.get("kind", "-"), args.get("key", "-"), version, response.status_code,
        f" comment={_quoted(comment)}" if comment else "")
