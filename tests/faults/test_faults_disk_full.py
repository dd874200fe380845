"""A full disk under the event spool: a clear 503, never a 202 for an event that was not
written, and the node keeps serving flags.

The spool directory of a real node is a 1 MiB tmpfs (mounted here; this needs root, and the
test is skipped with the reason if the mount is refused). Analytics payloads are posted until
the node answers 503; every payload it acknowledged with 202 is then found in the spool.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ingest.spool import Position, read_frames
from tests.e2e.node_proc import NodeProcess, create_env, serve_argv

MAX_POSTS = 2000


@pytest.fixture
def small_spool(tmp_path: Path) -> Iterator[Path]:
    spool = tmp_path / "data" / "spool"
    spool.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(spool)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the spool: {done.stderr.strip()}")
    try:
        yield tmp_path / "data"
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)


def test_full_spool_disk_gives_503_and_loses_nothing(small_spool: Path) -> None:
    node = NodeProcess(serve_argv(small_spool, workers=1), small_spool).start()
    try:
        env = create_env(node, "disk")
        headers = {"Authorization": env["sdkKey"], "Content-Type": "application/json"}
        events = orjson.dumps([{"kind": "custom", "key": f"k{i}", "creationDate": 1,
                                "data": "x" * 100} for i in range(40)])
        accepted: list[str] = []
        refusal: httpx.Response | None = None
        with httpx.Client(base_url=node.urls["sdk"], timeout=30) as c:
            for i in range(MAX_POSTS):
                pid = f"full-{i:05d}"
                r = c.post("/bulk", content=events,
                           headers={**headers, "X-LaunchDarkly-Payload-ID": pid})
                if r.status_code == 202:
                    accepted.append(pid)
                    continue
                refusal = r
                break
            assert refusal is not None, f"{MAX_POSTS} payloads fit in a 1 MiB spool?"
            assert refusal.status_code == 503, refusal.text
            assert "spool" in refusal.text and "No space left" in refusal.text, refusal.text
            assert refusal.headers.get("Retry-After")
            # still full: still refused, never acknowledged
            again = c.post("/bulk", content=events,
                           headers={**headers, "X-LaunchDarkly-Payload-ID": "after-full"})
            assert again.status_code == 503
            # the node keeps serving flags
            assert c.get("/sdk/latest-all", headers=headers).status_code == 200
        spooled = read_frames(small_spool / "spool" / "worker-0", Position(1, 0),
                              max_records=100_000, max_bytes=1 << 30)
        in_spool = {record.partition_key for record, _ in spooled}
        lost = [pid for pid in accepted if pid not in in_spool]
        print(f"\nfull disk: {len(accepted)} payloads accepted before the spool filled, then "
              f"503 {refusal.json()['message']!r}; {len(lost)} accepted payloads missing")
        assert accepted and not lost and "after-full" not in in_spool
    finally:
        node.stop()
