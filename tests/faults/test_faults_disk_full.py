"""A full disk under the event spool: a clear 503, never a 202 for an event that was not
written, and the node keeps serving flags.

The spool directory of a real node is a 1 MiB tmpfs (mounted here; this needs root, and the
test is skipped with the reason if the mount is refused). Analytics payloads are posted until
the node answers 503; every payload it acknowledged with 202 is then found in the spool.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ingest.ports import Record
from ingest.spool import Position, SpoolWriter, encode_frame, read_frames
from tests.e2e.node_proc import NodeProcess, create_env, open_stream, serve_argv, wait_until

MAX_POSTS = 2000


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``where`` (created); skips the test if it cannot be."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system is full; returns the file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            for _ in range(100_000):  # bounded: 100,000 x 4 KiB
                f.write(b"\0" * 4096)
        with contextlib.suppress(OSError):
            for _ in range(4096):  # the last partial page
                f.write(b"\0")
    return filler


@pytest.fixture
def small_spool(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "data" / "spool", "1m"):
        yield tmp_path / "data"


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


def test_a_write_the_full_disk_cut_short_leaves_no_torn_frame(tmp_path: Path) -> None:
    # os.write on a nearly full disk writes part of the frames, then fails with ENOSPC. That
    # part must not stay in the log: the records acknowledged after it (once room is made)
    # would sit behind bytes that stop every reader of the spool, the shipper and insights.
    with tmpfs(tmp_path / "fs", "256k") as fs:
        writer = SpoolWriter(fs / "spool")
        writer.open()
        filler = fill(fs)
        filler.write_bytes(b"\0" * (filler.stat().st_size - 20_000))  # leave about 20 KB
        acknowledged: list[str] = []
        failed = None
        for i in range(100):
            try:
                writer.append(encode_frame(Record(f"r{i}", b"x" * 9000)))
            except OSError as exc:
                failed = exc
                break
            acknowledged.append(f"r{i}")
        assert failed is not None, "the disk never filled"
        filler.unlink()  # room again: the next appends succeed
        for i in range(100, 103):
            writer.append(encode_frame(Record(f"r{i}", b"y" * 9000)))
            acknowledged.append(f"r{i}")
        writer.close()
        read = [r.partition_key for r, _ in read_frames(fs / "spool", Position(1, 0),
                                                        max_records=1000, max_bytes=1 << 24)]
        assert read == acknowledged, f"after {failed!r}: read {read}"


def io_errors(node: NodeProcess, part: str) -> float:
    text = httpx.get(node.urls["sdk"] + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("flagstream_io_errors_total{") and f'part="{part}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_full_data_disk_ends_no_worker(tmp_path: Path) -> None:
    # The whole data dir full: the worker's metrics snapshot (every 5 s) and the spool fail.
    # Before, the snapshot's OSError ended the worker every 5 s with every stream it held.
    with tmpfs(tmp_path / "data", "16m") as data:
        node = NodeProcess(serve_argv(data, workers=1), data).start()
        try:
            env = create_env(node, "full")
            workers = node.children()
            stream, head = open_stream(node, env["sdkKey"])
            assert b"event: put" in head
            filler = fill(data)
            wait_until(lambda: io_errors(node, "snapshot") >= 2, 20, "two failed snapshots",
                       interval=0.5)
            assert node.children() == workers
            headers = {"Authorization": env["sdkKey"], "Content-Type": "application/json"}
            # larger than a page: a small payload can fit in the free tail of the spool file's
            # last tmpfs page even on a full disk, and is then written and rightly acknowledged
            events = orjson.dumps([{"kind": "custom", "key": "k", "creationDate": 1,
                                    "data": "x" * 4000} for _ in range(16)])
            post = httpx.post(node.urls["sdk"] + "/bulk", content=events, headers=headers,
                              timeout=10)
            assert post.status_code == 503, post.text  # not written: not acknowledged
            stream.settimeout(10)
            assert stream.recv(65536), "the open stream was dropped"
            again, head = open_stream(node, env["sdkKey"])
            again.close()
            assert b"event: put" in head
            filler.unlink()
            wait_until(lambda: httpx.post(node.urls["sdk"] + "/bulk", content=events,
                                          headers=headers, timeout=10).status_code == 202,
                       20, "events accepted once there is room", interval=0.5)
            assert io_errors(node, "spool") >= 1 and node.children() == workers
            stream.close()
        finally:
            node.stop()
