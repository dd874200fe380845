"""The README's first admin example, run as written (through bash and curl) against a real
node, so that a new user's first commands keep working."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.node_proc import REPO, NodeProcess

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")]


def readme_block(after: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    m = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert m is not None
    return m.group(1)


def test_create_environment_and_flag_as_the_readme_says(node: NodeProcess,
                                                        tmp_path: Path) -> None:
    script = readme_block("Create an environment and a flag:")
    # the node under test: its own data dir and admin port instead of the defaults
    (tmp_path / "admin-token").write_text(node.token)
    script = script.replace("flagstream-data/admin-token", str(tmp_path / "admin-token"))
    script = script.replace("http://127.0.0.1:8070", node.urls["admin"])
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    decoder, docs, pos = json.JSONDecoder(), [], 0
    while pos < len(out.strip()):  # curl -s adds no newline: the two bodies run together
        doc, pos = decoder.raw_decode(out, pos)
        docs.append(doc)
    env, flag = docs
    assert env["key"] == "prod" and env["sdkKey"].startswith("sdk-")
    assert flag["key"] == "new-checkout" and flag["version"] == 1 and flag["on"] is True
