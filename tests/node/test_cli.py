"""Start-up failures of the real `flagstream` command: clear message, non-zero exit."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

from node.supervisor import ensure_admin_token

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--workers", "1",
                    "--stream-bind", f"127.0.0.1:{port}", "--sdk-bind", "127.0.0.1:0",
                    "--admin-bind", "127.0.0.1:0")
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (stream)" in r.stderr


def test_unusable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    r = run_cli("serve", "--data-dir", str(blocker / "sub"), "--workers", "1")
    assert r.returncode == 2
    assert "data dir" in r.stderr and "unusable" in r.stderr


def test_bad_option_from_environment(tmp_path: Path) -> None:
    r = run_cli("serve", "--data-dir", str(tmp_path), env={"FLAGSTREAM_WORKERS": "zero"})
    assert r.returncode == 2
    assert "FLAGSTREAM_WORKERS" in r.stderr


def test_generated_token_is_private_and_stable(tmp_path: Path) -> None:
    token, generated = ensure_admin_token(tmp_path, None)
    assert generated and len(token) >= 32
    mode = stat.S_IMODE((tmp_path / "admin-token").stat().st_mode)
    assert mode == 0o600
    assert ensure_admin_token(tmp_path, None) == (token, False)
    assert ensure_admin_token(tmp_path, "given") == ("given", False)
