"""A small client of the admin HTTP API for the operator's commands (stdlib urllib only).

It knows the API only as HTTP: no store or streamer internals, so the commands work against
any node, local or remote. Failures become two exceptions: :class:`AdminApiError` (the API
answered with an error; its one-line message) and :class:`AdminUnreachable` (no answer).

Where the URL and token come from, highest first: the ``--admin-url`` / ``--token`` flags,
``FLAGSTREAM_ADMIN_URL`` / ``FLAGSTREAM_ADMIN_TOKEN``, then the data dir (its ``admin-token``
file, written by the node on first start); the URL defaults to ``http://127.0.0.1:8070``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_ADMIN_URL = "http://127.0.0.1:8070"
TOKEN_FILE = "admin-token"
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # an answer larger than this is refused, not buffered


class AdminApiError(Exception):
    """The admin API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status


class AdminUnreachable(Exception):
    """No answer from the admin API, or an answer that is not the API's."""


class TargetError(Exception):
    """The URL or token cannot be worked out."""


@dataclass(frozen=True, slots=True)
class AdminTarget:
    url: str  # without a trailing slash
    token: str


def resolve_target(url: str | None, token: str | None, data_dir: Path,
                   environ: Mapping[str, str]) -> AdminTarget:
    url = url or environ.get("FLAGSTREAM_ADMIN_URL") or DEFAULT_ADMIN_URL
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TargetError(f"admin URL must be http://HOST:PORT or https://..., got {url!r}")
    token = token or environ.get("FLAGSTREAM_ADMIN_TOKEN") or None
    if token is None:
        token_file = data_dir / TOKEN_FILE
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise TargetError(
                f"no admin token: give --token or FLAGSTREAM_ADMIN_TOKEN, or a --data-dir whose "
                f"admin-token file is readable ({token_file}: {exc.strerror})") from None
    return AdminTarget(url.rstrip("/"), token)


def path_of(*segments: str) -> str:
    """``/api/v1/`` + the segments, each percent-encoded (a key never escapes its place)."""
    return "/api/v1/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)


class AdminClient:
    def __init__(self, target: AdminTarget, *, timeout_s: float = 30.0) -> None:
        self._target = target
        self._timeout_s = timeout_s

    def call(self, method: str, path: str, body: Any = None,
             query: Mapping[str, str | None] | None = None,
             headers: Mapping[str, str] | None = None) -> Any:
        """The decoded JSON answer (None for 204)."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self._target.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self._target.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {}),
            **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                raw = resp.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise AdminApiError(exc.code, _error_message(exc.read(64 * 1024))) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise AdminUnreachable(f"cannot reach the admin API at {self._target.url}: "
                                   f"{reason}") from None
        if len(raw) > MAX_ANSWER_BYTES:
            raise AdminUnreachable(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise AdminUnreachable(f"{self._target.url} did not answer JSON: is it the admin "
                                   "listener?") from None


def _error_message(raw: bytes) -> str:
    """The API's ``error.message``, on one line; the raw text if the body is not ours."""
    try:
        doc = json.loads(raw)
        message = str(doc["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = raw.decode(errors="replace").strip() or "no message"
    return " ".join(message.split())[:500]
