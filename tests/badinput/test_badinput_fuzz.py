"""A short atheris run of every fuzz target (3,000 inputs each); the long runs are the
explicit command in tests/badinput/fuzz_atheris.py, with results recorded in ops/README.md."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = ["sse", "chunked", "events", "gzip", "context_b64", "context_json", "flag"]
RUNS = 3000


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (pip install atheris)")
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target(target: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.badinput.fuzz_atheris", target, f"-runs={RUNS}",
         f"-artifact_prefix={tmp_path}/"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(rf"#{RUNS}\s+DONE", done.stderr), done.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*"))
