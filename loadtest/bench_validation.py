"""Validation benchmark: what checking one flag or segment costs on the write path.

    python3 -m loadtest.bench_validation [--flags 200] [--repeat 5]

Every PUT, PATCH and import validates each item once (``flagmodel.validation.check_item``)
before it is coalesced. This times ``check_item`` over the fixed-seed environment of
``loadtest.bench_eval`` (``--flags`` flags with targets, rules over every operator family,
rollouts and prerequisites, and its segments) and prints microseconds per item, the best of
``--repeat`` passes, and how many items had problems (0: the generated data is valid, so the
figure is the cost of a full walk, not of an early refusal). Only ``check_item`` is used, so
the command measures any revision that has it (a baseline: ``PYTHONPATH=<other checkout>``).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from flagmodel.validation import check_item
from loadtest.bench_eval import make_flags, make_segments


def _pass(items: list[tuple[str, str, dict[str, Any]]]) -> tuple[float, int]:
    start = time.perf_counter()
    bad = sum(1 for kind, key, data in items if check_item(kind, key, data))
    return time.perf_counter() - start, bad


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flags", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    flags = make_flags(args.flags, rng)
    segments = make_segments(rng)
    items = [("flags", k, f) for k, f in flags.items()]
    items += [("segments", k, s) for k, s in segments.items()]
    best, bad = min(_pass(items) for _ in range(args.repeat))
    print(f"items: {len(items)} ({len(flags)} flags, {len(segments)} segments), "
          f"with problems: {bad}")
    print(f"check_item: {best / len(items) * 1e6:.1f} µs per item (best of {args.repeat})")


if __name__ == "__main__":
    main()
