"""The README, run as written (through bash, curl, the ``flagstream`` commands and the Python
SDK) against a real node, so that a new user's first commands keep working: its first admin
example, and its whole tour."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.node_proc import REPO, NodeProcess

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")]

README = (REPO / "README.md").read_text()
DEFAULT_URLS = {"admin": "http://127.0.0.1:8070", "stream": "http://127.0.0.1:8030",
                "sdk": "http://127.0.0.1:8031"}


def readme_block(after: str) -> str:
    start = README.index(after)
    m = re.search(r"```sh\n(.*?)```", README[start:], re.S)
    assert m is not None
    return m.group(1)


def tour_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the tour, in order."""
    start = README.index("\n## A tour\n")
    end = README.index("\n## ", start + 1)
    return re.findall(r"```(\w*)\n(.*?)```", README[start:end], re.S)


def for_node(code: str, node: NodeProcess) -> str:
    """The README's code aimed at the node under test instead of the default ports."""
    for name, url in DEFAULT_URLS.items():
        code = code.replace(url, node.urls[name])
    return code


def test_create_environment_and_flag_as_the_readme_says(node: NodeProcess,
                                                        tmp_path: Path) -> None:
    script = readme_block("Create an environment and a flag:")
    # the node under test: its own data dir and admin port instead of the defaults
    (tmp_path / "admin-token").write_text(node.token)
    script = script.replace("flagstream-data/admin-token", str(tmp_path / "admin-token"))
    script = script.replace("http://127.0.0.1:8070", node.urls["admin"])
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    env, flag = docs
    assert env["key"] == "prod" and env["sdkKey"].startswith("sdk-")
    assert flag["key"] == "new-checkout" and flag["version"] == 1 and flag["on"] is True


class Lines:
    """A background process's output lines, read by a thread so a wait can have a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self._q.put(line.rstrip("\n"))
            self._q.put(None)

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} within {timeout} s: {self.seen}")


def test_the_tour_as_written(node: NodeProcess, tmp_path: Path) -> None:
    # The tour's second terminal: the node's data dir beside it, the venv's commands on PATH,
    # FLAGSTREAM_ADMIN_URL for the flagstream commands' default http://127.0.0.1:8070 (curl's
    # URLs are rewritten instead), and TOKEN kept from one block to the next as a shell would.
    (tmp_path / "flagstream-data").mkdir()
    (tmp_path / "flagstream-data" / "admin-token").write_text(node.token)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               FLAGSTREAM_ADMIN_URL=node.urls["admin"], TOKEN=node.token, PYTHONUNBUFFERED="1")
    blocks = tour_blocks()
    assert [lang for lang, _ in blocks] == ["", "sh", "sh", "python", "sh", "sh", "sh"]
    outputs: list[str] = []
    watcher: subprocess.Popen[str] | None = None
    watch: Lines | None = None
    try:
        for lang, code in blocks:
            code = for_node(code, node)
            if lang == "python":
                (tmp_path / "watch.py").write_text(code)
            elif lang == "sh" and "python watch.py &" in code:
                watcher = subprocess.Popen(
                    ["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    start_new_session=True)
                watch = Lines(watcher)
                # what it prints first: the rule serves alice, not bob
                assert watch.wait_for("watch.py:", 60) == "watch.py: alice True, bob False"
            elif lang == "sh":
                done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path,
                                      env=env, capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, (code, done.stdout, done.stderr)
                outputs.append(done.stdout)
        assert watch is not None
        # after `flagstream flags off`: the SDK's next line
        assert watch.wait_for("watch.py:", 30) == "watch.py: alice False, bob False"
    finally:
        if watcher is not None:
            os.killpg(watcher.pid, signal.SIGTERM)
            watcher.wait(10)
            if watch is not None:
                watch.thread.join(10)  # the pipe's end is read before it is closed
            assert watcher.stdout is not None
            watcher.stdout.close()
    _created, rule, off, history = outputs
    assert re.search(r"^new-checkout +on +2 +2 +0$", rule, re.M), rule
    patched, _ = json.JSONDecoder().raw_decode(rule)
    (clause,) = patched["rules"][0]["clauses"]
    assert (clause["attribute"], clause["op"], clause["values"]) \
        == ("email", "endsWith", ["@example.com"])
    assert re.search(r"^new-checkout +off +3 +2 +0$", off, re.M), off
    rows = [line.split() for line in history.splitlines()[1:]]
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        ("token:bootstrap", "flags", "new-checkout", v) for v in ("3", "2", "1")]
