"""``flagstream import``: send SDK-format data to a running node's admin import endpoint."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def run_import(settings: dict[str, Any], *, env: str, file: Path, lenient: bool,
               admin_url: str | None) -> int:
    token = settings.get("admin_token")
    if not token:
        token_file = Path(settings["data_dir"]) / "admin-token"
        try:
            token = token_file.read_text().strip()
        except OSError:
            print(f"flagstream: no --admin-token given and {token_file} is unreadable",
                  file=sys.stderr)
            return 2
    try:
        body = file.read_bytes()
        json.loads(body)
    except OSError as exc:
        print(f"flagstream: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"flagstream: {file} is not JSON: {exc}", file=sys.stderr)
        return 2
    if admin_url is None:
        host, port = settings["admin_bind"]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        admin_url = f"http://{host}:{port}"
    query = "?lenient=true" if lenient else ""
    url = f"{admin_url}/api/v1/environments/{urllib.parse.quote(env, safe='')}/import{query}"
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            print(resp.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"flagstream: import refused ({exc.code}): {exc.read().decode(errors='replace')}",
              file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"flagstream: cannot reach {admin_url}: {exc.reason}", file=sys.stderr)
        return 1
