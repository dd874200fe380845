"""What a node writes to its data dir is its own user's only (issue 12, finding 7): the data
dir is 0700 and flagstream.db, which holds every SDK and mobile key, is 0600 with its -wal and
-shm, whatever umask the node was started with."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.e2e.node_proc import NodeProcess, bool_flag, create_env, serve_argv, wait_until


def test_data_dir_and_database_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old_mask = os.umask(0o022)  # the usual login umask: without the node's own, files are 0644
    try:
        node = NodeProcess(serve_argv(data, workers=1), data).start()
    finally:
        os.umask(old_mask)
    try:
        create_env(node, "modes")  # a write: the -wal and -shm exist while the store runs
        with node.admin as c:
            assert c.put("/api/v1/environments/modes/flags/f", json=bool_flag()).status_code == 201
        wait_until(lambda: any((data / "metrics").glob("worker-*.prom")), 15,
                   "the worker's first metrics snapshot")
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in ("flagstream.db", "flagstream.db-wal", "flagstream.db-shm"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
        # Everything else the node made there too (admin token, spool, metrics, bus sockets).
        open_to_others = {str(p.relative_to(data)): oct(stat.S_IMODE(p.lstat().st_mode))
                          for p in data.rglob("*") if p.lstat().st_mode & 0o077}
        assert open_to_others == {}
    finally:
        node.stop()
