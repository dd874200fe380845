"""Benchmark of the change history: what the history indexes cost a commit, and what a page of
``GET .../changes`` costs with and without a filter.

    python -m store.bench_history [--changes 50000] [--batch 100]

Commits ``--changes`` single-item changes (groups of ``--batch`` per transaction, as the writer
commits them) over 1,000 flags by 20 actors, then times history pages. Prints figures; asserts
nothing. It uses only ``FlagDB.commit`` and ``FlagDB.history``, so it also runs on a tree from
before the history filters (those rows are then left out) for a baseline in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from store.db import FlagDB
from store.records import ChangeRequest, ItemWrite

FLAG = {"on": True, "variations": [True, False], "fallthrough": {"variation": 0},
        "offVariation": 1, "salt": "s"}


def _time_us(fn: Any, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        now = [1_700_000_000.0]
        db = FlagDB(Path(tmp), clock=lambda: now[0])
        db.create_environment("prod", "Production")
        t0 = time.perf_counter()
        for start in range(0, args.changes, args.batch):
            now[0] += 1.0
            db.commit([ChangeRequest("prod", f"user{i % 20}",
                                     (ItemWrite("flags", f"flag{i % 1000}", FLAG),))
                       for i in range(start, min(start + args.batch, args.changes))])
        commit_s = time.perf_counter() - t0
        print(f"commit: {args.changes} changes in batches of {args.batch}: "
              f"{commit_s * 1e6 / args.changes:.1f} us per change")
        cases: list[tuple[str, dict[str, Any]]] = [("no filter", {})]
        try:
            from store.records import HistoryFilter
        except ImportError:
            print("(no history filters in this tree)")
        else:
            cases += [
                ("key=flag7", {"filters": HistoryFilter(kind="flags", key="flag7")}),
                ("actor=user3", {"filters": HistoryFilter(actor="user3")}),
                ("since=last 100 s", {"filters": HistoryFilter(
                    since_ms=int((now[0] - 100) * 1000))}),
                ("actor=nobody", {"filters": HistoryFilter(actor="nobody")}),
            ]
        for name, kw in cases:
            median, p99 = _time_us(lambda kw=kw: db.history("prod", limit=51, **kw), 200)
            print(f"page of 50, {name}: median {median:.0f} us, p99 {p99:.0f} us")
        db.close()


if __name__ == "__main__":
    main()
